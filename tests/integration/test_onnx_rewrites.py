"""ONNX-to-ONNX rewrites before TVM's import (`frontends.onnx_rewrites`): each rewrites its
pattern, leaves other models alone, and the rewritten models build and match onnxruntime
(which runs the original). The ONNX backend conformance cases they mend are in
tests/test_onnx_conformance.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from wasm_build import WasmModel
from wasm_build.frontends import onnx_rewrites
from wasm_build.frontends.onnx_rewrites import (
    dequantized_operands,
    expand_declared_shape,
    prelu_channel_slope,
    slice_attributes,
    static_sequences,
)
from wasm_build.testing import models

from tests.support import build
from tests.support.export import build_and_compare


def _model(nodes, inputs, outputs, initializers=(), opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _float(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _int64(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.INT64, shape)


def _array(name: str, values, dtype=np.float32) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def _rewritten(rewrite: onnx_rewrites.Rewrite, model: onnx.ModelProto) -> onnx.ModelProto:
    """One rewrite alone, on a copy (rewrites change the model they are given); what it
    makes is a valid model of the same opset."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    result = rewrite(copy)
    onnx.checker.check_model(result, full_check=True)
    return result


# -- the package ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["mlp", "cnn", "transformer_block", "two_in_two_out", "kws_cnn"])
def test_models_without_a_pattern_are_left_alone(name):
    model = models.MODELS[name]()
    assert onnx_rewrites.apply_rewrites(model) == model


def test_apply_leaves_its_argument_unchanged():
    model = _prelu_model()
    before = model.SerializeToString()
    rewritten = onnx_rewrites.apply_rewrites(model)
    assert model.SerializeToString() == before and rewritten != model


def test_every_rewrite_module_is_registered():
    package = Path(onnx_rewrites.__file__).parent
    helpers = {"__init__", "graph", "emitter", "recurrent"}
    modules = {p.stem for p in package.glob("*.py")} - helpers
    assert {r.name for r in onnx_rewrites.REWRITES} == modules
    assert {r.apply.__module__.rsplit(".", 1)[-1] for r in onnx_rewrites.REWRITES} == modules


# -- PRelu (opset < 7): per-channel slope -------------------------------------------------------


def _prelu_model(shape=(2, 3, 4, 5), opset: int = 6) -> onnx.ModelProto:
    slope = _array("slope", np.linspace(0.1, 0.5, shape[1]))
    return _model(
        [helper.make_node("PRelu", ["x", "slope"], ["y"])], [_float("x", shape)], [_float("y", shape)], [slope], opset
    )


@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 3, 4, 5), (1, 3, 2, 2, 3)], ids=["1d", "2d", "3d"])
def test_opset6_prelu_slope_is_per_channel(tmp_path, shape):
    model = _prelu_model(shape)
    rewritten = _rewritten(prelu_channel_slope.rewrite, model)
    unsqueeze = next(n for n in rewritten.graph.node if n.op_type == "Unsqueeze")
    assert list(unsqueeze.attribute[0].ints) == list(range(1, len(shape) - 1))
    # onnxruntime runs PRelu from opset 7 only: the reference is the opset-6 definition.
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    slope = np.linspace(0.1, 0.5, shape[1], dtype=np.float32).reshape((-1,) + (1,) * (len(shape) - 2))
    want = np.where(x < 0, x * slope, x)
    result = build(model, "prelu", tmp_path, smoke_test=False)
    np.testing.assert_allclose(WasmModel(result.directory / "prelu.wasm").run([x])[0], want, rtol=1e-6)


def test_opset7_prelu_is_left_alone():
    model = _prelu_model((2, 5, 5), opset=7)  # numpy broadcasting: the last axis
    assert _rewritten(prelu_channel_slope.rewrite, model) == model


# -- Slice with attributes (opset < 10) ----------------------------------------------------------


def test_opset9_slice_becomes_gathers(tmp_path):
    node = helper.make_node("Slice", ["x"], ["y"], starts=[1, -3], ends=[3, 100], axes=[0, 2])
    model = _model([node], [_float("x", [4, 3, 5])], [_float("y", [2, 3, 3])], opset=9)
    rewritten = _rewritten(slice_attributes.rewrite, model)
    assert [(n.op_type, n.attribute[0].i) for n in rewritten.graph.node] == [("Gather", 0), ("Gather", 2)]
    build_and_compare(model, "slice9", tmp_path)


