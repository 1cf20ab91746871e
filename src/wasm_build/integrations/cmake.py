"""What CMake needs from wasm-build's Python side: CMake hands each model to Python whole.

`cmake/WasmBuild.cmake` knows no model option. At configure time it runs

    python -m wasm_build.integrations.cmake add-model --source-dir S --binary-dir B --plan P ARG...
        for wasm_build_add_model(NAME ...): the call's arguments, each hex-encoded by
        CMake (`x` + `string(HEX)`, so `;`, brackets and newlines arrive intact), are
        parsed against keywords generated from the settings dataclasses (`keywords()`)
        and checked like a pyproject table;
    python -m wasm_build.integrations.cmake project-models DIR --binary-dir B --plan P
        for wasm_build_models_from_pyproject(): the `[tool.wasm-build]` table of
        DIR/pyproject.toml, read by `config.project` as in a setuptools build;
    python -m wasm_build.integrations.cmake keywords
        prints the keywords and the keys they set.

Either way each model's validated table goes to a settings file
(`B/wasm-build/TARGET.settings.json`, `config.settings_file`), which the build step
compiles with `python -m wasm_build compile --settings FILE --out DIR`, and a JSON plan
(P) tells CMake the rest: outputs, the files whose change rebuilds the model, where to
install. CMake reads the plan with `string(JSON)`: nothing from a configuration ever
becomes CMake code. Paths are checked here for what CMake cannot carry (see
`_check_path`) and fail at configure time with a message, never later in the build.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from ..artifact.files import write_text_atomic
from ..config.project import load_project, parse_override, set_key
from ..config.settings import DimSpec, InputSpec, ModelSettings, from_dict, parse_dim_option, parse_input_option, to_dict
from ..config.settings_file import SettingsFile, dumps
from ..config.sources import ModelSource
from ..config.suggest import closest, did_you_mean
from ..config.types import FieldType, fields_of
from ..errors import ConfigError, WasmBuildError

# -- the keywords of wasm_build_add_model() ---------------------------------------------------


@dataclass(frozen=True)
class Keyword:
    """One keyword of `wasm_build_add_model()`.

    kind: "flag" (no value; sets `key` to `value`), "value" (one value), "list" (every
    value up to the next keyword). `key` is the key path in the model table (TOML
    spelling); it is empty for the keywords CMake itself acts on (OUTPUT_DIR, ...).
    """

    name: str
    kind: Literal["flag", "value", "list"]
    key: tuple[str, ...] = ()
    value: Any = None
    help: str = ""
    field_type: FieldType | None = field(default=None, compare=False)
    metavar: str = "VALUE"

    @property
    def usage(self) -> str:
        """`RTOL <rtol>`, `INPUTS <name=shape[:dtype]>...`, `NO_SIMD`."""
        value = f" <{self.metavar.lower()}>"
        return self.name + {"flag": "", "value": value, "list": f"{value}..."}[self.kind]


# Keys that are no keyword: the name is wasm_build_add_model()'s first argument.
_NOT_KEYWORDS = {("name",)}

_CMAKE_KEYWORDS = (
    Keyword("SET", "list", help="any model key, dotted as in -C wasm-build.models.NAME.KEY=VALUE", metavar="KEY=VALUE"),
    Keyword("DEPENDS", "list", help="more files whose change rebuilds the model (relative to the source dir)",
            metavar="FILE"),
    Keyword("OUTPUT_DIR", "value", help="artifacts go to DIR/NAME/ (default: ${CMAKE_CURRENT_BINARY_DIR}/wasm)",
            metavar="DIR"),
    Keyword("INSTALL_DESTINATION", "value", help="install to DIR/NAME/ (default: wasm under scikit-build-core, "
            "${CMAKE_INSTALL_LIBDIR} otherwise)", metavar="DIR"),
    Keyword("NO_INSTALL", "flag", help="do not install the artifacts"),
    Keyword("COMPONENT", "value", help="install component (default: wasm)", metavar="COMPONENT"),
    Keyword("TARGET", "value", help="the custom target that builds the model (default: wasm_build_NAME)",
            metavar="TARGET"),
    Keyword("CACHE_DIR", "value", help="build cache (relative to the binary dir; default: $WASM_BUILD_CACHE_DIR "
            "or ~/.cache/wasm-build)", metavar="DIR"),
    Keyword("NO_CACHE", "flag", help="always rebuild, without the build cache"),
)


def _model_keywords(cls: type = ModelSettings, prefix: tuple[str, ...] = ()) -> list[Keyword]:
    """A keyword per model key: the key path in upper case (`tuning.database` ->
    TUNING_DATABASE), a boolean as the flag that changes its default (NO_SIMD,
    RELAXED_SIMD), or the field's `cmake` metadata."""
    result: list[Keyword] = []
    for key, (f, ft) in fields_of(cls).items():
        path = (*prefix, key)
        if path in _NOT_KEYWORDS:
            continue
        if ft.kind == "settings":
            result += _model_keywords(ft.python, path)
            continue
        derived = "_".join(path).replace("-", "_").upper()
        help_text = f.metadata.get("help", "")
        name = f.metadata.get("cmake")
        if ft.kind == "scalar" and ft.python is bool:
            name = name or (f"NO_{derived}" if f.default is True else derived)
            result.append(Keyword(name, "flag", path, not f.default, help_text, ft))
            continue
        if ft.kind == "literal":
            metavar = "|".join(map(str, ft.choices))
        elif ft.kind == "table" and ft.item is not None and ft.item.python is InputSpec:
            metavar = "NAME=SHAPE[:DTYPE]"
        elif ft.kind == "table" and ft.item is not None and ft.item.python is DimSpec:
            metavar = "NAME=MIN..MAX"
        elif ft.kind == "table":
            metavar = "KEY=VALUE"
        else:
            metavar = f.metadata.get("metavar", path[-1].upper().replace("-", "_"))
        kind: Literal["value", "list"] = "list" if ft.kind in ("list", "table") else "value"
        result.append(Keyword(name or derived, kind, path, None, help_text, ft, metavar))
    return result


