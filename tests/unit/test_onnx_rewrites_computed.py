"""ONNX rewrites for what the zoo found (issue 18), without TVM: pads computed from static
shapes folded into constants (`computed_pads`), `Celu` as `Elu` (`celu`), `TopK` as rounds
of arg-max (`topk`). Each rewritten
model, run in onnxruntime, gives what the original gives there; builds of exported models
that use them are in the zoo (tests/integration/test_zoo.py)."""

from __future__ import annotations

import numpy as np
import pytest
import onnx
from onnx import TensorProto, helper, numpy_helper

from wasm_build.frontends.onnx_rewrites import apply_rewrites

from tests.support.onnx_rewrites import run


def _ints(name: str, values) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(values, np.int64), name))


def _model(nodes, inputs, outputs, opset: int = 17) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _same_padding_model(declared_width: int | str = 6) -> onnx.ModelProto:
    """Pad the last axis up to a multiple of 4, as TF-style "same" padding and Swin's windows
    do: the amount is arithmetic on Shape(x); then a Reshape by a shape read from the result."""
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        _ints("axis", 3), _ints("four", 4), _ints("zeros", [0, 0, 0, 0, 0, 0, 0]), _ints("minus_one", [-1]),
        helper.make_node("Gather", ["shape", "axis"], ["width"], axis=0),
        helper.make_node("Mod", ["width", "four"], ["rest"]),
        helper.make_node("Sub", ["four", "rest"], ["missing"]),
        helper.make_node("Mod", ["missing", "four"], ["extra"]),
        helper.make_node("Unsqueeze", ["extra", "zero_axis"], ["extra_1d"]),
        _ints("zero_axis", [0]),
        helper.make_node("Concat", ["zeros", "extra_1d"], ["pads"], axis=0),
        helper.make_node("Pad", ["x", "pads"], ["padded"]),
        helper.make_node("Shape", ["padded"], ["padded_shape"]),
        helper.make_node("Slice", ["padded_shape", "zero_axis", "two"], ["lead"]),
        _ints("two", [2]),
        helper.make_node("Concat", ["lead", "minus_one"], ["flat_shape"], axis=0),
        helper.make_node("Reshape", ["padded", "flat_shape"], ["y"]),
    ]
    # Constants are listed before their readers (ONNX wants a sorted graph).
    order = ["axis", "four", "zeros", "minus_one", "zero_axis", "two"]
    nodes.sort(key=lambda n: (0, order.index(n.output[0])) if n.op_type == "Constant" else (1, 0))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, declared_width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, "flat"])
    return _model(nodes, [x], [y])


def test_pads_computed_from_static_shapes_become_constants():
    model = _same_padding_model()
    onnx.checker.check_model(model, full_check=True)
    x = np.random.default_rng(0).standard_normal((1, 3, 5, 6)).astype(np.float32)
    rewritten = apply_rewrites(model, {"x": [1, 3, 5, 6]})
    onnx.checker.check_model(rewritten, full_check=True)
    kinds = [n.op_type for n in rewritten.graph.node]
    assert kinds.count("Pad") == 1 and "Shape" not in kinds and "Mod" not in kinds
    produced = {n.output[0]: n.op_type for n in rewritten.graph.node}
    pad = next(n for n in rewritten.graph.node if n.op_type == "Pad")
    reshape = next(n for n in rewritten.graph.node if n.op_type == "Reshape")
    assert produced[pad.input[1]] == "Constant" and produced[reshape.input[1]] == "Constant"
    [want], [have] = run(model, {"x": x}), run(rewritten, {"x": x})
    assert have.shape == want.shape == (1, 3, 40)
    np.testing.assert_array_equal(have, want)


def test_pads_follow_the_pinned_shape():
    """A symbolic width pinned at build time: the pads are those of the pinned size."""
    model = _same_padding_model(declared_width="w")
    x = np.random.default_rng(1).standard_normal((1, 3, 5, 9)).astype(np.float32)
    rewritten = apply_rewrites(model, {"x": [1, 3, 5, 9]})
    assert "Shape" not in [n.op_type for n in rewritten.graph.node]
    [want], [have] = run(model, {"x": x}), run(rewritten, {"x": x})
    assert have.shape == want.shape == (1, 3, 60)
    np.testing.assert_array_equal(have, want)


