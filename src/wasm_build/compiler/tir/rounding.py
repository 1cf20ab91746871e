"""TIR step before lowering: ``nearbyint`` as LLVM's intrinsic, so vectorized loops stay vectors.

Quantize, requantize epilogues and ONNX ``Round`` round half to even with TIR's ``nearbyint``.
TVM 0.27's vectorizer does not know that operator is elementwise and turns a vectorized loop
holding one into a scalar loop: every requantize epilogue of an int8 kernel ran one lane at a
time (and a loop whose body binds a ``Let`` failed outright, "Let cannot bind the same var to
two different values", when the vectorizer retried it as scalars). The same operation through
``call_llvm_pure_intrin("llvm.nearbyint")`` vectorizes, and on wasm32 it is ``f32x4.nearest``.
"""

from __future__ import annotations

import tvm
from tvm import tirx

from .walk import rewriting_pass

# TIR's rounding operator (matched by `magic_rounding` too).
NEARBYINT = tirx.nearbyint(tirx.Var("x", "float32")).op


def vectorizable_rounding() -> tvm.transform.Pass:
    return rewriting_pass("WasmVectorizableRounding", _as_llvm_intrinsic)


def _as_llvm_intrinsic(expr) -> tirx.PrimExpr | None:
    if isinstance(expr, tvm.ir.expr.Call) and expr.op.same_as(NEARBYINT):
        return tirx.call_llvm_pure_intrin(str(expr.ty), "llvm.nearbyint", expr.args[0])
    return None