# -- Expand to a runtime shape ----------------------------------------------------------------


@pytest.mark.parametrize("requested, declared", [([3, 1], [1, 3, 1]), ([1, 3], [1, 3, 3]), ([2, 1, 3, 1], [2, 1, 3, 1])])
def test_expand_to_a_runtime_shape_uses_the_declared_one(tmp_path, requested, declared):
    nodes = [helper.make_node("Expand", ["x", "shape"], ["y"])]
    model = _model(nodes, [_float("x", [1, 3, 1]), _int64("shape", [len(requested)])], [_float("y", declared)])
    x = np.random.default_rng(1).standard_normal((1, 3, 1)).astype(np.float32)
    # No smoke test: its random shape values are not shapes x expands to.
    build_and_compare(model, "expand", tmp_path, [x, np.array(requested, np.int64)], smoke_test=False)


def test_expand_without_a_static_result_is_left_alone():
    nodes = [helper.make_node("Expand", ["x", "shape"], ["y"])]
    model = _model(nodes, [_float("x", [1, 3, 1]), _int64("shape", [3])], [_float("y", ["d0", "d1", "d2"])])
    assert _rewritten(expand_declared_shape.rewrite, model).graph.node[0].input[1] == "shape"


# -- sequences known at build time ---------------------------------------------------------------


def test_sequence_reads_become_tensors(tmp_path):
    positions = [_array("minus_one", -1, np.int64), _array("zero", 0, np.int64)]
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b", "c"], ["s1"]),
        helper.make_node("SequenceErase", ["s1", "zero"], ["s2"]),  # [b, c]
        helper.make_node("SequenceInsert", ["s2", "a", "minus_one"], ["s3"]),  # [b, a, c]
        helper.make_node("SequenceAt", ["s3", "minus_one"], ["last"]),
        helper.make_node("SequenceAt", ["s3", "zero"], ["first"]),
        helper.make_node("SequenceLength", ["s3"], ["length"]),
        helper.make_node("SplitToSequence", ["a"], ["pieces"], axis=-1),
        helper.make_node("SequenceLength", ["pieces"], ["count"]),
    ]
    inputs = [_float(n, [2, 3]) for n in "abc"]
    outputs = [_float("last", [2, 3]), _float("first", [2, 3]), _int64("length", []), _int64("count", [])]
    model = _model(nodes, inputs, outputs, positions, opset=12)
    rewritten = _rewritten(static_sequences.rewrite, model)
    assert [n.op_type for n in rewritten.graph.node] == ["Identity", "Identity", "Constant", "Constant"]
    assert [n.input[0] for n in rewritten.graph.node[:2]] == ["c", "b"]
    build_and_compare(model, "sequences", tmp_path)


def test_sequences_with_runtime_positions_are_left_alone():
    nodes = [
        helper.make_node("SequenceConstruct", ["a", "b"], ["s"]),
        helper.make_node("SequenceAt", ["s", "i"], ["y"]),
    ]
    model = _model(nodes, [_float("a", [2]), _float("b", [2]), _int64("i", [])], [_float("y", [2])], opset=12)
    assert _rewritten(static_sequences.rewrite, model) == model


# -- Operands a quantizer dequantizes that TVM needs as constants ------------------------------


def _padded_conv() -> onnx.ModelProto:
    """Pad with a float value, then a conv: what onnxruntime's quantizer turns into a Pad whose
    value is ``DequantizeLinear`` of an int8 constant (MobileBERT's quantized export has one)."""
    rng = np.random.default_rng(0)
    nodes = [
        helper.make_node("Pad", ["x", "pads", "value"], ["padded"], mode="constant"),
        helper.make_node("Conv", ["padded", "w"], ["y"]),
    ]
    initializers = [
        _array("pads", [0, 0, 1, 1, 0, 0, 1, 1], np.int64),
        _array("value", 0.5),
        _array("w", rng.standard_normal((4, 3, 3, 3)) * 0.3),
    ]
    return _model(nodes, [_float("x", [1, 3, 8, 8])], [_float("y", [1, 4, 8, 8])], initializers)