def keywords() -> dict[str, Keyword]:
    """Every keyword of `wasm_build_add_model()`, by name: the model keys', then CMake's own."""
    result: dict[str, Keyword] = {}
    for keyword in (*_model_keywords(), *_CMAKE_KEYWORDS):
        if keyword.name in result:  # a new field whose keyword is taken: give it `cmake` metadata
            raise AssertionError(f"two settings map to the CMake keyword {keyword.name}")
        result[keyword.name] = keyword
    return result


def keyword_table() -> str:
    """The keywords and the keys they set, for `keywords` and docs/cmake.md."""
    lines = []
    for keyword in keywords().values():
        if keyword.kind == "flag" and keyword.key:
            setting = f"{'.'.join(keyword.key)} = {str(keyword.value).lower()}"
        elif keyword.key:
            setting = ".".join(keyword.key)
        else:
            setting = "(CMake)"
        lines.append(f"{keyword.usage:32} {setting:32} {keyword.help}")
    return "\n".join(lines)


# -- what CMake builds: one entry of the plan per model -----------------------------------------


@dataclass(frozen=True)
class CMakeModel:
    """One model as CMake defines it: a custom command running `wasm-build compile --settings`."""

    settings: SettingsFile
    settings_file: Path
    target: str
    output_dir: Path
    depends: tuple[Path, ...] = ()
    install: bool = True
    install_destination: str = ""  # "": CMake's default (wasm under scikit-build-core, else CMAKE_INSTALL_LIBDIR)
    wheel_dir: str = ""  # [tool.wasm-build] wheel-dir: counted from the wheel root under scikit-build-core
    component: str = "wasm"

    @property
    def name(self) -> str:
        return self.settings.model.name

    @property
    def directory(self) -> Path:
        return self.output_dir / self.name

    def outputs(self) -> list[Path]:
        """The artifacts the custom command declares (the first one names it)."""
        name = self.name
        files = [f"lib{name}.a", f"{name}.h", f"{name}.wasm", f"{name}.json"]
        if self.settings.model.weights == "file":
            files.append(f"{name}.weights")
        return [self.directory / f for f in files]

    def plan_entry(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "target": self.target,
            "settings": self.settings_file.as_posix(),
            "output-dir": self.output_dir.as_posix(),
            "directory": self.directory.as_posix(),
            "outputs": [p.as_posix() for p in self.outputs()],
            "depends": [p.as_posix() for p in self.depends],
            "working-directory": Path(self.settings.project_dir).as_posix(),
            "install": self.install,
            "install-destination": self.install_destination,
            "wheel-dir": self.wheel_dir,
            "component": self.component,
        }

    def check(self, origin: str) -> None:
        """What CMake writes into build and install scripts can be written there."""
        _check_path(self.output_dir.as_posix(), "the output directory", origin, install=True)
        for text, what in ((self.install_destination, "INSTALL_DESTINATION"), (self.wheel_dir, "wheel-dir"),
                           (self.component, "COMPONENT")):
            _check_path(text, what, origin, install=True)
        for dependency in self.depends:
            _check_path(dependency.as_posix(), "the dependency", origin)
        if not _TARGET.match(self.target):
            raise ConfigError(
                f"{origin}: TARGET {self.target!r} is not a CMake target name",
                fix="use letters, digits and _ . + -, e.g. TARGET wasm_build_kws",
            )


