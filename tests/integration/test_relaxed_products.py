"""Integer products on relaxed SIMD's dot product (`compiler.passes.relaxed_products`): models
quantized to 7-bit weights (onnxruntime's ``reduce_range=True``) and built with
``relaxed-simd = true`` multiply with ``i32x4.relaxed_dot_i8x16_i7x16_add_s`` and give exactly
what the default build (``i32x4.dot_i16x8_s``) gives, within a step of onnxruntime."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tvm
from onnx import numpy_helper
from tvm import te

from tests.support import build
from tests.support.compiler import OBJDUMP, kernel_instructions
from tests.support.steps import worst_steps
from wasm_build import WasmModel
from wasm_build.compiler.passes import relaxed_products
from wasm_build.testing import models, quantized

pytest.importorskip("onnxruntime")

RELAXED_DOT = "i32x4.relaxed_dot_i8x16_i7x16_add_s"
DOT_I16X8 = "i32x4.dot_i16x8_s"


def seven_bit_cnn():
    """Padded 3x3 convs at stride 2 over ReLU outputs (uint8, zero point 0: the padding is
    written out at the shifted zero), a 1x1 conv and a Gemm head, quantized by onnxruntime with
    7-bit weights."""
    g = models.Chain(np.random.default_rng(7), [1, 8, 16, 16])
    g.add("Relu").conv(8, 16, 3, stride=2, pad=1).add("Relu")
    g.conv(16, 32, 1).add("Relu")
    g.conv(32, 16, 3, stride=2, pad=1).add("Relu")
    g.add("GlobalAveragePool").add("Flatten").add("Gemm", g.const([16, 12]))
    return quantized.qdq(g.build(), reduce_range=True)


def _int8_weights(model):
    return [a for a in (numpy_helper.to_array(i) for i in model.graph.initializer) if a.dtype == np.int8]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory):
    root = tmp_path_factory.mktemp("relaxed")
    model = seven_bit_cnn()
    relaxed = build(model, "relaxed", root, relaxed_simd=True).directory / "relaxed.wasm"
    default = build(model, "default", root).directory / "default.wasm"
    return model, relaxed, default


def test_seven_bit_weights_span_up_to_129_values(cnn):
    """The case the rewrite splits (both -64 and 64 in one output channel) is in the model."""
    model, _, _ = cnn
    spans = [np.ptp(a.reshape(a.shape[0], -1).astype(int), axis=1).max() for a in _int8_weights(model) if a.ndim == 4]
    assert spans and max(spans) == 128, spans


def test_relaxed_build_gives_the_default_builds_values(cnn):
    model, relaxed, default = cnn
    for seed in range(3):
        inputs = models.random_inputs(model, seed=seed)
        for got, want in zip(WasmModel(relaxed).run(inputs), WasmModel(default).run(inputs)):
            np.testing.assert_array_equal(got, want)
    worst = worst_steps(model, WasmModel(relaxed), seeds=range(20, 23))
    assert max(worst.values()) <= 1.0 + 1e-3, worst


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_products_run_on_the_relaxed_dot(cnn):
    """Every conv and the Gemm multiply with the relaxed dot in the relaxed build, none with
    `dot_i16x8`; the default build never uses relaxed SIMD."""
    _, relaxed, default = cnn

    def products(path):
        return {k: c for k, c in kernel_instructions(path).items()
                if ("conv2d" in k or "matmul" in k) and not k.startswith("__tvm_ffi")}

    fast = products(relaxed)
    assert sum(1 for c in fast.values() if c[RELAXED_DOT]) >= 4, fast
    assert not any(c[DOT_I16X8] for c in fast.values()), fast
    assert not any(c[RELAXED_DOT] for c in kernel_instructions(default).values())


def test_dynamic_matmuls_on_the_relaxed_dot(tmp_path):
    """``quantize_dynamic``'s MatMulInteger (activations quantized at run time, zero point a
    run-time value) with 7-bit weights: the float outputs onnxruntime gives, on relaxed dots."""
    model = quantized.dynamic(models.mlp(), reduce_range=True)
    wasm = build(model, "mlp", tmp_path, relaxed_simd=True).directory / "mlp.wasm"
    for seed in range(3):
        inputs = models.random_inputs(model, seed=seed)
        for got, want in zip(WasmModel(wasm).run(inputs), models.reference_outputs(model, inputs)):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    if OBJDUMP is not None:
        kernels = {k: c for k, c in kernel_instructions(wasm).items() if not k.startswith("__tvm_ffi")}
        matmuls = {k: c for k, c in kernels.items() if "matmul" in k}
        assert matmuls and all(c[RELAXED_DOT] for c in matmuls.values()), matmuls
        # The activations quantized to int8 (float32 in) narrow whole vectors, not lane by lane
        # (`schedules.spatial.narrows`: 64 int8 lanes a step were half inserted one by one).
        quantizing = {k: c for k, c in kernels.items() if "round" in k}
        assert quantizing and not any(c["i8x16.replace_lane"] for c in quantizing.values()), quantizing


def test_relaxed_build_ships_the_int8_weights_once(tmp_path):
    """Wide 7-bit convs (many channels spanning 129 values): their offset weights, repeated
    channels and per-channel sums are made at init where that is smaller than shipping them.
    Beyond the default build's weights the relaxed build carries only small constants: vectors
    of ones (for the activations' sums), repeated channels' indices, per-channel values of
    narrow products; the repeated channels' weights are not among them."""
    g = models.Chain(np.random.default_rng(11), [1, 64, 12, 12])
    g.add("Relu").conv(64, 128, 3, stride=2, pad=1).add("Relu").conv(128, 128, 1).add("Relu")
    g.add("GlobalAveragePool").add("Flatten").add("Gemm", g.const([128, 10]))
    float_model = g.build()
    for init in float_model.graph.initializer:
        w = numpy_helper.to_array(init).copy()
        if w.ndim == 4:  # every output channel holds both ends once (64 and -64 once quantized)
            top = np.abs(w).reshape(len(w), -1).max(axis=1)
            w *= 0.5
            rows = np.arange(len(w))
            w[rows, rows % (w.shape[1] // 4), 0, 0], w[rows, w.shape[1] - 1, 0, 0] = top, -top
            init.CopyFrom(numpy_helper.from_array(w, init.name))
    model = quantized.qdq(float_model, reduce_range=True)
    relaxed = build(model, "relaxed", tmp_path, relaxed_simd=True).directory / "relaxed.json"
    default = build(model, "default", tmp_path).directory / "default.json"
    manifests = {path.stem: json.loads(path.read_text()) for path in (relaxed, default)}
    added = manifests["relaxed"]["weights"]["nbytes"] - manifests["default"]["weights"]["nbytes"]
    assert manifests["relaxed"]["derived_nbytes"] > 0  # something is made at init

    repeated = small = 0
    for weights in _int8_weights(model):
        hwio = weights.transpose(2, 3, 1, 0) if weights.ndim == 4 else weights  # Gemm: [K, N]
        offsets = relaxed_products.offset_weights(hwio, channel_axis=hwio.ndim - 1, depth_axis=hwio.ndim - 2)
        if offsets is None:
            continue
        repeated += offsets.weights.nbytes - hwio.nbytes
        depth = int(np.prod(hwio.shape[:-1]))
        # ones (uint8, 4 lanes), indices (int32), lows and sums (int32) below the init threshold
        small += 4 * depth + 4 * offsets.repeated.size + 8 * hwio.shape[-1]
    assert repeated > 2 * small, (repeated, small)  # the case is in the model
    assert added <= small, (added, small, repeated)
    for seed in range(2):  # and what init makes gives the default build's values
        inputs = models.random_inputs(model, seed=seed)
        wasm = [WasmModel(path.with_suffix(".wasm")).run(inputs) for path in (relaxed, default)]
        for got, want in zip(*wasm):
            np.testing.assert_array_equal(got, want)


def _native(compute, *arrays_and_args):
    """``compute`` (a te kernel of `relaxed_products`) built for this machine and run."""
    tensors = [te.placeholder(a.shape, str(a.dtype), name=f"in{i}") for i, a in enumerate(arrays_and_args) if isinstance(a, np.ndarray)]
    scalars = [a for a in arrays_and_args if not isinstance(a, np.ndarray)]
    result = compute(*tensors, *scalars)
    kernel = tvm.compile(te.create_prim_func([*tensors, result]), target="llvm")
    out = tvm.runtime.tensor(np.zeros([int(d) for d in result.shape], str(result.dtype)))
    kernel(*(tvm.runtime.tensor(a) for a in arrays_and_args if isinstance(a, np.ndarray)), out)
    return out.numpy()


@pytest.mark.parametrize("shape", [(64, 24), (3, 3, 16, 8), (1, 1, 12, 20)])
def test_init_kernels_make_the_offsets_the_rewrite_planned(shape):
    """The kernels run at init (`offset_filter`, `channel_lows`, `channel_sums`) make from the
    int8 weights what `offset_weights` planned on them at build time, repeated channels and
    their padding included."""
    rng = np.random.default_rng(len(shape) + shape[-1])
    weights = rng.integers(-63, 64, size=shape).astype(np.int8)
    for channel in range(0, shape[-1], 3):  # some channels span 129 values: -64 and 64
        taps = weights[..., channel].reshape(-1)
        taps[rng.integers(taps.size)], taps[0] = 64, -64
        weights[..., channel] = taps.reshape(shape[:-1])
    offsets = relaxed_products.offset_weights(weights, channel_axis=len(shape) - 1, depth_axis=len(shape) - 2)
    assert offsets is not None and offsets.rows > 0 and offsets.repeated.size % 4 == 0
    made = _native(relaxed_products.offset_filter, weights, offsets.repeated, offsets.rows)
    np.testing.assert_array_equal(made, offsets.weights)
    np.testing.assert_array_equal(_native(relaxed_products.channel_lows, weights), offsets.low)
    np.testing.assert_array_equal(_native(relaxed_products.channel_sums, weights, 128), 128 * offsets.sums)
    unrepeated = weights[..., 1::3]  # no channel spans 129: nothing read twice
    plain = relaxed_products.offset_weights(unrepeated, channel_axis=len(shape) - 1, depth_axis=len(shape) - 2)
    assert plain.repeated.size == 0
    np.testing.assert_array_equal(_native(relaxed_products.offset_filter, np.ascontiguousarray(unrepeated)), plain.weights)


@pytest.mark.parametrize(
    "make, ndim",
    [(seven_bit_cnn, 4), (lambda: quantized.dynamic(models.mlp(), reduce_range=True), 2)],
    ids=["static convs with biases", "dynamic matmuls"],
)
def test_shift_terms_ship_as_no_constant_of_their_own(make, ndim, tmp_path):
    """A product over activations shifted by -128 adds back ``128 * sum W`` per output channel:
    joined with the bias a static model adds next (the CNN's convs; its Gemm has none), or with
    the zero-point correction of a dynamically quantized one (``(128 - z) * sum W``; the MLP's
    10-class head crops padded channels in between), it ships as no constant of its own."""
    from tvm import relax

    from wasm_build.compiler.passes import graph_passes
    from wasm_build.compiler.pipeline import optimize_passes
    from wasm_build.compiler.target import TargetOptions
    from wasm_build.frontends.onnx import load_onnx

    model = make()
    path = tmp_path / "model.onnx"
    path.write_bytes(model.SerializeToString())
    target = TargetOptions(relaxed_simd=True).tvm_target()
    with target, tvm.transform.PassContext(opt_level=3):
        mod = tvm.transform.Sequential([*optimize_passes(), *graph_passes(target)])(load_onnx(path, {}, None).module)
    constants = []

    def visit(expr):
        if isinstance(expr, tvm.ir.expr.Constant) and isinstance(expr.value, tvm.runtime.Tensor):
            constants.append(expr.value.numpy())

    relax.analysis.post_order_visit(mod["main"], visit)
    shifts = [128 * (w.astype(np.int64).sum(axis=(1, 2, 3)) if w.ndim == 4 else w.astype(np.int64).sum(axis=0))
              for w in _int8_weights(model) if w.ndim == ndim]  # conv [O, I, kh, kw], matmul [K, N]
    assert shifts
    found = [c for c in constants if c.dtype == np.int32 and c.ndim >= 1 and any(
        c.size >= s.size and np.array_equal(c.reshape(-1)[: s.size], s) for s in shifts)]
    assert not found, found  # the builds' values: the tests above


def test_dynamically_quantized_encoder_with_fused_multiply_adds_passes_its_smoke_test(tmp_path):
    """With relaxed SIMD LLVM fuses float multiply-adds (`f32x4.relaxed_madd`, one rounding
    where the native reference has two): in a dynamically quantized encoder a value an ulp apart
    ends a quantization step apart after a DynamicQuantizeLinear, and at 65 tokens the smoke
    test failed the build against the native reference (0.024 off, one step of the output's
    range over 255). The native reference now allows such steps as onnxruntime does."""
    from wasm_build.wasm.steps import run_time_steps

    model = quantized.dynamic(models.sequence_encoder(d=128, heads=4, layers=2), reduce_range=True)
    directory = build(model, "enc", tmp_path, relaxed_simd=True, inputs={"tokens": {"shape": [1, 65, 128]}}).directory
    if OBJDUMP is not None:
        assert any(c["f32x4.relaxed_madd"] for c in kernel_instructions(directory / "enc.wasm").values())
    inputs = models.random_inputs(model, seed=1, dims={"seq": 65})
    (got,), (want,) = WasmModel(directory / "enc.wasm").run(inputs), models.reference_outputs(model, inputs)
    assert np.abs(got - want).max() <= run_time_steps(want)
