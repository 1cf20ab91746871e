"""Convs with a window or a stride as products over their patches, computed in the packed
4-pixel tile rows (wasm_build.patch_rows)."""

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
from wasm_build.compiler.schedules.analysis import all_blocks as _all_blocks  # noqa: E402
from wasm_build.compiler.tiles import PACKED_ROWS_ATTR  # noqa: E402


def patch_row_kernels(mod):
    return {name: func for name, func in prim_funcs(mod).items() if "patch_rows" in name}


def _block_names(func) -> set[str]:
    sch = tvm.s_tir.Schedule(func)
    return {sch.get(block).name_hint for block in _all_blocks(sch)}


def single_conv(seed, shape, c_out, kernel, stride, pads):
    g = Chain(np.random.default_rng(seed), list(shape))
    w, b = g.const([c_out, shape[1], *kernel]), g.const([c_out])
    strides = list(stride) if isinstance(stride, tuple) else [stride] * 2
    g.add("Conv", w, b, kernel_shape=list(kernel), strides=strides, pads=list(pads))
    return g.add("Relu").build()


@pytest.mark.parametrize("shape, c_out, kernel, stride, pads", [
    ((1, 3, 32, 32), 16, (3, 3), 2, (1, 1, 1, 1)),    # an RGB stem: 16x16 outputs
    ((1, 3, 28, 28), 8, (7, 7), 2, (3, 3, 3, 3)),     # ResNet's 7x7 stem, smaller
    ((1, 16, 14, 14), 32, (3, 3), 2, (1, 1, 1, 1)),   # 7x7 outputs: 52 padded pixel rows
    ((1, 16, 14, 14), 24, (1, 1), 2, (0, 0, 0, 0)),   # a strided 1x1 (ResNet's downsampling)
    ((1, 8, 9, 12), 16, (3, 2), 1, (2, 0, 1, 1)),     # a rectangular window, asymmetric pads
    ((2, 4, 11, 10), 8, (3, 3), (3, 2), (1, 1, 1, 1)),  # two images, strides 3 and 2: 2 x 4 x 5 pixels
])
def test_windowed_and_strided_convs_become_patch_products_and_match_onnxruntime(shape, c_out, kernel, stride, pads):
    model = single_conv(1, shape, c_out, kernel, stride, pads)
    mod = fused_module(model, NATIVE, graph_passes=True)
    ((name, func),) = patch_row_kernels(mod).items()
    assert len(func.attrs[PACKED_ROWS_ATTR]) == 1, name
    # The patches are computed in their packed copy (no block of their own stores them whole).
    assert _block_names(func) >= {"patch_rows_global", "conv2d_patch_rows_update"}, _block_names(func)
    assert "patch_rows" not in _block_names(func), _block_names(func)
    feeds = random_feeds(model, np.random.default_rng(2))
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)


def test_the_epilogue_writes_only_the_image():
    """49 output pixels are tiled as 52 rows: the bias/ReLU epilogue is not folded into the
    tile write-back, which would store the 3 padding rows past the output."""
    mod = fused_module(single_conv(3, (1, 16, 14, 14), 32, (3, 3), 2, (1, 1, 1, 1)), NATIVE, graph_passes=True)
    ((_name, func),) = patch_row_kernels(mod).items()
    assert_epilogue_writes_only_the_output(func)


def test_weights_over_the_cache_size_pack_the_patches_once_per_call():
    """3x3 256 -> 512 on a 7x7 plane (4.7 MB of weights): lane tiles go outermost, so the
    patches are packed once, at the top of the kernel, not once per lane tile."""
    mod = fused_module(single_conv(4, (1, 256, 7, 7), 512, (3, 3), 1, (1, 1, 1, 1)), NATIVE, graph_passes=True)
    ((name, func),) = patch_row_kernels(mod).items()
    (packed,) = func.attrs[PACKED_ROWS_ATTR]
    sch = tvm.s_tir.Schedule(func)
    pack_loops = [int(sch.get(loop).extent) for loop in sch.get_loops(sch.get_sblock(packed))]
    assert pack_loops[0] == 52, (name, pack_loops)


def test_patches_over_the_cache_size_with_weights_over_it_stay_direct():
    """3x3 256 -> 256 on 28x28: 2.4 MB of weights put lane tiles outermost, and its patches
    (7 MB) would be packed whole and swept once per lane tile."""
    mod = fused_module(single_conv(6, (1, 256, 28, 28), 256, (3, 3), 1, (1, 1, 1, 1)), NATIVE, graph_passes=True)
    assert patch_row_kernels(mod) == {}, sorted(prim_funcs(mod))


@pytest.mark.parametrize("kernel, stride, group, dilation, channels, size", [
    ((1, 1), 1, 1, 1, 16, 8),    # a plain 1x1 conv: a product already
    ((3, 3), 1, 16, 1, 16, 8),   # depthwise
    ((3, 3), 1, 1, 2, 16, 8),    # dilated
    ((10, 4), 2, 1, 1, 1, 20),   # one input channel (the KWS CNN's stem)
    ((3, 3), 1, 1, 1, 16, 5),    # 25 pixels: 3 padding rows are over 1/16 of them
])
def test_other_convs_are_left_alone(kernel, stride, group, dilation, channels, size):
    g = Chain(np.random.default_rng(5), [1, channels, size, size])
    w, b = g.const([16, channels // group, *kernel]), g.const([16])
    pads = [(k - 1) * dilation // 2 for k in kernel] * 2
    g.add("Conv", w, b, kernel_shape=list(kernel), strides=[stride] * 2, pads=pads, group=group,
          dilations=[dilation] * 2)
    mod = fused_module(g.add("Relu").build(), NATIVE, graph_passes=True, winograd_budget=0.0)
    assert patch_row_kernels(mod) == {}, sorted(prim_funcs(mod))


def test_patch_products_build_for_wasm_and_match_onnxruntime_in_wasmtime(tmp_path):
    """The whole build (smoke-tested in wasmtime against native TVM): an RGB stem (a packed
    copy per row tile), a strided 1x1 conv, and a 7x7-plane 3x3 conv with weights over 1 MiB
    (patches packed once per call, 52 rows cropped to 49)."""
    from wasm_build import WasmModel

    g = Chain(np.random.default_rng(6), [1, 3, 28, 28])
    g.conv(3, 32, 3, stride=2, pad=1).add("Relu")       # 14x14
    g.conv(32, 256, 1, stride=2).add("Relu")            # 7x7
    model = g.conv(256, 256, 3, pad=1).add("Relu").build()
    assert len(patch_row_kernels(fused_module(model, WASM, graph_passes=True, winograd_budget=0.0))) == 3
    result = build(model, "patchrows", tmp_path, winograd_budget=0.0)
    feeds = random_feeds(model, np.random.default_rng(7))
    (got,) = WasmModel(result.directory / "patchrows.wasm").run(feeds)
    np.testing.assert_allclose(got, onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)