def test_pads_read_from_an_input_stay_as_they_are():
    nodes = [helper.make_node("Pad", ["x", "pads"], ["y"])]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
              helper.make_tensor_value_info("pads", TensorProto.INT64, [4])]
    model = _model(nodes, inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    rewritten = apply_rewrites(model, {"x": [2, 3], "pads": [4]})
    assert [(n.op_type, list(n.input)) for n in rewritten.graph.node] == [("Pad", ["x", "pads"])]


def test_constant_pads_leave_the_model_alone():
    nodes = [_ints("pads", [0, 1, 0, 1]), helper.make_node("Pad", ["x", "pads"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5])])
    assert apply_rewrites(model).SerializeToString() == model.SerializeToString()


def test_celu_becomes_elu_and_matches():
    nodes = [helper.make_node("Celu", ["x"], ["a"], alpha=0.5), helper.make_node("Celu", ["a"], ["y"])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 8])],
                   [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 8])])
    x = (np.random.default_rng(2).standard_normal((4, 8)) * 3).astype(np.float32)
    rewritten = apply_rewrites(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert "Celu" not in [n.op_type for n in rewritten.graph.node]
    [want], [have] = run(model, {"x": x}), run(rewritten, {"x": x})
    np.testing.assert_allclose(have, want, rtol=1e-6, atol=1e-6)


def _topk_model(k: int, axis: int, largest: int, opset: int) -> onnx.ModelProto:
    nodes = [_ints("k", [k]), helper.make_node("TopK", ["x", "k"], ["values", "indices"], axis=axis, largest=largest)]
    shape = [2, 3, 7]
    out_shape = list(shape)
    out_shape[axis] = k
    outputs = [helper.make_tensor_value_info("values", TensorProto.FLOAT, out_shape),
               helper.make_tensor_value_info("indices", TensorProto.INT64, out_shape)]
    return _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)], outputs, opset=opset)


@pytest.mark.parametrize("k,axis,largest,opset", [(3, -1, 1, 17), (7, 2, 1, 18), (2, 1, 0, 17), (1, 0, 1, 18)])
def test_topk_becomes_rounds_of_arg_max_and_matches(k, axis, largest, opset):
    model = _topk_model(k, axis, largest, opset)
    rng = np.random.default_rng(3)
    x = rng.integers(-4, 4, size=(2, 3, 7)).astype(np.float32)  # many ties: the order of equal values counts
    rewritten = apply_rewrites(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert "TopK" not in [n.op_type for n in rewritten.graph.node]
    want, have = run(model, {"x": x}), run(rewritten, {"x": x})
    for w, h in zip(want, have):
        assert h.dtype == w.dtype
        np.testing.assert_array_equal(h, w)


def test_topk_beyond_the_rounds_is_refused_by_name():
    # torch.sort of 256 values exports as TopK(k=256): TVM's own sort fails to compile for wasm
    # with a message about its internals ("Cannot treat type `ir.Call` as type `ir.Expr`").
    from wasm_build.errors import WasmBuildError
    from wasm_build.frontends.onnx_rewrites.topk import MAX_K

    nodes = [_ints("k", [MAX_K + 1]), helper.make_node("TopK", ["x", "k"], ["values", "indices"], name="sort")]
    outputs = [helper.make_tensor_value_info("values", TensorProto.FLOAT, [1, MAX_K + 1]),
               helper.make_tensor_value_info("indices", TensorProto.INT64, [1, MAX_K + 1])]
    model = _model(nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, MAX_K + 1])], outputs)
    with pytest.raises(WasmBuildError, match=rf"TopK 'sort' takes the top {MAX_K + 1} of {MAX_K + 1} values") as info:
        apply_rewrites(model)
    assert "sort in the host" in info.value.fix
