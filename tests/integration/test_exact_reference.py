"""onnxruntime as the smoke test's reference computes integer products exactly on every host.

On x86-64 without VNNI, onnxruntime's default uint8 x int8 products add pairs of products in 16
bits with saturation; the reference session moves them onto kernels that do not saturate
(`wasm.onnxruntime_reference`). The model below saturates such pairs: on those hosts (AMD Zen 3,
Intel before Ice Lake) the tests fail without that option; elsewhere they pass either way."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.support import build
from wasm_build import WasmModel
from wasm_build.testing.models import reference_outputs
from wasm_build.wasm.onnxruntime_reference import reference_session
from wasm_build.wasm.smoke import SEED, random_inputs

pytest.importorskip("onnxruntime")

K, N = 64, 16
X_SCALE, W_SCALE, Y_SCALE, Y_ZERO = 0.002, 0.01, 0.1, 3


def scalar(name: str, value: float, dtype) -> onnx.TensorProto:
    return numpy_helper.from_array(np.array(value, dtype=dtype), name)


def saturating_matmul() -> tuple[onnx.ModelProto, np.ndarray]:
    """x -> QuantizeLinear (uint8, most standard normal values at 100-255) -> QLinearMatMul by
    int8 weights of 100-127 -> DequantizeLinear; and the weights."""
    weights = np.random.default_rng(0).integers(100, 128, size=(K, N)).astype(np.int8)
    initializers = [
        scalar("sx", X_SCALE, np.float32), scalar("zx", 0, np.uint8),
        numpy_helper.from_array(weights, "w"), scalar("sw", W_SCALE, np.float32), scalar("zw", 0, np.int8),
        scalar("sy", Y_SCALE, np.float32), scalar("zy", Y_ZERO, np.uint8),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "sx", "zx"], ["xq"]),
        helper.make_node("QLinearMatMul", ["xq", "sx", "zx", "w", "sw", "zw", "sy", "zy"], ["yq"]),
        helper.make_node("DequantizeLinear", ["yq", "sy", "zy"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "saturating", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, N])], initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, weights


def by_definition(x: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """QLinearMatMul computed as the operator defines it: int32 sums, one rounding; and the
    quantized input."""
    xq = np.clip(np.rint(x / np.float32(X_SCALE)), 0, 255).astype(np.int64)
    sums = xq @ weights.astype(np.int64)
    yq = np.clip(np.rint(sums * (X_SCALE * W_SCALE / Y_SCALE)) + Y_ZERO, 0, 255)
    return ((yq - Y_ZERO) * Y_SCALE).astype(np.float32), xq


def smoke_inputs() -> list[np.ndarray]:
    return random_inputs([("x", (1, K), "float32")], SEED)


def test_the_model_has_pairs_that_saturate_16_bits():
    """The test's power: adjacent products of the smoke test's inputs pass int16's range."""
    model, weights = saturating_matmul()
    _, xq = by_definition(smoke_inputs()[0], weights)
    products = xq[0, :, None] * weights.astype(np.int64)
    pairs = products[0::2] + products[1::2]
    assert (pairs > np.iinfo(np.int16).max).sum() >= 10


def test_reference_session_sums_integer_products_exactly():
    model, weights = saturating_matmul()
    (x,) = smoke_inputs()
    (got,) = reference_session(model).run(None, {"x": x})
    want, _ = by_definition(x, weights)
    assert np.abs(got - want).max() <= Y_SCALE  # a rounding apart at most


def test_smoke_test_passes_an_exact_artifact_where_onnxruntime_saturates(tmp_path):
    model, weights = saturating_matmul()
    result = build(model, "saturating", tmp_path)  # smoke test on: fails if held to saturated sums
    (x,) = smoke_inputs()
    (got,) = WasmModel(result.directory / "saturating.wasm").run([x])
    want, _ = by_definition(x, weights)
    assert np.abs(got - want).max() <= Y_SCALE


def test_reference_outputs_of_integer_product_models_are_exact():
    """The tests' reference (`testing.models.reference_outputs`, node by node for QDQ and float
    models) runs models written with integer products through the optimizer that makes them exact."""
    model, weights = saturating_matmul()
    (x,) = smoke_inputs()
    (got,) = reference_outputs(model, {"x": x})
    want, _ = by_definition(x, weights)
    assert np.abs(got - want).max() <= Y_SCALE


def two_products_sharing_a_zero_point() -> tuple[onnx.ModelProto, list[np.ndarray]]:
    """x -> DynamicQuantizeLinear -> two MatMulInteger with their own weights and one weight zero
    point (as `quantize_dynamic` writes BERT), int32 outputs."""
    rng = np.random.default_rng(1)
    weights = [rng.integers(-127, 128, size=(K, N)).astype(np.int8) for _ in range(2)]
    nodes = [helper.make_node("DynamicQuantizeLinear", ["x"], ["xq", "sx", "zx"])]
    nodes += [helper.make_node("MatMulInteger", ["xq", f"w{i}", "zx", "zw"], [f"y{i}"]) for i in range(2)]
    graph = helper.make_graph(
        nodes, "shared", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])],
        [helper.make_tensor_value_info(f"y{i}", TensorProto.INT32, [1, N]) for i in range(2)],
        [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)] + [scalar("zw", 0, np.int8)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, weights


def test_reference_session_runs_products_that_share_a_constant():
    """onnxruntime's move onto exact kernels fails on a constant two integer products share; the
    reference gives each product its own copy."""
    model, weights = two_products_sharing_a_zero_point()
    (x,) = smoke_inputs()
    got = reference_session(model).run(None, {"x": x})
    low, high = min(0.0, float(x.min())), max(0.0, float(x.max()))
    scale = np.float32((high - low) / 255)
    zero = np.clip(np.rint(-low / scale), 0, 255)
    xq = np.clip(np.rint(x / scale) + zero, 0, 255).astype(np.int64) - int(zero)
    for have, w in zip(got, weights):
        np.testing.assert_array_equal(have, xq @ w.astype(np.int64))
