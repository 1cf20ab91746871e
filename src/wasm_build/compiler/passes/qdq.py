"""What the quantization passes share: reading ``R.quantize`` / ``R.dequantize`` calls (and
the integer arithmetic ONNX's ``MatMulInteger`` imports as) through variable bindings, and
the elementwise arithmetic they lower to.

TVM's ONNX frontend imports QDQ models as ``dequantize -> float op -> quantize`` and
``MatMulInteger`` as an int32 ``matmul`` of widened operands. The passes that turn them into
integer kernels (`integer_contractions`, `requant_identities`, `qdq_arithmetic`) run before
the first ``FoldConstant``, which would otherwise fold every dequantized weight into a float32
constant (4x the bytes), and they leave only operators ``ConvertLayout`` sees through.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax

Lookup = Callable[[relax.Var], relax.Expr | None]

QUANTIZE = "relax.quantize"
DEQUANTIZE = "relax.dequantize"
INT_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def op_name(expr: relax.Expr) -> str | None:
    return expr.op.name if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) else None


def bound(expr: relax.Expr, lookup: Lookup) -> relax.Expr:
    """``expr`` with variables replaced by the values they are bound to (aliases followed)."""
    seen = 0
    while isinstance(expr, relax.Var) and seen < 64:
        value = lookup(expr)
        if value is None:
            break
        expr, seen = value, seen + 1
    return expr


def constant(expr: relax.Expr, lookup: Lookup) -> np.ndarray | None:
    """The value of a constant expression (through bindings), else None."""
    expr = bound(expr, lookup)
    return expr.value.numpy() if isinstance(expr, tvm.ir.expr.Constant) else None


def dtype_of(expr: relax.Expr) -> str | None:
    ty = expr.ty
    return str(ty.dtype) if isinstance(ty, relax.TensorType) else None


def static_shape(expr: relax.Expr) -> tuple[int, ...] | None:
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or ty.shape is None or not hasattr(ty.shape, "values"):
        return None
    dims = list(ty.shape.values)
    if not all(isinstance(d, tvm.tirx.IntImm) for d in dims):
        return None
    return tuple(int(d) for d in dims)


# Operators whose every output value is one of their first argument's.
_VALUE_PRESERVING = ("relax.permute_dims", "relax.reshape", "relax.nn.max_pool2d")


def magnitude(expr: relax.Expr, lookup: Lookup) -> int | None:
    """A bound on ``|x|`` for every integer value ``x`` of ``expr``: its dtype's for 8-bit
    tensors, else followed through widening casts, constant shifts (an activation minus its
    zero point) and operators that only move values; None when unknown."""
    for _ in range(64):
        dtype = dtype_of(expr)
        if dtype in ("int8", "uint8"):
            low, high = INT_RANGES[dtype]
            return max(-low, high)
        value = bound(expr, lookup)
        name = op_name(value)
        if name in _VALUE_PRESERVING:
            expr = value.args[0]
        elif name == "relax.astype" and dtype in ("int16", "int32"):
            expr = value.args[0]
        elif name == "relax.nn.pad":
            inner = magnitude(value.args[0], lookup)
            return None if inner is None else max(inner, abs(int(float(value.attrs.pad_value))))
        elif name in ("relax.add", "relax.subtract"):
            shift = constant(value.args[1], lookup)
            inner = magnitude(value.args[0], lookup)
            if shift is None or inner is None or shift.dtype.kind not in "iu":
                return None
            return inner + int(np.abs(shift.astype(np.int64)).max(initial=0))
        else:
            return None
    return None


@dataclass(frozen=True)
class Dequantized:
    """``dequantize(tensor, scale, zero_point, axis)``: scale and zero point are numpy arrays
    when constant (scalars have shape ``()``), else the Relax expressions computing them."""

    tensor: relax.Expr
    scale: np.ndarray | relax.Expr
    zero_point: np.ndarray | relax.Expr
    axis: int

    @property
    def static(self) -> bool:
        return isinstance(self.scale, np.ndarray) and isinstance(self.zero_point, np.ndarray)

    @property
    def per_tensor(self) -> bool:
        return self.static and self.scale.size == 1 and self.zero_point.size == 1


def as_dequantize(expr: relax.Expr, lookup: Lookup) -> Dequantized | None:
    call = bound(expr, lookup)
    if op_name(call) != DEQUANTIZE or str(call.attrs.out_dtype) != "float32":
        return None
    tensor, scale, zero_point = call.args
    scale_value, zero_value = constant(scale, lookup), constant(zero_point, lookup)
    return Dequantized(
        tensor,
        scale if scale_value is None else scale_value.astype(np.float32),
        zero_point if zero_value is None else zero_value.astype(np.int64),
        int(call.attrs.axis),
    )


def channel_shape(ndim: int, axis: int, size: int) -> list[int]:
    """The shape that broadcasts a length-``size`` vector along ``axis`` of a rank-``ndim`` tensor."""
    shape = [1] * ndim
    shape[axis % ndim] = size
    return shape


def parameter(value: np.ndarray | relax.Expr, ndim: int, axis: int, dtype: str) -> relax.Expr:
    """A scale or zero point as an operand broadcasting over a rank-``ndim`` tensor along ``axis``."""
    if not isinstance(value, np.ndarray):
        known = constant(value, lambda _var: None)
        if known is None:
            value = value if dtype_of(value) == dtype else relax.op.astype(value, dtype)
            size = static_shape(value)
            # A per-channel vector computed at run time lies along the last axis unless reshaped.
            return relax.op.reshape(value, channel_shape(ndim, axis, size[0])) if size and size[0] > 1 and ndim else value
        value = known
    flat = value.reshape(-1).astype(dtype)
    if flat.size == 1:
        return relax.const(flat[0], dtype)
    return relax.const(flat.reshape(channel_shape(ndim, axis, flat.size)), dtype)


def dequantize_arithmetic(tensor: relax.Expr, scale, zero_point, axis: int, ndim: int) -> relax.Expr:
    """``(float(tensor - zero_point)) * scale``, as TVM's legalization of ``dequantize``
    computes it (the difference in int32, then the product in float32)."""
    shifted = relax.op.subtract(relax.op.astype(tensor, "int32"), parameter(zero_point, ndim, axis, "int32"))
    return relax.op.multiply(relax.op.astype(shifted, "float32"), parameter(scale, ndim, axis, "float32"))


def flipped_bytes(tensor: relax.Expr) -> relax.Expr:
    """An 8-bit tensor as the other 8-bit type, its values moved by 128 into it (int8 x + 128 as
    uint8, uint8 x - 128 as int8): the same bytes with their top bit flipped."""
    shift, other = (128, "uint8") if dtype_of(tensor) == "int8" else (-128, "int8")
    return relax.op.astype(relax.op.add(relax.op.astype(tensor, "int16"), relax.const(shift, "int16")), other)


def saturate(value: relax.Expr, low: float, high: float, dtype: str) -> relax.Expr:
    """``value`` (float32, integral) clamped to [low, high] and converted to ``dtype``.
    maximum/minimum, not clip: ``ConvertLayout`` sees through them. Converted through int32
    (exact: the value is clamped already): a float to uint8 conversion became wasm's unsigned
    ``i32x4.trunc_sat_f32x4_u``, which Cranelift expands to about a dozen x86 instructions;
    the int32 form is what `compiler.tir.magic_rounding` turns into an add and a subtract."""
    clamped = relax.op.minimum(relax.op.maximum(value, relax.const(low, "float32")), relax.const(high, "float32"))
    if dtype == "int32":
        return relax.op.astype(clamped, dtype)
    return relax.op.astype(relax.op.astype(clamped, "int32"), dtype)
