"""Integer depthwise convs over pairs of window taps, for ``i32x4.dot_i16x8_s``.

A depthwise conv multiplies every channel by weights of its own: nothing is shared across
lanes to splat, so the dot-product kernels of `schedules.integer_contraction` do not apply,
and products taken one tap at a time (`tir.narrow_products`: an ``i16x8.mul``, two extends
and two adds per 8 values) ran int8 MobileNetV2's depthwise convs at a fifth of the SIMD128
peak, slower than their float32 twins.

This pass pairs the window's columns: ``x[.., w, c]`` and ``x[.., w + dilation, c]`` side by
side as int16 (``pairs[n, h, w, c, 0:2]``, made once per call with the padding), and the
weights of taps ``kw = 2j`` and ``2j + 1`` likewise (``[kh, j, 0:2, c]``, a zero weight when
the window's width is odd). One ``i32x4.dot_i16x8_s`` then takes two taps of 4 channels:
a 3x3 window is 6 instructions where it was 9 products, each of three or more.
Exact: 8-bit or int16 activations times int8 weights, two at a time, stay far inside int32.
Channels that are no multiple of 4 (GhostNet's 6, 18 or 30) are padded to one with zeros in
the pairs tensor and the weights, and the conv's extra channels cropped after it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, te, tirx
from tvm.script import tirx as T

from .. import tvmscript
from ..tiles import SCHEDULED_ATTR
from .conv_rewrite import NHWC_LAYOUTS, constant_conv, conv_rewrite_pass, emit_conv_kernel
from .qdq import static_shape

# Channels the pairs kernel widens and interleaves at a time (8 int16 lanes, one v128), or 4
# (half a v128 widened, interleaved into a whole one) when the channels are no multiple of 8
# (GhostNet's 12, 36 or 60: they ran as plain loops at 2-5 GMAC/s).
_VECTOR = 8
_HALF_VECTOR = 4


def padded_channels(channels: int) -> int:
    """Channels of the pairs tensor and the paired weights: whole groups of 4, the dot product's
    lanes (the padding's weights are zeros)."""
    return -(-channels // _HALF_VECTOR) * _HALF_VECTOR


def paired_taps_pass() -> tvm.transform.Pass:
    """Rewrite integer depthwise convs as products over pairs of taps (module doc)."""
    return conv_rewrite_pass("WasmPairedTaps", eligible, _emit)


def eligible(call: relax.Call) -> bool:
    """An NHWC/HWIO depthwise conv (one output channel per input channel, at least 4 of them:
    the pairs kernel's vectors) of 8-bit or int16 activations with constant int8 weights,
    accumulating in int32, over static shapes, with a window at least two taps wide."""
    conv = constant_conv(call, "relax.nn.conv2d", NHWC_LAYOUTS, integer=True)
    if conv is None or conv.constant.value.dtype != "int8" or len(conv.data_shape) != 4:
        return False
    _, window_w, per_group, out_channels = (int(x) for x in conv.constant.value.shape)
    channels = conv.data_shape[3]
    return (
        int(call.attrs.groups) == channels == out_channels
        and per_group == 1
        and channels >= _HALF_VECTOR
        and window_w >= 2
    )


def paired_weights(weight_hwio: np.ndarray) -> np.ndarray:
    """``[KH, KW, 1, C]`` int8 -> ``[KH, ceil(KW / 2), 2, padded_channels(C)]``: taps ``2j`` and
    ``2j + 1`` of each row side by side, a zero tap after an odd width, zero channels after the
    last whole group of 4."""
    window_h, window_w, _, channels = weight_hwio.shape
    pairs = -(-window_w // 2)
    padded = np.zeros((window_h, 2 * pairs, padded_channels(channels)), np.int8)
    padded[:, :window_w, :channels] = weight_hwio[:, :, 0, :]
    return padded.reshape(window_h, pairs, 2, -1)


@dataclass(frozen=True)
class _Geometry:
    """Where a depthwise conv's windows fall: its pairs tensor ``[N, rows, columns, C, 2]``
    holds ``x[n, h - top, w - left, c]`` and ``x[n, h - top, w + dilation - left, c]``."""

    batch: int
    height: int
    width: int
    channels: int
    window_h: int
    window_w: int
    strides: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, left, bottom, right
    dilation: tuple[int, int]

    @property
    def pairs(self) -> int:
        return -(-self.window_w // 2)

    @property
    def out_h(self) -> int:
        top, _, bottom, _ = self.padding
        return (self.height + top + bottom - self.dilation[0] * (self.window_h - 1) - 1) // self.strides[0] + 1

    @property
    def out_w(self) -> int:
        _, left, _, right = self.padding
        return (self.width + left + right - self.dilation[1] * (self.window_w - 1) - 1) // self.strides[1] + 1

    @property
    def rows(self) -> int:
        return (self.out_h - 1) * self.strides[0] + self.dilation[0] * (self.window_h - 1) + 1

    @property
    def columns(self) -> int:
        return (self.out_w - 1) * self.strides[1] + self.dilation[1] * 2 * (self.pairs - 1) + 1


def pairs_kernel(geometry: _Geometry, dtype: str) -> tirx.PrimFunc:
    """The pairs tensor, 8 (or 4) channels at a time: two vector loads widened to int16 (zeros in
    the padding) and interleaved by one shuffle. Written vectorized: as a loop nest, the pairs'
    interleaving made TVM load and store every value on its own. With channels that are no
    multiple of 4, the last group's loads start at channel ``C - 4`` (inside the pixel) and its
    shuffle moves the channels past the last whole group down to the first lanes, zeros after."""
    g = geometry
    batch, height, width, channels, rows, columns = g.batch, g.height, g.width, g.channels, g.rows, g.columns
    padded = padded_channels(channels)
    top, left, _, _ = g.padding
    step = g.dilation[1]
    vector = _VECTOR if channels % _VECTOR == 0 else _HALF_VECTOR
    loads = f"{dtype}x{vector}"
    widened = f"int16x{vector}"
    interleaved = _interleaving(vector, vector)
    whole = channels // vector  # groups of real channels only
    tail = channels % _HALF_VECTOR  # real channels of the last group, when it has padding
    padding_lanes = tail > 0  # a bool: TVMScript takes it as a condition decided when parsed
    tail_lanes = _interleaving(vector, tail)
    zeros = T.Broadcast(T.int16(0), vector)

    def column(x: tirx.Buffer, n: tirx.PrimExpr, y: tirx.PrimExpr, w: tirx.PrimExpr, c: int | tirx.PrimExpr):
        """``x[n, y, w, c : c + vector]`` widened to int16, zeros outside the image."""
        inside = tirx.all(0 <= y, y < height, 0 <= w, w < width)
        return T.if_then_else(inside, T.Cast(widened, x.vload([n, y, w, c], loads)), zeros)

    @tvmscript.prim_func(s_tir=True, batch=batch, height=height, width=width, channels=channels, dtype=dtype, rows=rows,
                         columns=columns, padded=padded)
    def pairs(x: T.Buffer((batch, height, width, channels), dtype), paired: T.Buffer((batch, rows, columns, padded, 2), "int16")):
        T.func_attr({"tirx.noalias": True, SCHEDULED_ATTR: True})
        for n, h, w in T.grid(batch, rows, columns):
            for c in range(whole):
                with T.sblock("paired_taps"):
                    vn, vh, vw, vc = T.axis.remap("SSSS", [n, h, w, c])
                    T.reads(x[vn, 0:height, 0:width, vc * vector : vc * vector + vector])
                    T.writes(paired[vn, vh, vw, vc * vector : vc * vector + vector, 0:2])
                    a = column(x, vn, vh - top, vw - left, vc * vector)
                    b = column(x, vn, vh - top, vw + step - left, vc * vector)
                    paired.vstore([vn, vh, vw, vc * vector, 0], T.Shuffle([a, b], interleaved))
            if padding_lanes:
                with T.sblock("paired_taps_last"):
                    vn, vh, vw = T.axis.remap("SSS", [n, h, w])
                    T.reads(x[vn, 0:height, 0:width, channels - vector : channels])
                    T.writes(paired[vn, vh, vw, whole * vector : padded, 0:2])
                    a = column(x, vn, vh - top, vw - left, channels - vector)
                    b = column(x, vn, vh - top, vw + step - left, channels - vector)
                    paired.vstore([vn, vh, vw, whole * vector, 0], T.Shuffle([a, b, zeros], tail_lanes))

    # Named by the module it joins (one pairs kernel per conv geometry), not by this function.
    return pairs.without_attr("global_symbol")


def _interleaving(vector: int, real: int) -> list[int]:
    """Shuffle lanes of ``(a, b, zeros)``, each ``vector`` lanes, that pair ``a`` and ``b``'s last
    ``real`` lanes side by side, zeros after: ``a0 b0 a1 b1 ...`` when every lane is real; the last
    group of channels that are no multiple of 4, loaded from channel ``C - 4``, otherwise."""
    first = vector - real
    return [
        lane for i in range(vector) for lane in ((first + i, vector + first + i) if i < real else (2 * vector, 2 * vector))
    ]


def depthwise_paired_nhwc(paired: te.Tensor, weights: te.Tensor, geometry: _Geometry) -> te.Tensor:
    """int32 ``[N, OH, OW, padded_channels(C)]``: the depthwise conv over the pairs tensor with
    `paired_weights` ``[KH, J, 2, padded_channels(C)]`` (int8)."""
    g = geometry
    (stride_h, stride_w), (dilation_h, dilation_w) = g.strides, g.dilation
    kh = te.reduce_axis((0, g.window_h), name="rh")
    j = te.reduce_axis((0, g.pairs), name="rj")
    q = te.reduce_axis((0, 2), name="rq")
    return te.compute(
        (g.batch, g.out_h, g.out_w, padded_channels(g.channels)),
        lambda n, h, w, c: te.sum(
            paired[n, h * stride_h + kh * dilation_h, w * stride_w + j * 2 * dilation_w, c, q].astype("int32")
            * weights[kh, j, q, c].astype("int32"),
            axis=[kh, j, q],
        ),
        name="depthwise_conv2d_paired",
    )


def _emit(builder: relax.BlockBuilder, call: relax.Call) -> relax.Expr:
    attrs = call.attrs
    data, kernel = call.args[0], call.args[1].value.numpy()
    batch, height, width, channels = static_shape(data)
    geometry = _Geometry(
        batch, height, width, channels, int(kernel.shape[0]), int(kernel.shape[1]),
        strides=tuple(int(s) for s in attrs.strides),
        padding=tuple(int(p) for p in attrs.padding),
        dilation=tuple(int(d) for d in attrs.dilation),
    )
    kernel_var = builder.add_func(pairs_kernel(geometry, data.ty.dtype), "paired_taps")
    padded = padded_channels(channels)
    out = relax.TensorType((batch, geometry.rows, geometry.columns, padded, 2), "int16")
    paired = builder.emit(relax.call_tir(kernel_var, [data], out))
    product = emit_conv_kernel(
        builder,
        lambda pairs, weights: depthwise_paired_nhwc(pairs, weights, geometry),
        paired,
        relax.const(paired_weights(kernel)),
        name="depthwise_conv2d_paired",
    )
    if padded == channels:
        return product
    return relax.op.strided_slice(builder.emit(product), axes=[3], begin=[0], end=[channels])

