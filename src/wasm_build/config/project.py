"""Read a project's `[tool.wasm-build]` table and merge the per-build overrides.

Three layers, highest first:

1. config-settings: `-C wasm-build.KEY=VALUE` (pip, `python -m build`) or
   `wasm-build build -C KEY=VALUE`. KEY is a dotted path into the table:
   `out-dir`, `models.kws.simd` (a model by name), `models.*.smoke-test`
   (every model), `models.kws.tuning.trials`, `models.kws.inputs.x.shape`.
2. environment: `WASM_BUILD_<KEY>` for the project keys (`WASM_BUILD_OUT_DIR`,
   `WASM_BUILD_WHEEL_DIR`, `WASM_BUILD_CACHE_DIR`) and for the model options,
   which then apply to every model (`WASM_BUILD_SMOKE_TEST=0`,
   `WASM_BUILD_SIMD=false`, `WASM_BUILD_TUNING_TRIALS=32`).
3. pyproject.toml.

Values are parsed by the type of the key they set: booleans accept
true/false/1/0/yes/no/on/off, lists and tables use TOML syntax
(`shape=[1,64]`), strings are taken as written. Every problem is found here,
before any model is built, and names the key it comes from.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

from ..errors import ConfigError
from .settings import ModelSettings, ProjectSettings, TuningSettings, from_dict
from .sources import ModelSource
from .suggest import did_you_mean
from .types import FieldType, fields_of, toml_key

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

TABLE_PATH = "tool.wasm-build"
CONFIG_PREFIX = "wasm-build."
ENV_PREFIX = "WASM_BUILD_"

# Model keys that identify a model rather than configure it: no environment or `*` override.
_PER_MODEL_ONLY = {"name", "source", "inputs", "tuning.database"}

ConfigSettings = Mapping[str, Union[str, list[str], None]]


@dataclass(frozen=True)
class Project:
    """A project directory and its merged settings."""

    directory: Path
    settings: ProjectSettings

    @property
    def out_dir(self) -> Path:
        return _under(self.directory, self.settings.out_dir)

    @property
    def cache_dir(self) -> Path:
        if self.settings.cache_dir:
            return _under(self.directory, self.settings.cache_dir)
        return default_cache_dir()

    def source(self, model: ModelSettings) -> ModelSource:
        return ModelSource.parse(model.source, self.directory)

    def source_files(self) -> list[str]:
        """Files the models are built from, relative to the project (for sdists and rebuild checks)."""
        files: list[str] = []
        for model in self.settings.models:
            source = self.source(model)
            candidates = list(source.input_files(self.directory))  # ONNX external data included
            if model.tuning.database:
                candidates.append(_under(self.directory, model.tuning.database))
            for candidate in candidates:
                if candidate is not None and candidate.is_file():
                    try:
                        files.append(candidate.resolve().relative_to(self.directory.resolve()).as_posix())
                    except ValueError:  # outside the project: not part of an sdist
                        pass
        return sorted(set(files))


def default_cache_dir() -> Path:
    """$WASM_BUILD_CACHE_DIR, else wasm-build/ in the user's cache directory."""
    if "WASM_BUILD_CACHE_DIR" in os.environ:
        return Path(os.environ["WASM_BUILD_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wasm-build"


def _under(directory: Path, path: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else directory / p


# -- reading ------------------------------------------------------------------------------


def read_table(project_dir: Path) -> dict[str, Any] | None:
    """The raw `[tool.wasm-build]` table, or None when the project has none."""
    pyproject = project_dir / "pyproject.toml"
    if not pyproject.is_file():
        return None
    try:
        data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{pyproject} is not valid TOML: {exc}") from None
    table = data.get("tool", {}).get("wasm-build")
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{TABLE_PATH} must be a table, got {type(table).__name__}")
    return table


def load_project(
    project_dir: Path | str,
    config_settings: ConfigSettings | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    check_sources: bool = True,
) -> Project | None:
    """Merged settings of the project in `project_dir`, or None when it declares nothing.

    Raises `ConfigError` naming the key for anything wrong, before any work is done.
    """
    directory = Path(project_dir).resolve()
    table = read_table(directory)
    if table is None:
        return None
    table = copy.deepcopy(table)
    environ = os.environ if environ is None else environ
    overrides = environment_overrides(environ) + config_overrides(config_settings or {})
    for override in overrides:
        override.apply(table)
    settings = from_dict(ProjectSettings, table, TABLE_PATH)
    project = Project(directory, settings)
    if check_sources:
        check_model_sources(project)
    return project


# -- overrides ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Override:
    """One `KEY=VALUE` from config-settings or the environment, already typed."""

    origin: str  # how the user spelled it, for messages: "-C wasm-build.models.kws.simd"
    path: tuple[str, ...]  # ("models", "kws", "simd") or ("out-dir",)
    value: Any

    def apply(self, table: dict[str, Any]) -> None:
        if self.path[0] != "models":
            set_key(table, self.path, self.value)
            return
        models = table.get("models", [])
        if not isinstance(models, list):
            return  # from_dict reports the wrong type with its key path
        selector, rest = self.path[1], self.path[2:]
        if selector == "*":
            for model in models:
                if isinstance(model, dict):
                    set_key(model, rest, self.value)
            return
        names = [str(m.get("name")) for m in models if isinstance(m, dict)]
        for model in models:
            if isinstance(model, dict) and model.get("name") == selector:
                set_key(model, rest, self.value)
                return
        hint = did_you_mean(selector, names, listing="declared models")
        raise ConfigError(f"{self.origin}: there is no model named '{selector}'", fix=hint)


def set_key(table: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `table[path[0]][path[1]]... = value`, making the tables on the way."""
    for key in path[:-1]:
        child = table.get(key)
        if not isinstance(child, dict):
            child = table[key] = {}
        table = child
    table[path[-1]] = value


def config_overrides(config_settings: ConfigSettings) -> list[Override]:
    """The `wasm-build.*` entries of PEP 517 config-settings; other keys belong to other tools."""
    result = []
    for key, raw in config_settings.items():
        if not key.startswith(CONFIG_PREFIX):
            continue
        if isinstance(raw, list):  # repeated -C: the last one wins, as for command-line options
            raw = raw[-1] if raw else None
        origin = f"-C {key}"
        if raw is None:
            raise ConfigError(f"{origin} has no value", fix=f"write it as -C {key}=VALUE")
        result.append(parse_override(key[len(CONFIG_PREFIX) :], str(raw), origin))
    return result


def parse_override(key: str, text: str, origin: str) -> Override:
    """Check `key` against the settings model and parse `text` by the key's type."""
    parts = tuple(key.split("."))
    if any(not part for part in parts):
        raise ConfigError(f"{origin}: '{key}' is not a dotted key", fix="write e.g. -C wasm-build.models.kws.simd=false")
    parts, tp = _resolve_type(parts, origin)
    return Override(origin, parts, _parse_value(tp, text, origin))


def _resolve_type(parts: tuple[str, ...], origin: str) -> tuple[tuple[str, ...], FieldType]:
    """Walk the settings along `parts` to the type of the last key; unknown keys get a suggestion.

    Returns the path with keys in TOML spelling (model and input names kept as written) and the type.
    """
    parts = tuple(parts)
    cls: Any = ProjectSettings
    i = 0
    while True:
        part = toml_key(parts[i])
        parts = (*parts[:i], part, *parts[i + 1 :])
        fields = fields_of(cls)
        if part not in fields:
            hint = did_you_mean(part, fields, listing="valid keys here")
            raise ConfigError(f"{origin}: unknown key '{part}'", fix=f"{hint} (see `wasm-build schema`)")
        ft = fields[part][1]
        i += 1
        if cls is ProjectSettings and part == "models":
            if len(parts) < 3:
                raise ConfigError(f"{origin}: name a model and a key", fix="write e.g. -C wasm-build.models.kws.simd=false")
            if parts[1] == "*" and (parts[2] in ("name", "source", "inputs") or ".".join(parts[2:]) in _PER_MODEL_ONLY):
                raise ConfigError(f"{origin}: '{'.'.join(parts[2:])}' is set per model, not for every model ('*')")
            cls, i = ModelSettings, i + 1  # parts[1] is the model's name, checked when applied
            continue
        if i == len(parts):
            return parts, ft
        if ft.kind == "table":  # inputs.<input name>[.<key>]
            ft, i = ft.item, i + 1
            if i == len(parts):
                return parts, ft
        if ft.kind != "settings":
            raise ConfigError(f"{origin}: '{'.'.join(parts[:i])}' has no sub-keys")
        cls = ft.python


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _parse_value(ft: FieldType, text: str, origin: str) -> Any:
    if ft.kind == "scalar" and ft.python is bool:
        lowered = text.strip().lower()
        if lowered in _TRUE | _FALSE:
            return lowered in _TRUE
        raise ConfigError(f"{origin}={text!r} is not a boolean", fix="use true or false")
    if ft.kind == "scalar" and ft.python in (int, float):
        try:
            return ft.python(text)
        except ValueError:
            raise ConfigError(f"{origin}={text!r} is not {'an integer' if ft.python is int else 'a number'}") from None
    if ft.kind == "literal":
        if text not in ft.choices:
            hint = did_you_mean(text, ft.choices, listing="use one of")
            raise ConfigError(f"{origin}={text!r} is not one of {', '.join(map(repr, ft.choices))}", fix=hint)
        return text
    if ft.kind == "scalar":
        return text
    # Lists and tables: TOML inline syntax, checked by from_dict when merged.
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"{origin}={text!r} is not a TOML value ({exc})", fix="write lists as [1, 64] and tables as {trials = 8}"
        ) from None


def environment_variables() -> dict[str, tuple[str, ...]]:
    """`WASM_BUILD_*` variable → key path (model keys apply to every model)."""
    names: dict[str, tuple[str, ...]] = {}
    for f in dataclasses.fields(ProjectSettings):
        if f.name != "models":
            names[ENV_PREFIX + f.name.upper()] = (toml_key(f.name),)
    for f in dataclasses.fields(ModelSettings):
        if toml_key(f.name) in _PER_MODEL_ONLY or f.name == "tuning":
            continue
        names[ENV_PREFIX + f.name.upper()] = ("models", "*", toml_key(f.name))
    for f in dataclasses.fields(TuningSettings):
        if f"tuning.{toml_key(f.name)}" in _PER_MODEL_ONLY:
            continue
        names[f"{ENV_PREFIX}TUNING_{f.name.upper()}"] = ("models", "*", "tuning", toml_key(f.name))
    return names


def environment_overrides(environ: Mapping[str, str]) -> list[Override]:
    result = []
    for variable, path in environment_variables().items():
        text = environ.get(variable)
        if text is None or text == "":
            continue
        path, tp = _resolve_type(path, variable)
        result.append(Override(variable, path, _parse_value(tp, text, variable)))
    return result


# -- sources ------------------------------------------------------------------------------


def check_model_sources(project: Project) -> None:
    """Every model file exists and every 'module:function' module can be found."""
    for index, model in enumerate(project.settings.models):
        key = f"{TABLE_PATH}.models[{index}].source"
        try:
            source = ModelSource.parse(model.source, project.directory, key)
        except ConfigError as exc:
            raise exc.with_context(model=model.name) from None
        source.check(project.directory, key, model.name)


__all__ = [
    "Project",
    "Override",
    "load_project",
    "read_table",
    "parse_override",
    "config_overrides",
    "environment_overrides",
    "environment_variables",
    "check_model_sources",
]
