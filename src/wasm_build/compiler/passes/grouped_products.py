"""Grouped convs as products over a group axis of their own.

A grouped conv (RegNet's and ResNeXt's 3x3 convs: groups of 8 to 64 channels) reads input
channel ``o // width * per_group + c`` for output channel ``o``: TVM's kernel indexes its
activations with the output channel, so the dot-product kernels of
`schedules.integer_contraction`, which splat one activation pair across the lanes of a row,
do not apply, and int8 RegNetY-400MF ran its grouped convs as plain loops at a tenth of the
SIMD128 peak (slower than its float32 twin).

With the channels split into ``[group, channel]`` (a reshape, free in NHWC), the conv is::

    out[n, oh, ow, g, f] = sum(x[n, oh * s + kh * d, ow * s + kw * d, g, c] * W[g, kh, kw, c, f])

a dense product per group: the group is one more spatial axis that the weights read, the
lanes are a group's output channels, the reduction its input channels. The padded input is
its own stage (zeros: `integer_contractions` has made the zero point 0 where a conv pads).
Exact: the same integer products, summed in int32.

Float convs gain from it too (the contraction's register tile over a group's lanes), from 8
input channels per group.

Taken: NHWC/HWIO convs with constant weights, integer (8-bit or int16 activations, int8
weights, int32 sums) or float32, with 2 or more groups and more than one input channel per
group (depthwise convs have kernels of their own, `paired_taps`), whose groups' output
channels come in whole 4-lane vectors and input channels in pairs; any stride, dilation and
padding. Measured on 3x3 convs of 96-256 channels (groups of 4-64 channels, 7x7 to 28x28
maps): int8 3-16x faster than TVM's grouped kernel, float32 1.3-1.7x.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, te, tirx

from .conv_rewrite import NHWC_LAYOUTS, constant_conv, emit_conv_kernel, rewrite_calls

# A group's output channels: whole vectors of int32 accumulators; its input channels: pairs
# (`i32x4.dot_i16x8_s` multiplies two at a time).
_LANES = 4
_PAIR = 2
# A float conv's groups: from 8 input channels, the products over a group axis ran 1.3-1.7x
# faster than TVM's grouped kernel (3x3, 7x7 to 28x28 maps); with 4 (ResNeXt's 32x4d), 1.6x slower.
_FLOAT_MIN_PER_GROUP = 8


@dataclass(frozen=True)
class _Geometry:
    batch: int
    height: int
    width: int
    groups: int
    per_group: int  # input channels of a group
    width_out: int  # output channels of a group
    window: tuple[int, int]
    strides: tuple[int, int]
    dilation: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, left, bottom, right
    out_h: int
    out_w: int
    sums: str  # int32, or float32 for a float conv


def _plan(call: relax.Call) -> tuple[_Geometry, np.ndarray] | None:
    floats = constant_conv(call, "relax.nn.conv2d", NHWC_LAYOUTS)
    conv = floats or constant_conv(call, "relax.nn.conv2d", NHWC_LAYOUTS, integer=True)
    if conv is None or (not floats and conv.constant.value.dtype != "int8"):
        return None
    attrs, shape, out_shape = call.attrs, conv.data_shape, conv.out_shape
    groups = int(attrs.groups)
    if len(shape) != 4 or groups < 2:
        return None
    kernel = conv.weight
    per_group, width_out = int(kernel.shape[2]), int(kernel.shape[3]) // groups
    if per_group < (_FLOAT_MIN_PER_GROUP if floats else _PAIR) or per_group % _PAIR or width_out % _LANES or shape[3] != groups * per_group:
        return None
    top, left, bottom, right = (int(p) for p in attrs.padding)
    geometry = _Geometry(
        shape[0], shape[1], shape[2], groups, per_group, width_out, (int(kernel.shape[0]), int(kernel.shape[1])),
        (int(attrs.strides[0]), int(attrs.strides[1])), (int(attrs.dilation[0]), int(attrs.dilation[1])),
        (top, left, bottom, right), out_shape[1], out_shape[2], "float32" if floats else "int32",
    )
    return geometry, kernel


def grouped_weights(kernel: np.ndarray, g: _Geometry) -> np.ndarray:
    """HWIO ``[KH, KW, C, G * F]`` as ``[G, KH, KW, C, F]``."""
    kh, kw, per_group, _ = kernel.shape
    return np.ascontiguousarray(kernel.reshape(kh, kw, per_group, g.groups, g.width_out).transpose(3, 0, 1, 2, 4))


def grouped_conv(data: te.Tensor, weights: te.Tensor, g: _Geometry) -> te.Tensor:
    """int32 ``[N, OH, OW, G, F]`` from ``data`` ``[N, H, W, G, C]``, padded in a stage of its own."""
    top, left, bottom, right = g.padding
    zero = tirx.const(0, data.dtype)

    def padded_value(n, y, x, group, c):
        inside = tirx.all(top <= y, y < g.height + top, left <= x, x < g.width + left)
        return tirx.if_then_else(inside, data[n, y - top, x - left, group, c], zero)

    padded = te.compute((g.batch, g.height + top + bottom, g.width + left + right, g.groups, g.per_group), padded_value, name="pad_temp")
    kh = te.reduce_axis((0, g.window[0]), name="rh")
    kw = te.reduce_axis((0, g.window[1]), name="rw")
    c = te.reduce_axis((0, g.per_group), name="rc")
    (sh, sw), (dh, dw) = g.strides, g.dilation
    return te.compute(
        (g.batch, g.out_h, g.out_w, g.groups, g.width_out),
        lambda n, oh, ow, group, f: te.sum(
            padded[n, oh * sh + kh * dh, ow * sw + kw * dw, group, c].astype(g.sums) * weights[group, kh, kw, c, f].astype(g.sums),
            axis=[kh, kw, c],
        ),
        name="conv2d_grouped",
    )


def _emit(builder: relax.BlockBuilder, call: relax.Call, plan: tuple[_Geometry, np.ndarray]) -> relax.Expr:
    g, kernel = plan
    split = builder.emit(relax.op.reshape(call.args[0], (g.batch, g.height, g.width, g.groups, g.per_group)))
    product = builder.emit(
        emit_conv_kernel(builder, lambda x, w: grouped_conv(x, w, g), split, relax.const(grouped_weights(kernel, g)), name="conv2d_grouped")
    )
    return relax.op.reshape(product, (g.batch, g.out_h, g.out_w, g.groups * g.width_out))


def grouped_products_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmGroupedProducts")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_calls(mod, _plan, _emit)

    return _pass
