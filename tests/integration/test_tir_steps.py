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


def _lowered_loop(func, step=None):
    """One kernel through ``step`` (when given), then TVM's default TIR lowering for wasm32."""
    from tvm.tirx import compilation_pipeline

    target = tvm.target.Target(WASM)
    mod = tvm.tirx.transform.BindTarget(target.with_host(target))(tvm.IRModule({str(func.attrs["global_symbol"]): func}))
    lower, _, _ = compilation_pipeline.get_tir_pipeline("default")
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        return lower(step(mod) if step is not None else mod)


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
    lowered = _lowered_loop(_requantize_loop(), vectorizable_rounding() if with_step else None)
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


def _saturating_loop(dtype: str, zero_point: float, low: float, high: float) -> tirx.PrimFunc:
    """``dtype(int32(clamp(nearbyint(a * 0.37) + zero_point, low, high)))`` over 64 values, as
    `qdq.saturate` writes every quantize and requantize."""
    a = tirx.decl_buffer((64,), "float32", "a")
    b = tirx.decl_buffer((64,), dtype, "b")
    i = tirx.Var("i", "int32")
    rounded = tirx.nearbyint(tirx.BufferLoad(a, [i]) * tirx.const(0.37, "float32")) + tirx.const(zero_point, "float32")
    clamped = tirx.min(tirx.max(rounded, tirx.const(low, "float32")), tirx.const(high, "float32"))
    store = tirx.BufferStore(b, tirx.Cast(dtype, tirx.Cast("int32", clamped)), [i])
    return tirx.PrimFunc([a, b], tirx.For(i, 0, 64, tirx.ForKind.VECTORIZED, store)).with_attr("global_symbol", "saturate")


_HARD_VALUES = np.array(
    [0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 0.49999997, -0.0, 1e30, -1e30, np.inf, -np.inf, np.nan,
     343.2, -346.0, 689.1892, -689.1892, 1.35135135, 4.05405405],
    np.float32,
) / np.float32(0.37)


@pytest.mark.parametrize("dtype, zero_point, low, high", [("int8", -3.0, -128.0, 127.0), ("uint8", 128.0, 0.0, 255.0),
                                                          ("uint8", 0.0, 0.0, 6.0), ("int32", 7.0, -1000.0, 1000.0)])
def test_magic_rounding_rounds_clamps_and_converts_exactly(dtype, zero_point, low, high):
    """Rounding by adding 1.5 * 2^23 (`compiler.tir.magic_rounding`) gives what round half to
    even, the zero point and the clamp give, NaN going to the low bound as in onnxruntime's
    quantize, for ties, values far outside the bounds and infinities."""
    from wasm_build.compiler.tir.magic_rounding import magic_rounding

    mod = tvm.IRModule({"saturate": _saturating_loop(dtype, zero_point, low, high)})
    rewritten = magic_rounding()(mod)
    calls = []
    walk.visit(rewritten["saturate"].body, lambda n: calls.append(n.op.name) if isinstance(n, tvm.ir.expr.Call) else None)
    assert "tirx.reinterpret" in calls and not any("nearbyint" in c for c in calls), calls
    rng = np.random.default_rng(0)
    values = np.concatenate([_HARD_VALUES, rng.uniform(-2000, 2000, 64 - _HARD_VALUES.size).astype(np.float32)])
    lib = tvm.tirx.build(mod, target=tvm.target.Target("llvm"), pipeline=tir_pipeline())
    device = tvm.cpu()
    out = tvm.runtime.tensor(np.zeros(64, dtype), device)
    lib["saturate"](tvm.runtime.tensor(values, device), out)
    scaled = values * np.float32(0.37)
    want = np.where(np.isnan(scaled), low, np.clip(np.rint(scaled) + zero_point, low, high)).astype(dtype)
    np.testing.assert_array_equal(out.numpy(), want)


def test_magic_rounding_leaves_fractional_bounds_alone():
    from wasm_build.compiler.tir.magic_rounding import magic_rounding

    mod = tvm.IRModule({"saturate": _saturating_loop("int8", 0.0, -127.5, 127.0)})
    assert magic_rounding()(mod).same_as(mod) or "reinterpret" not in magic_rounding()(mod).script()


