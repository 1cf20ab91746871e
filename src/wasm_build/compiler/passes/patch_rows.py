"""Direct convolutions as products over packed image patches.

The contraction schedule reaches its best rate (4 output pixels by 8 output channels,
the 4 pixels' inputs packed side by side and splat by lane shuffles) only when the
register tile's 4 rows read one operand in consecutive positions: a matrix product's
rows, a 1x1 conv's pixels. A conv with a window or a stride reads overlapping or strided
inputs, so its direct schedule splats every input value on its own: stems (3 input
channels), strided 3x3 and 1x1 convs ran at half to three quarters of the 1x1 convs'
rate (ResNet-18: 8 GMAC/s against 14).

:func:`patch_rows_pass` rewrites such a conv as a product over its patches (im2col):
``out[p, o] = sum(patch[p, kh, kw, c] * weight[kh, kw, c, o])``, where ``patch`` is a
block computed inside the packed copy of each 4-pixel tile row, so the patches are never
stored whole. Pixels are padded with zero rows to a multiple of 4 (as in
:mod:`wasm_build.pixel_rows`) and cropped back after the product.
"""

from __future__ import annotations

import numpy as np

import tvm
from tvm import relax, te, tirx

from .conv_rewrite import conv_rewrite_pass, emit_conv_kernel, is_plain_nhwc_conv, nbytes, padding_rows, static_float32_shape
from ..tiles import CACHE_BYTES, COMPUTED_ROWS_ATTR, PACKED_ROWS


def patch_rows_pass() -> tvm.transform.Pass:
    """Rewrite NHWC convs with a window or a stride as products over patches (module doc)."""
    return conv_rewrite_pass("WasmPatchRows", eligible, _emit)


def eligible(call: relax.Call) -> bool:
    """An undilated, ungrouped NHWC/HWIO conv with constant float32 weights over static shapes,
    with a window or a stride (plain 1x1 convs are products already) and more than one input
    channel, whose output pixels pad to a multiple of 4 at little cost."""
    if not is_plain_nhwc_conv(call, strided=True):
        return False
    weight = call.args[1]
    window = tuple(int(k) for k in weight.value.shape[:2])
    strides = tuple(int(s) for s in call.attrs.strides)
    padding = tuple(int(p) for p in call.attrs.padding)
    if window == (1, 1) and strides == (1, 1) and not any(padding):
        return False
    # One input channel: every patch value is a load of its own with its own bounds checks,
    # and the packed copy cost more than it saved (the KWS CNN's 10x4 stem: 0.10 -> 0.15 ms).
    if int(weight.value.shape[2]) < 2:
        return False
    out_shape = static_float32_shape(call)
    if len(out_shape) != 4:
        return False
    pixels = int(np.prod(out_shape[:3]))
    extra_rows = padding_rows(pixels, PACKED_ROWS)
    if extra_rows is None:
        return False
    # Weights over the cache size put lane tiles outermost, and the patches are then packed
    # once per call and swept once per lane tile: only worth it while they fit in cache
    # (ResNet-18's 7x7-plane 3x3 convs: 958 KB; a 3x3 256->256 conv on 28x28 would need 7 MB).
    patch_bytes = (pixels + extra_rows) * int(np.prod(weight.value.shape[:3])) * 4
    return nbytes(weight.value) <= CACHE_BYTES or patch_bytes <= CACHE_BYTES


def conv2d_patches_nhwc(data: te.Tensor, weight: te.Tensor, strides, padding) -> te.Tensor:
    """``data [N, H, W, C]`` convolved with ``weight [KH, KW, C, O]`` as a product over the
    output pixels' patches, padded with zero rows to a multiple of 4, cropped to
    ``[N, OH, OW, O]``. ``padding`` is (top, left, bottom, right)."""
    batch, height, width, channels = (int(x) for x in data.shape)
    window_h, window_w, _, out_channels = (int(x) for x in weight.shape)
    stride_h, stride_w = strides
    top, left, bottom, right = padding
    out_h = (height + top + bottom - window_h) // stride_h + 1
    out_w = (width + left + right - window_w) // stride_w + 1
    plane = out_h * out_w
    pixels = batch * plane
    padded = -(-pixels // PACKED_ROWS) * PACKED_ROWS

    def patch(p, kh, kw, c):
        image, rest = p // plane, p % plane
        y = rest // out_w * stride_h + kh - top
        x = rest % out_w * stride_w + kw - left
        inside = tirx.all(p < pixels, 0 <= y, y < height, 0 <= x, x < width)
        return tirx.if_then_else(inside, data[image, y, x, c], tirx.const(0.0, data.dtype))

    rows = te.compute(
        (padded, window_h, window_w, channels), patch, name="patch_rows", attrs={COMPUTED_ROWS_ATTR: True}
    )
    kh = te.reduce_axis((0, window_h), name="rh")
    kw = te.reduce_axis((0, window_w), name="rw")
    c = te.reduce_axis((0, channels), name="rc")
    product = te.compute(
        (padded, out_channels),
        lambda p, o: te.sum(rows[p, kh, kw, c] * weight[kh, kw, c, o], axis=[kh, kw, c]),
        name="conv2d_patch_rows",
    )
    return te.compute(
        (batch, out_h, out_w, out_channels),
        lambda n, h, w, o: product[(n * out_h + h) * out_w + w, o],
        name="conv2d_nhwc",
    )


def _emit(builder: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    strides = tuple(int(s) for s in call.attrs.strides)
    padding = tuple(int(p) for p in call.attrs.padding)
    return emit_conv_kernel(
        builder,
        lambda data, weight: conv2d_patches_nhwc(data, weight, strides, padding),
        call.args[0],
        call.args[1],
        name="conv2d_patch_rows",
    )
