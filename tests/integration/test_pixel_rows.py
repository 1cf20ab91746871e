"""1x1 convs on planes whose width is not a multiple of 4: a product over the pixels (padded
to whole 4-pixel tile rows and cropped back where their count is not one either, 7x7), so a
row tile's four pixels are packed where the tile needs them (`passes.pixel_rows`)."""

from __future__ import annotations

from tests.support import build

from wasm_build.testing.models import Chain

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")
pytest.importorskip("onnxruntime")

from tests.support.compiler import (  # noqa: E402
    assert_epilogue_writes_only_the_output,
    NATIVE,
    WASM,
    fused_module,
    onnxruntime_output,
    prim_funcs,
    random_feeds,
    run_native,
)
from wasm_build.compiler.tiles import PACKED_ROWS_ATTR  # noqa: E402


def inverted_residual_tail(rng, channels=32, expanded=64, size=7):
    """Expand, ReLU, project, + the block's input: the 1x1 convs of MobileNetV2's last blocks."""
    g = Chain(rng, [1, channels, size, size])
    g.conv(channels, expanded, 1).add("Relu")
    g.conv(expanded, channels, 1)
    return g.add("Add", "x").build()


def pixel_row_kernels(mod):
    return {name: func for name, func in prim_funcs(mod).items() if "pixel_rows" in name}




def test_7x7_pointwise_convs_tile_four_padded_pixels_and_match_onnxruntime():
    rng = np.random.default_rng(1)
    model = inverted_residual_tail(rng)
    mod = fused_module(model, NATIVE, graph_passes=True)
    kernels = pixel_row_kernels(mod)
    assert len(kernels) == 2, sorted(prim_funcs(mod))
    for name, func in kernels.items():
        assert len(func.attrs[PACKED_ROWS_ATTR]) == 1, name
        out_channels = int(func.params[-1].shape[-1])
        # The register tiles accumulate 52 = 13 x 4 pixel rows.
        assert f"T.sblock_alloc_buffer((T.int64(52), T.int64({out_channels})))" in func.script(), name
    # The residual add stays in the projection's kernel.
    assert any("add" in name and name.count("add") == 2 for name in kernels), sorted(kernels)
    feeds = random_feeds(model, rng)
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)


def test_the_epilogue_writes_only_the_image():
    """The bias/ReLU/residual epilogue reads the 52 rows and writes the 49 pixels: it is not
    folded into the tile write-back, which would store the 3 padding rows past the output."""
    mod = fused_module(inverted_residual_tail(np.random.default_rng(2)), NATIVE, graph_passes=True)
    for func in pixel_row_kernels(mod).values():
        assert_epilogue_writes_only_the_output(func)


def test_weights_over_the_cache_size_pack_the_pixels_per_block_of_lane_tiles():
    """320 -> 1280 channels (1.6 MB of weights): two blocks of 80 lane tiles (800 KB of weights
    each) go outermost, and the padded pixel rows are packed per block and row tile (so stored
    pre-splat), not once per call for every lane tile to splat by shuffles."""
    g = Chain(np.random.default_rng(3), [1, 320, 7, 7])
    mod = fused_module(g.conv(320, 1280, 1).add("Relu").build(), NATIVE, graph_passes=True)
    ((name, func),) = pixel_row_kernels(mod).items()
    (packed,) = func.attrs[PACKED_ROWS_ATTR]
    sch = tvm.s_tir.Schedule(func)
    pack_loops = [int(sch.get(loop).extent) for loop in sch.get_loops(sch.get_sblock(packed))]
    assert pack_loops == [2, 13, 320, 4], (name, pack_loops)  # blocks, row tiles of 52 pixels, channels, rows


@pytest.mark.parametrize("shape, stride", [
    ((1, 32, 7, 8), 1),    # 7 rows of 8 pixels: 4-pixel rows along the image rows
    ((1, 32, 1, 1), 1),    # 1 pixel: padding to 4 would be 3 wasted rows for 1
    ((1, 32, 5, 5), 1),    # 25 pixels: 3 padding rows are over 1/16 of them
    ((1, 32, 14, 14), 2),  # strided: the conv reads every other pixel
])
def test_other_pointwise_convs_are_left_alone(shape, stride):
    g = Chain(np.random.default_rng(4), list(shape))
    w, b = g.const([48, 32, 1, 1]), g.const([48])
    g.add("Conv", w, b, kernel_shape=[1, 1], strides=[stride, stride])
    mod = fused_module(g.add("Relu").build(), NATIVE, graph_passes=True)
    assert pixel_row_kernels(mod) == {}, sorted(prim_funcs(mod))


def test_14_wide_planes_are_products_over_their_pixels_without_padding():
    """14 x 14 = 196 pixels come in fours, their image rows do not: the product needs no
    padding rows (its tiles accumulate the 196 pixels) and matches onnxruntime."""
    rng = np.random.default_rng(7)
    model = inverted_residual_tail(rng, size=14)
    mod = fused_module(model, NATIVE, graph_passes=True)
    kernels = pixel_row_kernels(mod)
    assert len(kernels) == 2, sorted(prim_funcs(mod))
    for name, func in kernels.items():
        out_channels = int(func.params[-1].shape[-1])
        assert f"T.sblock_alloc_buffer((T.int64(196), T.int64({out_channels})))" in func.script(), name
    feeds = random_feeds(model, rng)
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)


def test_padded_pixel_rows_build_for_wasm_and_match_onnxruntime_in_wasmtime(tmp_path):
    """The whole build (smoke-tested in wasmtime against native TVM) of a 7x7 expansion with
    small weights (a copy per row tile) and one with weights over 1 MiB (blocks of lane tiles)."""
    from wasm_build import WasmModel

    g = Chain(np.random.default_rng(5), [1, 32, 7, 7])
    model = g.conv(32, 256, 1).add("Relu").conv(256, 1280, 1).add("Relu").build()
    assert len(pixel_row_kernels(fused_module(model, WASM, graph_passes=True))) == 2
    result = build(model, "pixelrows", tmp_path)
    feeds = random_feeds(model, np.random.default_rng(6))
    (got,) = WasmModel(result.directory / "pixelrows.wasm").run(feeds)
    np.testing.assert_allclose(got, onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)