def test_magic_rounding_truncates_values_it_cannot_prove_integral():
    """A zero point read from memory (a run-time one, or a 0-d constant) may hold a fraction as
    far as the step knows: the clamped value is truncated first, as the conversion would."""
    from wasm_build.compiler.tir.magic_rounding import magic_rounding

    a, z = tirx.decl_buffer((64,), "float32", "a"), tirx.decl_buffer((1,), "float32", "z")
    b = tirx.decl_buffer((64,), "int32", "b")
    i = tirx.Var("i", "int32")
    value = tirx.nearbyint(tirx.BufferLoad(a, [i])) + tirx.BufferLoad(z, [0])
    store = tirx.BufferStore(b, tirx.Cast("int32", tirx.min(tirx.max(value, tirx.const(-100.0, "float32")),
                                                              tirx.const(100.0, "float32"))), [i])
    func = tirx.PrimFunc([a, z, b], tirx.For(i, 0, 64, tirx.ForKind.VECTORIZED, store)).with_attr("global_symbol", "f")
    mod = tvm.IRModule({"f": func})
    assert "llvm.trunc" in magic_rounding()(mod).script()
    lib = tvm.tirx.build(mod, target=tvm.target.Target("llvm"), pipeline=tir_pipeline())
    values = np.concatenate([_HARD_VALUES, np.random.default_rng(3).uniform(-150, 150, 64 - _HARD_VALUES.size)]).astype(np.float32)
    device = tvm.cpu()
    for zero_point in (3.0, -2.25, 0.5):
        out = tvm.runtime.tensor(np.zeros(64, "int32"), device)
        lib["f"](tvm.runtime.tensor(values, device), tvm.runtime.tensor(np.array([zero_point], np.float32), device), out)
        shifted = np.rint(values) + np.float32(zero_point)
        want = np.where(np.isnan(shifted), -100, np.trunc(np.clip(shifted, -100, 100))).astype(np.int32)
        np.testing.assert_array_equal(out.numpy(), want)


def _node_count(stmt) -> int:
    """Statements and expressions in ``stmt`` (leaves not counted): how large a rewrite made it."""
    count = [0]
    walk.visit(stmt, lambda _node: count.__setitem__(0, count[0] + 1))
    return count[0]


def test_magic_rounding_of_nested_requantizes_stays_linear():
    """A kernel may hold requantizes nested in one another (dequantize -> quantize chains of a
    QOperator transformer block fused together). A select reads its operand twice: unbound, n
    levels became 4^n copies and the build of test_int8's `block_qop` never finished."""
    from wasm_build.compiler.tir.magic_rounding import magic_rounding

    a, b = tirx.decl_buffer((64,), "float32", "a"), tirx.decl_buffer((64,), "float32", "b")
    i = tirx.Var("i", "int32")
    value = tirx.BufferLoad(a, [i])
    for _ in range(6):
        rounded = tirx.nearbyint(value * tirx.const(0.5, "float32")) + tirx.const(1.0, "float32")
        clamped = tirx.min(tirx.max(rounded, tirx.const(-128.0, "float32")), tirx.const(127.0, "float32"))
        value = tirx.Cast("float32", tirx.Cast("int32", clamped)) * tirx.const(0.25, "float32")
    func = tirx.PrimFunc([a, b], tirx.For(i, 0, 64, tirx.ForKind.VECTORIZED, tirx.BufferStore(b, value, [i])))

    rewritten = magic_rounding()(tvm.IRModule({"f": func.with_attr("global_symbol", "f")}))["f"]
    assert "reinterpret" in rewritten.script()
    assert _node_count(rewritten.body) < 3 * _node_count(func.body)


