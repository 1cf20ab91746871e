"""One source of truth per model option: every path into a model gives the same settings.

- Round trip: every model field (walked from the dataclasses, so a new field is covered
  without touching this file) set to a non-default value through the CLI, pyproject.toml,
  `-C` config-settings, and CMake (wasm_build_models_from_pyproject(), and
  wasm_build_add_model() with keywords and with SET) gives the same ModelSettings. The
  CMake part stops at configure time and reads the settings files wasm-build wrote.
- wasm_build_add_model(): unknown keywords and bad values fail at configure time with
  wasm-build's own message and suggestion.
- Strings from configurations are data: hostile paths reach the settings file intact or
  are refused with a message, never run as CMake code.
- The files whose change rebuilds a model: the model, ONNX external data, the Python
  files of a callable, the tuning database; the settings file is rewritten only on change.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import onnx
import pytest

from wasm_build.cli import build_parser
from wasm_build.cli import compile as compile_command
from wasm_build.config.project import load_project
from wasm_build.config.settings import ModelSettings, from_dict
from wasm_build.config.settings_file import read_settings_file
from wasm_build.config.types import FieldType, fields_of
from wasm_build.errors import ConfigError
from wasm_build.integrations import cmake as cmake_integration
from wasm_build.testing import models

from tests.support import REPO  # noqa: E402
CMAKE_DIR = REPO / "cmake"

# simd = false and relaxed-simd = true contradict each other: one scenario each.
CONFLICTS = [("simd",), ("relaxed-simd",)]


# -- a non-default value for every field ---------------------------------------------------------


def _leaves(cls: type = ModelSettings, prefix: tuple[str, ...] = ()):
    """(key path, field, type) of every model key that holds a value (nested tables walked)."""
    for key, (field, ft) in fields_of(cls).items():
        if ft.kind == "settings":
            yield from _leaves(ft.python, (*prefix, key))
        else:
            yield (*prefix, key), field, ft


def _non_default(path: tuple[str, ...], field: dataclasses.Field, ft: FieldType, project: Path) -> Any:
    """A valid value other than the default, in TOML spelling."""
    default = field.default if field.default is not dataclasses.MISSING else None
    if path == ("source",):
        return str(project / "models" / "m.onnx")
    if ft.kind == "table" and ft.item.kind == "settings" and ft.item.python.__name__ == "InputSpec":
        return {"x": {"shape": [1, 64], "dtype": "float32"}}
    if ft.kind == "table" and ft.item.kind == "settings" and ft.item.python.__name__ == "DimSpec":
        return {"seq": {"min": 2, "max": 64}}
    if ft.kind == "literal":
        return next(c for c in ft.choices if c != default)
    if ft.kind == "list" and ft.item.kind == "scalar" and ft.item.python is str:
        return ["fused_conv2d*", "dense_[0-9]?"]
    if ft.kind == "scalar" and ft.python is bool:
        return not default
    if ft.kind == "scalar" and ft.python is int:
        return (default or 0) + 3
    if ft.kind == "scalar" and ft.python is float:
        return (default or 2.0) + 0.25
    if ft.kind == "scalar" and ft.python is str and field.metadata.get("path"):
        return str(project / "tuning" / f"{'-'.join(path)}.json")
    if ft.kind == "scalar" and ft.python is str:
        return f"value-of-{'-'.join(path)}"
    raise AssertionError(f"give the new setting {'.'.join(path)} ({ft}) a non-default value in this test")


def _scenarios(project: Path) -> dict[str, dict[str, Any]]:
    """Model tables by name: together, they set every key to a non-default value."""
    tables = {}
    for index, left_out in enumerate(CONFLICTS):
        table: dict[str, Any] = {}
        for path, field, ft in _leaves():
            if path == ("name",) or path == left_out:
                continue
            target = table
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = _non_default(path, field, ft, project)
        name = f"m{index}"
        tables[name] = {"name": name, **table}
    return tables


def _flat(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Leaf values by key path; `inputs` and `dims` are one leaf each (their values tables)."""
    result = {}
    for key, value in table.items():
        if isinstance(value, dict) and key not in ("inputs", "dims"):
            result.update(_flat(value, (*prefix, key)))
        else:
            result[(*prefix, key)] = value
    return result


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(map(_toml, value)) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


