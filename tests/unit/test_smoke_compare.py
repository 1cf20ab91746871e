"""The smoke test's comparisons: tolerances, and non-finite values that must stay non-finite."""

from __future__ import annotations

import numpy as np

from wasm_build.wasm.smoke import (
    compare,
    compare_non_finite,
    nearer_run,
    with_special_values,
)
from wasm_build.wasm.steps import is_quantized


def test_non_finite_values_compare_exactly():
    want = np.array([1.0, np.inf, -np.inf, np.nan], np.float32)
    assert compare("r", ["y"], [want], [want.copy()], 1e-3, 1e-4)[0].ok
    for wrong in ([1.0, 5.0, -np.inf, np.nan], [1.0, np.inf, np.inf, np.nan], [1.0, np.inf, -np.inf, 0.0]):
        assert not compare("r", ["y"], [want], [np.array(wrong, np.float32)], 1e-3, 1e-4)[0].ok


def test_a_nan_turned_into_a_number_fails():
    want = np.full(100, np.nan, np.float32)
    relu_swallowing_nan = np.zeros(100, np.float32)
    assert not compare_non_finite("r", ["y"], [want], [relu_swallowing_nan])[0].ok
    # A few lost at an image's border (a zero weight times NaN in onnxruntime): tolerated.
    mostly = want.copy()
    mostly[:5] = 0.0
    assert compare_non_finite("r", ["y"], [want], [mostly])[0].ok


def test_special_values_are_placed_in_float_inputs_only():
    floats, ints = np.zeros((4, 4), np.float32), np.zeros(6, np.int64)
    special_floats, special_ints = with_special_values([floats, ints])
    assert np.isnan(special_floats).sum() == 1 and np.isposinf(special_floats).sum() == 1
    assert np.isneginf(special_floats).sum() == 1
    assert np.array_equal(special_ints, ints) and np.array_equal(floats, np.zeros((4, 4)))


def test_quantized_outputs_compare_in_steps_or_the_users_tolerance():
    step = 0.25
    want = np.arange(8, dtype=np.float32) * step
    one_step, two_steps = want + step, want + 2 * step
    assert compare("r", ["y"], [want], [one_step], 1e-3, 1e-4, {"y": step})[0].ok
    result = compare("r", ["y"], [want], [two_steps], 1e-3, 1e-4, {"y": step})[0]
    assert not result.ok and result.steps == 2.0
    # A larger atol accepts a deep network's drift.
    assert compare("r", ["y"], [want], [two_steps], 1e-3, 0.6, {"y": step})[0].ok
    # Without a step, the tolerances alone decide.
    assert not compare("r", ["y"], [want], [one_step], 1e-3, 1e-4)[0].ok


def test_quantized_models_may_be_as_far_as_onnxruntimes_own_two_runs():
    """onnxruntime optimized and literal (node by node) disagree on deep quantized nets; the
    artifact passes within their spread of the nearer run, and within one step where they agree.
    Float outputs of a quantized model (DeiT's averaged heads) likewise."""
    step = 0.1
    optimized = np.arange(8, dtype=np.float32) * np.float32(step)
    literal = optimized + np.float32(4 * step)
    near_literal = literal + np.float32(3 * step)
    reference, spread = nearer_run(["q", "f"], [optimized, optimized], [literal, optimized], [near_literal, optimized])
    assert reference[0] is literal and abs(spread["q"] - 4 * step) < 1e-6 and spread["f"] == 0.0
    (ok,) = compare("r", ["q"], reference[:1], [near_literal], 1e-3, 1e-4, {"q": step}, spread)
    assert ok.ok
    (too_far,) = compare("r", ["q"], [literal], [literal + np.float32(5 * step)], 1e-3, 1e-4, {"q": step}, spread)
    assert not too_far.ok
    # Runs that agree: one step.
    _, agree = nearer_run(["q"], [optimized], [optimized], [optimized])
    (two_steps,) = compare("r", ["q"], [optimized], [optimized + np.float32(2 * step)], 1e-3, 1e-4, {"q": step}, agree)
    assert not two_steps.ok
    # A float output: within the runs' spread, not beyond.
    drift = optimized + np.float32(0.05)
    _, floats = nearer_run(["f"], [optimized], [drift], [optimized - np.float32(0.04)])
    assert compare("r", ["f"], [optimized], [optimized - np.float32(0.04)], 1e-3, 1e-4, {}, floats)[0].ok
    assert not compare("r", ["f"], [optimized], [optimized - np.float32(0.06)], 1e-3, 1e-4, {}, floats)[0].ok


def test_a_model_is_quantized_by_any_quantizing_node():
    from onnx import TensorProto, helper

    def model(op_type: str, inputs: list[str]):
        node = helper.make_node(op_type, inputs, ["y"])
        graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
        return helper.make_model(graph)

    assert is_quantized(model("DequantizeLinear", ["x", "s"])) and is_quantized(model("QLinearMatMul", ["x"]))
    assert not is_quantized(model("Relu", ["x"])) and not is_quantized(None)


def test_a_models_own_quantized_integer_outputs_compare_within_a_step():
    """uint8 outputs of QuantizeLinear (a tie rounded the other way) are one step apart at most;
    other integer outputs (an argmax's indices) match exactly."""
    from onnx import TensorProto, helper, numpy_helper

    from wasm_build.wasm.steps import output_steps

    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("Reshape", ["q", "shape"], ["y"]),
             helper.make_node("ArgMax", ["x"], ["i"], axis=0)]
    constants = [numpy_helper.from_array(np.array(0.5, np.float32), "s"), numpy_helper.from_array(np.array(3, np.uint8), "z"),
                 numpy_helper.from_array(np.array([4], np.int64), "shape")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [4]),
                               helper.make_tensor_value_info("i", TensorProto.INT64, [1])], constants)
    steps = output_steps(helper.make_model(graph))
    assert steps == {"y": 1.0}
    want = np.array([3, 4, 250, 0], np.uint8)
    assert compare("r", ["y"], [want], [np.array([4, 4, 251, 1], np.uint8)], 1e-3, 1e-4, steps)[0].ok
    assert not compare("r", ["y"], [want], [np.array([5, 4, 250, 0], np.uint8)], 1e-3, 1e-4, steps)[0].ok
    assert not compare("r", ["i"], [np.array([2])], [np.array([3])], 1e-3, 1e-4, steps)[0].ok


def test_a_small_value_among_large_ones_may_carry_their_rounding():
    # MobileOne with random weights: outputs near 1e14, one near 1e11 that float32 sums reach
    # with a relative error of 1.5e-3 (1e-6 of the output's scale): rounding, not a defect.
    want = np.array([8.5e14, -4.2e14, -1.2467e11], np.float32)
    rounded = np.array([8.5e14 * (1 + 1e-7), -4.2e14, -1.2449e11], np.float32)
    assert compare("r", ["y"], [want], [rounded], 1e-3, 1e-4)[0].ok
    # An error of 1e-4 of the scale is not rounding; nor is any error in an output without large values.
    wrong = np.array([8.5e14, -4.2e14, -1.2467e11 + 8.5e10], np.float32)
    assert not compare("r", ["y"], [want], [wrong], 1e-3, 1e-4)[0].ok
    assert not compare("r", ["y"], [want[2:] / 1e11], [rounded[2:] / 1e11], 1e-3, 1e-4)[0].ok
