"""Transposed convolutions as ordinary convolutions, one per output phase ("sub-pixel").

A transposed conv with stride ``s`` writes output position ``o`` from the kernel taps ``k`` with
``k = (o + pad) mod s`` (mod ``s``): for each phase ``r`` of ``(o + pad) mod s`` the output is a
plain convolution of the input with the taps ``r, r + s, r + 2s, ...`` (reversed). So a
stride-2 2-D transposed conv is four convs of the input, whose outputs interleave into the
result (a depth-to-space reshape and transpose, then a crop of the padding). The convs take
the NHWC layout and SIMD schedules of every conv; TVM's own transposed conv ran as a scalar
loop nest over a zero-dilated input (a quarter of its multiply-adds by zero at stride 2).

Phases with the same number of taps (every phase when the kernel size is a multiple of the
stride) share one conv, their weights stacked along the output channels. Taken: NCHW / IOHW
float32 transposed convs (1-D ones arrive as 2-D from `conv1d_planes`), undilated, any stride,
padding, output padding and groups, static shapes and constant weights; others stay TVM's.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import product

import numpy as np

import tvm
from tvm import relax

from .conv_rewrite import constant_conv, rewrite_calls


@dataclass(frozen=True)
class _Axis:
    """One spatial axis of a transposed conv: kernel size, stride, leading padding, input and
    output sizes."""

    kernel: int
    stride: int
    pad: int
    size_in: int
    size_out: int

    def taps(self, phase: int) -> int:
        """Kernel taps of output phase ``phase``: ``phase, phase + stride, ...`` below ``kernel``."""
        return max(0, -(-(self.kernel - phase) // self.stride))

    @property
    def positions(self) -> int:
        """Conv output positions per phase: enough to cover the output and its leading padding
        once interleaved, and at least the input size (each phase's conv pads its input to it)."""
        return max(-(-(self.size_out + self.pad) // self.stride), self.size_in)


@dataclass(frozen=True)
class _Plan:
    rows: _Axis
    cols: _Axis
    weight: np.ndarray  # IOHW
    groups: int
    batch: int


def _plan(call: relax.Call) -> _Plan | None:
    """The plan of an eligible transposed conv, else None."""
    conv = constant_conv(call, "relax.nn.conv2d_transpose", ("NCHW", "IOHW", "NCHW"))
    if conv is None or any(int(d) != 1 for d in call.attrs.dilation):
        return None
    attrs, data_shape, out_shape = call.attrs, conv.data_shape, conv.out_shape
    kernel = conv.constant.value.shape[2:]
    top, left = int(attrs.padding[0]), int(attrs.padding[1])
    return _Plan(
        _Axis(int(kernel[0]), int(attrs.strides[0]), top, data_shape[2], out_shape[2]),
        _Axis(int(kernel[1]), int(attrs.strides[1]), left, data_shape[3], out_shape[3]),
        conv.weight,
        int(attrs.groups),
        data_shape[0],
    )


def _phase_weights(weight: np.ndarray, groups: int, rows: _Axis, cols: _Axis, phase: tuple[int, int]) -> np.ndarray:
    """OIHW weights of one phase's conv: the phase's taps of the IOHW ``weight``, reversed
    (a transposed conv's tap ``j`` reads input position ``q - j``, a conv's reads ``q + t``)."""
    in_channels, out_per_group = weight.shape[:2]
    in_per_group = in_channels // groups
    taps_h = np.arange(phase[0], rows.kernel, rows.stride)[::-1]
    taps_w = np.arange(phase[1], cols.kernel, cols.stride)[::-1]
    taps = weight[:, :, taps_h][:, :, :, taps_w]  # [I, O/g, Jh, Jw]
    # [g, I/g, O/g, Jh, Jw] -> [g, O/g, I/g, Jh, Jw] -> [O, I/g, Jh, Jw]
    grouped = taps.reshape(groups, in_per_group, out_per_group, len(taps_h), len(taps_w))
    return np.ascontiguousarray(grouped.transpose(0, 2, 1, 3, 4).reshape(groups * out_per_group, in_per_group, len(taps_h), len(taps_w)))


def _emit(builder: relax.BlockBuilder, call: relax.Call, plan: _Plan) -> relax.Expr:
    rows, cols, weight, groups, batch = plan.rows, plan.cols, plan.weight, plan.groups, plan.batch
    data = call.args[0]
    out_per_group = weight.shape[1]
    phases = list(product(range(rows.stride), range(cols.stride)))
    extents = {(rows.taps(r), cols.taps(c)) for r, c in phases}

    def conv(phase_weights: np.ndarray, taps: tuple[int, int]) -> relax.Expr:
        padding = (taps[0] - 1, taps[1] - 1, rows.positions - rows.size_in, cols.positions - cols.size_in)
        return builder.emit(relax.op.nn.conv2d(data, relax.const(phase_weights), padding=padding, groups=groups))

    if len(extents) == 1 and 0 not in next(iter(extents)):
        # One conv; its output channels (group, phase row, phase column, channel).
        stacked = np.stack([_phase_weights(weight, groups, rows, cols, p) for p in phases])  # [P, O, I/g, Jh, Jw]
        stacked = stacked.reshape(len(phases), groups, out_per_group, *stacked.shape[2:]).transpose(1, 0, 2, 3, 4, 5)
        merged = conv(np.ascontiguousarray(stacked.reshape(-1, *stacked.shape[3:])), next(iter(extents)))
        split = (batch, groups, rows.stride, cols.stride, out_per_group, rows.positions, cols.positions)
        order = (0, 1, 4, 5, 2, 6, 3)
    else:
        # A conv per phase (zeros where a phase has no taps); channels (phase row, phase column, group, channel).
        outputs = []
        for phase in phases:
            taps = (rows.taps(phase[0]), cols.taps(phase[1]))
            if 0 in taps:
                shape = (batch, groups * out_per_group, rows.positions, cols.positions)
                outputs.append(builder.emit(relax.op.zeros(shape, "float32")))  # filled at run time, not stored
            else:
                outputs.append(conv(_phase_weights(weight, groups, rows, cols, phase), taps))
        merged = builder.emit(relax.op.concat(outputs, axis=1))
        split = (batch, rows.stride, cols.stride, groups, out_per_group, rows.positions, cols.positions)
        order = (0, 3, 4, 5, 1, 6, 2)
    # -> [batch, group, channel, position row, phase row, position column, phase column]
    interleaved = builder.emit(relax.op.permute_dims(builder.emit(relax.op.reshape(merged, split)), order))
    full = (batch, groups * out_per_group, rows.positions * rows.stride, cols.positions * cols.stride)
    planes = builder.emit(relax.op.reshape(interleaved, full))
    return relax.op.strided_slice(
        planes, axes=[2, 3], begin=[rows.pad, cols.pad], end=[rows.pad + rows.size_out, cols.pad + cols.size_out]
    )


def subpixel_convs_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmSubpixelConvs")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_calls(mod, _plan, _emit)

    return _pass
