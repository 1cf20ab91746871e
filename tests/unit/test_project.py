"""Reading [tool.wasm-build], merging -C / environment overrides, the schema and the project CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from wasm_build.config import schema
from wasm_build.cli import main as cli_main
from wasm_build.errors import ConfigError
from wasm_build.config.project import environment_variables, load_project

PYPROJECT = """\
[project]
name = "demo"
version = "0.1"

[tool.wasm-build]
out-dir = "build/wasm"

[[tool.wasm-build.models]]
name = "kws"
source = "models/kws.onnx"
simd = true

[[tool.wasm-build.models]]
name = "mlp"
source = "demo_models.relax:build"
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "kws.onnx").write_bytes(b"not read before the build")
    (tmp_path / "demo_models").mkdir()
    (tmp_path / "demo_models" / "__init__.py").write_text("")
    (tmp_path / "demo_models" / "relax.py").write_text("def build():\n    raise NotImplementedError\n")
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    return tmp_path


def models_by_name(loaded):
    return {m.name: m for m in loaded.settings.models}


def test_no_table_means_nothing_to_do(tmp_path: Path):
    assert load_project(tmp_path, environ={}) is None  # no pyproject.toml at all
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "plain"\nversion = "1"\n')
    assert load_project(tmp_path, environ={}) is None


def test_pyproject_values(project: Path):
    loaded = load_project(project, environ={})
    assert loaded.out_dir == project / "build" / "wasm"
    assert list(models_by_name(loaded)) == ["kws", "mlp"]
    assert loaded.source_files() == ["demo_models/__init__.py", "demo_models/relax.py", "models/kws.onnx"]


def test_cache_dir_from_environment_when_not_set(project: Path, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("WASM_BUILD_CACHE_DIR", str(tmp_path / "cache"))
    assert load_project(project).cache_dir == tmp_path / "cache"


def test_precedence_config_settings_then_environment_then_pyproject(project: Path):
    env = {"WASM_BUILD_SIMD": "0", "WASM_BUILD_SMOKE_TEST": "false", "WASM_BUILD_OUT_DIR": "env-out"}
    cs = {"wasm-build.models.kws.simd": "true", "wasm-build.out-dir": "cs-out", "verbose": "1"}
    models = models_by_name(loaded := load_project(project, cs, env))
    assert loaded.settings.out_dir == "cs-out"  # -C beats the environment
    assert models["kws"].simd is True  # -C for one model beats the environment for all
    assert models["mlp"].simd is False  # environment beats pyproject
    assert not models["kws"].smoke_test and not models["mlp"].smoke_test
    only_env = models_by_name(load_project(project, {}, env))
    assert only_env["kws"].simd is False  # pyproject says true, the environment wins


def test_config_settings_every_model_nested_keys_and_lists(project: Path):
    cs = {
        "wasm-build.models.*.weights": "file",
        "wasm-build.models.mlp.tuning.time-budget": "12.5",
        "wasm-build.models.kws.inputs.x.shape": "[1, 1, 49, 40]",
        "wasm-build.models.kws.relaxed_simd": "on",  # snake_case is accepted as well
        "wasm-build.wheel-dir": ["first", "demo/artifacts"],  # repeated: the last one wins
    }
    loaded = load_project(project, cs, {})
    models = models_by_name(loaded)
    assert {m.weights for m in models.values()} == {"file"}
    assert models["mlp"].tuning.time_budget == 12.5
    assert models["kws"].inputs["x"].shape == (1, 1, 49, 40)
    assert models["kws"].relaxed_simd is True
    assert loaded.settings.wheel_dir == "demo/artifacts"


@pytest.mark.parametrize(
    ("config_settings", "environ", "expected"),
    [
        ({"wasm-build.models.kws.smoke-tset": "0"}, {}, r"-C wasm-build.models.kws.smoke-tset: unknown key 'smoke-tset'(.|\n)*did you mean 'smoke-test'"),
        ({"wasm-build.outdir": "x"}, {}, r"unknown key 'outdir'(.|\n)*did you mean 'out-dir'"),
        ({"wasm-build.models.kwz.simd": "0"}, {}, r"no model named 'kwz'(.|\n)*did you mean 'kws'"),
        ({"wasm-build.models.kws.simd": "maybe"}, {}, r"-C wasm-build.models.kws.simd='maybe' is not a boolean"),
        ({"wasm-build.models.kws.weights": "embedded"}, {}, r"is not one of 'embed', 'file'(.|\n)*did you mean 'embed'"),
        ({"wasm-build.models.kws.atol": "tiny"}, {}, r"models.kws.atol='tiny' is not a number"),
        ({"wasm-build.models.kws.inputs.x.shape": "[1, "}, {}, r"inputs.x.shape='\[1, ' is not a TOML value"),
        ({"wasm-build.models.*.source": "a.onnx"}, {}, r"'source' is set per model"),
        ({"wasm-build.models.kws": "x"}, {}, r"name a model and a key"),
        ({"wasm-build.models.kws.simd.x": "1"}, {}, r"'models.kws.simd' has no sub-keys"),
        ({"wasm-build.models..simd": "1"}, {}, r"is not a dotted key"),
        ({"wasm-build.out-dir": None}, {}, r"-C wasm-build.out-dir has no value"),
        ({}, {"WASM_BUILD_SMOKE_TEST": "perhaps"}, r"WASM_BUILD_SMOKE_TEST='perhaps' is not a boolean"),
        ({}, {"WASM_BUILD_TUNING_TRIALS": "many"}, r"WASM_BUILD_TUNING_TRIALS='many' is not an integer"),
    ],
)
def test_override_errors_name_the_setting(project: Path, config_settings, environ, expected):
    with pytest.raises(ConfigError, match=expected):
        load_project(project, config_settings, environ)


def write_table(project: Path, table: str) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0.1"\n\n' + textwrap.dedent(table))


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        (
            '[tool.wasm-build]\n[[tool.wasm-build.models]]\nname = "kws"\nsource = "models/missing.onnx"\n',
            r"tool.wasm-build.models\[0\].source = 'models/missing.onnx': no such file",
        ),
        (
            '[tool.wasm-build]\n[[tool.wasm-build.models]]\nname = "kws"\nsource = "models/kws.tflite"\n',
            r"models\[0\].source = 'models/kws.tflite': no such file",
        ),
        (
            '[tool.wasm-build]\n[[tool.wasm-build.models]]\nname = "mlp"\nsource = "no_such_pkg.models:build"\n',
            r"models\[0\].source = 'no_such_pkg.models:build': module 'no_such_pkg.models' was not found",
        ),
        (
            '[tool.wasm-build]\n[[tool.wasm-build.models]]\nname = "kws-model"\nsource = "models/kws.onnx"\n',
            r"models\[0\].name = 'kws-model' is not a valid C identifier",
        ),
        (
            '[tool.wasm-build]\n[[tool.wasm-build.models]]\nname = "kws"\nsource = "models/kws.onnx"\n'
            '[[tool.wasm-build.models]]\nname = "kws"\nsource = "models/kws.onnx"\n',
            r"two models are named 'kws'",
        ),
        ('[tool.wasm-build]\nout_dirr = "x"\n', r"unknown key 'tool.wasm-build.out_dirr'(.|\n)*did you mean 'out-dir'"),
        ('[tool.wasm-build]\nout-dir = 3\n', r"tool.wasm-build.out-dir must be str, got int"),
        ("[tool]\nwasm-build = 3\n", r"tool.wasm-build must be a table"),
        ("[tool.wasm-build\n", r"is not valid TOML"),
    ],
)
def test_pyproject_errors_name_the_key(project: Path, table: str, expected: str):
    write_table(project, table)
    with pytest.raises(ConfigError, match=expected):
        load_project(project, environ={})