def test_magic_rounding_of_a_concatenation_the_vectorizer_scalarizes():
    """Two requantizes nested over a concatenation read by lane (`if_then_else` on the
    vectorized index, zero points read from memory: DenseNet's and GhostNet's quantized concats
    fused with transposes). TVM's vectorizer gives up on it and visits the expression again to
    scalarize it; a `Let` bound twice to two values stopped the build. It builds, and computes
    what numpy does."""
    from wasm_build.compiler.tir.magic_rounding import magic_rounding

    parts = [tirx.decl_buffer((8,), "float32", "a"), tirx.decl_buffer((8,), "float32", "b"), tirx.decl_buffer((16,), "float32", "c")]
    zero_points = [tirx.decl_buffer((), "float32", "z0"), tirx.decl_buffer((), "float32", "z1")]
    out = tirx.decl_buffer((32,), "int16", "out")
    j = tirx.Var("j", "int32")
    value = tirx.if_then_else(24 <= j, tirx.BufferLoad(parts[0], [j - 24]),
                              tirx.if_then_else(16 <= j, tirx.BufferLoad(parts[1], [j - 16]), tirx.BufferLoad(parts[2], [j])))
    for level, zero_point in enumerate(zero_points):
        rounded = tirx.nearbyint(value * tirx.const(0.5, "float32")) + tirx.BufferLoad(zero_point, [])
        clamped = tirx.min(tirx.max(rounded, tirx.const(0.0, "float32")), tirx.const(255.0, "float32"))
        value = tirx.Cast("int32", tirx.Cast("uint8", tirx.Cast("int32", clamped)))
        if level == 0:
            value = tirx.Cast("float32", value - 7)
    store = tirx.BufferStore(out, tirx.Cast("int16", value), [j])
    func = tirx.PrimFunc([*parts, *zero_points, out], tirx.For(j, 0, 32, tirx.ForKind.VECTORIZED, store))
    mod = tvm.IRModule({"f": func.with_attr("global_symbol", "f")})
    assert "reinterpret" in magic_rounding()(mod)["f"].script()
    lib = tvm.tirx.build(mod, target=tvm.target.Target("llvm"), pipeline=tir_pipeline())
    values = np.random.default_rng(1).uniform(-50, 600, 32).astype(np.float32)
    device = tvm.cpu()
    result = tvm.runtime.tensor(np.zeros(32, "int16"), device)
    inputs = [values[24:], values[16:24], values[:16], np.array(3.0, np.float32), np.array(5.0, np.float32)]
    lib["f"](*[tvm.runtime.tensor(x, device) for x in inputs], result)
    want = values
    for level, zero_point in enumerate((3.0, 5.0)):
        want = np.clip(np.trunc(np.clip(np.rint(want * np.float32(0.5)) + np.float32(zero_point), 0, 255)), 0, 255)
        if level == 0:
            want = want.astype(np.float32) - 7
    np.testing.assert_array_equal(result.numpy(), want.astype(np.int16))


def test_magic_rounding_of_nested_requantizes_the_same_in_every_lane():
    """A layer norm's requantized statistics (int8 T5): nested requantizes of a value every
    lane of the vectorized loop shares. Bound by a `Let`, TVM's vectorizer stopped the build
    ("Let cannot bind the same var to two different values"); written out, it builds, and
    computes what numpy does."""
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    statistic, zero_points = tirx.decl_buffer((1,), "float32", "r"), [tirx.decl_buffer((), "float32", f"z{k}") for k in range(3)]
    rows, out = tirx.decl_buffer((32,), "float32", "a"), tirx.decl_buffer((32,), "uint8", "out")
    i = tirx.Var("i", "int32")

    def requantize(x, zero_point):
        clamped = tirx.min(tirx.max(tirx.nearbyint(x) + tirx.BufferLoad(zero_point, []), f32(0.0)), f32(255.0))
        return tirx.Cast("float32", tirx.Cast("int32", tirx.Cast("uint8", tirx.Cast("int32", clamped))))

    shared = requantize(requantize(tirx.BufferLoad(statistic, [0]) * f32(0.5), zero_points[0]) * f32(0.25), zero_points[1])
    value = requantize(tirx.BufferLoad(rows, [i]) / (shared + f32(1.0)), zero_points[2])
    func = tirx.PrimFunc([statistic, *zero_points, rows, out],
                         tirx.For(i, 0, 32, tirx.ForKind.VECTORIZED, tirx.BufferStore(out, tirx.Cast("uint8", value), [i])))
    mod = tvm.IRModule({"f": func.with_attr("global_symbol", "f")})
    lib = tvm.tirx.build(mod, target=tvm.target.Target("llvm"), pipeline=tir_pipeline())
    device = tvm.cpu()
    values = np.random.default_rng(2).uniform(-100, 900, 32).astype(np.float32)
    result = tvm.runtime.tensor(np.zeros(32, "uint8"), device)
    points = [np.array(z, np.float32) for z in (3.0, 5.0, 7.0)]
    lib["f"](tvm.runtime.tensor(np.array([600.0], np.float32), device), *[tvm.runtime.tensor(z, device) for z in points],
             tvm.runtime.tensor(values, device), result)

    def requantized(x, zero_point):
        return np.clip(np.trunc(np.clip(np.rint(x) + zero_point, 0, 255)), 0, 255).astype(np.float32)

    shared_value = requantized(requantized(np.float32(600.0) * np.float32(0.5), 3.0) * np.float32(0.25), 5.0)
    np.testing.assert_array_equal(result.numpy(), requantized(values / (shared_value + np.float32(1.0)), 7.0).astype(np.uint8))


