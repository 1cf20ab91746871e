"""Command-line options for model settings, made from the settings dataclasses.

Each `[[tool.wasm-build.models]]` key becomes an option with the key's help text: a
boolean that defaults to true becomes `--no-KEY`, one that defaults to false `--KEY`,
anything else `--KEY VALUE` (a field's metadata may name it otherwise, e.g. the
tuning keys' `--trials`). Options left out are left out of the table too, so the
dataclasses' defaults apply: one default per key, wherever it is set from.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from ..config.settings import ModelSettings, TuningSettings, from_dict, parse_dim_option, parse_input_option
from ..config.types import FieldType, fields_of

# Keys that are arguments of their own (name, source) or have a syntax of their own (inputs, dims).
_NOT_OPTIONS = {"name", "source", "inputs", "dims", "tuning"}
_TYPES = {int: int, float: float, str: str}


@dataclasses.dataclass(frozen=True)
class _Option:
    path: tuple[str, ...]  # key path in the model table, e.g. ("tuning", "trials")
    flag: str
    dest: str


def _options() -> list[_Option]:
    options = []
    for table, cls in (((), ModelSettings), (("tuning",), TuningSettings)):
        for key, (field, ft) in fields_of(cls).items():
            if not table and key in _NOT_OPTIONS:
                continue
            options.append(_Option((*table, key), _flag(key, field, ft), "wb_" + "_".join((*table, key)).replace("-", "_")))
    return options


def _flag(key: str, field: dataclasses.Field, ft: FieldType) -> str:
    if "cli" in field.metadata:
        return field.metadata["cli"]
    if ft.kind == "scalar" and ft.python is bool:
        return f"--no-{key}" if field.default is True else f"--{key}"
    return f"--{key}"


def add_model_options(parser: argparse.ArgumentParser, *, only: tuple[str, ...] | None = None) -> None:
    """Add the model options (all, or the keys in `only`, e.g. ("simd", "tuning.trials")) and `--input`."""
    parser.add_argument(
        "--input",
        dest="wb_inputs",
        action="append",
        default=[],
        metavar="NAME=SHAPE[:DTYPE]",
        help="pin an input the model leaves open, e.g. x=1x1x49x40:float32; a name for a size is a symbolic "
        "dimension, e.g. ids=1xseq:int64 (repeatable)",
    )
    parser.add_argument(
        "--dim",
        dest="wb_dims",
        action="append",
        default=[],
        metavar="NAME=MIN..MAX",
        help="bound a symbolic dimension (an ONNX dim_param, a torch.export Dim, or a name given in --input), "
        "e.g. seq=1..128: the artifact runs every size within the bounds (repeatable)",
    )
    for option in _options():
        if only is not None and ".".join(option.path) not in only:
            continue
        cls = TuningSettings if option.path[0] == "tuning" else ModelSettings
        field, ft = fields_of(cls)[option.path[-1]]
        help_text = field.metadata.get("help", "")
        metavar = field.metadata.get("metavar", option.path[-1].upper().replace("-", "_"))
        kwargs: dict[str, Any] = {"dest": option.dest, "default": argparse.SUPPRESS}
        if ft.kind == "scalar" and ft.python is bool:
            kwargs["action"] = "store_false" if field.default is True else "store_true"
            help_text += " On by default: this option turns it off." if field.default is True else ""
        elif ft.kind == "literal":
            kwargs["choices"] = ft.choices
            help_text += f" Default: {field.default}."
        elif ft.kind == "list":
            kwargs.update(action="append", type=_TYPES[ft.item.python], metavar=metavar)
            help_text += " Repeatable."
        else:
            kwargs.update(type=_TYPES[ft.python], metavar=metavar)
            if field.default is not None and field.default is not dataclasses.MISSING:
                help_text += f" Default: {field.default}."
        kwargs["help"] = help_text
        parser.add_argument(option.flag, **kwargs)


def model_table(args: argparse.Namespace) -> dict[str, Any]:
    """The options given, as a `[[tool.wasm-build.models]]` table (without name and source)."""
    table: dict[str, Any] = {}
    inputs = dict(parse_input_option(text) for text in getattr(args, "wb_inputs", []))
    if inputs:
        table["inputs"] = {
            name: {k: v for k, v in dataclasses.asdict(spec).items() if v is not None} for name, spec in inputs.items()
        }
    dims = dict(parse_dim_option(text) for text in getattr(args, "wb_dims", []))
    if dims:
        table["dims"] = {name: dataclasses.asdict(spec) for name, spec in dims.items()}
    for option in _options():
        if hasattr(args, option.dest):
            target = table
            for key in option.path[:-1]:
                target = target.setdefault(key, {})
            target[option.path[-1]] = getattr(args, option.dest)
    return table


def model_settings(args: argparse.Namespace, name: str, source: str, command: str, **table: Any) -> ModelSettings:
    """The model settings the command line describes (`table` adds keys a command sets itself)."""
    merged = {"name": name, "source": source, **model_table(args)}
    for key, value in table.items():
        if isinstance(value, dict):
            merged[key] = {**merged.get(key, {}), **value}
        else:
            merged[key] = value
    return from_dict(ModelSettings, merged, path=f"wasm-build {command}")
