"""TIR step before lowering: ``isnan`` as integer arithmetic on the bits, so vectorized loops stay
vectors.

Masked attention as PyTorch exports it guards its softmax with ``where(isnan(p), 0, p)``. TVM
0.27's vectorizer does not know ``isnan`` is elementwise and turns the vectorized loop holding
it into a scalar loop, a branch per value: GPT-2's softmax kernel ran at 12 ns a value, a fifth
of the float32 model's run. A float32 is NaN exactly when its bits without the sign exceed
those of infinity: ``(bits & 0x7FFFFFFF) > 0x7F800000``, which vectorizes (an ``i32x4.gt_s``).
"""

from __future__ import annotations

import tvm
from tvm import tirx

from .walk import rewriting_pass

ISNAN = tirx.isnan(tirx.Var("x", "float32")).op
_INFINITY_BITS = 0x7F800000
_MAGNITUDE_MASK = 0x7FFFFFFF


def vectorizable_nan_tests() -> tvm.transform.Pass:
    return rewriting_pass("WasmVectorizableNanTests", _as_bit_test)


def _as_bit_test(expr) -> tirx.PrimExpr | None:
    if not (isinstance(expr, tvm.ir.expr.Call) and expr.op.same_as(ISNAN)) or str(expr.args[0].ty) != "float32":
        return None
    bits = tirx.reinterpret("int32", expr.args[0])
    return tirx.bitwise_and(bits, tirx.const(_MAGNITUDE_MASK, "int32")) > tirx.const(_INFINITY_BITS, "int32")