def test_magic_rounding_speculates_conditional_reads_as_selects():
    """RoPE's rotated halves and quantized concatenations read by lane (`if_then_else` on the
    vectorized index, branches of loads and arithmetic): as selects of loads clamped into
    their buffers, which TVM vectorizes; nested requantizes over them stay linear in size (int8
    Llama's RoPE kernel: 164 nodes became 117737 written out, and its build never ended)."""
    from wasm_build.compiler.tir.magic_rounding import magic_rounding

    half, out = tirx.decl_buffer((2, 16), "uint8", "x"), tirx.decl_buffer((2, 16), "uint8", "out")
    zero_point = tirx.decl_buffer((), "float32", "z")
    f32 = lambda v: tirx.const(v, "float32")  # noqa: E731
    row, j = tirx.Var("row", "int32"), tirx.Var("j", "int32")

    def requantize(x):
        clamped = tirx.min(tirx.max(tirx.nearbyint(x) + tirx.BufferLoad(zero_point, []), f32(0.0)), f32(255.0))
        return tirx.Cast("float32", tirx.Cast("int32", tirx.Cast("uint8", tirx.Cast("int32", clamped))))

    def dequantized(index):
        return (tirx.Cast("float32", tirx.Cast("int32", tirx.BufferLoad(half, [row, index]))) - f32(114.0)) * f32(0.03)

    value = requantize(dequantized(j) / f32(0.03))
    rotated = tirx.if_then_else(8 <= j, dequantized((j + 24) % 16), requantize(dequantized(j + 8) * f32(-1.0) / f32(0.03)))
    for _ in range(5):  # the rotation and the products around it, requantized at each step
        value = requantize((value + requantize(rotated / f32(0.03))) * f32(0.5))
    store = tirx.BufferStore(out, tirx.Cast("uint8", tirx.Cast("int32", value)), [row, j])
    loops = tirx.For(row, 0, 2, tirx.ForKind.SERIAL, tirx.For(j, 0, 16, tirx.ForKind.VECTORIZED, store))
    mod = tvm.IRModule({"f": tirx.PrimFunc([half, zero_point, out], loops).with_attr("global_symbol", "f")})
    rewritten = magic_rounding()(mod)["f"]
    assert "if_then_else" not in rewritten.script()

    assert _node_count(rewritten.body) < 8 * _node_count(mod["f"].body)
    lib = tvm.tirx.build(mod, target=tvm.target.Target("llvm"), pipeline=tir_pipeline())
    device = tvm.cpu()
    x = np.random.default_rng(4).integers(0, 256, (2, 16)).astype(np.uint8)
    result = tvm.runtime.tensor(np.zeros((2, 16), np.uint8), device)
    lib["f"](tvm.runtime.tensor(x, device), tvm.runtime.tensor(np.array(9.0, np.float32), device), result)

    def requantized(v):
        return np.clip(np.trunc(np.clip(np.rint(v) + np.float32(9.0), 0, 255)), 0, 255).astype(np.float32)

    def deq(index):
        return (x[:, index].astype(np.float32) - np.float32(114.0)) * np.float32(0.03)

    lanes = np.arange(16)
    want = requantized(deq(lanes) / np.float32(0.03))
    rotation = np.where(lanes >= 8, deq((lanes + 24) % 16), requantized(deq((lanes + 8) % 16) * np.float32(-1.0) / np.float32(0.03)))
    for _ in range(5):
        want = requantized((want + requantized(rotation / np.float32(0.03))) * np.float32(0.5))
    np.testing.assert_array_equal(result.numpy(), want.astype(np.uint8))


