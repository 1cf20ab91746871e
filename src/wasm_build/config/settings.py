"""Typed settings: one model for the pyproject table, the CLI and the JSON schema.

Keys are written in kebab-case in TOML (`smoke-test`) and snake_case in Python
(`smoke_test`). Every field carries its documentation in `metadata["help"]`;
`wasm_build.schema` turns these dataclasses into the JSON schema. The other front
ends derive their spelling of a key from the field, and metadata names it where the
derived one does not fit: `cli` (the `wasm-build` option, `cli.options`), `cmake`
(the `wasm_build_add_model()` keyword, `integrations.cmake`). `path` marks a file
name, which the CMake path makes absolute before it leaves the project directory.
"""

from __future__ import annotations

import dataclasses
import keyword
import math
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any, Literal

from ..errors import ConfigError
from .suggest import did_you_mean
from .types import FieldType, fields_of, toml_key

SUPPORTED_DTYPES = ("float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool")


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass(frozen=True)
class InputSpec:
    """Shape and dtype of one model input, for models that leave them open."""

    shape: tuple[int | str, ...] | None = field(
        default=None,
        metadata=_doc(
            'Shape, e.g. [1, 1, 49, 40]; a name instead of a size is a symbolic dimension bounded in `dims`, e.g. [1, "seq"].'
        ),
    )
    dtype: str | None = field(default=None, metadata=_doc("Element type.", enum=SUPPORTED_DTYPES))


@dataclass(frozen=True, kw_only=True)
class DimSpec:
    """Bounds of a symbolic dimension: one artifact runs every size from `min` to `max`."""

    min: int = field(default=1, metadata=_doc("Smallest size."))
    max: int = field(metadata=_doc("Largest size: memory is planned for it."))


@dataclass(frozen=True)
class TuningSettings:
    """Auto-tuning measured in wasmtime; trials = 0 only applies an existing database."""

    trials: int = field(
        default=0, metadata=_doc("Total meta-schedule trials (0: no tuning).", cli="--trials", cmake="TRIALS")
    )
    database: str | None = field(
        default=None,
        metadata=_doc(
            "Tuning database (JSON) in your repository, written by tuning and applied by builds.",
            cli="--tuning-database",
            metavar="FILE",
            path=True,
        ),
    )
    time_budget: float | None = field(
        default=None,
        metadata=_doc("Stop tuning after this many seconds.", cli="--time-budget", cmake="TIME_BUDGET", metavar="S"),
    )
    kernels: tuple[str, ...] = field(
        default=(),
        metadata=_doc(
            'Search only the kernels whose names match one of these glob patterns, e.g. ["fused_conv2d7_*"] '
            "(names as `wasm-build tune` prints them); default: every kernel worth searching.",
            cli="--tune-kernels",
            metavar="PATTERN",
        ),
    )


@dataclass(frozen=True)
class ModelSettings:
    """One model to compile into a wasm32 library."""

    name: str = field(metadata=_doc("C identifier used as prefix of every symbol, file and crate name."))
    source: str = field(metadata=_doc('A .onnx file, a .pt2 file (torch.export.save), or "pkg.module:function" returning a Relax IRModule.'))
    inputs: dict[str, InputSpec] = field(
        default_factory=dict, metadata=_doc("Shapes and dtypes for inputs the model leaves open, by input name.")
    )
    dims: dict[str, DimSpec] = field(
        default_factory=dict,
        metadata=_doc(
            "Bounds of symbolic dimensions by name (an ONNX dim_param, a torch.export Dim, or a name used in "
            "`inputs`): the artifact accepts every size within them.",
            cli="--dim",
            metavar="NAME=MIN..MAX",
        ),
    )
    simd: bool = field(default=True, metadata=_doc("Use WebAssembly SIMD128."))
    relaxed_simd: bool = field(
        default=False,
        metadata=_doc("Use relaxed SIMD (faster FMA/min/max; int8 products of 7-bit weights on its dot product). The module then fails to load on hosts without it."),
    )
    weights: Literal["embed", "file"] = field(
        default="embed", metadata=_doc("Embed weights in the archive, or write NAME.weights to load at init.")
    )
    smoke_test: bool = field(default=True, metadata=_doc("Run the artifact in wasmtime and compare with native TVM."))
    rtol: float = field(default=1e-3, metadata=_doc("Relative tolerance of the smoke test."))
    atol: float = field(default=1e-4, metadata=_doc("Absolute tolerance of the smoke test."))
    default_schedules: bool = field(default=True, metadata=_doc("Apply wasm-build's SIMD schedules to untuned kernels."))
    winograd_budget: float = field(
        default=0.5,
        metadata=_doc(
            "Memory that Winograd 3x3 convolutions' transformed weights may add (F(2x2): 2.25x fewer "
            "multiply-adds, 16/9 the weights; F(4x4): 4x fewer, 4x the weights; int8 convs F(2x2) only, "
            "int16 weights, 32/9 the bytes), as a fraction of the model's weights counted as float32 "
            "values; they are made at init, so the artifact keeps the original weights. 0 turns them off.",
            metavar="FRACTION",
        ),
    )
    tuning: TuningSettings = field(default_factory=TuningSettings, metadata=_doc("Auto-tuning in wasmtime."))