_TARGET = re.compile(r"^[A-Za-z0-9_.+-]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# What CMake cannot carry (3.20-3.31, Ninja and Makefiles). Every path: ';' (CMake splits
# dependencies and outputs there, with no escape), '$<' (a generator expression, which it
# would evaluate) and control characters (no build tool takes them). The output directory,
# install destination and component also go into OUTPUT lists, which '[' and ']' break, and
# into cmake_install.cmake, which CMake writes unescaped: there '"', '\' and variable
# references would be code.
_ALWAYS = (";", "$<")
_INSTALLED = ("[", "]", '"', "\\", "${", "$ENV{", "$CACHE{")


def _check_path(text: str, what: str, origin: str, *, install: bool = False) -> None:
    bad = [s for s in (*_ALWAYS, *(_INSTALLED if install else ())) if s in text]
    bad += sorted({c for c in text if _CONTROL.match(c)})
    if bad:
        shown = ", ".join(repr(c) for c in bad)
        raise ConfigError(
            f"{origin}: {what} {text!r} holds {shown}, which CMake cannot pass through its build"
            + (" and install scripts" if install else " files"),
            fix="rename or move it to a path without these characters",
        )


def _absolute(path: str | Path, base: Path) -> Path:
    """`path` made absolute against `base`, '..' resolved lexically (like cmake_path NORMALIZE)."""
    return Path(os.path.normpath(Path(base) / path))


def _absolute_paths(model: ModelSettings, project_dir: Path) -> ModelSettings:
    """The model with its file names absolute: a file source, and every field marked `path`."""
    source = ModelSource.parse(model.source, project_dir)
    changes: dict[str, Any] = {}
    if source.path is not None:
        changes["source"] = str(_absolute(source.path, project_dir))
    return replace(_absolute_fields(model, project_dir), **changes)


def _absolute_fields(settings: Any, project_dir: Path) -> Any:
    changes: dict[str, Any] = {}
    for _, (f, ft) in fields_of(type(settings)).items():
        value = getattr(settings, f.name)
        if ft.kind == "settings":
            changes[f.name] = _absolute_fields(value, project_dir)
        elif f.metadata.get("path") and value:
            changes[f.name] = str(_absolute(value, project_dir))
    return replace(settings, **changes)


def _settings_path(binary_dir: Path, target: str) -> Path:
    return binary_dir / "wasm-build" / f"{target}.settings.json"


def _dependencies(model: ModelSettings, project_dir: Path) -> list[Path]:
    """The files whose change rebuilds the model: the model (with ONNX external data, or the
    Python files of a callable) and an existing tuning database."""
    files = ModelSource.parse(model.source, project_dir).input_files(project_dir)
    if model.tuning.database and Path(model.tuning.database).is_file():
        files.append(Path(model.tuning.database))
    return files


# -- wasm_build_add_model(NAME ...) ------------------------------------------------------------


def add_model(arguments: list[str], source_dir: Path, binary_dir: Path) -> CMakeModel:
    """`wasm_build_add_model()`'s arguments (the name first) as a checked model.

    Keywords follow cmake_parse_arguments: a keyword always starts a new option, a list
    takes every value up to the next keyword, a value given twice keeps the last one.
    Values are parsed by the type of the key they set, with the same rules and messages
    as `-C` config-settings; then the whole table is checked like a pyproject table.
    """
    if not arguments:
        raise ConfigError("wasm_build_add_model() needs a model name", fix="e.g. wasm_build_add_model(kws SOURCE kws.onnx)")
    name, rest = arguments[0], arguments[1:]
    origin = f"wasm_build_add_model({name})"
    from_dict(ModelSettings, {"name": name, "source": ""}, path=origin)  # the name first: it is in every key path
    table: dict[str, Any] = {"name": name}  # the model, as a [[tool.wasm-build.models]] table
    cmake: dict[str, Any] = {"DEPENDS": []}  # CMake's own keywords
    for keyword, values in _split(rest, origin):
        where = f"{origin}: {keyword.name}"
        if keyword.key:
            set_key(table, keyword.key, _keyword_value(keyword, values, name, where, table))
        elif keyword.name == "SET":
            for text in values:
                _set_key(table, name, text, where)
        elif keyword.kind == "list":
            cmake[keyword.name] = cmake.get(keyword.name, []) + values
        else:
            cmake[keyword.name] = values[-1] if values else True
    if "source" not in table:
        raise ConfigError(f"{origin}: SOURCE is required", fix=f"e.g. wasm_build_add_model({name} SOURCE {name}.onnx)")
    model = from_dict(ModelSettings, table, path=origin)
    ModelSource.parse(model.source, source_dir, key=f"{origin}: SOURCE").check(source_dir, f"{origin}: SOURCE")
    model = _absolute_paths(model, source_dir)

    target = cmake.get("TARGET", f"wasm_build_{name}")
    no_cache = bool(cmake.get("NO_CACHE"))
    cache_dir = cmake.get("CACHE_DIR")
    settings = SettingsFile(
        model=model,
        project_dir=str(source_dir),
        cache=not no_cache,
        cache_dir=None if no_cache or cache_dir is None else str(_absolute(cache_dir, binary_dir)),
    )
    depends = _dependencies(model, source_dir) + [_absolute(p, source_dir) for p in cmake["DEPENDS"]]
    result = CMakeModel(
        settings=settings,
        settings_file=_settings_path(binary_dir, target),
        target=target,
        output_dir=_absolute(cmake.get("OUTPUT_DIR", "wasm"), binary_dir),
        depends=tuple(dict.fromkeys(depends)),
        install=not cmake.get("NO_INSTALL"),
        install_destination=cmake.get("INSTALL_DESTINATION", ""),
        component=cmake.get("COMPONENT", "wasm"),
    )
    result.check(origin)
    return result


def _split(arguments: list[str], origin: str) -> list[tuple[Keyword, list[str]]]:
    """Group the arguments by keyword, as cmake_parse_arguments does."""
    known = keywords()
    groups: list[tuple[Keyword, list[str]]] = []
    for argument in arguments:
        keyword = known.get(argument)
        if keyword is not None:
            groups.append((keyword, []))
            continue
        current = groups[-1] if groups else None
        takes_value = current is not None and (
            current[0].kind == "list" or (current[0].kind == "value" and not current[1])
        )
        # A misspelt keyword after a list would read as one of its values: catch the likely ones.
        looks_like_keyword = re.fullmatch(r"[A-Z][A-Z0-9_]*", argument) and closest(argument, known, cutoff=0.8)
        if current is None or not takes_value or (current[0].kind == "list" and looks_like_keyword):
            hint = did_you_mean(argument, known, listing="valid keywords")
            after = f" after {current[0].name} {' '.join(current[1])}".rstrip() if current else ""
            raise ConfigError(f"{origin}: unknown argument {argument!r}{after}", fix=f"{hint} (see docs/cmake.md)")
        current[1].append(argument)
    for keyword, values in groups:
        if keyword.kind != "flag" and not values:
            raise ConfigError(f"{origin}: {keyword.name} needs a value", fix=f"{keyword.usage}: {keyword.help}")
    return groups


def _keyword_value(keyword: Keyword, values: list[str], name: str, where: str, table: dict[str, Any]) -> Any:
    """The value a model keyword gives its key, parsed by the key's type."""
    ft = keyword.field_type
    if keyword.kind == "flag":
        return keyword.value
    if keyword.kind == "value":
        return parse_override(f"models.{name}.{'.'.join(keyword.key)}", values[-1], where).value
    assert ft is not None and ft.item is not None
    if ft.kind == "table":
        current = dict(_get(table, keyword.key) or {})
        for text in values:
            if ft.item.kind == "settings" and ft.item.python is InputSpec:
                input_name, spec = parse_input_option(text, keyword.name)
                current[input_name] = to_dict(spec)
            elif ft.item.kind == "settings" and ft.item.python is DimSpec:
                dim_name, dim = parse_dim_option(text, keyword.name)
                current[dim_name] = to_dict(dim)
            else:
                entry, sep, value = text.partition("=")
                if not sep:
                    raise ConfigError(f"{where} {text!r} is not KEY=VALUE", fix=f"write it like {keyword.name} a=1")
                current[entry] = parse_override(f"models.{name}.{'.'.join(keyword.key)}.{entry}", value, where).value
        return current
    previous = list(_get(table, keyword.key) or [])
    if ft.item.kind == "scalar" and ft.item.python is str:
        return previous + values
    # Numbers and booleans: a TOML array, parsed and checked like -C's.
    return previous + parse_override(f"models.{name}.{'.'.join(keyword.key)}", f"[{', '.join(values)}]", where).value


def _set_key(table: dict[str, Any], name: str, text: str, where: str) -> None:
    """`SET key=value`: any model key, dotted and typed as in `-C wasm-build.models.NAME.KEY=VALUE`."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise ConfigError(f"{where} {text!r} is not KEY=VALUE", fix="write it like SET tuning.trials=32")
    if key.strip().replace("_", "-") == "name":
        raise ConfigError(f"{where} name: the name is wasm_build_add_model()'s first argument", fix="drop it")
    override = parse_override(f"models.{name}.{key}", value, f"{where} {key}")
    set_key(table, override.path[2:], override.value)


def _get(table: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(table, dict):
            return None
        table = table.get(key)  # type: ignore[assignment]
    return table




# -- wasm_build_models_from_pyproject() ---------------------------------------------------------


def project_models(
    project_dir: Path,
    binary_dir: Path,
    *,
    out_dir: Path | None = None,
    install_destination: str = "",
    install: bool = True,
) -> list[CMakeModel]:
    """The models of project_dir/pyproject.toml, read like in a setuptools build
    (environment overrides included, sources checked): a mistake fails at configure time
    with the same message."""
    project = load_project(project_dir)
    if project is None:
        raise ConfigError(
            f"{Path(project_dir) / 'pyproject.toml'} has no [tool.wasm-build] table",
            fix="declare models in [[tool.wasm-build.models]], or call wasm_build_add_model() instead",
        )
    settings = project.settings
    output_dir = _absolute(out_dir if out_dir is not None else project.out_dir, project.directory)
    result = []
    for model in settings.models:
        model = _absolute_paths(model, project.directory)
        target = f"wasm_build_{model.name}"
        cmake_model = CMakeModel(
            settings=SettingsFile(
                model=model,
                project_dir=str(project.directory),
                cache_dir=str(project.cache_dir) if settings.cache_dir is not None else None,
            ),
            settings_file=_settings_path(binary_dir, target),
            target=target,
            output_dir=output_dir,
            depends=tuple(_dependencies(model, project.directory)),
            install=install,
            install_destination=install_destination,
            wheel_dir=(settings.wheel_dir or "").replace("\\", "/").strip("/"),
        )
        cmake_model.check(f"model '{model.name}'")  # CMake names the pyproject.toml
        result.append(cmake_model)
    return result


# -- the files for CMake ----------------------------------------------------------------------


def write_plan(models: list[CMakeModel], plan: Path) -> None:
    """Each model's settings file (rewritten only when it changed: it is a dependency of the
    model, so an unchanged configuration rebuilds nothing) and the plan CMake reads."""
    for model in models:
        text = dumps(model.settings)
        path = model.settings_file
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            write_text_atomic(path, text)
    document = {"models": [model.plan_entry() for model in models]}
    write_text_atomic(plan, json.dumps(document, indent=2) + "\n")


def _decode(argument: str) -> str:
    """One `wasm_build_add_model()` argument as CMake sent it: `x` followed by its bytes in hex."""
    if not argument.startswith("x"):
        raise ValueError(f"argument {argument!r} is not x<hex>")
    return bytes.fromhex(argument[1:]).decode("utf-8", errors="surrogateescape")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m wasm_build.integrations.cmake", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    add = sub.add_parser("add-model", help="check a wasm_build_add_model() call; write its settings file and plan")
    add.add_argument("--source-dir", type=Path, required=True, help="CMAKE_CURRENT_SOURCE_DIR")
    add.add_argument("--binary-dir", type=Path, required=True, help="CMAKE_CURRENT_BINARY_DIR")
    add.add_argument("--plan", type=Path, required=True, help="the JSON plan to write")
    add.add_argument("arguments", nargs="*", help="the call's arguments, each x<hex of its bytes>")
    models = sub.add_parser("project-models", help="check the project's models; write their settings files and plan")
    models.add_argument("project_dir", type=Path)
    models.add_argument("--binary-dir", type=Path, required=True, help="CMAKE_CURRENT_BINARY_DIR")
    models.add_argument("--plan", type=Path, required=True, help="the JSON plan to write")
    models.add_argument("--out-dir", type=Path, help="override [tool.wasm-build] out-dir")
    models.add_argument("--install-destination", default="", help="install there instead of wheel-dir")
    models.add_argument("--no-install", action="store_true")
    sub.add_parser("keywords", help="print wasm_build_add_model()'s keywords and the keys they set")
    args = parser.parse_args(argv)
    if args.command == "keywords":
        print(keyword_table())
        return 0
    try:
        if args.command == "add-model":
            arguments = [_decode(a) for a in args.arguments]
            result = [add_model(arguments, args.source_dir.absolute(), args.binary_dir.absolute())]
        else:
            result = project_models(
                args.project_dir,
                args.binary_dir.absolute(),
                out_dir=args.out_dir,
                install_destination=args.install_destination,
                install=not args.no_install,
            )
    except WasmBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    write_plan(result, args.plan)
    return 0


if __name__ == "__main__":
    sys.exit(main())
