"""Hand-written SIMD schedules: outputs match onnxruntime, wasm kernels use v128.

Each model is imported with the ONNX frontend, taken through the CPU
pipeline's legalize/fuse passes, rescheduled by ``default_schedule_pass`` and
compiled natively (the pipeline's own LegalizeOps/FuseOps are no-ops on an
already fused module).
"""

from __future__ import annotations

from tests.support import build
from tests.support.compiler import (
    NATIVE,
    OBJDUMP,
    WASM,
    fused_module,
    innermost_loops,
    onnxruntime_output,
    prim_funcs,
    random_feeds,
    run_native,
    scheduled_names,
    wasm_disassembly,
)

from wasm_build.testing.models import Chain


import numpy as np
import pytest

tvm = pytest.importorskip("tvm")
ort = pytest.importorskip("onnxruntime")

from tvm import relax  # noqa: E402
from tvm.relax.frontend.onnx import from_onnx  # noqa: E402

from wasm_build.compiler.tir import lane_shuffle, presplat_rows
from wasm_build.compiler.tir.pipeline import tir_pipeline

from wasm_build.compiler.tir import walk as tir_walk  # noqa: E402
from wasm_build.compiler.passes import graph_passes as relax_passes  # noqa: E402
from wasm_build.compiler.schedules import default_schedule_pass  # noqa: E402
from wasm_build.compiler.tiles import PACKED_ROWS_ATTR  # noqa: E402
from wasm_build.compiler.tir.vector_math import (  # noqa: E402
    normal_exp,
    vector_erf,
    vector_exp,
    vector_log,
    vector_sigmoid,
    vector_tanh,
)



# --------------------------------------------------------------------------
# ONNX graph builders
# --------------------------------------------------------------------------






def dense(rng, m, k, n):
    g = Chain(rng, [m, k])
    return g.add("MatMul", g.const([k, n])).add("Add", g.const([n])).add("Relu").build()


def mlp(rng):
    """Dense + bias + relu, then a Gemm with a transposed weight."""
    g = Chain(rng, [8, 64])
    g.add("MatMul", g.const([64, 48])).add("Add", g.const([48])).add("Relu")
    return g.add("Gemm", g.const([24, 48]), g.const([24]), transB=1).build()


def batch_matmul(rng, b, m, k, n):
    g = Chain(rng, [b, m, k])
    return g.add("MatMul", g.input("c", [b, k, n])).build()


def cnn(rng):
    """Regular, depthwise and 1x1 convs with bias/BN/relu epilogues and pools."""
    g = Chain(rng, [1, 8, 16, 16])
    g.conv(8, 16, 3, pad=1).add("Relu")                 # 3x3, bias + relu
    g.conv(16, 16, 3, pad=1, group=16).batch_norm(16)   # depthwise + batchnorm
    g.add("Relu").pool("MaxPool", stride=1)             # 3x3 window, stride 1
    g.conv(16, 12, 1)                                   # 1x1
    g.conv(12, 16, 3, stride=2, pad=1).add("Relu")      # stride 2 -> 8x8
    g.pool("AveragePool").pool("MaxPool")               # 4x4, 2x2
    return g.add("GlobalAveragePool").build()


def late_conv(rng):
    """A 7x7 plane: the vector axis is not a multiple of the vector width."""
    return Chain(rng, [1, 16, 7, 7]).conv(16, 16, 3, pad=1).add("Relu").build()


def gelu_mlp(rng):
    """Dense + erf GELU (as exported from PyTorch) + softmax: the transformer's math."""
    g = Chain(rng, [16, 32])
    g.add("MatMul", g.const([32, 64])).add("Add", g.const([64]))
    pre = g.last
    g.add("Div", g.const([], positive=True)).add("Erf").add("Add", g.const([], positive=True))
    g.add("Mul", pre).add("Mul", g.const([], positive=True))
    return g.add("MatMul", g.const([64, 48], scale=1.0)).add("Softmax", axis=-1).build()


def transformer_ops(rng):
    g = Chain(rng, [2, 5, 48])
    g.add("LayerNormalization", g.const([48], 1.0), g.const([48]), axis=-1, epsilon=1e-5)
    g.add("Softmax", axis=-1).add("Mul", g.const([48]))
    return g.add("Sigmoid").build()


# --------------------------------------------------------------------------
# Compilation helpers
# --------------------------------------------------------------------------














# --------------------------------------------------------------------------
# Correctness against onnxruntime
# --------------------------------------------------------------------------