def test_unknown_format_is_caught_for_existing_files(project: Path):
    (project / "models" / "kws.tflite").write_bytes(b"")
    write_table(project, '[tool.wasm-build]\n[[tool.wasm-build.models]]\nname = "kws"\nsource = "models/kws.tflite"\n')
    with pytest.raises(ConfigError, match="unknown model format '.tflite'"):
        load_project(project, environ={})


def test_environment_variables_are_derived_from_the_settings():
    names = environment_variables()
    assert names["WASM_BUILD_OUT_DIR"] == ("out-dir",)
    assert names["WASM_BUILD_SMOKE_TEST"] == ("models", "*", "smoke-test")
    assert names["WASM_BUILD_TUNING_TRIALS"] == ("models", "*", "tuning", "trials")
    # Identity keys of a model cannot be set for every model at once.
    assert "WASM_BUILD_NAME" not in names and "WASM_BUILD_SOURCE" not in names
    assert "WASM_BUILD_TUNING_DATABASE" not in names


# -- schema ---------------------------------------------------------------------------------


def test_checked_in_schema_matches_the_dataclasses():
    shipped = Path(schema.__file__).parents[1] / "resources" / schema.RESOURCE
    assert shipped.read_text() == schema.dumps(schema.generate()), (
        "regenerate it: python -m wasm_build schema > src/wasm_build/resources/wasm-build.schema.json"
    )
    assert schema.tool_schema() == schema.generate()


def _objects(node):
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            yield node
        for value in node.values():
            yield from _objects(value)
    elif isinstance(node, list):
        for value in node:
            yield from _objects(value)


def test_schema_closes_every_table():
    generated = schema.generate()
    objects = list(_objects(generated))
    assert len(objects) == 5  # project, model, input, dim, tuning
    assert all(obj["additionalProperties"] is False for obj in objects)
    model = generated["properties"]["models"]["items"]
    assert model["required"] == ["name", "source"]
    assert model["properties"]["weights"]["enum"] == ["embed", "file"]
    assert model["properties"]["smoke-test"] == {
        "description": "Run the artifact in wasmtime and compare with native TVM.",
        "type": "boolean",
        "default": True,
    }


def test_schema_validates_like_the_loader(project: Path):
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft7Validator(schema.generate())
    good = {"out-dir": "build/wasm", "models": [{"name": "kws", "source": "m.onnx", "inputs": {"x": {"shape": [1, 2]}}}]}
    assert list(validator.iter_errors(good)) == []
    bad = {"models": [{"name": "kws", "source": "m.onnx", "smoke-tset": False}]}
    assert any("smoke-tset" in e.message for e in validator.iter_errors(bad))
    assert list(validator.iter_errors({"models": [{"name": "1x", "source": "m.onnx"}]}))


def test_schema_command_prints_the_schema(capsys):
    assert cli_main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == schema.generate()


# -- wasm-build build -----------------------------------------------------------------------




def test_build_command_reports_config_errors(project: Path, capsys):
    assert cli_main(["build", "--project", str(project), "-C", "models.kws.smoke_tst=0"]) == 1
    err = capsys.readouterr().err
    assert "unknown key 'smoke-tst'" in err and "did you mean 'smoke-test'" in err
    assert cli_main(["build", "--project", str(project), "-C", "models.kws.simd"]) == 1
    assert "is not KEY=VALUE" in capsys.readouterr().err
