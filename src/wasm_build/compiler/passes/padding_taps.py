"""Kernel taps that only ever read padding, dropped from convs.

With a dilation as large as the feature map (DeepLab's atrous pyramid: 3x3 convs dilated 12, 24
and 36, run at small resolutions; dilated depthwise convs in late MobileNetV3 blocks), every
off-centre tap of a conv reads zeros for every output. The conv is the same conv with those
kernel rows and columns removed and its padding shifted: a dilated 3x3 on a 4x4 map is a 1x1
conv (undilated, so the 1x1 kernels of `pixel_rows` take it), which is 9x fewer multiply-adds
and no bounds test per tap.

Taken: NCHW / OIHW conv2d with static shapes and constant weights (run before `nhwc_conv`),
any stride, dilation and groups, when some kernel row or column reads no input position for any
output position: float32 convs, and the integer ones of `integer_contractions` (8- or 16-bit
activations and weights into int32), whose padding is zero too (an activation's zero point is
never padded: that pass makes it 0 first), so a tap reading only padding adds nothing there either.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tvm
from tvm import relax

from .conv_rewrite import constant_conv, rewrite_calls

_LAYOUTS = ("NCHW", "OIHW", "NCHW")


@dataclass(frozen=True)
class _Axis:
    """One spatial axis of a conv: input size, kernel size, stride, dilation, leading and
    trailing padding, output size."""

    size: int
    kernel: int
    stride: int
    dilation: int
    pad_begin: int
    pad_end: int
    outputs: int

    def reads_input(self, tap: int) -> bool:
        """Whether kernel tap ``tap`` reads an input position (not padding) for some output."""
        first = tap * self.dilation - self.pad_begin  # position read by output 0
        last = first + (self.outputs - 1) * self.stride
        # Positions first, first + stride, ..., last: one of them inside [0, size)?
        steps_to_inside = max(0, -(first // self.stride))  # ceil(-first / stride) outputs for a negative first
        return first + steps_to_inside * self.stride <= min(last, self.size - 1)

    def live_taps(self) -> range:
        live = [tap for tap in range(self.kernel) if self.reads_input(tap)]
        return range(live[0], live[-1] + 1) if live else range(0)

    def trimmed(self, taps: range) -> tuple[int, int, int] | None:
        """(kernel, dilation, leading and trailing padding) of the conv over ``taps``, the
        output size kept; None when that would need negative padding (a crop)."""
        pad_begin = self.pad_begin - taps.start * self.dilation
        dilation = self.dilation if len(taps) > 1 else 1
        pad_end = (self.outputs - 1) * self.stride + (len(taps) - 1) * dilation + 1 - self.size - pad_begin
        if pad_begin < 0 or pad_end < 0:
            return None
        return len(taps), dilation, pad_begin, pad_end


@dataclass(frozen=True)
class _Trim:
    padding: tuple[int, int, int, int]
    dilation: tuple[int, int]
    weight: np.ndarray


def _trim(call: relax.Call) -> _Trim | None:
    conv = constant_conv(call, "relax.nn.conv2d", _LAYOUTS) or constant_conv(call, "relax.nn.conv2d", _LAYOUTS, integer=True)
    if conv is None:
        return None
    attrs, data_shape, out_shape = call.attrs, conv.data_shape, conv.out_shape
    top, left, bottom, right = (int(p) for p in attrs.padding)
    kernel = conv.constant.value.shape[2:]
    axes = [
        _Axis(data_shape[2], int(kernel[0]), int(attrs.strides[0]), int(attrs.dilation[0]), top, bottom, out_shape[2]),
        _Axis(data_shape[3], int(kernel[1]), int(attrs.strides[1]), int(attrs.dilation[1]), left, right, out_shape[3]),
    ]
    taps = [axis.live_taps() for axis in axes]
    if any(len(t) == 0 for t in taps) or all(len(t) == axis.kernel for t, axis in zip(taps, axes)):
        return None  # nothing to drop (a conv reading only padding is left as it is: zeros + bias)
    rows, cols = (axis.trimmed(t) for axis, t in zip(axes, taps))
    if rows is None or cols is None:
        return None
    trimmed = conv.weight[:, :, taps[0].start:taps[0].stop, taps[1].start:taps[1].stop]
    return _Trim(
        (rows[2], cols[2], rows[3], cols[3]),
        (rows[1], cols[1]),
        np.ascontiguousarray(trimmed),
    )


def _emit(builder: relax.BlockBuilder, call: relax.Call, trim: _Trim) -> relax.Expr:
    attrs = call.attrs
    return relax.op.nn.conv2d(
        call.args[0],
        relax.const(trim.weight),
        strides=[int(s) for s in attrs.strides],
        padding=trim.padding,
        dilation=trim.dilation,
        groups=int(attrs.groups),
        data_layout="NCHW",
        kernel_layout="OIHW",
        out_dtype=attrs.out_dtype,
    )


def padding_taps_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmPaddingTaps")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_calls(mod, _trim, _emit)

    return _pass
