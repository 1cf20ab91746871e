"""Channel-shuffle networks (issue 18): ShuffleNet-style blocks (Split by `chunk`, Concat,
Transpose, Reshape) build and match onnxruntime.

torch exports `chunk` as Slices whose bounds are computed from `Shape`; TVM imports them as
`dynamic_strided_slice`, and everything after has no static shape. `compiler.passes.
static_slices` evaluates such bounds at build time (`shape_arith`, checked here against
TVM's own FoldConstant) and slices statically.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import tvm
from onnx import TensorProto, helper, numpy_helper
from tvm import relax

from wasm_build.compiler.passes import static_slices_pass
from wasm_build.compiler.passes.analysis import calls_op
from wasm_build.compiler.passes.shape_arith import Evaluator, NotEvaluable

from tests.support.export import build_and_compare, export_onnx


def _shuffle_net():
    torch = pytest.importorskip("torch")
    nn = torch.nn

    def shuffle(x, groups):
        n, c, h, w = x.shape
        return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    class Block(nn.Module):
        def __init__(self, channels: int):
            super().__init__()
            half = channels // 2
            self.branch = nn.Sequential(
                nn.Conv2d(half, half, 1), nn.BatchNorm2d(half), nn.ReLU(),
                nn.Conv2d(half, half, 3, padding=1, groups=half), nn.BatchNorm2d(half),
                nn.Conv2d(half, half, 1), nn.ReLU(),
            )

        def forward(self, x):
            left, right = x.chunk(2, dim=1)
            return shuffle(torch.cat((left, self.branch(right)), 1), 2)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 3, padding=1, stride=2)
            self.blocks = nn.Sequential(Block(16), Block(16), Block(16))
            self.fc = nn.Linear(16, 5)

        def forward(self, x):
            return self.fc(self.blocks(torch.relu(self.stem(x))).mean([2, 3]))

    torch.manual_seed(0)
    net = Net()
    for module in net.modules():
        if isinstance(module, nn.BatchNorm2d):  # statistics that do something
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 1.5)
    return export_onnx(net, (torch.randn(1, 3, 16, 16),), ["image"])


def test_shuffle_net_builds_and_matches(tmp_path):
    build_and_compare(_shuffle_net(), "shuffle", tmp_path)


def test_every_chunk_becomes_a_static_slice():
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(_shuffle_net())
    assert calls_op(mod, "relax.dynamic_strided_slice")
    mod = static_slices_pass()(mod)
    assert not calls_op(mod, "relax.dynamic_strided_slice")
    assert "ndim=" not in mod["main"].script()  # every tensor has a static shape again


def _slice_by_input_model() -> onnx.ModelProto:
    """A Slice whose end is an input value: it must stay dynamic (and be refused later)."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    end = helper.make_tensor_value_info("end", TensorProto.INT64, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "n"])
    starts = numpy_helper.from_array(np.array([0], np.int64), "starts")
    axes = numpy_helper.from_array(np.array([1], np.int64), "axes")
    node = helper.make_node("Slice", ["x", "starts", "end", "axes"], ["y"])
    graph = helper.make_graph([node], "g", [x, end], [y], [starts, axes])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_slices_that_depend_on_inputs_stay_dynamic():
    from tvm.relax.frontend.onnx import from_onnx

    mod = from_onnx(_slice_by_input_model())
    assert calls_op(static_slices_pass()(mod), "relax.dynamic_strided_slice")


# -- shape_arith computes what TVM computes ---------------------------------------------------

_A = np.array([-7, 7, -8, 9, 0, 5], dtype=np.int64)
_B = np.array([2, -2, 3, 4, 3, -5], dtype=np.int64)
_I = np.array([-1, 5, 0, 7, -6], dtype=np.int64)


def _const(array: np.ndarray) -> relax.Expr:
    return relax.const(array, str(array.dtype))


