"""Lowering step: clamps against constants keep NaN, as onnxruntime's do.

ReLU, ReLU6 and Clip legalize to ``max(x, c)`` / ``min(x, c)``, which TVM's LLVM code makes
``select(x > c, x, c)`` (or ``maxnum``): a NaN input becomes ``c``, where onnxruntime, NumPy
and PyTorch return NaN. ``select(x < c, c, x)`` is the same clamp for every other value and
returns ``x`` itself when it is NaN; LLVM turns it into wasm's ``f32x4.pmax`` / ``pmin``, one
instruction like before. Clamps between two computed values (max pooling) are left alone.
"""

from __future__ import annotations

import tvm
from tvm import tirx

from .walk import rewriting_pass


def propagate_nan() -> tvm.transform.Pass:
    return rewriting_pass("WasmPropagateNaN", _clamp_keeping_nan)


def _is_constant(expr: tirx.PrimExpr) -> bool:
    if isinstance(expr, tirx.Broadcast):
        expr = expr.value
    return isinstance(expr, tirx.FloatImm)


def _clamp_keeping_nan(expr: tvm.ir.expr.Expr) -> tirx.PrimExpr | None:
    if not isinstance(expr, (tirx.Max, tirx.Min)) or not str(expr.ty).startswith("float"):
        return None
    value, bound = expr.a, expr.b
    if _is_constant(value) and not _is_constant(bound):
        value, bound = bound, value
    if not _is_constant(bound) or _is_constant(value):
        return None
    # max(x, c): x < c ? c : x      min(x, c): x > c ? c : x. `x` is read twice: a computed one
    # is bound once (duplicating it would also duplicate the Let bindings inside it).
    shared = value if isinstance(value, (tirx.Var, tvm.ir.TensorLoad)) else tirx.Var("clamped", value.ty)
    beyond = shared < bound if isinstance(expr, tirx.Max) else shared > bound
    clamp = tirx.Select(beyond, bound, shared)
    return clamp if shared is value else tirx.Let(shared, value, clamp)