@pytest.mark.parametrize("kernel", ["quantized_pads.tir", "quantized_layout.tir"])
def test_magic_rounding_leaves_scheduled_int8_kernels_small_and_buildable(kernel):
    """Kernels of the zoo's int8 models as wasm-build schedules them (tests/integration/kernels).
    `ops_pad`: its pads run in a loop nest TVM does not vectorize, beside a vectorized one;
    taken as the same in every lane, their nested requantizes were written out (148 nodes
    became 3784, a build of over 7 minutes, 0.9 s before round 23). `ops_layout`: a split read
    by lane with a bound requantize in one branch, which was not speculated, so TVM's
    vectorizer scalarized the statement and met its `Let` twice (the build stopped)."""
    from pathlib import Path

    from wasm_build.compiler.tir.magic_rounding import magic_rounding

    func = tvm.script.from_source((Path(__file__).parent / "kernels" / kernel).read_text())
    mod = tvm.IRModule({"f": func.with_attr("global_symbol", "f")})

    rewritten = magic_rounding()(mod)["f"]
    assert "reinterpret" in rewritten.script() and _node_count(rewritten.body) < 4 * _node_count(func.body)
    with tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True}):
        tvm.tirx.build(mod, target=tvm.target.Target(WASM), pipeline=tir_pipeline())


def _nan_guard_loop():
    """``b = isnan(a) ? 0 : a`` over 64 values, vectorized 16 wide (the exporters' guard after
    a masked softmax)."""
    a = tirx.decl_buffer((64,), "float32", "a")
    b = tirx.decl_buffer((64,), "float32", "b")
    outer, lane = tirx.Var("outer", "int32"), tirx.Var("lane", "int32")
    index = outer * 16 + lane
    value = tirx.Select(tirx.isnan(tirx.BufferLoad(a, [index])), tirx.const(0.0, "float32"), tirx.BufferLoad(a, [index]))
    inner = tirx.For(lane, 0, 16, tirx.ForKind.VECTORIZED, tirx.BufferStore(b, value, [index]))
    return tirx.PrimFunc([a, b], tirx.For(outer, 0, 4, tirx.ForKind.SERIAL, inner)).with_attr("global_symbol", "nan_guard")


@pytest.mark.parametrize("with_step", [False, True])
def test_nan_tests_keep_a_loop_vectorized(with_step):
    """TVM's vectorizer scalarizes a loop holding ``isnan``; as a test on the bits it stays 16 wide."""
    from wasm_build.compiler.tir.nan_tests import vectorizable_nan_tests

    lowered = _lowered_loop(_nan_guard_loop(), vectorizable_nan_tests() if with_step else None)
    assert _vector_lanes_of_stores(lowered) == ([16] if with_step else [1])


def test_nan_guards_match_numpy_on_every_kind_of_float(tmp_path):
    """``Where(IsNaN(x), 0, x)`` in wasmtime: NaNs of either sign and payload, infinities, the
    largest finite values, subnormals and zeros, each where the bit test must place it."""
    from wasm_build import WasmModel

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 32])
    zero = helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0])
    nodes = [helper.make_node("IsNaN", ["x"], ["nan"]), helper.make_node("Where", ["nan", "zero", "x"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "nan_guard", [x], [y], [zero]), opset_imports=[helper.make_opsetid("", 17)])
    bits = np.array([0x7FC00000, 0xFFC00000, 0x7F800001, 0xFFFFFFFF, 0x7F800000, 0xFF800000, 0x7F7FFFFF, 0xFF7FFFFF,
                     0x00000001, 0x80000001, 0x00000000, 0x80000000, 0x3F800000, 0x7FBFFFFF], dtype=np.uint32)
    values = np.resize(bits, 64).view(np.float32).reshape(2, 32)
    (got,) = WasmModel(build(model, "nan_guard", tmp_path, smoke_test=False).directory / "nan_guard.wasm").run({"x": values})
    want = np.where(np.isnan(values), np.float32(0), values)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