# name -> (builder, substrings of PrimFunc names that must be rescheduled)
CASES = {
    "mlp": (mlp, ["matmul_add_relu", "matmul1_add1"]),
    "gemv": (lambda r: dense(r, 1, 100, 64), ["matmul"]),
    "matmul_odd_shapes": (lambda r: dense(r, 5, 13, 10), ["matmul"]),
    "batch_matmul": (lambda r: batch_matmul(r, 4, 16, 8, 32), ["matmul"]),
    "cnn": (cnn, ["conv2d_add_relu", "conv2d1_add", "batch_norm", "max_pool2d", "conv2d2_add1",
                  "conv2d3_add2_relu1", "mean"]),
    "late_conv": (late_conv, ["conv2d"]),
    "transformer_ops": (transformer_ops, ["layer_norm", "softmax"]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_onnxruntime(name):
    rng = np.random.default_rng(1234)
    build, must_schedule = CASES[name]
    model = build(rng)
    feeds = random_feeds(model, rng)

    mod = fused_module(model, NATIVE)
    scheduled = scheduled_names(mod)
    for kernel in must_schedule:
        assert any(kernel in n for n in scheduled), (kernel, scheduled, list(prim_funcs(mod)))
    expected = onnxruntime_output(model, feeds)
    np.testing.assert_allclose(run_native(mod, feeds), expected, rtol=1e-4, atol=1e-4)


def test_pass_is_idempotent_and_skips_scheduled_funcs():
    model = dense(np.random.default_rng(0), 4, 32, 16)
    once = fused_module(model, NATIVE)
    with tvm.target.Target(NATIVE):
        twice = default_schedule_pass(tvm.target.Target(NATIVE))(once)
    tvm.ir.assert_structural_equal(once, twice)


def test_non_llvm_target_is_untouched():
    model = dense(np.random.default_rng(0), 4, 32, 16)
    plain = fused_module(model, NATIVE, schedule=False)
    target = tvm.target.Target({"kind": "c"})
    with target:
        out = default_schedule_pass(target)(plain)
    assert not scheduled_names(out)


# --------------------------------------------------------------------------
# SIMD in the wasm32 kernels
# --------------------------------------------------------------------------





def _f32x4_arith(disassembly):
    ops = ("f32x4.add", "f32x4.mul", "f32x4.max", "f32x4.relaxed_madd")
    return sum(any(op in line for op in ops) for line in disassembly.splitlines())


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
@pytest.mark.parametrize(
    "name, build, kernel",
    [
        ("dense", lambda r: dense(r, 1, 256, 128), "matmul"),
        ("conv3x3", lambda r: Chain(r, [1, 16, 28, 28]).conv(16, 32, 3, pad=1).build(), "conv2d"),
        ("depthwise", lambda r: Chain(r, [1, 16, 28, 28]).conv(16, 16, 3, 1, 1, 16).build(), "conv2d"),
    ],
)
def test_wasm_kernels_use_simd128(name, build, kernel, tmp_path):
    model = build(np.random.default_rng(0))
    mod = fused_module(model, WASM)
    assert any(kernel in n for n in scheduled_names(mod)), name
    disassembly = wasm_disassembly(mod, kernel, tmp_path)
    assert "v128" in disassembly
    # A register tile is at least 4 rows x 4 lanes of vector multiply-adds.
    assert _f32x4_arith(disassembly) >= 8, name


# --------------------------------------------------------------------------
# Graph-level passes: NHWC convs, vectorizable exp / erf / softmax
# --------------------------------------------------------------------------

GRAPH_CASES = {
    "cnn": cnn,
    "late_conv": late_conv,
    "transformer_ops": transformer_ops,
    "gelu_mlp": gelu_mlp,
}


@pytest.mark.parametrize("name", sorted(GRAPH_CASES))
def test_graph_passes_match_onnxruntime(name):
    rng = np.random.default_rng(99)
    model = GRAPH_CASES[name](rng)
    feeds = random_feeds(model, rng)
    mod = fused_module(model, NATIVE, graph_passes=True)
    kernels = prim_funcs(mod)
    scripts = "\n".join(f.script() for f in kernels.values())
    # No scalar libm exp/erf left, and convs run in NHWC (patch_rows takes only NHWC convs).
    assert "T.exp(" not in scripts and "T.erf(" not in scripts, sorted(kernels)
    if "conv" in name:
        assert "conv2d_nhwc" in scripts or "conv2d_patch_rows" in scripts, sorted(kernels)
    expected = onnxruntime_output(model, feeds)
    np.testing.assert_allclose(run_native(mod, feeds), expected, rtol=1e-4, atol=1e-5)


def _evaluate(fn, xs):
    from tvm import te

    x = te.placeholder(xs.shape, "float32")
    y = te.compute(x.shape, lambda i: fn(x(i)))
    kernel = tvm.compile(te.create_prim_func([x, y]), target=tvm.target.Target(NATIVE))
    out = tvm.runtime.tensor(np.zeros_like(xs))
    kernel(tvm.runtime.tensor(xs), out)
    return out.numpy()


def test_vector_exp_is_accurate_over_the_float32_range():
    xs = np.concatenate([np.linspace(-87.0, 88.5, 400001), np.linspace(-1e-3, 1e-3, 1001)]).astype("float32")
    got = _evaluate(vector_exp, xs).astype("float64")
    want = np.exp(xs.astype("float64"))
    assert np.max(np.abs(got - want) / want) < 5e-7
    tiny = _evaluate(vector_exp, np.array([-200.0, -104.0, -95.0], "float32"))
    assert np.all(tiny >= 0) and np.all(tiny < 1e-40)


def test_normal_exp_is_accurate_over_softmax_arguments():
    """Softmax's exp, of values shifted by the row's maximum and clamped at ln(FLT_MIN)."""
    xs = np.concatenate([np.linspace(-87.3365, 0.0, 400001), -np.geomspace(1e-30, 1e-3, 1001)]).astype("float32")
    got = _evaluate(normal_exp, xs).astype("float64")
    want = np.exp(xs.astype("float64"))
    assert np.max(np.abs(got - want) / want) < 5e-7
    assert _evaluate(normal_exp, np.array([0.0], "float32"))[0] == 1.0


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_softmax_exp_rounds_without_conversions(tmp_path):
    """exp's ``round(x / ln 2)`` comes from adding 1.5 * 2^23, not from ``f32x4.floor`` and
    ``i32x4.trunc_sat_f32x4_s`` (which Cranelift expands to about eight x86 instructions)."""
    model = Chain(np.random.default_rng(3), [2, 4, 64]).add("Softmax", axis=-1).build()
    disassembly = wasm_disassembly(fused_module(model, WASM, graph_passes=True), "softmax", tmp_path)
    assert "f32x4.mul" in disassembly
    assert "i32x4.trunc_sat_f32x4_s" not in disassembly and "f32x4.floor" not in disassembly


def test_vector_erf_is_accurate():
    import math

    xs = np.linspace(-6.0, 6.0, 200001).astype("float32")
    got = _evaluate(vector_erf, xs).astype("float64")
    want = np.array([math.erf(x) for x in xs.astype("float64")])
    assert np.max(np.abs(got - want)) < 1e-6
    nonzero = np.abs(xs) > 1e-6
    assert np.max(np.abs(got - want)[nonzero] / np.abs(want[nonzero])) < 1e-6


def test_vector_sigmoid_and_tanh_are_accurate():
    xs = np.concatenate([np.linspace(-30.0, 30.0, 400001), np.linspace(-1e-3, 1e-3, 1001)]).astype("float32")
    wide = xs.astype("float64")
    sigmoid = _evaluate(vector_sigmoid, xs).astype("float64")
    assert np.max(np.abs(sigmoid - 1 / (1 + np.exp(-wide))) * (1 + np.exp(-wide))) < 5e-7
    tanh = _evaluate(vector_tanh, xs).astype("float64")
    nonzero = xs != 0
    assert np.max(np.abs(tanh - np.tanh(wide))[nonzero] / np.abs(np.tanh(wide[nonzero]))) < 5e-7
    assert np.all(_evaluate(vector_tanh, np.array([-100.0, 0.0, 100.0], "float32")) == [-1.0, 0.0, 1.0])


def test_vector_log_is_accurate_over_the_float32_range():
    xs = np.geomspace(1e-45, 3e38, 400001).astype("float32")  # subnormals included
    xs = xs[xs > 0]
    got = _evaluate(vector_log, xs).astype("float64")
    want = np.log(xs.astype("float64"))
    assert np.max(np.abs(got - want) / np.maximum(np.abs(want), 1.0)) < 3e-7
    near_one = np.linspace(0.9, 1.1, 20001).astype("float32")
    near_one = near_one[near_one != 1]
    want = np.log(near_one.astype("float64"))
    assert np.max(np.abs(_evaluate(vector_log, near_one) - want) / np.abs(want)) < 1e-6
    special = _evaluate(vector_log, np.array([0.0, -1.0, np.inf, np.nan, 1.0], "float32"))
    assert special[0] == -np.inf and np.isnan(special[1]) and special[2] == np.inf and np.isnan(special[3])
    assert special[4] == 0.0


def _activation_module(op, shape=(8, 64)):
    builder = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, "float32"))
    with builder.function("main", [x]):
        with builder.dataflow():
            out = builder.emit_output(op(x))
        builder.emit_func_output(out)
    return builder.get()


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "silu", "gelu", "gelu_tanh", "log", "log_softmax"])
def test_activations_are_vectorized_and_accurate(name):
    """Sigmoid, tanh, log and the activations Relax legalizes to them or to erf (SiLU, both
    GELUs, as the PyTorch frontend emits them; log-softmax) leave no scalar libm call and
    match float64 math."""
    import math

    op = {"sigmoid": relax.op.sigmoid, "tanh": relax.op.tanh, "silu": relax.op.nn.silu,
          "gelu": relax.op.nn.gelu, "gelu_tanh": relax.op.nn.gelu_tanh,
          "log": lambda x: relax.op.log(relax.op.abs(x)), "log_softmax": relax.op.nn.log_softmax}[name]
    reference = {
        "sigmoid": lambda x: 1 / (1 + np.exp(-x)),
        "tanh": np.tanh,
        "silu": lambda x: x / (1 + np.exp(-x)),
        "gelu": lambda x: 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2))),
        "gelu_tanh": lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
        "log": lambda x: np.log(np.abs(x)),
        "log_softmax": lambda x: x - x.max(-1, keepdims=True) - np.log(np.exp(x - x.max(-1, keepdims=True)).sum(-1, keepdims=True)),
    }[name]
    target = tvm.target.Target(NATIVE)
    with target:
        mod = tvm.transform.Sequential([*relax_passes(target), relax.transform.LegalizeOps()])(_activation_module(op))
    for func in prim_funcs(mod).values():
        lets = []
        tir_walk.visit(func.body, lambda node: lets.append(node.var) if isinstance(node, tvm.tirx.Let) else None)
        assert len(set(map(hash, lets))) == len(lets), name  # each Let variable bound once (TIR is SSA)
    scripts = "\n".join(f.script() for f in prim_funcs(mod).values())
    for libm in ("T.exp(", "T.erf(", "T.tanh(", "T.sigmoid(", "T.log("):
        assert libm not in scripts, (name, libm)
    xs = np.random.default_rng(7).standard_normal((8, 64)).astype("float32") * 4
    vm = relax.VirtualMachine(tvm.compile(mod, target), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(xs)).numpy()
    np.testing.assert_allclose(got, reference(xs.astype("float64")), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("exponent, multiplied", [(2.0, True), (3.0, True), (4.0, True), (2.5, False), (-1.0, False)])
def test_small_integer_powers_are_multiplied_out(exponent, multiplied):
    """`power` by a constant 2, 3 or 4 (GPT-2's GELU cubes its input) becomes multiplications,
    no `powf` per lane; other exponents keep TVM's power. Both match numpy."""
    def op(x):
        return relax.op.power(x, relax.const(np.float32(exponent)))

    target = tvm.target.Target(NATIVE)
    with target:
        mod = tvm.transform.Sequential([*relax_passes(target), relax.transform.LegalizeOps()])(_activation_module(op))
    scripts = "\n".join(f.script() for f in prim_funcs(mod).values())
    assert ("T.pow(" not in scripts) == multiplied, scripts
    xs = np.random.default_rng(8).standard_normal((8, 64)).astype("float32") * 3
    if not multiplied:
        xs = np.abs(xs) + 0.1  # a fractional power of a negative number is NaN in both
    vm = relax.VirtualMachine(tvm.compile(mod, target), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(xs)).numpy()
    np.testing.assert_allclose(got, np.power(xs.astype("float64"), exponent), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
@pytest.mark.parametrize("length", [197, 50, 37, 6])
def test_ragged_rows_reduce_whole_vectors_and_match_onnxruntime(op, length):
    """Rows whose length is not a multiple of 4 (ViT's 197 tokens) reduce their whole vectors
    in a vectorized reduction and the one to fifteen values left apart; rows too short for
    two vectors stay one reduction."""
    rng = np.random.default_rng(8)
    g = Chain(rng, [2, 3, length])
    model = g.add("Mul", g.const([], scale=3.0)).add(op, axis=-1).build()
    mod = fused_module(model, NATIVE, graph_passes=True)
    (script,) = [f.script() for n, f in prim_funcs(mod).items() if "softmax" in n]
    assert ("_vectors" in script) == (length >= 8), length
    if length >= 8:
        assert "T.vectorized" in script
    feeds = random_feeds(model, rng)
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_masked_softmax_rows_match_float64(name):
    """A causal mask's -3.4e38 (and -inf, and values 90 below the row's maximum, whose exp is
    subnormal): exp is 0 there, never computed to a subnormal (which x86 runs a hundred times
    slower), and the rows match float64 math."""
    op = {"softmax": relax.op.nn.softmax, "log_softmax": relax.op.nn.log_softmax}[name]
    xs = np.random.default_rng(9).standard_normal((8, 64)).astype("float32") * 3
    xs[:, 40:] = np.float32(-3.4028235e38)
    xs[1, 20:30] = -np.inf
    xs[2, 5] = xs[2, :40].max() - 90.0
    target = tvm.target.Target(NATIVE)
    with target:
        mod = tvm.transform.Sequential([*relax_passes(target), relax.transform.LegalizeOps()])(_activation_module(op))
    vm = relax.VirtualMachine(tvm.compile(mod, target), tvm.cpu())
    got = vm["main"](tvm.runtime.tensor(xs)).numpy()
    shifted = xs.astype("float64") - xs.max(-1, keepdims=True)
    total = np.exp(shifted).sum(-1, keepdims=True)
    if name == "softmax":
        assert (got[:, 40:] == 0).all() and (got[1, 20:30] == 0).all() and got[2, 5] == 0
        np.testing.assert_allclose(got, np.exp(shifted) / total, rtol=1e-6, atol=1e-37)
    else:
        finite = np.isfinite(shifted) & (shifted > -1e30)
        np.testing.assert_allclose(got[finite], (shifted - np.log(total))[finite], rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------
# Graph pass: batch norm and per-channel affine ops folded into conv weights
# --------------------------------------------------------------------------


def conv_bn_relu(rng):
    """Conv + batch norm + per-channel and scalar Mul/Div/Sub + Relu, then a conv
    whose output is used twice (its Mul must stay: folding it would duplicate the conv)."""
    g = Chain(rng, [1, 8, 12, 12])
    g.conv(8, 16, 3, pad=1).batch_norm(16)
    g.add("Mul", g.const([1, 16, 1, 1], 1.0)).add("Div", g.const([], positive=True))
    g.add("Sub", g.const([1, 16, 1, 1])).add("Relu")
    g.conv(16, 16, 1)
    shared = g.last
    g.add("Mul", g.const([1, 16, 1, 1], 1.0)).add("Add", shared)
    return g.build()


def _relax_ops(mod):
    names = []

    def visit(expr):
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            names.append(expr.op.name)

    relax.analysis.post_order_visit(mod["main"].body, visit)
    return names


def test_conv_affine_epilogue_is_folded_into_the_weights():
    rng = np.random.default_rng(5)
    model = conv_bn_relu(rng)
    feeds = random_feeds(model, rng)
    target = tvm.target.Target(NATIVE)
    mod = from_onnx(model, keep_params_in_input=False)
    with target:
        # As in compile.lower: batch norm is decomposed into elementwise ops first.
        mod = relax.transform.DecomposeOpsForInference()(mod)
        mod = tvm.transform.Sequential(relax_passes(target))(mod)
    ops = _relax_ops(mod)
    # First conv: BN, Mul, Div, Sub all became one bias add; the shared conv keeps its Mul.
    # (The 3x3 conv is then a patch-rows kernel, a call_tir: wasm_build.patch_rows.)
    assert ops.count("relax.nn.conv2d") == 1 and ops.count("relax.call_tir") == 1, ops
    assert "relax.subtract" not in ops and "relax.divide" not in ops, ops
    assert ops.count("relax.multiply") == 1, ops
    with target:
        fused = tvm.transform.Sequential([
            relax.transform.LegalizeOps(), relax.transform.AnnotateTIROpPattern(),
            relax.transform.FoldConstant(), relax.transform.FuseOps(), relax.transform.FuseTIR(),
        ])(mod)
    # The ReLU is fused into the conv kernel (no separate relu kernel).
    assert any("conv2d_patch_rows_add_relu" in n for n in prim_funcs(fused)), sorted(prim_funcs(fused))
    expected = onnxruntime_output(model, feeds)
    np.testing.assert_allclose(run_native(fused, feeds), expected, rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------
# Constant weights stored tile by tile, packed at compile time
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, build, packed_ndim",
    [
        ("conv3x3", lambda r: Chain(r, [1, 16, 14, 14]).conv(16, 32, 3, pad=1).add("Relu").build(), 5),
        ("dense", lambda r: dense(r, 1, 256, 128), 3),
    ],
)
def test_constant_weights_are_packed_at_compile_time(name, build, packed_ndim):
    rng = np.random.default_rng(3)
    model = build(rng)
    feeds = random_feeds(model, rng)
    mod = fused_module(model, NATIVE, graph_passes=True)
    kernels = prim_funcs(mod)
    [packed] = [f for n, f in kernels.items() if n.endswith("_prepacked")]
    # One more dimension than the weights had: [N // tile, ..., N % tile].
    assert any(len(p.shape) == packed_ndim for p in packed.params), packed.script()
    # The packing copy ran at compile time: no kernel of its own, no copy block left.
    assert not [n for n in kernels if "weight_prepack" in n], sorted(kernels)
    assert "layout_rewrite_preproc" not in "\n".join(f.script() for f in kernels.values())
    expected = onnxruntime_output(model, feeds)
    np.testing.assert_allclose(run_native(mod, feeds), expected, rtol=1e-4, atol=1e-5)


def test_kernels_are_built_without_argument_checks(tmp_path):
    """The executor is the kernels' only caller: no per-call shape/dtype checks
    (they were three quarters of a MobileNetV2 build's code)."""
    from wasm_build.compiler.kernels import build_kernels
    from wasm_build.compiler.pipeline import LoweredModel
    from wasm_build.compiler.target import TargetOptions

    mod = fused_module(Chain(np.random.default_rng(0), [1, 8, 8, 8]).conv(8, 8, 3, pad=1).build(), WASM)
    kernels = tvm.IRModule({name: f.with_attr("global_symbol", name) for name, f in prim_funcs(mod).items()})
    build_kernels(LoweredModel(kernels, "t_"), TargetOptions(), tmp_path / "k.o")
    checked = tvm.tirx.build(kernels, target=tvm.target.Target(WASM))
    checked.write_to_file(str(tmp_path / "checked.o"))
    # A failed check raises through tvm-ffi's error API, with messages such as "ValueError".
    assert b"TVMFFIErrorSetRaisedFromCStrParts" in (tmp_path / "checked.o").read_bytes()
    assert b"TVMFFIErrorSetRaisedFromCStrParts" not in (tmp_path / "k.o").read_bytes()
    assert (tmp_path / "k.o").stat().st_size < (tmp_path / "checked.o").stat().st_size


def test_relu6_is_fused_into_the_conv_in_nhwc():
    """ONNX Clip (ReLU6) arrives as TE kernels for max/min that ConvertLayout cannot see
    into: as Relax maximum/minimum it follows the conv's NHWC layout and fuses into it."""
    rng = np.random.default_rng(12)
    g = Chain(rng, [1, 16, 14, 14])
    lo, hi = g.scalar(0.0), g.scalar(6.0)
    g.conv(16, 32, 1).add("Clip", lo, hi)
    g.conv(32, 32, 3, pad=1, group=32).add("Clip", lo, hi)
    model = g.build()
    mod = fused_module(model, NATIVE, graph_passes=True)
    names = sorted(prim_funcs(mod))
    assert sum("conv2d" in n and "maximum" in n and "minimum" in n for n in names) == 2, names
    assert not any("transpose" in n and "maximum" in n for n in names), names
    feeds = random_feeds(model, rng)
    feeds["x"] *= 20  # reach both bounds
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-5)


def test_depthwise_tiles_leave_registers_for_the_weights():
    """A depthwise conv has no operand splat across lanes: each tap's weights are vectors
    too, so its tile keeps 4 accumulators (4 rows x 4 lanes) where a 1x1 conv keeps 8
    (4 rows x 8 lanes, its rows packed: see test_packed_rows_are_loaded_presplat)."""
    g = Chain(np.random.default_rng(13), [1, 64, 25, 20])
    model = g.conv(64, 64, 3, pad=1, group=64).add("Relu").conv(64, 64, 1).add("Relu").build()
    mod = fused_module(model, NATIVE, graph_passes=True)
    packed = {}
    for name, func in prim_funcs(mod).items():
        for param in func.params:
            if len(param.shape) == 5:  # W[n // tile, ..., n % tile]
                packed[name] = int(param.shape[-1])
    assert sorted(packed.values()) == [4, 8], packed


@pytest.mark.parametrize("k, n", [(32, 128), (256, 1024)])
def test_matrix_vector_tiles_leave_registers_for_the_weights(k, n):
    """A single row (an RNN step, a decoder token) uses each weight vector once: its tile
    keeps 8 accumulators (32 lanes), not the 16 of a many-row tile, which spill on x86."""
    g = Chain(np.random.default_rng(5), [1, k])
    model = g.add("MatMul", g.const([k, n])).add("Relu").build()
    mod = fused_module(model, NATIVE, graph_passes=True)
    tiles = [int(p.shape[-1]) for f in prim_funcs(mod).values() for p in f.params if len(p.shape) == 3]
    assert tiles == [32], tiles


def _pointwise_model(width, height=6):
    g = Chain(np.random.default_rng(21), [1, 32, height, width])
    return g.conv(32, 48, 1).add("Relu").build()


def test_tile_rows_of_a_pointwise_conv_are_packed():
    """A 1x1 conv's four output columns read four input pixels: the tile copies them side by
    side once per row tile (the copy's row loop vectorized), and the kernel says which buffer."""
    mod = fused_module(_pointwise_model(20), NATIVE, graph_passes=True)
    (name, func), = [(n, f) for n, f in prim_funcs(mod).items() if "conv2d" in n]
    packed = list(func.attrs[PACKED_ROWS_ATTR])
    assert len(packed) == 1, name
    text = func.script()
    assert f"{packed[0]}[" in text and "T.vectorized(T.int64(4))" in text


def test_pixels_of_a_14_wide_pointwise_conv_are_packed_per_row_tile():
    """14 columns do not come in fours, 6 x 14 pixels do: the conv becomes a product over its
    pixels (`passes.pixel_rows`), which copies each row tile's four pixels side by side where
    the tile needs them (so stored pre-splat), not all of them once per call by image rows."""
    mod = fused_module(_pointwise_model(14), NATIVE, graph_passes=True)
    ((name, func),) = [(n, f) for n, f in prim_funcs(mod).items() if "conv2d" in n]
    assert "pixel_rows" in name
    (packed,) = func.attrs[PACKED_ROWS_ATTR]
    assert _loop_extents(func, packed) == [21, 32, 4]  # 84 pixels in row tiles, input channels, the 4 rows


def test_rows_are_not_packed_when_they_do_not_come_in_fours():
    """3 x 7 pixels: the tile has 7 rows (no group of 4 lanes to load them from; padding 21
    pixels to 24 would cost too much, see wasm_build.pixel_rows)."""
    mod = fused_module(_pointwise_model(7, height=3), NATIVE, graph_passes=True)
    assert not any(f.attrs and PACKED_ROWS_ATTR in f.attrs for f in prim_funcs(mod).values())


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
@pytest.mark.parametrize("name, build, kernel", [
    ("pointwise_conv", lambda: _pointwise_model(20), "conv2d"),
    ("matmul", lambda: dense(np.random.default_rng(2), 8, 64, 32), "matmul"),
])
def test_packed_rows_are_loaded_presplat(name, build, kernel, tmp_path):
    """With wasm-build's TIR pipeline each packed value is stored four times, and a reduction
    step loads its four rows' splats as vectors at offsets 0-48 from one address; TVM's own
    pipeline splats each from memory."""
    mod = fused_module(build(), WASM, graph_passes=True)
    (step,) = [_reduction_step(wasm_disassembly(mod, kernel, tmp_path, pipeline=tir_pipeline()))]
    (plain,) = [_reduction_step(wasm_disassembly(mod, kernel, tmp_path, pipeline="default"))]
    assert not any(i.startswith(("v128.load32_splat", "i8x16.shuffle")) for i in step), name
    assert all(any(i.startswith(f"v128.load {offset}") for i in step) for offset in (16, 32, 48)), name
    assert sum(i.startswith("v128.load32_splat") for i in plain) == 4, name


def _reduction_step(disassembly):
    """The innermost loop with the most multiplies: the register tile's reduction step."""
    return max(innermost_loops(disassembly), key=lambda body: sum(i.startswith("f32x4.mul") for i in body))


@pytest.mark.parametrize("step", [lane_shuffle.shuffle_packed_rows, presplat_rows.presplat_packed_rows])
def test_packed_row_steps_rewrite_only_packed_buffers(step):
    """The lowering steps are no-ops on kernels without packed rows, and their rewrites keep
    every other node: running them on a module without the attribute returns the very same
    functions."""
    mod = fused_module(_pointwise_model(7, height=3), WASM, graph_passes=True)
    funcs = {n: f.with_attr("global_symbol", n) for n, f in prim_funcs(mod).items()}
    lowered = tvm.tirx.transform.BindTarget(tvm.target.Target(WASM))(tvm.IRModule(funcs))
    after = step()(lowered)
    for gvar, func in lowered.functions_items():
        assert after[gvar].same_as(func)


def test_shuffled_kernels_match_onnxruntime_in_wasmtime(tmp_path):
    """The whole build (wasm-build's TIR pipeline, linked, run in wasmtime) of a model whose
    1x1 conv and matmul tiles pack their rows agrees with onnxruntime."""
    from wasm_build import WasmModel

    g = Chain(np.random.default_rng(5), [1, 16, 2, 28])
    plane_14_wide, rows_by_channels = g.int64s([1, 32, 4, 14]), g.int64s([56, 32])
    g.conv(16, 32, 1).add("Relu").add("Reshape", plane_14_wide).conv(32, 32, 1)
    g.add("Transpose", perm=[0, 2, 3, 1]).add("Reshape", rows_by_channels)
    model = g.add("MatMul", g.const([32, 24])).build()
    mod = fused_module(model, WASM, graph_passes=True)
    # 28-wide conv (rows by column), 14-wide conv (rows by pixel), matmul (56 rows).
    assert sum(bool(f.attrs and PACKED_ROWS_ATTR in f.attrs) for f in prim_funcs(mod).values()) == 3
    result = build(model, "shuffled", tmp_path)
    feeds = random_feeds(model, np.random.default_rng(6))
    (got,) = WasmModel(result.directory / "shuffled.wasm").run(feeds)
    np.testing.assert_allclose(got, onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)


def test_seven_row_tiles_keep_sixteen_lanes():
    """A 1x1 conv on a 3x7 plane tiles 7 output columns (21 pixels do not come in fours, and
    padding them would waste 3 of 24 rows, see wasm_build.pixel_rows) by 16 output channels,
    like a 4-row tile, rather than fitting 7 x 8 into the registers."""
    model = Chain(np.random.default_rng(17), [1, 32, 3, 7]).conv(32, 64, 1).add("Relu").build()
    mod = fused_module(model, NATIVE, graph_passes=True)
    (func,) = [f for n, f in prim_funcs(mod).items() if "conv2d" in n]
    packed_weights = [p for p in func.params if len(p.shape) == 5]  # W[co // tile, ..., co % tile]
    assert [int(p.shape[-1]) for p in packed_weights] == [16]
    assert "T.unroll(T.int64(7))" in func.script()


def _loop_extents(func, block="matmul_intermediate_global"):
    """Extents of the loops around ``block`` (by default a matmul's tile write-back)."""
    sch = tvm.s_tir.Schedule(func)
    return [int(sch.get(loop).extent) for loop in sch.get_loops(sch.get_sblock(block))]


def test_heavy_epilogues_run_over_whole_rows():
    """A GELU epilogue (about 30 float ops an output) runs after a row tile's register tiles,
    over its 4 x 64 outputs; a bias + ReLU stays in each 4 x 8 tile's write-back."""
    def kernel(model, op):
        mod = fused_module(model, NATIVE, graph_passes=True)
        (func,) = [f for n, f in prim_funcs(mod).items() if op in n]
        return func

    g = Chain(np.random.default_rng(3), [16, 32])
    relu = kernel(g.add("MatMul", g.const([32, 64])).add("Relu").build(), "relu")
    gelu = kernel(gelu_mlp(np.random.default_rng(3)), "erf")
    # Loops: row tiles, then rows x column vectors (GELU) or column tiles, rows x lanes (ReLU).
    assert _loop_extents(gelu) == [4, 4, 16, 4]
    assert _loop_extents(relu) == [4, 8, 4, 8]


def test_row_epilogue_matches_onnxruntime_in_wasmtime(tmp_path):
    from wasm_build import WasmModel

    model = gelu_mlp(np.random.default_rng(8))
    result = build(model, "gelu_rows", tmp_path)
    feeds = random_feeds(model, np.random.default_rng(9))
    (got,) = WasmModel(result.directory / "gelu_rows.wasm").run(feeds)
    np.testing.assert_allclose(got, onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-5)


def test_weights_over_the_cache_size_go_by_blocks_of_lane_tiles():
    """77 x 512 @ 512 x 768 streams 1.5 MB of weights: two blocks of 48 lane tiles (768 KB
    each, within the cache size) go outermost, around the row tiles (77 rows padded to 80), and
    the rows are packed once per row tile in each block, so stored pre-splat. (One lane tile at
    a time packed all rows once per call, splatted by lane shuffles at every step.)"""
    from wasm_build.compiler.tiles import CACHE_BYTES

    model = dense(np.random.default_rng(13), 77, 512, 768)
    assert 512 * 768 * 4 > CACHE_BYTES
    mod = fused_module(model, NATIVE, graph_passes=True)
    (func,) = [f for n, f in prim_funcs(mod).items() if "matmul" in n]
    assert _loop_extents(func, "matmul_update") == [2, 20, 48, 512, 4, 8]  # blocks, row tiles, lane tiles, k, rows, lanes
    (packed,) = func.attrs[PACKED_ROWS_ATTR]
    assert _loop_extents(func, packed) == [2, 20, 512, 4]  # per block and row tile: k, the 4 rows
    feeds = random_feeds(model, np.random.default_rng(14))
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_blocks_of_lane_tiles_load_their_rows_presplat_and_match_onnxruntime_in_wasmtime(tmp_path):
    """The whole build of a matmul with 1.5 MB of weights (blocks of lane tiles) agrees with
    onnxruntime in wasmtime, and its reduction step loads the rows' splats as vectors."""
    from wasm_build import WasmModel

    model = dense(np.random.default_rng(15), 20, 256, 1536)
    mod = fused_module(model, WASM, graph_passes=True)
    step = _reduction_step(wasm_disassembly(mod, "matmul", tmp_path, pipeline=tir_pipeline()))
    assert not any(i.startswith(("v128.load32_splat", "i8x16.shuffle")) for i in step)
    result = build(model, "lane_blocks", tmp_path)
    feeds = random_feeds(model, np.random.default_rng(16))
    (got,) = WasmModel(result.directory / "lane_blocks.wasm").run(feeds)
    np.testing.assert_allclose(got, onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)


def test_depthwise_conv_on_a_large_input_sweeps_it_once():
    """Lane tiles go outermost only for an operand that outputs share (weights larger than the
    cache). A depthwise conv's 4.8 MB input is read by each output's own window: its tiles go
    pixel by pixel with every channel group of a pixel, not a channel group over the whole plane."""
    g = Chain(np.random.default_rng(12), [1, 96, 112, 112])
    mod = fused_module(g.conv(96, 96, 3, stride=2, pad=1, group=96).add("Relu").build(), NATIVE, graph_passes=True)
    (func,) = [f for n, f in prim_funcs(mod).items() if "conv2d" in n]
    extents = _loop_extents(func, "group_conv2d_nhwc_update")
    assert extents[:4] == [1, 56, 14, 24]  # image, output rows, 4-column tiles, 4-channel lane tiles
