"""Lowering step: products of 8-bit integers multiplied in 16 bits.

An int8 x int8 (or uint8 x int8) product widened to int32 (``int32(a) * int32(b)``, what
integer convs legalize to) fits in int16: at most 255 * 128 = 32640 in magnitude. LLVM keeps
the multiply at the widest type: per 4 lanes two shuffles, four extends and an
``i32x4.mul`` (two micro-ops on x86). ``int32(int16(a) * int16(b))`` is the same value with
one ``i16x8.mul`` per 8 lanes and two extends: the depthwise convs of an int8 MobileNetV2 ran
3x faster. Products the dot-product intrinsics compute are not in this form and not touched.
"""

from __future__ import annotations

import tvm
from tvm import tirx

from .walk import rewriting_pass


def narrow_products() -> tvm.transform.Pass:
    return rewriting_pass("WasmNarrowProducts", _narrowed)


def _byte(expr: tirx.PrimExpr) -> tuple[tirx.PrimExpr, bool] | None:
    """(the 8-bit operand, whether it is signed) of ``int32(operand)``, else None."""
    if not isinstance(expr, tirx.Cast):
        return None
    dtype = tvm.DataType(str(expr.value.ty))
    if dtype.bits != 8 or dtype.type_code not in (tvm.DataTypeCode.INT, tvm.DataTypeCode.UINT):
        return None
    return expr.value, dtype.type_code == tvm.DataTypeCode.INT


def _narrowed(expr: tvm.ir.expr.Expr) -> tirx.PrimExpr | None:
    if not isinstance(expr, tirx.Mul):
        return None
    wide = tvm.DataType(str(expr.ty))
    if wide.type_code != tvm.DataTypeCode.INT or wide.bits != 32:
        return None
    a, b = _byte(expr.a), _byte(expr.b)
    if a is None or b is None or not (a[1] or b[1]):
        return None  # uint8 x uint8 reaches 65025: not an int16
    narrow = "int16" if wide.lanes == 1 else f"int16x{wide.lanes}"
    return tirx.Cast(str(expr.ty), tirx.Cast(narrow, a[0]) * tirx.Cast(narrow, b[0]))
