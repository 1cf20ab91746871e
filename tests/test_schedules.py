"""Hand-written SIMD schedules: outputs match onnxruntime, wasm kernels use v128.

Each model is imported with the ONNX frontend, taken through the CPU
pipeline's legalize/fuse passes, rescheduled by ``default_schedule_pass`` and
compiled natively (the pipeline's own LegalizeOps/FuseOps are no-ops on an
already fused module).
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

tvm = pytest.importorskip("tvm")
ort = pytest.importorskip("onnxruntime")

from tvm import relax  # noqa: E402
from tvm.relax.frontend.onnx import from_onnx  # noqa: E402

from wasm_build.schedules import default_schedule_pass  # noqa: E402

NATIVE = {"kind": "llvm"}
WASM = {
    "kind": "llvm",
    "mtriple": "wasm32-unknown-unknown-wasm",
    "mattr": ["+simd128"],
    "num-cores": 1,
}
SCHEDULED = "tirx.is_scheduled"


# --------------------------------------------------------------------------
# ONNX graph builders
# --------------------------------------------------------------------------


def _value(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape))


def _const(rng, name, shape, scale=0.1):
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype("float32"), name)


def _model(nodes, inputs, output_shape, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, [_value("y", output_shape)], list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def dense(rng, m, k, n):
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["mm"]),
        helper.make_node("Add", ["mm", "b"], ["z"]),
        helper.make_node("Relu", ["z"], ["y"]),
    ]
    inits = [_const(rng, "w", [k, n]), _const(rng, "b", [n])]
    return _model(nodes, [_value("x", [m, k])], [m, n], inits)


def gemm(rng, m, k, n):
    nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], transB=1)]
    inits = [_const(rng, "w", [n, k]), _const(rng, "b", [n])]
    return _model(nodes, [_value("x", [m, k])], [m, n], inits)


def batch_matmul(b, m, k, n):
    nodes = [helper.make_node("MatMul", ["a", "c"], ["y"])]
    return _model(nodes, [_value("a", [b, m, k]), _value("c", [b, k, n])], [b, m, n])


def conv(rng, c, hw, oc, k, *, stride=1, pad=0, group=1, bn=False):
    nodes = [
        helper.make_node(
            "Conv", ["x", "w", "b"], ["c"], kernel_shape=[k, k], strides=[stride] * 2,
            pads=[pad] * 4, group=group,
        )
    ]
    inits = [_const(rng, "w", [oc, c // group, k, k]), _const(rng, "b", [oc])]
    last = "c"
    if bn:
        nodes.append(helper.make_node("BatchNormalization", ["c", "s", "t", "mu", "var"], ["n"]))
        inits += [_const(rng, "s", [oc], 1.0), _const(rng, "t", [oc]), _const(rng, "mu", [oc])]
        inits.append(numpy_helper.from_array(rng.uniform(0.5, 1.5, oc).astype("float32"), "var"))
        last = "n"
    nodes.append(helper.make_node("Relu", [last], ["y"]))
    out = (hw + 2 * pad - k) // stride + 1
    return _model(nodes, [_value("x", [1, c, hw, hw])], [1, oc, out, out], inits)


def pool(kind, c=16, hw=28, k=3, stride=2, pad=1):
    if kind == "GlobalAveragePool":
        return _model([helper.make_node(kind, ["x"], ["y"])], [_value("x", [1, c, hw, hw])],
                      [1, c, 1, 1])
    node = helper.make_node(kind, ["x"], ["y"], kernel_shape=[k, k], strides=[stride] * 2,
                            pads=[pad] * 4)
    out = (hw + 2 * pad - k) // stride + 1
    return _model([node], [_value("x", [1, c, hw, hw])], [1, c, out, out])


def softmax(shape):
    node = helper.make_node("Softmax", ["x"], ["y"], axis=-1)
    return _model([node], [_value("x", shape)], shape)


def layer_norm(rng, shape):
    node = helper.make_node("LayerNormalization", ["x", "g", "b"], ["y"], axis=-1, epsilon=1e-5)
    inits = [_const(rng, "g", [shape[-1]], 1.0), _const(rng, "b", [shape[-1]])]
    return _model([node], [_value("x", shape)], shape, inits)


def elementwise(shape):
    nodes = [
        helper.make_node("Mul", ["x", "x"], ["m"]),
        helper.make_node("Sigmoid", ["m"], ["s"]),
        helper.make_node("Add", ["s", "x"], ["y"]),
    ]
    return _model(nodes, [_value("x", shape)], shape)


# --------------------------------------------------------------------------
# Compilation helpers
# --------------------------------------------------------------------------


def fused_module(model, target, schedule=True):
    """The Relax module as the compile pipeline has it right after the schedule pass."""
    target = tvm.target.Target(target)
    mod = from_onnx(model, keep_params_in_input=False)
    passes = [
        relax.backend.DispatchSampling(),
        relax.backend.DispatchSortScan(),
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        relax.transform.FoldConstant(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
    ]
    if schedule:
        passes.append(default_schedule_pass(target))
    with target:
        return tvm.transform.Sequential(passes)(mod)


def prim_funcs(mod):
    return {gv.name_hint: f for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)}


def scheduled_names(mod):
    return sorted(n for n, f in prim_funcs(mod).items() if f.attrs and f.attrs.get(SCHEDULED))


def run_native(mod, feeds):
    vm = relax.VirtualMachine(tvm.compile(mod, tvm.target.Target(NATIVE)), tvm.cpu())
    return vm["main"](*[tvm.runtime.tensor(v) for v in feeds.values()]).numpy()


def random_feeds(model, rng):
    feeds = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        feeds[value.name] = rng.standard_normal(shape).astype("float32")
    return feeds


def onnxruntime_output(model, feeds):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


# --------------------------------------------------------------------------
# Correctness against onnxruntime
# --------------------------------------------------------------------------

# name -> (builder, substring of a PrimFunc name that must be rescheduled)
CASES = {
    "dense_bias_relu": (lambda r: dense(r, 8, 64, 48), "matmul"),
    "gemv": (lambda r: dense(r, 1, 100, 64), "matmul"),
    "gemm_transb": (lambda r: gemm(r, 6, 40, 24), "matmul"),
    "matmul_odd_shapes": (lambda r: dense(r, 5, 13, 10), "matmul"),
    "batch_matmul": (lambda r: batch_matmul(4, 16, 8, 32), "matmul"),
    "conv3x3_pad1": (lambda r: conv(r, 8, 16, 16, 3, pad=1), "conv2d"),
    "conv3x3_stride2": (lambda r: conv(r, 8, 15, 12, 3, stride=2, pad=1), "conv2d"),
    "conv3x3_7x7_plane": (lambda r: conv(r, 16, 7, 16, 3, pad=1), "conv2d"),
    "conv_depthwise": (lambda r: conv(r, 8, 14, 8, 3, pad=1, group=8), "conv2d"),
    "conv1x1": (lambda r: conv(r, 16, 12, 8, 1), "conv2d"),
    "conv_batchnorm_relu": (lambda r: conv(r, 4, 10, 8, 3, pad=1, bn=True), "batch_norm"),
    "maxpool": (lambda r: pool("MaxPool"), None),
    "maxpool_stride1": (lambda r: pool("MaxPool", stride=1), "max_pool"),
    "avgpool": (lambda r: pool("AveragePool"), None),
    "global_avgpool": (lambda r: pool("GlobalAveragePool"), "mean"),
    "softmax": (lambda r: softmax([2, 6, 64]), "softmax"),
    "layer_norm": (lambda r: layer_norm(r, [2, 5, 48]), "layer_norm"),
    "elementwise": (lambda r: elementwise([2, 8, 33]), ""),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_onnxruntime(name):
    rng = np.random.default_rng(1234)
    build, must_schedule = CASES[name]
    model = build(rng)
    feeds = random_feeds(model, rng)

    mod = fused_module(model, NATIVE)
    if must_schedule is not None:
        assert any(must_schedule in n for n in scheduled_names(mod)), prim_funcs(mod).keys()
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

OBJDUMP = shutil.which("llvm-objdump-19") or shutil.which("llvm-objdump")


def _wasm_disassembly(mod, kernel_substring, tmp_path):
    funcs = {
        name: func.with_attr("global_symbol", name)
        for name, func in prim_funcs(mod).items()
        if kernel_substring in name
    }
    assert funcs, prim_funcs(mod).keys()
    lib = tvm.tirx.build(tvm.IRModule(funcs), target=tvm.target.Target(WASM))
    obj = tmp_path / f"{kernel_substring}.o"
    lib.write_to_file(str(obj))
    result = subprocess.run([OBJDUMP, "-d", str(obj)], capture_output=True, text=True, check=True)
    return result.stdout


def _f32x4_arith(disassembly):
    ops = ("f32x4.add", "f32x4.mul", "f32x4.max", "f32x4.relaxed_madd")
    return sum(any(op in line for op in ops) for line in disassembly.splitlines())


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
@pytest.mark.parametrize(
    "name, build, kernel",
    [
        ("dense", lambda r: dense(r, 1, 256, 128), "matmul"),
        ("conv3x3", lambda r: conv(r, 16, 28, 32, 3, pad=1), "conv2d"),
        ("depthwise", lambda r: conv(r, 16, 28, 16, 3, pad=1, group=16), "conv2d"),
    ],
)
def test_wasm_kernels_use_simd128(name, build, kernel, tmp_path):
    model = build(np.random.default_rng(0))
    mod = fused_module(model, WASM)
    assert any(kernel in n for n in scheduled_names(mod)), name
    disassembly = _wasm_disassembly(mod, kernel, tmp_path)
    assert "v128" in disassembly
    # A register tile is at least 4 rows x 4 lanes of vector multiply-adds.
    assert _f32x4_arith(disassembly) >= 8, name
