"""Integer convs over few input channels (stems) as products along the window's rows.

The dot-product kernels (`schedules.integer_contraction`) reduce over the activation's
innermost axis two values at a time. A direct conv's innermost axis is its channels: an RGB
stem has 3 (paired with a zero-weight fourth), so every tap is two `i32x4.dot_i16x8_s`, each
on a splat of its own 8-bit pair, and a quarter of the products are by zero. int8 ResNet-18's
7x7 stem ran at about 12 G useful multiply-adds a second, 16% of the model, slower than its
float32 twin, while its other convs ran at 21-24.

In NHWC, one row of a window is ``KW * C`` consecutive values: a 7x7 stem's window row at
output column ``ow`` is the 21 values from ``(ow * stride - pad) * 3``. This pass copies each
such row once, widened to int16, into ``rows[n, h, ow, 0:J]`` (the padding as zeros, channels
no weight reads left out, zeros up to ``J``: a multiple of 8 where that costs little, for
the kernels' grouped int16 pairs, else of 2), and the conv becomes
``sum(rows[n, oh * stride + kh, ow, j] * W[kh, j, o])`` over ``kh`` and ``j``: the dense
products' form, 12 pairs a window row where 7 taps took 14.
Exact: the same integer products, summed in int32.

Taken: NHWC/HWIO integer convs (8-bit or int16 activations, constant int8 weights, int32
sums), ungrouped and undilated, any stride and padding, a window at least 2 wide, at most
4 input channels that a weight reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, te, tirx

from .conv_rewrite import NHWC_LAYOUTS, OPAQUE, call_te_kernel, constant_conv, emit_conv_kernel, rewrite_calls

_MAX_CHANNELS = 4
# int16 values the dot-product kernels read per group of reduction steps (`PAIR_GROUP` pairs).
_GROUP = 8
# The rows tensor is made once per call; past this it would no longer sit in cache.
_MAX_ROWS_BYTES = 4 << 20


@dataclass(frozen=True)
class _Geometry:
    batch: int
    height: int
    width: int
    channels: tuple[int, ...]  # the input channels a weight reads, in order
    window: tuple[int, int]
    strides: tuple[int, int]
    padding: tuple[int, int, int, int]  # top, left, bottom, right
    out_h: int
    out_w: int

    @property
    def row_values(self) -> int:
        """Values of one window row: its taps times the channels read."""
        return self.window[1] * len(self.channels)

    @property
    def depth(self) -> int:
        """The rows' length: `row_values` rounded up to whole groups where the zeros that adds
        are at most a quarter of it, else to whole pairs."""
        pairs = -(-self.row_values // 2) * 2
        groups = -(-self.row_values // _GROUP) * _GROUP
        return groups if groups * 4 <= pairs * 5 else pairs

    @property
    def rows_height(self) -> int:
        return self.height + self.padding[0] + self.padding[2]


@dataclass(frozen=True)
class _Plan:
    geometry: _Geometry
    kernel: np.ndarray  # HWIO int8, read once from the call as written


def _plan(call: relax.Call) -> _Plan | None:
    conv = constant_conv(call, "relax.nn.conv2d", NHWC_LAYOUTS, integer=True)
    if conv is None or conv.constant.value.dtype != "int8" or len(conv.data_shape) != 4:
        return None
    attrs, shape, out_shape = call.attrs, conv.data_shape, conv.out_shape
    if int(attrs.groups) != 1 or any(int(d) != 1 for d in attrs.dilation):
        return None
    kernel = conv.weight
    channels = tuple(c for c in range(kernel.shape[2]) if kernel[:, :, c, :].any()) or (0,)
    if kernel.shape[1] < 2 or len(channels) > _MAX_CHANNELS:
        return None
    top, left, bottom, right = (int(p) for p in attrs.padding)
    geometry = _Geometry(
        shape[0], shape[1], shape[2], channels, (int(kernel.shape[0]), int(kernel.shape[1])),
        (int(attrs.strides[0]), int(attrs.strides[1])), (top, left, bottom, right), out_shape[1], out_shape[2],
    )
    if geometry.batch * geometry.rows_height * geometry.out_w * geometry.depth * 2 > _MAX_ROWS_BYTES:
        return None
    return _Plan(geometry, kernel)


def window_rows(data: te.Tensor, g: _Geometry) -> te.Tensor:
    """int16 ``[N, H + padding, OW, J]``: each output column's window rows, zeros outside the
    input and past `row_values`."""
    count = len(g.channels)
    top, left = g.padding[0], g.padding[1]

    def channel(position):
        # The position's channel among those read (a few: a chain of selects).
        value = tirx.const(g.channels[-1], "int32")
        for index in reversed(range(count - 1)):
            value = tirx.Select(position == index, tirx.const(g.channels[index], "int32"), value)
        return value

    def value(n, h, ow, j):
        y, x = h - top, ow * g.strides[1] + j // count - left
        inside = tirx.all(j < g.row_values, 0 <= y, y < g.height, 0 <= x, x < g.width)
        read = data[n, tirx.max(tirx.min(y, g.height - 1), 0), tirx.max(tirx.min(x, g.width - 1), 0), channel((j % count).astype("int32"))]
        return tirx.Select(inside, read.astype("int16"), tirx.const(0, "int16"))

    return te.compute((g.batch, g.rows_height, g.out_w, g.depth), value, name="window_rows")


def row_weights(kernel: np.ndarray, g: _Geometry) -> np.ndarray:
    """int8 ``[KH, J, O]``: HWIO weights along a window row as the rows tensor lays it out."""
    rows = kernel[:, :, list(g.channels), :].reshape(kernel.shape[0], g.row_values, kernel.shape[3])
    padded = np.zeros((kernel.shape[0], g.depth, kernel.shape[3]), np.int8)
    padded[:, : g.row_values] = rows
    return padded


def conv_over_rows(rows: te.Tensor, weights: te.Tensor, g: _Geometry, out_channels: int) -> te.Tensor:
    kh = te.reduce_axis((0, g.window[0]), name="rh")
    j = te.reduce_axis((0, g.depth), name="rj")
    return te.compute(
        (g.batch, g.out_h, g.out_w, out_channels),
        lambda n, oh, ow, o: te.sum(
            rows[n, oh * g.strides[0] + kh, ow, j].astype("int32") * weights[kh, j, o].astype("int32"), axis=[kh, j]
        ),
        name="conv2d_window_rows",
    )


def _emit(builder: relax.BlockBuilder, call: relax.Call, plan: _Plan) -> relax.Expr:
    g, kernel = plan.geometry, plan.kernel
    # Its own kernel: fused, the quantize before it ran once per window row reading each value
    # (3.5x at a 7-wide window of stride 2), a float divide each time.
    rows = builder.emit(
        call_te_kernel(builder, lambda x: window_rows(x, g), call.args[0], name="window_rows", pattern=OPAQUE)
    )
    return emit_conv_kernel(
        builder,
        lambda r, w: conv_over_rows(r, w, g, kernel.shape[3]),
        rows,
        relax.const(row_weights(kernel, g)),
        name="conv2d_window_rows",
    )


def window_rows_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmWindowRows")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_calls(mod, _plan, _emit)

    return _pass