def test_a_quantized_pad_value_becomes_a_float_constant(tmp_path):
    from wasm_build.testing import quantized

    model = quantized.qdq(_padded_conv())
    pad = next(n for n in model.graph.node if n.op_type == "Pad")
    assert any(n.output[0] == pad.input[2] and n.op_type == "DequantizeLinear" for n in model.graph.node)
    rewritten = _rewritten(dequantized_operands.rewrite, model)
    pad = next(n for n in rewritten.graph.node if n.op_type == "Pad")
    (value,) = [numpy_helper.to_array(i) for i in rewritten.graph.initializer if i.name == pad.input[2]]
    scale = next(numpy_helper.to_array(i) for i in model.graph.initializer if "value" in i.name and "scale" in i.name)
    assert abs(float(value) - 0.5) <= float(scale)  # the dequantized int8 value, within a step of 0.5
    # The conv's weights stay dequantized int8 (the integer kernels read them).
    conv = next(n for n in rewritten.graph.node if n.op_type == "Conv")
    assert any(n.output[0] == conv.input[1] and n.op_type == "DequantizeLinear" for n in rewritten.graph.node)
    build(model, "padq", tmp_path)  # failed in TVM's Pad converter before; the smoke test compares


# -- quantized AveragePool: onnxruntime adds the zero point before rounding --------------------


def _quantized_pool(fused_operator: bool) -> onnx.ModelProto:
    """float -> uint8 (zero point 117, odd) -> 2x2 average pool -> float, as QDQ or with
    onnxruntime's QLinearAveragePool. Averages of four integers lie halfway between two steps
    whenever their sum is 2 mod 4."""
    scale, zero = _array("s", 0.05), _array("z", 117, np.uint8)
    if fused_operator:
        pool = [helper.make_node("QLinearAveragePool", ["q", "s", "z", "s", "z"], ["p"], domain="com.microsoft",
                                 kernel_shape=[2, 2], strides=[2, 2])]
    else:
        pool = [helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"]),
                helper.make_node("AveragePool", ["dq"], ["avg"], kernel_shape=[2, 2], strides=[2, 2]),
                helper.make_node("QuantizeLinear", ["avg", "s", "z"], ["p"])]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), *pool,
             helper.make_node("DequantizeLinear", ["p", "s", "z"], ["y"])]
    model = _model(nodes, [_float("x", [1, 8, 12, 12])], [_float("y", [1, 8, 6, 6])], [scale, zero])
    if fused_operator:
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return model