_CASES = {
    "add": lambda: relax.op.add(_const(_A), _const(_B)),
    "subtract": lambda: relax.op.subtract(_const(_A), _const(_B)),
    "multiply": lambda: relax.op.multiply(_const(_A), _const(_B)),
    "divide": lambda: relax.op.divide(_const(_A), _const(_B)),
    "floor_divide": lambda: relax.op.floor_divide(_const(_A), _const(_B)),
    "maximum": lambda: relax.op.maximum(_const(_A), _const(_B)),
    "less": lambda: relax.op.less(_const(_A), _const(_B)),
    "equal": lambda: relax.op.equal(_const(_A), _const(_A)),
    "where": lambda: relax.op.where(relax.op.less(_const(_A), _const(_B)), _const(_A), _const(_B)),
    "take-wrap": lambda: relax.op.take(_const(_A), _const(_I), axis=0, mode="wrap"),
    "take-clip": lambda: relax.op.take(_const(_A), _const(_I), axis=0, mode="clip"),
    "scatter-negative-indices": lambda: relax.op.scatter_elements(
        _const(_A), _const(np.array([-1, 1], np.int64)), _const(np.array([40, 41], np.int64)), axis=0
    ),
    "concat": lambda: relax.op.concat([_const(_A), _const(_B)], axis=0),
    "astype": lambda: relax.op.astype(_const(_A), "int32"),
    "shape_to_tensor": lambda: relax.op.shape_to_tensor(relax.ShapeExpr([1, 16, 8, 8])),
}


@pytest.mark.parametrize("name", list(_CASES))
def test_shape_arith_matches_fold_constant(name):
    builder = relax.BlockBuilder()
    with builder.function("f", []):
        with builder.dataflow():
            out = builder.emit_output(_CASES[name]())
        builder.emit_func_output(out)
    func = builder.get()["f"]
    bindings = {b.var: b.value for block in func.body.blocks for b in block.bindings}
    ours = Evaluator(lambda var: bindings[var]).evaluate(func.body.body)
    folded = relax.transform.FoldConstant()(builder.get())["f"].body
    values = {b.var: b.value for block in folded.blocks for b in block.bindings}
    theirs = values.get(folded.body, folded.body)
    assert isinstance(theirs, tvm.ir.expr.GenericConst)
    np.testing.assert_array_equal(ours, theirs.value.numpy())
    assert ours.dtype == theirs.value.numpy().dtype


def _parameter(var: relax.Var) -> relax.Expr:
    raise NotEvaluable(f"'{var.name}' is a parameter")


@pytest.mark.parametrize(
    "expr",
    [
        lambda: relax.op.cumsum(_const(_A), axis=0),  # not evaluated here: TVM folds it
        lambda: relax.op.divide(_const(_A), _const(np.zeros(6, np.int64))),
        lambda: relax.op.add(relax.Var("x", relax.TensorType((6,), "int64")), _const(_A)),
        lambda: relax.op.add(_const(_A.astype(np.float32)), _const(_B.astype(np.float32))),
    ],
    ids=["unknown-op", "division-by-zero", "parameter", "float"],
)
def test_shape_arith_refuses_what_it_cannot_evaluate(expr):
    with pytest.raises(NotEvaluable):
        Evaluator(_parameter).evaluate(relax.BlockBuilder().normalize(expr()))


def test_bounds_beyond_shape_arith_are_folded_by_tvm():
    x = relax.Var("x", relax.TensorType((2, 8), "float32"))
    builder = relax.BlockBuilder()
    with builder.function("main", [x]):
        with builder.dataflow():
            begin = builder.emit(relax.op.abs(_const(np.array([0, -2], np.int64))))  # not in shape_arith
            end = _const(np.array([2, 6], np.int64))
            strides = _const(np.array([1, 2], np.int64))
            out = builder.emit_output(relax.op.dynamic_strided_slice(x, begin, end, strides))
        builder.emit_func_output(out)
    mod = static_slices_pass()(builder.get())
    assert not calls_op(mod, "relax.dynamic_strided_slice")
    assert 'R.Tensor((2, 2), dtype="float32") = R.strided_slice' in mod["main"].script()
    data = np.arange(16, dtype=np.float32).reshape(2, 8)
    executable = tvm.compile(mod, tvm.target.Target({"kind": "llvm"}))
    got = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(data)).numpy()
    np.testing.assert_array_equal(got, data[:, 2:6:2])
