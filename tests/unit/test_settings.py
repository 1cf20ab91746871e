"""The settings model: TOML tables into typed dataclasses, with errors that name the key."""

from __future__ import annotations

import pytest

from wasm_build.errors import ConfigError
from wasm_build.config.settings import (
    InputSpec,
    ModelSettings,
    ProjectSettings,
    TuningSettings,
    from_dict,
    parse_input_option,
    toml_key,
)


def model_table(**extra):
    return {"name": "kws", "source": "models/kws.onnx", **extra}


def test_defaults_and_kebab_case_keys():
    project = from_dict(
        ProjectSettings,
        {
            "out-dir": "out",
            "models": [
                model_table(
                    **{
                        "smoke-test": False,
                        "relaxed-simd": True,
                        "inputs": {"x": {"shape": [1, 1, 49, 40], "dtype": "float32"}},
                        "tuning": {"trials": 8, "database": "tuning/kws.json", "time-budget": 30},
                    }
                )
            ],
        },
    )
    assert project.out_dir == "out"
    assert project.wheel_dir is None
    (model,) = project.models
    assert model.smoke_test is False and model.relaxed_simd is True and model.simd is True
    assert model.inputs == {"x": InputSpec(shape=(1, 1, 49, 40), dtype="float32")}
    assert model.tuning == TuningSettings(trials=8, database="tuning/kws.json", time_budget=30.0)
    assert isinstance(model.tuning.time_budget, float)  # an integer TOML value for a float key
    assert model.weights == "embed" and model.rtol == 1e-3


def test_snake_case_spelling_is_accepted_too():
    model = from_dict(ModelSettings, model_table(smoke_test=False))
    assert model.smoke_test is False


def test_toml_key():
    assert toml_key("default_schedules") == "default-schedules"


def test_unknown_key_names_its_path_and_suggests():
    with pytest.raises(ConfigError) as info:
        from_dict(ProjectSettings, {"models": [model_table(**{"smoke-tset": False})]})
    text = str(info.value)
    assert "tool.wasm-build.models[0].smoke-tset" in text
    assert "did you mean 'smoke-test'" in text


def test_unknown_top_level_key():
    with pytest.raises(ConfigError, match=r"unknown key 'tool.wasm-build.outdir'(.|\n)*did you mean 'out-dir'"):
        from_dict(ProjectSettings, {"outdir": "x"})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"simd": "yes"}, r"models\[0\].simd must be bool, got str 'yes'"),
        ({"rtol": "small"}, r"models\[0\].rtol must be float"),
        ({"weights": "inline"}, r"models\[0\].weights = 'inline' is not one of 'embed', 'file'"),
        ({"inputs": {"x": {"shape": "1x49"}}}, r"inputs.x.shape must be a list"),
        ({"inputs": {"x": {"shape": [1, 0]}}}, r"inputs.x.shape has a non-positive dimension"),
        ({"inputs": {"x": {"dtype": "float8"}}}, r"inputs.x.dtype = 'float8' is not supported"),
        ({"tuning": {"trials": 4}}, r"tuning.trials = 4 needs a database"),
        ({"tuning": {"trials": True}}, r"tuning.trials must be int, got bool"),
        ({"name": "1kws"}, r"models\[0\].name = '1kws' is not a valid C identifier"),
        ({"name": "for"}, r"is not a valid C identifier"),
    ],
)
def test_bad_values_name_the_key(extra, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(ProjectSettings, {"models": [model_table(**extra)]})


def test_missing_required_keys():
    with pytest.raises(ConfigError, match=r"models\[0\] is missing required key\(s\): source"):
        from_dict(ProjectSettings, {"models": [{"name": "kws"}]})


def test_duplicate_model_names():
    with pytest.raises(ConfigError, match="two models are named 'kws'") as info:
        from_dict(ProjectSettings, {"models": [model_table(), model_table(source="other.onnx")]})
    assert info.value.fix == "give each model its own name"


def test_models_must_be_an_array_of_tables():
    with pytest.raises(ConfigError, match="tool.wasm-build.models must be a list"):
        from_dict(ProjectSettings, {"models": {"name": "kws"}})


def test_parse_input_option():
    assert parse_input_option("x=1x1x49x40:float32") == ("x", InputSpec(shape=(1, 1, 49, 40), dtype="float32"))
    assert parse_input_option("tokens=1x128") == ("tokens", InputSpec(shape=(1, 128)))
    with pytest.raises(ConfigError, match="is not NAME=SHAPE"):
        parse_input_option("1x3")
    # A name for a size is a symbolic dimension (bounded with --dim); commas separate names with an x.
    assert parse_input_option("ids=1xseq:int64") == ("ids", InputSpec(shape=(1, "seq"), dtype="int64"))
    assert parse_input_option("ids=1,max_len") == ("ids", InputSpec(shape=(1, "max_len")))
    with pytest.raises(ConfigError, match="neither a size nor the name of a dimension"):
        parse_input_option("x=1x-3")