@pytest.mark.parametrize("fused_operator", [False, True], ids=["qdq", "QLinearAveragePool"])
def test_a_quantized_average_pool_rounds_like_onnxruntime(tmp_path, fused_operator):
    """The pool's outputs match onnxruntime's optimized run (and its QLinearAveragePool)
    exactly, where QuantizeLinear's own rounding (ORT_DISABLE_ALL runs the QDQ chain as
    written) is a step away on many of them."""
    import onnxruntime as ort

    model = _quantized_pool(fused_operator)
    x = np.random.default_rng(21).uniform(-5.8, 6.9, [1, 8, 12, 12]).astype(np.float32)

    def onnxruntime_run(level) -> np.ndarray:
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return session.run(None, {"x": x})[0]

    optimized = onnxruntime_run(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    if not fused_operator:
        literal = onnxruntime_run(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
        assert np.count_nonzero(np.abs(literal - optimized) > 0.025) > 10  # whole steps apart
    result = build(model, "qpool", tmp_path)
    (got,) = WasmModel(result.directory / "qpool.wasm").run({"x": x})
    np.testing.assert_array_equal(got, optimized)


# -- quantized value moves: the operator on the quantized tensor -------------------------------


def _quantized_moves() -> onnx.ModelProto:
    """float -> uint8 (scale s, zero point 117) -> each operator that only moves values, between
    a DequantizeLinear and a QuantizeLinear of the same parameters -> float; and one Pad
    requantized to another scale (not a move)."""
    moves = {
        "pad_constant": ("Pad", ["pads_constant", "value"], {"mode": "constant"}, [1, 8, 8, 9]),
        "pad_reflect": ("Pad", ["pads_one"], {"mode": "reflect"}, [1, 8, 8, 8]),
        "pad_edge": ("Pad", ["pads_one"], {"mode": "edge"}, [1, 8, 8, 8]),
        "depth_to_space": ("DepthToSpace", [], {"blocksize": 2}, [1, 2, 12, 12]),
        "space_to_depth": ("SpaceToDepth", [], {"blocksize": 2}, [1, 32, 3, 3]),
        "tile": ("Tile", ["repeats"], {}, [1, 8, 12, 6]),
        "expand": ("Expand", ["expanded"], {}, [2, 8, 6, 6]),
        "gather": ("Gather", ["indices"], {"axis": 1}, [1, 3, 6, 6]),
        "rescaled": ("Pad", ["pads_one"], {"mode": "reflect"}, [1, 8, 8, 8]),
    }
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"]), helper.make_node("DequantizeLinear", ["q", "s", "z"], ["dq"])]
    outputs = []
    for name, (op, extra, attributes, shape) in moves.items():
        scale = "s2" if name == "rescaled" else "s"
        nodes += [
            helper.make_node(op, ["dq", *extra], [f"{name}_float"], **attributes),
            helper.make_node("QuantizeLinear", [f"{name}_float", scale, "z"], [f"{name}_q"]),
            helper.make_node("DequantizeLinear", [f"{name}_q", scale, "z"], [name]),
        ]
        outputs.append(_float(name, shape))
    initializers = [
        _array("s", 0.05), _array("s2", 0.07), _array("z", 117, np.uint8), _array("value", 0.52),
        _array("pads_constant", [0, 0, 1, 1, 0, 0, 1, 2], np.int64), _array("pads_one", [0, 0, 1, 1, 0, 0, 1, 1], np.int64),
        _array("repeats", [1, 1, 2, 1], np.int64), _array("expanded", [2, 8, 6, 6], np.int64),
        _array("indices", [0, 3, 5], np.int64),
    ]
    return _model(nodes, [_float("x", [1, 8, 6, 6])], outputs, initializers)


def test_quantized_moves_run_on_the_quantized_tensor(tmp_path):
    import onnxruntime as ort

    from wasm_build.frontends.onnx_rewrites import quantized_moves

    model = _quantized_moves()
    rewritten = _rewritten(quantized_moves.rewrite, model)
    producers = {output: node for node in rewritten.graph.node for output in node.output}
    moved = {node.output[0]: producers[node.input[0]].op_type for node in rewritten.graph.node if node.op_type in quantized_moves.MOVES}
    assert moved == {**{f"{name}_q": "QuantizeLinear" for name in (
        "pad_constant", "pad_reflect", "pad_edge", "depth_to_space", "space_to_depth", "tile", "expand", "gather")},
        "rescaled_float": "DequantizeLinear"}, moved
    pad = next(node for node in rewritten.graph.node if node.output[0] == "pad_constant_q")
    value = next(numpy_helper.to_array(i) for i in rewritten.graph.initializer if i.name == pad.input[2])
    assert value.dtype == np.uint8 and int(value) == round(0.52 / 0.05) + 117  # what QuantizeLinear makes of it
    for name in ("pad_reflect_q", "pad_edge_q"):  # input values only: no constant given them
        assert list(next(node for node in rewritten.graph.node if node.output[0] == name).input[2:]) == [], name

    x = np.random.default_rng(5).uniform(-5.8, 6.6, [1, 8, 6, 6]).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    result = build(model, "qmoves", tmp_path)
    for got, want in zip(WasmModel(result.directory / "qmoves.wasm").run({"x": x}), session.run(None, {"x": x})):
        np.testing.assert_array_equal(got, want)


# -- Operands computed from static shapes (torch's chunk, sort, unfold) --------------------------


def _computed_operand_model(kind: str) -> onnx.ModelProto:
    """What torch's TorchScript exporter writes with operands computed from Shape(x): `chunk`
    (Slice bounds `(C + 3) // 4 * i`, timm's EfficientViT-M), `sort` (TopK of k = the axis'
    size) and `F.unfold` (Gathers of Ranges up to sizes read from the shape)."""
    torch = pytest.importorskip("torch")
    from tests.support.export import export_onnx

    class Chunks(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.convs = torch.nn.ModuleList(torch.nn.Conv2d(4, 4, 1) for _ in range(4))

        def forward(self, x):
            parts = [conv(part).reshape(1, 4, -1) for conv, part in zip(self.convs, x.chunk(4, dim=1))]
            return torch.cat(parts, dim=2)

    class Sorted(torch.nn.Module):
        def forward(self, x):
            return torch.sort(x, dim=-1).values * torch.topk(x, 3, dim=-1).values.sum(-1, keepdim=True)

    class Unfolded(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.unfold(x, 3, padding=1).transpose(1, 2)

    torch.manual_seed(0)
    module, shape = {"chunk": (Chunks(), (1, 16, 5, 5)), "sort": (Sorted(), (2, 10)), "unfold": (Unfolded(), (1, 4, 6, 6))}[kind]
    return export_onnx(module, (torch.randn(*shape),), ["x"])


@pytest.mark.parametrize("kind", ["chunk", "sort", "unfold"])
def test_operands_computed_from_shapes_become_constants(tmp_path, kind):
    model = _computed_operand_model(kind)
    assert onnx_rewrites.computed_operands._computed_operands(model)  # the pattern is there
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    rewritten = onnx_rewrites.apply_rewrites(model, {"x": shape})
    assert not onnx_rewrites.computed_operands._computed_operands(rewritten)  # folded (a Range wholly)
    build_and_compare(model, kind, tmp_path)


# -- Resize by scales that give no whole sizes ----------------------------------------------------


def _resize_model(shape, scales, **attributes) -> onnx.ModelProto:
    scale = numpy_helper.from_array(np.array(scales, np.float32), "scales")
    resize = helper.make_node("Resize", ["x", "", "scales"], ["y"], **attributes)
    out = [int(np.floor(n * s)) for n, s in zip(shape, scales)]
    return _model([resize], [_float("x", list(shape))], [_float("y", out)], [scale])


# onnxruntime's own kernels for the last two cases multiply neighbouring rows by zero weights:
# an infinity in one row makes NaN in the next (the ONNX reference implementation keeps them
# apart, as the MatMuls do), which the smoke test's NaN/inf comparison reads as lost NaN. Their
# smoke test is off; the finite values are compared with onnxruntime all the same.
@pytest.mark.parametrize(
    "shape, scales, attributes, smoke_test",
    [
        ((1, 3, 7, 9), (1, 1, 2.5, 2.5), dict(mode="cubic", cubic_coeff_a=-0.75, coordinate_transformation_mode="half_pixel"), True),
        ((1, 2, 5, 6), (1, 1, 1.7, 0.6), dict(mode="linear", coordinate_transformation_mode="pytorch_half_pixel"), True),
        ((1, 2, 5, 6), (1, 1, 2.5, 1.5), dict(mode="nearest", nearest_mode="round_prefer_ceil"), True),
        ((1, 3, 7, 9), (1, 1, 1.5, 1.0), dict(mode="cubic", exclude_outside=1, coordinate_transformation_mode="asymmetric"), False),
        ((1, 4, 7), (1, 1, 2.5), dict(mode="linear"), False),
    ],
    ids=["cubic", "linear-downscale", "nearest", "cubic-exclude-outside", "1d"],
)
def test_resize_by_fractional_scales_matches_onnxruntime(tmp_path, shape, scales, attributes, smoke_test):
    # TVM maps coordinates through the output sizes' ratio (17 / 7), ONNX through the scale (2.5).
    model = _resize_model(shape, scales, **attributes)
    rewritten = onnx_rewrites.apply_rewrites(model)
    assert "Resize" not in [n.op_type for n in rewritten.graph.node]
    build_and_compare(model, "resized", tmp_path, smoke_test=smoke_test)


def test_resize_to_whole_sizes_or_through_the_sizes_is_left_to_tvm(tmp_path):
    model = _resize_model((1, 3, 7, 9), (1, 1, 2.0, 3.0), mode="cubic")
    assert [n.op_type for n in onnx_rewrites.apply_rewrites(model).graph.node] == ["Resize"]
    # "align_corners" maps through (in - 1) / (out - 1) with whole sizes, in onnxruntime as in TVM.
    model = _resize_model((1, 2, 5, 6), (1, 1, 2.5, 2.5), mode="linear", coordinate_transformation_mode="align_corners")
    assert [n.op_type for n in onnx_rewrites.apply_rewrites(model).graph.node] == ["Resize"]
    build_and_compare(model, "corners", tmp_path)
