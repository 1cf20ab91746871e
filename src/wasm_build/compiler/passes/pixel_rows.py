"""1x1 convolutions over a whole number of 4-pixel tile rows.

The contraction schedule tiles a 1x1 conv 4 output pixels by 8 output channels and
reads the 4 pixels' inputs side by side (``compiler.schedules.packing.pack_row_operand``), which needs
a pixel count that is a multiple of 4. The late planes of ImageNet models are 7x7
(49 pixels): their 1x1 convs fell back to 7 x 16 tiles, which spill on x86's 16 vector
registers and splat every input value on its own (MobileNetV2: 27% of its time, at
four fifths of the 4 x 8 tiles' rate).

:func:`pixel_rows_pass` rewrites such a conv as a matrix product over the pixels padded
to a multiple of 4 (zero rows), then a crop back to the image: 52 rows for 49 pixels,
6% more multiply-adds. The kernel is fusable with its epilogue like the conv it
replaces; the padded rows are computed into the packed tile rows directly.

A plane whose pixel count is a multiple of 4 but whose width is not (14x14) takes the same
product, without padding: its 4-pixel tile rows straddle image rows, so the conv's own tiles
packed its input once per call and splatted it by lane shuffles; the product packs each row
tile's four pixels where the tile needs them, stored pre-splat (a 96 -> 576 conv on 14x14:
16.4 -> 20.8 GMAC/s, 78% -> 97% of the peak).

Integer 1x1 convs (int16 activations times int8 weights, `integer_contractions`' dense
products) take the same product, summed in int32: their 4-pixel row tiles copy the pixels'
pairs pre-splat (`schedules.integer_contraction`), where over a 7- or 14-wide image row the
tile had 7 or 2 rows.
"""

from __future__ import annotations

import numpy as np

import tvm
from tvm import relax, te, tirx

from .conv_rewrite import conv_rewrite_pass, emit_conv_kernel, is_plain_nhwc_conv, padding_rows, static_shape
from ..tiles import COMPUTED_ROWS_ATTR, PACKED_ROWS


def pixel_rows_pass() -> tvm.transform.Pass:
    """Rewrite NHWC 1x1 convs whose width is not a multiple of 4 (see the module doc)."""
    return conv_rewrite_pass(
        "WasmPixelRows",
        eligible,
        lambda builder, call: emit_conv_kernel(
            builder, conv2d_1x1_nhwc, call.args[0], call.args[1], name="conv2d_pixel_rows"
        ),
    )


def eligible(call: relax.Call) -> bool:
    """A stride-1, unpadded, 1x1 NHWC/HWIO conv with constant float32 weights (or int16
    activations times int8 weights summed in int32: `integer_contractions`' dense products) over
    a static image whose width is not a multiple of 4, of ``P`` pixels, padding ``P`` to one
    costing little."""
    if not (is_plain_nhwc_conv(call) or _is_plain_integer_conv(call)) or any(int(p) != 0 for p in call.attrs.padding):
        return False
    data, weight = call.args
    if tuple(weight.value.shape[:2]) != (1, 1):
        return False
    shape = static_shape(data, ("float32", "int16"))
    if shape is None or len(shape) != 4:
        return False
    padding = padding_rows(int(np.prod(shape[:3])), PACKED_ROWS)
    # Widths that are a multiple of 4 already give 4-pixel rows (along the image row).
    return padding is not None and shape[2] % PACKED_ROWS != 0


def _is_plain_integer_conv(call: relax.Call) -> bool:
    """`is_plain_nhwc_conv` for an integer product of int16 activations and int8 weights."""
    return (
        is_plain_nhwc_conv(call, integer=True)
        and str(call.args[0].ty.dtype) == "int16"
        and call.args[1].value.dtype == "int8"
    )


def conv2d_1x1_nhwc(data: te.Tensor, weight: te.Tensor) -> te.Tensor:
    """``data [N, H, W, C]`` times ``weight [1, 1, C, O]`` as a product over the pixels
    padded with zero rows to a multiple of 4, cropped back to ``[N, H, W, O]``."""
    batch, height, width, channels = (int(x) for x in data.shape)
    out_channels = int(weight.shape[3])
    pixels = batch * height * width
    padded = -(-pixels // PACKED_ROWS) * PACKED_ROWS
    plane = height * width

    def pixel(p, c):
        image, rest = p // plane, p % plane
        value = data[image, rest // width, rest % width, c]
        return tirx.if_then_else(p < pixels, value, tirx.const(0, data.dtype))

    rows = te.compute((padded, channels), pixel, name="pixel_rows", attrs={COMPUTED_ROWS_ATTR: True})
    c = te.reduce_axis((0, channels), name="rc")

    def term(p, o):
        if data.dtype == "float32":
            return rows[p, c] * weight[0, 0, c, o]
        return rows[p, c].astype("int32") * weight[0, 0, c, o].astype("int32")  # summed in int32

    product = te.compute(
        (padded, out_channels),
        lambda p, o: te.sum(term(p, o), axis=c),
        name="conv2d_pixel_rows",
    )
    return te.compute(
        (batch, height, width, out_channels),
        lambda n, h, w, o: product[(n * height + h) * width + w, o],
        name="conv2d_nhwc",
    )