@dataclass(frozen=True)
class ProjectSettings:
    """The `[tool.wasm-build]` table."""

    out_dir: str = field(default="build/wasm", metadata=_doc("Artifacts on disk, for cargo / CMake builds."))
    wheel_dir: str | None = field(
        default=None, metadata=_doc("Where artifacts go inside the wheel (default: <top package>/wasm).")
    )
    cache_dir: str | None = field(
        default=None, metadata=_doc("Content-addressed build cache (default: ~/.cache/wasm-build or $WASM_BUILD_CACHE_DIR).")
    )
    models: tuple[ModelSettings, ...] = field(default=(), metadata=_doc("The models to build."))


# -- reading plain data (TOML tables, JSON) into the dataclasses -----------------------

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _convert(ft: FieldType, value: Any, path: str) -> Any:
    if value is None and ft.optional:
        return None
    if ft.kind == "literal":
        if value not in ft.choices:
            raise ConfigError(f"{path} = {value!r} is not one of {', '.join(map(repr, ft.choices))}")
        return value
    if ft.kind == "settings":
        return value if isinstance(value, ft.python) else from_dict(ft.python, value, path)
    if ft.kind == "list":
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{path} must be a list, got {type(value).__name__}")
        return tuple(_convert(ft.item, item, f"{path}[{i}]") for i, item in enumerate(value))
    if ft.kind == "table":
        if not isinstance(value, dict):
            raise ConfigError(f"{path} must be a table, got {type(value).__name__}")
        return {str(k): _convert(ft.item, v, f"{path}.{k}") for k, v in value.items()}
    if ft.kind == "either":
        for option in ft.options:
            if isinstance(value, option.python) and not (option.python is int and isinstance(value, bool)):
                return value
        kinds = " or ".join(option.python.__name__ for option in ft.options)
        raise ConfigError(f"{path} must be {kinds}, got {type(value).__name__} {value!r}")
    tp = ft.python
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{path} must be {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type, data: Any, path: str = "tool.wasm-build") -> Any:
    """Build dataclass `cls` from a TOML-style table, rejecting unknown keys with a suggestion."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a table, got {type(data).__name__}")
    fields = fields_of(cls)
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        spelled = toml_key(str(key))
        if spelled not in fields:
            hint = did_you_mean(spelled, fields, listing="valid keys")
            raise ConfigError(f"unknown key '{path}.{key}'", fix=f"{hint} (see `wasm-build schema`)")
        f, ft = fields[spelled]
        kwargs[f.name] = _convert(ft, value, f"{path}.{spelled}")
    missing = [
        k
        for k, (f, _) in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and f.name not in kwargs
    ]
    if missing:
        raise ConfigError(f"{path} is missing required key(s): {', '.join(missing)}")
    obj = cls(**kwargs)
    validator = _VALIDATORS.get(cls)
    if validator is not None:
        validator(obj, path)
    return obj


def to_dict(obj: Any) -> dict[str, Any]:
    """A settings dataclass as a TOML-style table (kebab-case keys, lists, no None): the
    inverse of `from_dict`, so `from_dict(type(obj), to_dict(obj)) == obj`."""
    table: dict[str, Any] = {}
    for key, (f, _) in fields_of(type(obj)).items():
        value = _plain(getattr(obj, f.name))
        if value is not None:
            table[key] = value
    return table


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value):
        return to_dict(value)
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def _validate_model(model: ModelSettings, path: str) -> None:
    if not _IDENTIFIER.match(model.name) or keyword.iskeyword(model.name):
        raise ConfigError(
            f"{path}.name = {model.name!r} is not a valid C identifier",
            fix="use letters, digits and underscores, starting with a letter, e.g. 'kws'",
        )
    for input_name, spec in model.inputs.items():
        for dim in spec.shape or ():
            if isinstance(dim, int) and dim <= 0:
                raise ConfigError(f"{path}.inputs.{input_name}.shape has a non-positive dimension: {list(spec.shape)}")
            if isinstance(dim, str) and not _IDENTIFIER.match(dim):
                raise ConfigError(
                    f"{path}.inputs.{input_name}.shape names a dimension {dim!r}, which is not an identifier",
                    fix='name symbolic dimensions with letters, digits and underscores, e.g. "seq"',
                )
        if spec.dtype is not None and spec.dtype not in SUPPORTED_DTYPES:
            raise ConfigError(
                f"{path}.inputs.{input_name}.dtype = {spec.dtype!r} is not supported",
                fix=f"use one of {', '.join(SUPPORTED_DTYPES)}",
            )
    for dim_name, dim in model.dims.items():
        _validate_dim(dim_name, dim, f"{path}.dims.{dim_name}")
    if model.tuning.trials < 0:
        raise ConfigError(f"{path}.tuning.trials must be >= 0")
    if model.tuning.trials > 0 and not model.tuning.database:
        raise ConfigError(
            f"{path}.tuning.trials = {model.tuning.trials} needs a database to keep the results",
            fix=f'set {path}.tuning.database = "tuning/{model.name}.json"',
        )
    if not model.simd and model.relaxed_simd:
        raise ConfigError(
            f"{path}: simd = false and relaxed-simd = true contradict each other (relaxed SIMD extends SIMD128)",
            fix="keep one: drop relaxed-simd for a build without SIMD, or simd = false for one with relaxed SIMD",
        )
    for key, value in (("rtol", model.rtol), ("atol", model.atol)):
        if not math.isfinite(value) or value < 0:  # NaN would make every comparison pass
            raise ConfigError(f"{path}.{key} = {value!r} is not a finite number >= 0", fix=f"e.g. {key} = 1e-3")
    if model.winograd_budget < 0:
        raise ConfigError(
            f"{path}.winograd-budget = {model.winograd_budget} is negative",
            fix="use 0 to turn Winograd convolutions off, or a fraction such as 0.5",
        )


# Bounds fit the C API's int64 shapes and a wasm32 memory many times over.
MAX_DIM = 1 << 31


def _validate_dim(name: str, dim: DimSpec, path: str) -> None:
    if not _IDENTIFIER.match(name):
        raise ConfigError(
            f"{path}: the dimension name {name!r} is not an identifier (it names C and Rust constants)",
            fix="name it with letters, digits and underscores; rename a model's own name with --input NAME=1xseq",
        )
    if not 1 <= dim.min <= dim.max <= MAX_DIM:
        raise ConfigError(
            f"{path} = {dim.min}..{dim.max} is not a range 1 <= min <= max <= {MAX_DIM}",
            fix=f"e.g. --dim {name}=1..128 (dims = {{ {name} = {{ min = 1, max = 128 }} }})",
        )


def _validate_project(project: ProjectSettings, path: str) -> None:
    if project.wheel_dir is not None:
        wheel_dir = PurePosixPath(project.wheel_dir.replace("\\", "/"))
        if wheel_dir.is_absolute() or ".." in wheel_dir.parts or not wheel_dir.parts or PureWindowsPath(project.wheel_dir).drive:
            raise ConfigError(
                f"{path}.wheel-dir = {project.wheel_dir!r} leaves the wheel: it must be a relative path inside it",
                fix='name a folder of your package, e.g. wheel-dir = "mypkg/wasm"',
            )
    seen: set[str] = set()
    for model in project.models:
        if model.name in seen:
            raise ConfigError(f"{path}.models: two models are named '{model.name}'", fix="give each model its own name")
        seen.add(model.name)


_VALIDATORS = {ModelSettings: _validate_model, ProjectSettings: _validate_project}


def parse_input_option(text: str, option: str = "--input") -> tuple[str, InputSpec]:
    """Parse `NAME=1x3x224x224:float32` (dtype optional; a name for a size is a symbolic
    dimension, `ids=1xseq:int64`; commas separate names that contain an x, `ids=1,max_len`),
    given as `option` (the CLI's `--input`, CMake's `INPUTS`)."""
    name, sep, rest = text.partition("=")
    if not sep or not name:
        raise ConfigError(f"{option} {text!r} is not NAME=SHAPE[:DTYPE]", fix=f"write it like {option} x=1x1x49x40:float32")
    shape_text, _, dtype = rest.partition(":")
    parts = shape_text.split(",") if "," in shape_text else re.split("[xX]", shape_text)
    shape = [_dim_text(d.strip(), text, option) for d in parts] if shape_text else None
    spec = {"shape": shape, "dtype": dtype or None}
    return name, from_dict(InputSpec, {k: v for k, v in spec.items() if v is not None}, f"{option} {name}")


def _dim_text(text: str, option_text: str, option: str) -> int | str:
    """One dimension of a SHAPE: a size, or the name of a symbolic dimension."""
    if text.isdigit():
        return int(text)
    if _IDENTIFIER.match(text):
        return text
    raise ConfigError(
        f"{option} {option_text!r}: {text!r} is neither a size nor the name of a dimension",
        fix=f"write it like {option} x=1x1x49x40:float32, or {option} ids=1xseq:int64 with --dim seq=1..128",
    )


def parse_dim_option(text: str, option: str = "--dim") -> tuple[str, DimSpec]:
    """Parse `NAME=MIN..MAX` (or `NAME=..MAX`, MIN 1), given as `option` (the CLI's `--dim`,
    CMake's `DIMS`)."""
    name, sep, rest = text.partition("=")
    low, dots, high = rest.partition("..")
    if not sep or not name or not dots or not high.strip().isdigit() or (low.strip() and not low.strip().isdigit()):
        raise ConfigError(f"{option} {text!r} is not NAME=MIN..MAX", fix=f"write it like {option} seq=1..128")
    table = {"max": int(high), **({"min": int(low)} if low.strip() else {})}
    return name, from_dict(DimSpec, table, f"{option} {name}")


def replace_model(model: ModelSettings, **changes: Any) -> ModelSettings:
    return dataclasses.replace(model, **changes)
