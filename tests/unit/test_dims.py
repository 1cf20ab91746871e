"""Bounded dynamic dimensions (issue 21): declaring, bounding and describing them, without builds."""

from __future__ import annotations

import pytest
from tvm import tirx

from wasm_build.codegen.shape_heap import describe
from wasm_build.config.settings import DimSpec, ModelSettings, from_dict, parse_dim_option
from wasm_build.errors import ConfigError
from wasm_build.frontends.shapes import bound_dims
from wasm_build.wasm.drivers import RUN_DIMS_TIMER
from wasm_build.wasm.smoke import concrete_shape, dim_sizes


def test_parse_dim_option():
    assert parse_dim_option("seq=1..128") == ("seq", DimSpec(min=1, max=128))
    assert parse_dim_option("frames=..200") == ("frames", DimSpec(min=1, max=200))
    assert parse_dim_option("seq= 4 .. 64 ") == ("seq", DimSpec(min=4, max=64))
    for text in ("seq=128", "seq", "=1..8", "seq=1..", "seq=a..8", "seq=1..-8"):
        with pytest.raises(ConfigError, match="is not NAME=MIN..MAX"):
            parse_dim_option(text)


def test_dims_are_validated_with_the_model():
    table = {"name": "m", "source": "m.onnx", "inputs": {"ids": {"shape": [1, "seq"]}}}
    model = from_dict(ModelSettings, {**table, "dims": {"seq": {"max": 128}}}, path="test")
    assert model.dims == {"seq": DimSpec(min=1, max=128)} and model.inputs["ids"].shape == (1, "seq")
    with pytest.raises(ConfigError, match=r"is not a range 1 <= min <= max") as info:
        from_dict(ModelSettings, {**table, "dims": {"seq": {"min": 9, "max": 8}}}, path="test")
    assert "--dim seq=1..128" in str(info.value)
    with pytest.raises(ConfigError, match="not an identifier"):
        from_dict(ModelSettings, {**table, "dims": {"max-len": {"max": 8}}}, path="test")


SYMBOLS = {"seq": ("input_ids", [1, "seq"])}


def test_an_unbounded_dimension_is_an_error_that_names_it_and_shows_the_dim_to_add():
    with pytest.raises(ConfigError) as info:
        bound_dims(SYMBOLS, {})
    text = str(info.value)
    assert "input 'input_ids' dimension 1 is dynamic ('seq') and unbounded" in text
    assert "--dim seq=1..N" in text and "dims = { seq = { min = 1, max = N } }" in text
    assert "--input input_ids=1x1" in text  # or pin it


def test_bounds_come_from_the_user_else_from_the_model_and_may_only_narrow():
    assert [(d.name, d.min, d.max) for d in bound_dims(SYMBOLS, {"seq": DimSpec(max=64)})] == [("seq", 1, 64)]
    # torch.export's Dim: its bounds (a minimum of 0 becomes 1: no empty tensors).
    assert [(d.min, d.max) for d in bound_dims(SYMBOLS, {}, {"seq": (0, 128)})] == [(1, 128)]
    assert [(d.min, d.max) for d in bound_dims(SYMBOLS, {"seq": DimSpec(min=2, max=32)}, {"seq": (1, 128)})] == [(2, 32)]
    with pytest.raises(ConfigError, match=r"goes beyond the bounds the model was exported with \(1..128\)"):
        bound_dims(SYMBOLS, {"seq": DimSpec(max=256)}, {"seq": (1, 128)})
    with pytest.raises(ConfigError, match="did you mean 'seq'"):
        bound_dims(SYMBOLS, {"sq": DimSpec(max=8)})
    with pytest.raises(ConfigError, match="not an identifier"):
        bound_dims({"s-0": ("x", [1, "s-0"])}, {"s-0": DimSpec(max=8)})


def test_the_smoke_test_runs_the_bounds_and_between():
    class Dim:
        def __init__(self, name: str, low: int, high: int) -> None:
            self.name, self.min, self.max = name, low, high

    assert dim_sizes([]) == [{}]
    assert dim_sizes([Dim("seq", 1, 128)]) == [{"seq": 1}, {"seq": 65}, {"seq": 128}]
    assert dim_sizes([Dim("seq", 5, 6)]) == [{"seq": 5}, {"seq": 6}]  # no size twice
    assert dim_sizes([Dim("seq", 7, 7)]) == [{"seq": 7}]
    assert concrete_shape((1, "seq", 32), {"seq": 9}) == (1, 9, 32)


def test_derived_dimensions_read_as_people_write_them():
    frames = tirx.Var("frames", "int64")
    expr = tirx.Sub(tirx.FloorDiv(tirx.Sub(frames, tirx.IntImm("int64", 1)), tirx.IntImm("int64", 2)), tirx.IntImm("int64", 3))
    assert describe(expr) == "(frames - 1) // 2 - 3"
    assert describe(tirx.Sub(frames, tirx.Sub(frames, tirx.IntImm("int64", 1)))) == "frames - (frames - 1)"


def test_the_run_dims_timing_loop_calls_run_dims():
    source = RUN_DIMS_TIMER.source(name="bert")
    assert "int bert_run_dims(" in source and "wbbench_loop_dims" in source and "clock_gettime" in source