def _text(value: Any) -> str:
    """A value as `-C KEY=VALUE` and CMake's SET take it: strings as written, the rest as TOML."""
    return value if isinstance(value, str) else _toml(value)


def _pyproject(tables: dict[str, dict[str, Any]], extra: str = 'out-dir = "build/wasm"') -> str:
    lines = ['[project]\nname = "demo"\nversion = "0.1.0"\n\n[tool.wasm-build]', extra]
    for table in tables.values():
        lines.append("[[tool.wasm-build.models]]")
        lines += [f"{json.dumps(key)} = {_toml(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def _cmake_arg(text: str) -> str:
    """A CMake bracket argument: nothing inside is evaluated (the text must not start with a newline)."""
    level = 0
    while f"]{'=' * level}]" in f"{text}]{'=' * level}":  # not inside, nor made by its last characters
        level += 1
    return f"[{'=' * level}[{text}]{'=' * level}]"


# -- the four ways in ---------------------------------------------------------------------------------


def _cli_argv(table: dict[str, Any]) -> list[str]:
    """`wasm-build compile` arguments for a model table, by the CLI's naming rule: a field's
    `cli` metadata, else --KEY, booleans as the flag that changes the default."""
    argv = ["compile", table["source"], "--name", table["name"]]
    for path, value in _flat(table).items():
        if path in (("name",), ("source",)):
            continue
        if path == ("inputs",):
            for name, spec in value.items():
                argv += ["--input", f"{name}={'x'.join(map(str, spec['shape']))}:{spec['dtype']}"]
            continue
        if path == ("dims",):
            for name, dim in value.items():
                argv += ["--dim", f"{name}={dim['min']}..{dim['max']}"]
            continue
        cls = ModelSettings
        for key in path[:-1]:
            cls = fields_of(cls)[key][1].python
        field, ft = fields_of(cls)[path[-1]]
        flag = field.metadata.get("cli")
        if ft.kind == "scalar" and ft.python is bool:
            argv.append(flag or (f"--no-{path[-1]}" if field.default is True else f"--{path[-1]}"))
        elif ft.kind == "list":
            for item in value:
                argv += [flag or f"--{path[-1]}", str(item)]
        else:
            argv += [flag or f"--{path[-1]}", str(value)]
    return argv


def _keyword_arguments(table: dict[str, Any]) -> list[str]:
    """wasm_build_add_model() arguments for a model table, from the keywords wasm-build generates."""
    flat = _flat(table)
    args: list[str] = []
    for keyword in cmake_integration.keywords().values():
        if not keyword.key or keyword.key not in flat:
            continue
        value = flat[keyword.key]
        if keyword.kind == "flag":
            assert value == keyword.value
            args.append(keyword.name)
        elif keyword.key == ("inputs",):
            args += [keyword.name, *(f"{n}={'x'.join(map(str, s['shape']))}:{s['dtype']}" for n, s in value.items())]
        elif keyword.key == ("dims",):
            args += [keyword.name, *(f"{n}={d['min']}..{d['max']}" for n, d in value.items())]
        elif keyword.kind == "list":
            args += [keyword.name, *map(_text, value)]
        else:
            args += [keyword.name, _text(value)]
    return args


def _set_arguments(table: dict[str, Any]) -> list[str]:
    """wasm_build_add_model() arguments setting every key with SET KEY=VALUE."""
    return ["SET", *(f"{'.'.join(path)}={_text(value)}" for path, value in _flat(table).items() if path != ("name",))]


def _env() -> dict[str, str]:
    """This checkout's wasm-build, and no WASM_BUILD_* override from the caller's environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WASM_BUILD_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    return env


def _configure(source: Path, build: Path, check: bool = True) -> subprocess.CompletedProcess:
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed (.ci/run installs it)")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    result = subprocess.run(
        ["cmake", "-S", str(source), "-B", str(build), *generator, f"-DCMAKE_MODULE_PATH={CMAKE_DIR}",
         f"-DWASM_BUILD_PYTHON={sys.executable}"],
        env=_env(), capture_output=True, text=True,
    )
    if check and result.returncode != 0:
        pytest.fail(f"cmake failed:\n{result.stdout}\n{result.stderr}")
    return result


def _settings_of(build: Path, target: str) -> ModelSettings:
    return read_settings_file(build / "wasm-build" / f"{target}.settings.json").model


@pytest.fixture
def project(tmp_path: Path) -> Path:
    project = tmp_path.resolve() / "project"
    models.save(models.mlp(seed=1), project / "models" / "m.onnx")
    return project


def test_every_field_round_trips_through_cli_pyproject_config_settings_and_cmake(project: Path, tmp_path: Path):
    tables = _scenarios(project)
    # Together the scenarios set every key, and every key but the name has a CMake keyword.
    leaves = {path for path, _, _ in _leaves()}
    assert set().union(*(_flat(t).keys() for t in tables.values())) == leaves
    assert {k.key for k in cmake_integration.keywords().values() if k.key} == leaves - {("name",)}
    expected = {name: from_dict(ModelSettings, table, path="expected") for name, table in tables.items()}
    defaults = from_dict(ModelSettings, {"name": "m0", "source": "m.onnx"})
    for model in expected.values():  # the test means something: the defaults are not what it compares
        assert model.tuning.kernels and model.tuning != defaults.tuning

    # (1) the command line
    for name, table in tables.items():
        args = build_parser().parse_args(_cli_argv(table))
        assert compile_command.model_of(args)[0] == expected[name], name

    # (2) pyproject.toml
    (project / "pyproject.toml").write_text(_pyproject(tables))
    loaded = load_project(project, environ={})
    assert {m.name: m for m in loaded.settings.models} == expected

    # (3) -C config-settings over a table that names the models only
    bare = {name: {"name": name, "source": table["source"]} for name, table in tables.items()}
    config = {
        f"wasm-build.models.{name}.{'.'.join(path)}": _text(value)
        for name, table in tables.items()
        for path, value in _flat(table).items()
        if path not in (("name",), ("source",))
    }
    overridden = project.parent / "overridden"
    overridden.mkdir()
    (overridden / "pyproject.toml").write_text(_pyproject(bare))
    loaded = load_project(overridden, config_settings=config, environ={})
    assert {m.name: m for m in loaded.settings.models} == expected

    # (4) CMake: the same pyproject.toml, and wasm_build_add_model() with keywords and with SET
    calls = []
    for name, table in tables.items():
        for suffix, arguments in (("kw", _keyword_arguments(table)), ("set", _set_arguments(table))):
            calls.append(f"wasm_build_add_model({name}_{suffix}\n  " + "\n  ".join(map(_cmake_arg, arguments)) + ")")
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(roundtrip LANGUAGES NONE)\ninclude(WasmBuild)\n"
        "wasm_build_models_from_pyproject()\n" + "\n".join(calls) + "\n"
    )
    build = tmp_path / "build"
    _configure(project, build)
    for name, model in expected.items():
        assert _settings_of(build, f"wasm_build_{name}") == model
        for suffix in ("kw", "set"):
            got = _settings_of(build, f"wasm_build_{name}_{suffix}")
            assert dataclasses.replace(got, name=name) == model, suffix

    # ... and `wasm-build compile --settings FILE` reads exactly that model back.
    for name, model in expected.items():
        args = build_parser().parse_args(["compile", "--settings", str(build / "wasm-build" / f"wasm_build_{name}.settings.json")])
        assert compile_command.model_of(args)[0] == model


def test_relative_paths_become_absolute_against_the_project_and_the_source_dir(project: Path, tmp_path: Path):
    (project / "pyproject.toml").write_text(_pyproject(
        {"p": {"name": "p", "source": "models/m.onnx", "tuning": {"database": "tuning/p.json"}}},
        extra='cache-dir = ".cache"',
    ))
    sub = project / "sub"
    models.save(models.mlp(seed=2), sub / "here.onnx")
    (sub / "CMakeLists.txt").write_text(
        "wasm_build_add_model(q SOURCE here.onnx TUNING_DATABASE ../tuning/q.json CACHE_DIR cache NO_SMOKE_TEST)\n"
    )
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(paths LANGUAGES NONE)\ninclude(WasmBuild)\n"
        "wasm_build_models_from_pyproject()\nadd_subdirectory(sub)\n"
    )
    build = tmp_path / "build"
    _configure(project, build)
    p = read_settings_file(build / "wasm-build" / "wasm_build_p.settings.json")
    assert p.model.source == str(project / "models" / "m.onnx")
    assert p.model.tuning.database == str(project / "tuning" / "p.json")
    assert (p.project_dir, p.cache_dir) == (str(project), str(project / ".cache"))
    q = read_settings_file(build / "sub" / "wasm-build" / "wasm_build_q.settings.json")
    assert q.model.source == str(sub / "here.onnx") and q.model.tuning.database == str(project / "tuning" / "q.json")
    assert (q.project_dir, q.cache_dir, q.model.smoke_test) == (str(sub), str(build / "sub" / "cache"), False)


# -- configure-time errors -----------------------------------------------------------------------------


def _add_model_error(project: Path, tmp_path: Path, arguments: str) -> str:
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(errors LANGUAGES NONE)\ninclude(WasmBuild)\n"
        f"wasm_build_add_model({arguments})\n"
    )
    result = _configure(project, tmp_path / "build", check=False)
    assert result.returncode != 0, result.stdout
    return " ".join(result.stderr.split())


def test_no_simd_with_relaxed_simd_fails_with_the_python_message(project: Path, tmp_path: Path):
    stderr = _add_model_error(project, tmp_path, "m SOURCE models/m.onnx NO_SIMD RELAXED_SIMD")
    with pytest.raises(ConfigError) as python:
        from_dict(ModelSettings, {"name": "m", "source": "m.onnx", "simd": False, "relaxed-simd": True},
                  path="wasm_build_add_model(m)")
    assert " ".join(str(python.value).split()) in stderr


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ("m SOURCE models/m.onnx NO_SMOKETEST", "unknown argument 'NO_SMOKETEST' after SOURCE models/m.onnx fix: did you mean 'NO_SMOKE_TEST'?"),
        ("m SOURCE models/m.onnx INPUTS x=1x64 RELAXED_SIMDD", "unknown argument 'RELAXED_SIMDD' after INPUTS x=1x64 fix: did you mean 'RELAXED_SIMD'?"),
        ("m SOURCE models/m.onnx WEIGHTS fil", "WEIGHTS='fil' is not one of 'embed', 'file' fix: did you mean 'file'?"),
        ("m SOURCE models/m.onnx RTOL 1e-3x", "RTOL='1e-3x' is not a number"),
        ("m SOURCE models/m.onnx RTOL", "RTOL needs a value"),
        ("m SOURCE models/m.onnx ATOL -1", "atol = -1.0 is not a finite number >= 0"),
        ("m SOURCE models/m.onnx INPUTS x:1x64", "INPUTS 'x:1x64' is not NAME=SHAPE[:DTYPE] fix: write it like INPUTS x=1x1x49x40:float32"),
        ("m SOURCE models/m.onnx SET tuning.trails=3", "SET tuning.trails: unknown key 'trails' fix: did you mean 'trials'?"),
        ("m SOURCE models/m.onnx SET simd=maybe", "SET simd='maybe' is not a boolean"),
        ("m SOURCE models/m.onnx TRIALS 4", "tuning.trials = 4 needs a database to keep the results"),
        ("m SOURCE models/m.onx", "wasm_build_add_model(m): SOURCE = 'models/m.onx': no such file"),
        ("m NO_SMOKE_TEST", "wasm_build_add_model(m): SOURCE is required"),
        ("1m SOURCE models/m.onnx", "wasm_build_add_model(1m).name = '1m' is not a valid C identifier"),
        ("m SOURCE models/m.onnx TARGET a/b", "TARGET 'a/b' is not a CMake target name"),
    ],
)
def test_add_model_checks_the_call_at_configure_time(project: Path, tmp_path: Path, arguments: str, expected: str):
    assert expected in _add_model_error(project, tmp_path, arguments)


# -- strings from configurations are data ---------------------------------------------------------------

# Closes a bracket argument, a quoted argument and a command, references variables, and
# calls a command: any of these evaluated as CMake code would leave the file `pwned`.
HOSTILE = ']]"]=] ${CMAKE_COMMAND} $ENV{HOME} #) file(WRITE ${CMAKE_BINARY_DIR}/pwned "") [==[ $(touch x) \'q\''


def test_hostile_strings_reach_the_settings_file_as_data(project: Path, tmp_path: Path):
    weird = project / f"models {HOSTILE}"
    models.save(models.mlp(seed=3), weird / "m.onnx")
    database = weird / "db.json"
    database.write_text("{}")
    (project / "pyproject.toml").write_text(_pyproject({
        "p": {"name": "p", "source": str(weird / "m.onnx"), "tuning": {"database": str(database)}},
    }))
    kernel = f"k;{HOSTILE}\nline two"  # a list element with ';' and a newline, through wasm_build_add_model()
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(hostile LANGUAGES NONE)\ninclude(WasmBuild)\n"
        "wasm_build_models_from_pyproject()\n"
        f"wasm_build_add_model(q SOURCE {_cmake_arg(str(weird / 'm.onnx'))} TUNING_KERNELS {_cmake_arg(kernel)} x\n"
        f"  DEPENDS {_cmake_arg(str(database))})\n"
    )
    build = tmp_path / "build"
    _configure(project, build)
    assert not (build / "pwned").exists()
    p = _settings_of(build, "wasm_build_p")
    assert (p.source, p.tuning.database) == (str(weird / "m.onnx"), str(database))
    q = _settings_of(build, "wasm_build_q")
    assert q.source == str(weird / "m.onnx") and q.tuning.kernels == (kernel, "x")
    if shutil.which("ninja"):  # the build depends on the very files
        for output in (str(project / "build" / "wasm" / "p" / "libp.a"), "wasm/q/libq.a"):  # ninja's spelling
            inputs = subprocess.run(["ninja", "-C", str(build), "-t", "query", output],
                                    capture_output=True, text=True, check=True).stdout
            assert str(weird / "m.onnx") in inputs and str(database) in inputs, inputs


@pytest.mark.parametrize(
    ("where", "value", "refused"),
    [
        ("out-dir", "build/a;b", "';'"),
        ("out-dir", 'build/o"); file(WRITE pwned) #', "'\"'"),
        ("out-dir", "build/${CMAKE_COMMAND}", "'${'"),
        ("out-dir", "build/[x]", "'['"),
        ("wheel-dir", "demo/$ENV{HOME}", "'$ENV{'"),
        ("wheel-dir", "demo/a\nb", "'\\n'"),
        ("source", "models/a;b.onnx", "';'"),
        ("source", "models/a\nmessage(FATAL_ERROR x).onnx", "'\\n'"),
        ("source", "models/$<1:x>.onnx", "'$<'"),
    ],
)
def test_paths_cmake_cannot_carry_are_refused_at_configure_time(project: Path, tmp_path: Path, where, value, refused):
    table = {"name": "p", "source": "models/m.onnx"}
    extra = ""
    if where == "source":
        models.save(models.mlp(), project / value)
        table["source"] = value
    else:
        extra = f"{where} = {json.dumps(value)}"
    (project / "pyproject.toml").write_text(_pyproject({"p": table}, extra=extra))
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(refused LANGUAGES NONE)\ninclude(WasmBuild)\n"
        "wasm_build_models_from_pyproject()\n"
    )
    result = _configure(project, tmp_path / "build", check=False)
    assert result.returncode != 0
    assert "which CMake cannot pass through" in result.stderr and refused in result.stderr, result.stderr
    assert not (tmp_path / "build" / "pwned").exists() and not (project / "pwned").exists()


# -- dependencies and rebuilds (Python only: no cmake needed) ------------------------------------------------


def _hex_arguments(*arguments: str) -> list[str]:
    return ["x" + a.encode().hex() for a in arguments]


def test_dependencies_include_external_data_python_files_and_the_database(project: Path, tmp_path: Path):
    model = models.mlp(seed=4)
    onnx.save_model(model, project / "models" / "big.onnx", save_as_external_data=True, location="big.data",
                    size_threshold=0)
    (project / "tuning").mkdir()
    (project / "tuning" / "db.json").write_text("{}")
    (project / "mypkg" / "sub").mkdir(parents=True)
    (project / "mypkg" / "__init__.py").write_text("")
    (project / "mypkg" / "sub" / "__init__.py").write_text("")
    (project / "mypkg" / "sub" / "net.py").write_text("def build():\n    raise NotImplementedError\n")
    binary = tmp_path / "build"

    onnx_model = cmake_integration.add_model(
        ["big", "SOURCE", "models/big.onnx", "TUNING_DATABASE", "tuning/db.json", "DEPENDS", "extra.txt"],
        project, binary)
    assert onnx_model.depends == (
        project / "models" / "big.onnx", project / "models" / "big.data", project / "tuning" / "db.json",
        project / "extra.txt")
    callable_model = cmake_integration.add_model(["net", "SOURCE", "mypkg.sub.net:build"], project, binary)
    assert set(callable_model.depends) == {
        project / "mypkg" / "sub" / "net.py", project / "mypkg" / "__init__.py", project / "mypkg" / "sub" / "__init__.py"}
    assert callable_model.settings.model.source == "mypkg.sub.net:build"

    # The command line CMake runs decodes every argument (hex: ';', newlines and all).
    plan = tmp_path / "plan.json"
    assert cmake_integration.main(["add-model", "--source-dir", str(project), "--binary-dir", str(binary),
                                   "--plan", str(plan), *_hex_arguments("big", "SOURCE", "models/big.onnx",
                                                                        "TUNING_KERNELS", "a;b\nc")]) == 0
    (entry,) = json.loads(plan.read_text())["models"]
    assert entry["depends"] == [(project / "models" / f).as_posix() for f in ("big.onnx", "big.data")]
    assert entry["outputs"][0] == (binary / "wasm" / "big" / "libbig.a").as_posix()
    assert read_settings_file(entry["settings"]).model.tuning.kernels == ("a;b\nc",)


def test_settings_file_is_rewritten_only_when_the_model_changes(project: Path, tmp_path: Path):
    binary = tmp_path / "build"

    def configure(*options: str) -> Path:
        model = cmake_integration.add_model(["m", "SOURCE", "models/m.onnx", *options], project, binary)
        cmake_integration.write_plan([model], tmp_path / "plan.json")
        return model.settings_file

    settings = configure("RTOL", "0.01")
    first = settings.stat().st_mtime_ns
    os.utime(settings, ns=(first - 10**9, first - 10**9))  # older, as after a while
    configure("RTOL", "0.01")
    assert settings.stat().st_mtime_ns == first - 10**9  # unchanged: nothing to rebuild
    configure("RTOL", "0.02")
    assert settings.stat().st_mtime_ns != first - 10**9
    assert read_settings_file(settings).model.rtol == 0.02


def test_compile_settings_option_overrides_and_refuses_a_second_source(project: Path, tmp_path: Path):
    model = cmake_integration.add_model(["m", "SOURCE", "models/m.onnx", "NO_CACHE"], project, tmp_path / "build")
    cmake_integration.write_plan([model], tmp_path / "plan.json")
    file = str(model.settings_file)
    got, project_dir, cache = compile_command.model_of(build_parser().parse_args(
        ["compile", "--settings", file, "--no-smoke-test", "--tune-kernels", "k*"]))
    assert (got.smoke_test, got.tuning.kernels, project_dir, cache) == (False, ("k*",), project, None)
    assert dataclasses.replace(got, smoke_test=True, tuning=model.settings.model.tuning) == model.settings.model
    with pytest.raises(ConfigError, match="SOURCE and --name cannot be given as well"):
        compile_command.model_of(build_parser().parse_args(["compile", "m.onnx", "--settings", file]))
    broken = tmp_path / "old.json"
    broken.write_text(json.dumps({"format": "wasm-build-model-settings/0", "model": {}}))
    with pytest.raises(ConfigError, match="re-run CMake's configure step"):
        compile_command.model_of(build_parser().parse_args(["compile", "--settings", str(broken)]))


def test_keywords_are_generated_from_the_settings():
    keywords = cmake_integration.keywords()
    assert keywords["NO_SIMD"].key == ("simd",) and keywords["NO_SIMD"].value is False
    assert keywords["RELAXED_SIMD"].value is True
    assert keywords["TUNING_DATABASE"].key == ("tuning", "database")  # derived from the key path
    assert keywords["TRIALS"].key == ("tuning", "trials")  # `cmake` metadata
    assert keywords["TUNING_KERNELS"].kind == "list"
    documented = textwrap.dedent("""
        SOURCE INPUTS NO_SIMD RELAXED_SIMD WEIGHTS NO_SMOKE_TEST NO_DEFAULT_SCHEDULES RTOL ATOL WINOGRAD_BUDGET
        TUNING_DATABASE TRIALS TIME_BUDGET CACHE_DIR NO_CACHE DEPENDS OUTPUT_DIR INSTALL_DESTINATION NO_INSTALL
        COMPONENT TARGET SET""").split()
    assert set(documented) <= set(keywords)  # docs/cmake.md's keywords keep working
