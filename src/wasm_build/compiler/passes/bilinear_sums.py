"""Linear 2-D resizes as four weighted taps summed in onnxruntime's order.

Bilinear interpolation is ``w11 x11 + w21 x21 + w12 x12 + w22 x22``, with each weight the
product of a row weight and a column weight. TVM's kernel interpolates along the row, then
between the rows (``a (1 - t) + b t`` twice); onnxruntime multiplies each tap by its combined
weight and adds the four in that order. The two agree to a float rounding, except where the
result sits on a quantization step's tie: an upsampling by 2 puts weights 1/4 and 3/4 on each
axis, so dequantized inputs land on sixteenths of a step and exact ties are common. A quantized
U-Net then rounded about 1% of its upsampled values one step from onnxruntime's, and the convs
after it made two steps of that: a failed smoke test. In onnxruntime's order, the sums are the
same floats.

The taps' positions and weights depend only on the shapes, so they are worked out here, in
float32 as onnxruntime computes them, and passed to a kernel of the four taps' weighted sum:
injective, like TVM's resize, so it fuses with the dequantize before it and the quantize after.

Taken: float32 ``image.resize2d`` with ``method = "linear"``, layout NCHW or NHWC, static
shapes, and the coordinate modes whose positions depend only on the sizes (``half_pixel``,
``pytorch_half_pixel``, ``asymmetric``, ``align_corners``); ``tf_crop_and_resize`` and the
other methods stay TVM's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import tvm
from tvm import relax, te

from .conv_rewrite import INJECTIVE, call_te_kernel, rewrite_calls
from .qdq import dtype_of, static_shape

_MODES = ("half_pixel", "pytorch_half_pixel", "asymmetric", "align_corners")
_F32 = np.float32


@dataclass(frozen=True)
class AxisTaps:
    """For each output position along one axis: the two input positions it reads and their
    weights (``near`` for ``first``, ``far`` for ``second``), as onnxruntime computes them."""

    first: np.ndarray  # int32
    second: np.ndarray  # int32
    near: np.ndarray  # float32, the weight of `first`
    far: np.ndarray  # float32, the weight of `second`


def original_coordinate(mode: str, position: int, size_in: int, size_out: int) -> np.float32:
    """The input coordinate of output ``position``, in float32 arithmetic like onnxruntime's.
    Its scale is ``size_out / size_in``: onnxruntime's when the model gives sizes or a scale the
    sizes multiply out exactly; a fractional scale whose output size was rounded down maps
    positions a little differently in onnxruntime (as TVM's own kernel did: the imported op
    keeps only the sizes)."""
    x, scale = _F32(position), _F32(size_out) / _F32(size_in)
    if mode == "half_pixel":
        return (x + _F32(0.5)) / scale - _F32(0.5)
    if mode == "pytorch_half_pixel":
        return (x + _F32(0.5)) / scale - _F32(0.5) if size_out > 1 else _F32(0.0)
    if mode == "asymmetric":
        return x / scale
    if mode == "align_corners":
        return _F32(0.0) if size_out == 1 else x * _F32(size_in - 1) / _F32(size_out - 1)
    raise ValueError(f"no bilinear taps for coordinate mode {mode!r}")


def axis_taps(mode: str, size_in: int, size_out: int) -> AxisTaps:
    first, second, near, far = [], [], [], []
    for position in range(size_out):
        x = min(max(original_coordinate(mode, position, size_in, size_out), _F32(0.0)), _F32(size_in - 1))
        low = min(int(x), size_in - 1)
        high = min(low + 1, size_in - 1)
        first.append(low)
        second.append(high)
        if low == high:  # the last position: both taps read it, half each
            near.append(_F32(0.5))
            far.append(_F32(0.5))
        else:
            # The weight of a tap is the distance to the *other* tap.
            near.append(_F32(abs(x - _F32(high))))
            far.append(_F32(abs(x - _F32(low))))
    as_int = lambda values: np.array(values, dtype=np.int32)  # noqa: E731
    return AxisTaps(as_int(first), as_int(second), np.array(near, _F32), np.array(far, _F32))


@dataclass(frozen=True)
class _Plan:
    rows: AxisTaps
    cols: AxisTaps
    row_axis: int
    col_axis: int


def _plan(call: relax.Call) -> _Plan | None:
    if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.image.resize2d"):
        return None
    attrs = call.attrs
    layout = str(attrs.layout)
    if str(attrs.method) != "linear" or str(attrs.coordinate_transformation_mode) not in _MODES:
        return None
    if layout not in ("NCHW", "NHWC"):
        return None
    shape_in, shape_out = static_shape(call.args[0]), static_shape(call)
    if shape_in is None or shape_out is None or dtype_of(call.args[0]) != "float32" or dtype_of(call) != "float32":
        return None
    row_axis, col_axis = layout.index("H"), layout.index("W")
    mode = str(attrs.coordinate_transformation_mode)
    return _Plan(
        axis_taps(mode, shape_in[row_axis], shape_out[row_axis]),
        axis_taps(mode, shape_in[col_axis], shape_out[col_axis]),
        row_axis,
        col_axis,
    )


def bilinear_kernel(row_axis: int, col_axis: int):
    """The TE compute of a resize over four taps: ``x`` and the taps' positions
    (``rows[0|1, y]``, ``cols[0|1, x]``) and weights (``row_weights``, ``col_weights``, the same
    shapes), summed in onnxruntime's order ``(y1, x1), (y1, x2), (y2, x1), (y2, x2)``, each
    tap's weight the float32 product of its column and row weights."""

    def compute(x: te.Tensor, rows: te.Tensor, cols: te.Tensor, row_weights: te.Tensor, col_weights: te.Tensor,
                out_shape) -> te.Tensor:
        def value(*index):
            y, column = index[row_axis], index[col_axis]

            def tap(r: int, c: int):
                at = list(index)
                at[row_axis], at[col_axis] = rows[r, y].astype("int64"), cols[c, column].astype("int64")
                return col_weights[c, column] * row_weights[r, y] * x[tuple(at)]

            return tap(0, 0) + tap(0, 1) + tap(1, 0) + tap(1, 1)  # left to right, as written

        return te.compute(out_shape, value, name="bilinear")

    return compute


def _emit(builder: relax.BlockBuilder, call: relax.Call, plan: _Plan) -> relax.Expr:
    rows, cols = plan.rows, plan.cols
    positions = lambda taps: relax.const(np.stack([taps.first, taps.second]))  # noqa: E731
    weights = lambda taps: relax.const(np.stack([taps.near, taps.far]))  # noqa: E731
    # An injective kernel, like TVM's resize: it fuses with the dequantize before it and the
    # quantize after it.
    return call_te_kernel(
        builder, bilinear_kernel(plan.row_axis, plan.col_axis), call.args[0], positions(rows), positions(cols),
        weights(rows), weights(cols), [tvm.tirx.IntImm("int64", d) for d in static_shape(call)],
        name="bilinear", pattern=INJECTIVE,
    )


def bilinear_sums_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmBilinearSums")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_calls(mod, _plan, _emit)

    return _pass
