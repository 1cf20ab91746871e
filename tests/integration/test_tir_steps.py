"""TIR steps that work around TVM's lowering: float and vector values bound through registers
(`compiler.tir.registers`: nested vectorized math such as Mish builds, guarded bindings stay
where they are, the whole build matches onnxruntime), and rounding that stays vectorized
(`compiler.tir.rounding`)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import build
from tests.support.compiler import WASM, fused_module, onnxruntime_output, prim_funcs

tvm = pytest.importorskip("tvm")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402
from tvm import tirx  # noqa: E402

from wasm_build.compiler.tir import walk  # noqa: E402
from wasm_build.compiler.tir.pipeline import tir_pipeline  # noqa: E402
from wasm_build.compiler.tir.registers import bind_through_registers  # noqa: E402
from wasm_build.compiler.tir.rounding import vectorizable_rounding  # noqa: E402


def _mish_model(shape=(1, 8, 16, 16)):
    """Mish as the TorchScript exporter writes it at opset 17: x * tanh(softplus(x))."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    nodes = [helper.make_node("Softplus", ["x"], ["s"]), helper.make_node("Tanh", ["s"], ["t"]), helper.make_node("Mul", ["x", "t"], ["y"])]
    return helper.make_model(helper.make_graph(nodes, "mish", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])


def _lowered(mod):
    """The kernels of a fused module after TVM's default TIR lowering (what the step is given)."""
    from tvm.tirx import compilation_pipeline

    funcs = {name: func.with_attr("global_symbol", name) for name, func in prim_funcs(mod).items()}
    target = tvm.target.Target(WASM)
    bound = tvm.tirx.transform.BindTarget(target.with_host(target))(tvm.IRModule(funcs))
    lower, _, _ = compilation_pipeline.get_tir_pipeline("default")
    with tvm.transform.PassContext(opt_level=3):
        return lower(bound)


def _store_lets(mod) -> list:
    """The ``Let`` nodes inside the values of buffer stores, over every kernel of ``mod``."""
    found = []

    def note(node):
        if isinstance(node, tirx.BufferStore):
            walk.visit(node.value, lambda e: found.append(e) if isinstance(e, tirx.Let) else None)

    for func in mod.functions.values():
        walk.visit(func.body, note)
    return found


def test_vectorized_math_values_leave_the_stored_expression():
    """Mish's one fused kernel binds a few dozen float vectors (exp inside log inside tanh); after
    the step, none is bound inside a stored value, each one goes through a local register, and
    the kernel generates wasm code (it did not finish in ten minutes before)."""
    fused = fused_module(_mish_model(), WASM, graph_passes=True)
    lowered = _lowered(fused)
    assert len(_store_lets(lowered)) > 10
    with tvm.transform.PassContext(opt_level=3):
        after = bind_through_registers()(lowered)
    assert _store_lets(after) == []
    registers = []
    for func in after.functions.values():
        walk.visit(func.body, lambda n: registers.append(n.buffer) if isinstance(n, tirx.AllocBuffer) else None)
    assert registers and all(buffer.scope() == "local" for buffer in registers)

    kernels = tvm.IRModule({name: f.with_attr("global_symbol", name) for name, f in prim_funcs(fused).items()})
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        assert tvm.tirx.build(kernels, target=tvm.target.Target(WASM), pipeline=tir_pipeline()) is not None


