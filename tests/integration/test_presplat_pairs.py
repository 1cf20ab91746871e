"""Integer products over pre-splat activation pairs (schedules.integer_contraction's copies,
compiler.tir.presplat_pairs): int16 pairs are copied once per row tile (or once per call),
four copies of each pair side by side, and every reduction step loads a row's broadcast as one
vector."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.support import build
from tests.support.quantized_layers import qdq_dense
from wasm_build import WasmModel
from wasm_build.testing import quantized
from wasm_build.testing.models import Chain, GraphBuilder, conv, random_inputs, reference_outputs, relu6
from wasm_build.wasm.steps import output_steps

tvm = pytest.importorskip("tvm")
pytest.importorskip("onnxruntime")

from tvm.script import tirx as T  # noqa: E402

from tests.support.compiler import OBJDUMP, innermost_loops, prim_funcs, scheduled_module  # noqa: E402
from wasm_build.compiler.tiles import PRESPLAT_PAIRS_ATTR  # noqa: E402
from wasm_build.compiler.tir.presplat_pairs import presplat_activation_pairs  # noqa: E402


def qdq_pointwise(c_in, c_out, h, w, seed=0):
    """A 1x1 conv + bias + ReLU6 on an NCHW image, quantized by onnxruntime (QDQ, per channel)."""
    g = GraphBuilder("pointwise", seed)
    x = g.input("x", [1, c_in, h, w])
    g.output(relu6(g, conv(g, x, c_in, c_out, 1, bias=True)), "y", [1, c_out, h, w])
    return quantized.qdq(g.build())


def qdq_inverted_residual_tail(size, channels=32, expanded=64, seed=0):
    """Expand, ReLU, project, + the block's input (MobileNetV2's 1x1 convs), quantized."""
    g = Chain(np.random.default_rng(seed), [1, channels, size, size])
    g.conv(channels, expanded, 1).add("Relu")
    g.conv(expanded, channels, 1)
    return quantized.qdq(g.add("Add", "x").build())


def qdq_conv(c_in, c_out, size, kernel, stride, seed=0):
    """A conv (padded to keep the size at stride 1) + bias + ReLU, quantized (QDQ, per channel)."""
    g = Chain(np.random.default_rng(seed), [1, c_in, size, size])
    return quantized.qdq(g.conv(c_in, c_out, kernel, stride=stride, pad=kernel // 2).add("Relu").build())


def product_kernel(mod, name):
    ((func,),) = [[f for n, f in prim_funcs(mod).items() if name in n]]
    return func


@pytest.mark.parametrize(
    "model, kernel",
    [(qdq_pointwise(48, 64, 8, 16), "conv2d"), (qdq_dense(197, 96, 48), "matmul")],
    ids=["1x1 conv", "197 rows"],
)
def test_products_of_int16_rows_copy_their_pairs_presplat(tmp_path, model, kernel):
    """A 1x1 conv's pixels and a dense layer's rows (padded to whole tiles) take tiles of two
    rows or more and two lane vectors or more over a copy named for the pre-splat step."""
    func = product_kernel(scheduled_module(model, tmp_path), kernel)
    (copy,) = func.attrs[PRESPLAT_PAIRS_ATTR]
    script = func.script()
    assert f'T.sblock("{copy}")' in script
    assert "llvm.wasm.dot" in script


@pytest.mark.parametrize("model, padded", [
    (qdq_conv(32, 64, 16, 3, 1), (1, 18, 18, 16, 2)),
    (qdq_conv(32, 64, 32, 3, 2), (1, 34, 34, 16, 2)),
], ids=["3x3", "3x3 stride 2"])
def test_convs_over_windows_copy_their_pairs_once_per_call(tmp_path, model, padded):
    """A 3x3 conv's tile rows read overlapping windows (a strided conv's, every other column),
    never one row tile's slice of the activation: the pairs are copied once per call, the whole
    padded image, with the padding computed in that copy (no separate padding pass)."""
    func = product_kernel(scheduled_module(model, tmp_path), "conv2d")
    (copy,) = func.attrs[PRESPLAT_PAIRS_ATTR]
    script = func.script()
    shape = ", ".join(f"T.int64({n})" for n in padded)
    assert f'{copy} = T.sblock_alloc_buffer(({shape}), "int16")' in script
    assert 'T.sblock("pad_temp")' not in script


def test_a_copy_four_times_the_pixels_read_is_not_made(tmp_path):
    """A 1x1 conv of stride 2 reads a quarter of its input's pixels: a copy of the whole input
    would cost more than the broadcasts it saves (its kernel ran 15% slower), so its pairs stay
    splat by lane shuffles."""
    func = product_kernel(scheduled_module(qdq_conv(64, 128, 56, 1, 2), tmp_path), "conv2d")
    assert "llvm.wasm.dot" in func.script()
    assert not func.attrs.get(PRESPLAT_PAIRS_ATTR)


def test_a_copy_past_its_byte_budget_is_not_made(tmp_path):
    """A stride-2 3x3 conv over a 192 x 192 x 32 image would copy 9.6 MB pre-splat (8 bytes a
    value): past `_WHOLE_COPY_BYTES`, its pairs stay splat by lane shuffles; the same conv over
    64 x 64 (1.1 MB) copies them."""
    for size, copied in ((192, False), (64, True)):
        func = product_kernel(scheduled_module(qdq_conv(32, 64, size, 3, 2), tmp_path), "conv2d")
        assert "llvm.wasm.dot" in func.script()
        assert bool(func.attrs.get(PRESPLAT_PAIRS_ATTR)) == copied, size


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cache = {}

    def _get(name, model):
        if name not in cache:
            cache[name] = build(model, name, tmp_path_factory.mktemp(name)).directory / f"{name}.wasm"
        return cache[name]

    return _get


def dot_loops(wasm_path, kernel):
    text = subprocess.run([OBJDUMP, "-d", str(wasm_path)], capture_output=True, text=True, check=True).stdout
    start = text.index("_compute_>:", text.index(kernel))
    body = text[start : text.index("\n\n", start)]
    return [loop for loop in innermost_loops(body) if any("dot_i16x8_s" in i for i in loop)]


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
@pytest.mark.parametrize("name, model", [
    ("pointwise", qdq_pointwise(48, 64, 8, 16)),
    ("conv3x3", qdq_conv(32, 64, 16, 3, 1, seed=3)),
], ids=["copied per row tile", "copied once per call"])
def test_reduction_steps_load_the_broadcast_pairs_as_vectors(built, name, model):
    """The reduction loops broadcast no pair themselves: no `v128.load32_splat` (a scalar load,
    a move and a broadcast in Cranelift's x86 code, two of them on the port that widens the
    weights) and no lane shuffle; every row's pair is one `v128.load`, next to the weights'
    widening loads (fails without `tir.presplat_pairs`: one `load32_splat` per row)."""
    loops = dot_loops(built(name, model), f"{name}_fused_conv2d")
    assert loops
    for loop in loops:
        assert not [i for i in loop if "load32_splat" in i or "i8x16.shuffle" in i], loop
        dots = sum("dot_i16x8_s" in i for i in loop)
        widened = sum("i16x8.load8x8_s" in i for i in loop)
        vector_loads = sum(i.startswith("v128.load ") for i in loop)
        assert widened >= 2 and dots == widened * vector_loads and vector_loads >= 2, (dots, widened, vector_loads)


@pytest.mark.parametrize("name, model", [
    ("pointwise", qdq_pointwise(48, 64, 8, 16)),
    ("pointwise14", qdq_pointwise(32, 24, 14, 14, seed=1)),
    ("dense197", qdq_dense(197, 96, 48)),
    ("tail7", qdq_inverted_residual_tail(7, seed=7)),
    ("tail14", qdq_inverted_residual_tail(14, seed=14)),
    ("conv3x3", qdq_conv(32, 64, 16, 3, 1, seed=3)),
    ("conv3x3s2", qdq_conv(32, 64, 32, 3, 2, seed=4)),
    ("swept12", qdq_dense(12, 1024, 1152, seed=5)),
])
def test_presplat_products_match_onnxruntime_in_wasmtime(built, name, model):
    """Built and run in wasmtime, within one output quantization step of onnxruntime (197 rows
    and 7x7's 49 pixels padded to whole row tiles: the copy reads or computes the padding's
    zeros too; 3x3 convs and a product whose lane tiles sweep every row copy once per call)."""
    wasm = WasmModel(built(name, model))
    steps = output_steps(model)
    assert steps
    for seed in range(3):
        inputs = random_inputs(model, seed=seed)
        ((got,), (want,)) = wasm.run(inputs), reference_outputs(model, inputs)
        assert np.abs(got.astype(np.float64) - want).max() <= next(iter(steps.values())) * (1 + 1e-3)


@pytest.mark.parametrize("size, pixels", [(7, 52), (14, 196)])
def test_pointwise_convs_on_planes_of_ragged_width_tile_four_pixels(tmp_path, size, pixels):
    """Quantized 1x1 convs over 7- and 14-wide planes are products over their pixels
    (`passes.pixel_rows`, zero pixels up to a multiple of 4 for 7x7's 49), whose 4-pixel row tiles
    copy their pairs pre-splat, the pixels computed in that copy: no separate pass writes the
    padded pixels. Over the image's columns the tile would have 7 or 2 rows."""
    mod = scheduled_module(qdq_inverted_residual_tail(size), tmp_path)
    kernels = {n: f for n, f in prim_funcs(mod).items() if "pixel_rows" in n}
    assert len(kernels) == 2, sorted(prim_funcs(mod))
    for name, func in kernels.items():
        script = func.script()
        (copy,) = func.attrs[PRESPLAT_PAIRS_ATTR]
        channels = int(func.params[0].shape[-1])
        assert f"{copy} = T.sblock_alloc_buffer((T.int64({pixels // 4}), T.int64({channels // 2}), T.int64(4), T.int64(2))" in script, name
        assert 'T.sblock("pixel_rows")' not in script, name


@T.prim_func
def _pairs_broadcast(a: T.Buffer((16,), "int16"), w: T.Buffer((32,), "int8"), c: T.Buffer((8,), "int32")):
    T.func_attr({PRESPLAT_PAIRS_ATTR: ["p"]})
    p = T.alloc_buffer((8,), "int16x2")
    for i in range(8):
        p[i] = a[T.Ramp(i * 2, 1, 2)]
    for k in range(8):
        c[T.Ramp(0, 1, 4)] = c[T.Ramp(0, 1, 4)] + T.call_llvm_pure_intrin(
            "int32x4", "llvm.wasm.dot", T.Cast("int16x8", w[T.Ramp(0, 1, 8)]),
            T.reinterpret("int16x8", T.Broadcast(T.reinterpret("int32", p[k]), 4)))


@T.prim_func
def _int16_pairs_broadcast(a: T.Buffer((16,), "int16"), w: T.Buffer((32,), "int8"), c: T.Buffer((8,), "int32")):
    T.func_attr({PRESPLAT_PAIRS_ATTR: ["p"]})
    p = T.alloc_buffer((16,), "int16")
    for i in range(8):
        p[T.Ramp(i * 2, 1, 2)] = a[T.Ramp(i * 2, 1, 2)]
    for k in range(8):
        c[T.Ramp(0, 1, 4)] = c[T.Ramp(0, 1, 4)] + T.call_llvm_pure_intrin(
            "int32x4", "llvm.wasm.dot", T.Cast("int16x8", w[T.Ramp(0, 1, 8)]),
            T.reinterpret("int16x8", T.Broadcast(T.reinterpret("int32", p[T.Ramp(k * 2, 1, 2)]), 4)))


def test_pairs_are_stored_four_times_and_loaded_as_one_vector():
    script = presplat_activation_pairs()(tvm.IRModule({"f": _pairs_broadcast})).script()
    assert 'T.alloc_buffer((8,), "int16x8")' in script
    assert 'p[i] = T.reinterpret("int16x8", T.Broadcast(T.reinterpret("int32", a[T.Ramp(i * 2, 1, 2)]), 4))' in script
    assert 'T.reinterpret("int32x4", p[k])' in script and "T.Broadcast(T.reinterpret(\"int32\", p[k])" not in script


def test_pairs_of_an_int16_copy_are_stored_four_times_and_loaded_as_one_vector():
    """A copy TVM left an int16 buffer (pairs as two values) becomes one four times longer."""
    script = presplat_activation_pairs()(tvm.IRModule({"f": _int16_pairs_broadcast})).script()
    assert 'T.alloc_buffer((64,), "int16")' in script
    assert 'p[i * 8:i * 8 + 8] = T.reinterpret("int16x8", T.Broadcast(T.reinterpret("int32", a[T.Ramp(i * 2, 1, 2)]), 4))' in script
    assert 'T.reinterpret("int32x4", p[T.Ramp(k * 8, 1, 8)])' in script


def test_a_copy_read_another_way_is_left_as_it_is():
    """A pair read other than as a broadcast (or stored other than whole) keeps its buffer:
    four copies of each pair would give that read another element."""
    body = _pairs_broadcast.body
    allocation, _copy, products = body.seq
    c = products.body.buffer  # the accumulators' store
    whole = tvm.tirx.reinterpret("int32", tvm.tirx.BufferLoad(allocation.buffer, [tvm.tirx.const(3, "int32")]))
    read_whole = tvm.tirx.BufferStore(c, whole, [tvm.tirx.const(0, "int32")])
    mod = tvm.IRModule({"f": _pairs_broadcast.with_body(tvm.tirx.SeqStmt([*body.seq, read_whole]))})
    assert presplat_activation_pairs()(mod).script() == mod.script()
