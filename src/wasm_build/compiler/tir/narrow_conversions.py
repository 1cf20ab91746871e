"""TIR step before lowering: 8- and 16-bit integers to float32 through the float magic number.

A dequantize whose zero point is 0 is ``float32(int32(q))`` once TVM folds the subtraction of
the zero point away. LLVM's instcombine folds the widening into the conversion, and the wasm
backend converts the resulting ``uitofp <16 x i8>`` lane by lane: an extract, a scalar convert
and a replace per value (a quantized concatenation of ReLU outputs ran at 6 GB/s for it).

``bits(int32(q) + bits(M)) - M``, with ``M = 1.5 * 2^23`` (`magic_rounding`), is the same float
for every ``|q| < 2^22``, so for every 8- and 16-bit value: the widening, an integer add and a
float subtract, all whole vectors.
"""

from __future__ import annotations

from tvm import tirx

from .magic_rounding import MAGIC, MAGIC_BITS
from .walk import body_rewriting_pass

_NARROW = frozenset({"int8", "uint8", "int16", "uint16"})


def narrow_conversions():
    return body_rewriting_pass("WasmNarrowConversions", lambda _func: _rewritten)


def _rewritten(expr) -> tirx.PrimExpr | None:
    if not (isinstance(expr, tirx.Cast) and str(expr.ty) == "float32"):
        return None
    value = expr.value
    if isinstance(value, tirx.Cast) and str(value.ty) == "int32" and str(value.value.ty) in _NARROW:
        widened = value
    elif str(value.ty) in _NARROW:
        widened = tirx.Cast("int32", value)
    else:
        return None
    return tirx.reinterpret("float32", widened + tirx.const(MAGIC_BITS, "int32")) - tirx.const(MAGIC, "float32")