def test_guarded_bindings_stay_inside_their_guard():
    """A ``Let`` under ``if_then_else`` (a padded read's guard) is not evaluated ahead of the
    guard; one outside it moves; an integer scalar is bound as it was, for the analyzer."""
    a = tirx.decl_buffer((16,), "float32", "a")
    out = tirx.decl_buffer((16,), "float32", "out")
    i = tirx.Var("i", "int32")
    guarded_var, loose_var, index_var = tirx.Var("g", "float32"), tirx.Var("f", "float32"), tirx.Var("k", "int32")
    guarded = tirx.if_then_else(i < 15, tirx.Let(guarded_var, tirx.BufferLoad(a, [i + 1]), guarded_var * 2.0), tirx.const(0.0, "float32"))
    value = tirx.Let(index_var, i * 2, tirx.Let(loose_var, tirx.BufferLoad(a, [index_var // 2]) + 1.0, loose_var * loose_var + guarded))
    body = tirx.For(i, 0, 16, tirx.ForKind.SERIAL, tirx.BufferStore(out, value, [i]))
    func = tirx.PrimFunc([a, out], body).with_attr("global_symbol", "f")
    after = bind_through_registers()(tvm.IRModule({"f": func}))["f"]

    lets, binds, registers = [], [], []
    walk.visit(after.body, lambda n: lets.append(n.var) if isinstance(n, tirx.Let) else None)
    walk.visit(after.body, lambda n: binds.append(n) if isinstance(n, tirx.Bind) else None)
    walk.visit(after.body, lambda n: registers.append(n.buffer.name) if isinstance(n, tirx.AllocBuffer) else None)
    assert [var.same_as(guarded_var) for var in lets] == [True]
    assert registers == ["f_register"]
    bound = {bind.var.name: bind.value for bind in binds}
    assert set(bound) == {"k", "f"}
    assert isinstance(bound["k"], tirx.Mul)  # the integer itself, not a load
    assert isinstance(bound["f"], tvm.ir.TensorLoad)


def test_mish_matches_onnxruntime_in_wasmtime(tmp_path):
    """The whole build of Mish (the model that did not build) agrees with onnxruntime, special
    values included (its smoke test feeds NaN and infinities too)."""
    from wasm_build import WasmModel

    model = _mish_model()
    result = build(model, "mish", tmp_path)
    xs = (np.random.default_rng(3).standard_normal((1, 8, 16, 16)) * 6).astype("float32")
    xs.flat[:6] = [np.nan, np.inf, -np.inf, 0.0, 90.0, -90.0]
    (got,) = WasmModel(result.directory / "mish.wasm").run({"x": xs})
    want = onnxruntime_output(model, {"x": xs})
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def _requantize_loop() -> tirx.PrimFunc:
    """A vectorized requantize: uint8(clamp(nearbyint(a * 3), 0, 255)) over 64 values, the
    value bound by a ``Let`` as the vector math binds its values."""
    a = tirx.decl_buffer((64,), "float32", "a")
    b = tirx.decl_buffer((64,), "uint8", "b")
    outer, lane = tirx.Var("outer", "int32"), tirx.Var("lane", "int32")
    index = outer * 16 + lane
    scaled = tirx.Var("scaled", "float32")
    value = tirx.Let(scaled, tirx.BufferLoad(a, [index]) * 3.0,
                     tirx.Cast("uint8", tirx.min(tirx.max(tirx.nearbyint(scaled), 0.0), 255.0)))
    inner = tirx.For(lane, 0, 16, tirx.ForKind.VECTORIZED, tirx.BufferStore(b, value, [index]))
    return tirx.PrimFunc([a, b], tirx.For(outer, 0, 4, tirx.ForKind.SERIAL, inner)).with_attr("global_symbol", "requantize")


def _vector_lanes_of_stores(mod) -> list[int]:
    lanes = []
    for func in mod.functions.values():
        walk.visit(func.body, lambda n: lanes.append(int(tvm.DataType(str(n.value.ty)).lanes))
                   if isinstance(n, tirx.BufferStore) and n.buffer.name == "b" else None)
    return lanes


@pytest.mark.parametrize("with_step", [False, True])
def test_rounding_keeps_a_loop_vectorized(with_step):
    """TVM's vectorizer scalarizes a loop that rounds with ``nearbyint`` (in a QDQ transformer's
    requantize kernel that retry failed outright: "Let cannot bind the same var to two different
    values", see test_int8's block_qdq); through the LLVM intrinsic, the loop stays 16 lanes wide."""
    from tvm.tirx import compilation_pipeline

    target = tvm.target.Target(WASM)
    mod = tvm.tirx.transform.BindTarget(target.with_host(target))(tvm.IRModule({"requantize": _requantize_loop()}))
    lower, _, _ = compilation_pipeline.get_tir_pipeline("default")
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        lowered = lower(vectorizable_rounding()(mod) if with_step else mod)
    assert _vector_lanes_of_stores(lowered) == ([16] if with_step else [1])


def test_walks_go_through_expressions_deeper_than_pythons_recursion_limit():
    """TVM writes a concatenation as one nested `if_then_else` per input: an LSTM unrolled over
    200 frames concatenates 200 states, and the recursive walks of every lowering step failed
    on it ('maximum recursion depth exceeded'). The walks keep their own stack."""
    import sys

    depth = 3 * sys.getrecursionlimit()
    guard, x = tirx.Var("guard", "bool"), tirx.Var("x", "float32")
    expr = x
    for i in range(depth):
        expr = tirx.if_then_else(guard, tirx.FloatImm("float32", float(i)), expr)

    order = []
    walk.visit(expr, lambda node: order.append(float(node.args[1].value)) if walk.is_if_then_else(node) else None)
    assert order == [float(i) for i in range(depth)]  # children first: the innermost conditional first

    selects = walk.rewrite(expr, lambda node: tirx.Select(*node.args) if walk.is_if_then_else(node) else None)
    found = []
    walk.visit(selects, lambda node: found.append(node) if isinstance(node, (tirx.Select, tvm.ir.expr.Call)) else None)
    assert len(found) == depth and all(isinstance(node, tirx.Select) for node in found)
    innermost = found[0]
    assert innermost.false_value.same_as(x) and float(innermost.true_value.value) == 0.0
