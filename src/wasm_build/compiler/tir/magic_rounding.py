"""TIR step before lowering: round-clamp-convert to integers by adding 1.5 * 2^23.

Every quantize and requantize epilogue ends in ``int32(min(max(nearbyint(x) + z, lo), hi))``
(`compiler.passes.qdq.saturate`). On wasm that is ``f32x4.nearest`` and then
``i32x4.trunc_sat_f32x4_s``, which Cranelift expands to about seven x86 instructions (NaN and
overflow lanes fixed up one by one), although the value is clamped and integral already.

Adding ``M = 1.5 * 2^23`` to a float ``c`` with ``|c| <= 2^22`` leaves ``round(c)`` (to nearest,
ties to even: wasm's only rounding mode, as ``nearbyint``'s) in the low mantissa bits, so
``bits(c + M) - bits(M)`` is that integer: an add and an integer subtract. Clamping before
rounding to integral bounds gives the same value as after it, so this step rewrites the
expression as ``bits(min(max(x, lo - z), hi - z) + M) - (bits(M) - z)`` when ``z`` is an
integral constant; other clamped values (``z`` a run-time zero point) are truncated first,
``bits(trunc(min(max(v, lo), hi)) + M) - bits(M)``, as the conversion truncates. Both exact; a
NaN comes out as the low bound (onnxruntime's quantize; ``trunc_sat`` made it 0).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import tvm
from tvm import tirx
from tvm.s_tir.dlight.analysis import collect_vars_used_in_prim_expr

from .rounding import NEARBYINT
from .walk import body_rewriting_pass, is_if_then_else, rewrite, visit

MAGIC = 12582912.0  # 1.5 * 2^23
MAGIC_BITS = 0x4B400000  # its bits: those of MAGIC + n are these + n for |n| < 2^22
_REINTERPRET = tvm.ir.Op.get("tirx.reinterpret")
# Calls that compute without side effects or traps (an inner requantize's own).
_PURE_CALLS = (_REINTERPRET, NEARBYINT, tvm.ir.Op.get("tirx.call_llvm_pure_intrin"))
# Bounds and zero points this far from 0 keep every clamped value within 2^22.
_LIMIT = 2**20


def magic_rounding() -> tvm.transform.Pass:
    return body_rewriting_pass("WasmMagicRounding", lambda func: functools.partial(_rewritten, lanes=_lanes(func)))


@dataclass(frozen=True)
class _Lanes:
    """A kernel's variables by how TVM's vectorizer will see them: ``varying``, the vectorized
    loops' variables and the block iterators bound to them; ``scalar``, the iterators of blocks
    no vectorized loop runs (their expressions are never vectorized)."""

    varying: frozenset
    scalar: frozenset


def _lanes(func: tirx.PrimFunc) -> _Lanes:
    loops, realizes = [], []

    def look(node) -> None:
        if isinstance(node, tirx.For) and node.kind == tirx.ForKind.VECTORIZED:
            loops.append(node.loop_var)
        elif isinstance(node, tvm.s_tir.SBlockRealize):
            realizes.append(node)

    visit(func.body, look)
    varying, scalar = set(loops), set()
    for realize in realizes:
        bound = [(iv.var, collect_vars_used_in_prim_expr(value)) for iv, value in zip(realize.block.iter_vars, realize.iter_values)]
        vectorized = any(var in varying for _, used in bound for var in used)
        for var, used in bound:
            if any(v in varying for v in used):
                varying.add(var)
            elif not vectorized:
                scalar.add(var)
    return _Lanes(frozenset(varying), frozenset(scalar))


def _rewritten(expr, lanes: _Lanes | None = None) -> tirx.PrimExpr | None:
    if not (isinstance(expr, tirx.Cast) and str(expr.ty) == "int32" and str(expr.value.ty) == "float32"):
        return None
    clamp = _clamp(expr.value)
    if clamp is None:
        return None
    value, low, high = clamp
    value = rewrite(value, _speculated)
    rounded = _rounded(value)
    if rounded is not None:  # integral already once clamped: round by the addition itself
        x, zero_point = rounded
        clamped = _clamped(x, low - zero_point, high - zero_point, lanes)
    else:
        # Any value (a zero point read from memory, which may hold a fraction as far as this
        # step knows): truncated first, as the conversion would (one ``f32x4.trunc``).
        zero_point = 0
        clamped = tirx.call_llvm_pure_intrin("float32", "llvm.trunc", _clamped(value, low, high, lanes))
    shifted = tirx.reinterpret("int32", clamped + tirx.const(MAGIC, "float32"))
    return shifted - tirx.const(MAGIC_BITS - zero_point, "int32")


def _clamped(x: tirx.PrimExpr, low: int, high: int, lanes: _Lanes | None = None) -> tirx.PrimExpr:
    """``x`` within [low, high], as selects that keep x only where it compares true: a NaN
    becomes the low bound (as in onnxruntime's quantize) and never reaches the integer. (TVM
    writes max(x, lo) as ``x < lo ? lo : x``, which keeps it, and puts constants second in any
    max it simplifies.) Each is one ``f32x4.pmax`` / ``pmin``."""
    low, high = tirx.const(low, "float32"), tirx.const(high, "float32")
    if not _binds_well(x, lanes):
        above = tirx.Select(low < x, x, low)
        return tirx.Select(above < high, above, high)
    # Each value bound once: a select reads it twice, and requantizes nested in one kernel
    # (dequantize -> quantize chains) would otherwise copy their inner ones 4x per level.
    value, above = tirx.Var("unclamped", "float32"), tirx.Var("above", "float32")
    return tirx.Let(value, x, tirx.Let(above, tirx.Select(low < value, value, low), tirx.Select(above < high, above, high)))


def _binds_well(x, lanes: _Lanes | None) -> bool:
    """Whether ``x`` is worth a ``Let``, and TVM's vectorizer takes it. Worth it: ``x`` holds a
    nested requantize (otherwise the select's two reads cost a load or two; written out, n
    nested levels are 4^n copies). Taken: in a kernel TVM vectorizes, the vectorizer visits a
    ``Let`` twice, which stops the build ("Let cannot bind the same var to two different
    values"), where ``x`` is the same in every lane (a layer norm's requantized statistics:
    int8 T5) or a condition in it depends on the lane (it scalarizes the statement: a
    concatenation `_speculated` could not make a select). A nested ``x`` that holds a ``Let``
    already is bound all the same: written out, it would be read twice."""
    nested, conditional, bound = [], [], []

    def look(node) -> None:
        if is_if_then_else(node):
            conditional.append(node)
        elif isinstance(node, tvm.ir.expr.Call) and node.op.same_as(_REINTERPRET):
            nested.append(node)
        elif isinstance(node, tirx.Let):
            bound.append(node)

    visit(x, look)
    if not nested:
        return False
    if bound:
        return True
    used = collect_vars_used_in_prim_expr(x)
    if lanes is None or not lanes.varying or any(var in lanes.scalar for var in used):
        return True  # never vectorized
    varies = any(var in lanes.varying for var in used)
    return varies and not any(_uses_any(node.args[0], lanes.varying) for node in conditional)


def _uses_any(expr, variables: set) -> bool:
    return any(var in variables for var in collect_vars_used_in_prim_expr(expr))


def _speculated(node) -> tirx.PrimExpr | None:
    """``if_then_else(c, a, b)`` as ``select(c, a, b)`` with every load of ``a`` and ``b`` at an
    index clamped into its buffer, when both branches are loads and arithmetic that cannot trap:
    evaluated in every lane, they read real values where the condition discards them. A
    condition on the vectorized index (a concatenation, RoPE's rotated halves) otherwise makes
    TVM's vectorizer scalarize the whole statement."""
    if not is_if_then_else(node):
        return None
    condition, then, otherwise = node.args
    if not (_cannot_trap(then) and _cannot_trap(otherwise)):
        return None
    return tirx.Select(condition, rewrite(then, _clamped_load), rewrite(otherwise, _clamped_load))


_SAFE = (tirx.Add, tirx.Sub, tirx.Mul, tirx.Min, tirx.Max, tirx.Cast, tirx.Select, tirx.Let, tvm.ir.TensorLoad, tvm.ir.Op)


def _cannot_trap(expr) -> bool:
    """Whether evaluating ``expr`` anywhere is harmless: loads (clamped by `_clamped_load`),
    float arithmetic, integer arithmetic dividing by constants only, casts, selects and lets."""
    ok = [True]

    def look(node) -> None:
        if isinstance(node, (tirx.Div, tirx.FloorDiv, tirx.FloorMod, tirx.Mod)):
            divisor = node.b
            ok[0] = ok[0] and (str(node.ty).startswith("float") or (isinstance(divisor, tirx.IntImm) and int(divisor) != 0))
        elif isinstance(node, tvm.ir.expr.Call):
            ok[0] = ok[0] and any(node.op.same_as(op) for op in _PURE_CALLS)
        elif not isinstance(node, _SAFE) and isinstance(node, tvm.ir.expr.Expr) and not isinstance(node, _COMPARISONS):
            ok[0] = False

    visit(expr, look)
    return ok[0]


_COMPARISONS = (tirx.LT, tirx.LE, tirx.GT, tirx.GE, tirx.EQ, tirx.NE, tirx.And, tirx.Or, tirx.Not)


def _clamped_load(node) -> tirx.PrimExpr | None:
    if not isinstance(node, tvm.ir.TensorLoad):
        return None
    indices = [tirx.max(tirx.min(index, extent - 1), 0) for index, extent in zip(node.indices, node.source.shape)]
    return tirx.BufferLoad(node.source, indices)


def _clamp(expr) -> tuple[tirx.PrimExpr, int, int] | None:
    """``min(max(v, lo), hi)`` or ``max(min(v, hi), lo)`` with integral float bounds."""
    if isinstance(expr, tirx.Min) and isinstance(expr.a, tirx.Max):
        value, low, high = expr.a.a, expr.a.b, expr.b
    elif isinstance(expr, tirx.Max) and isinstance(expr.a, tirx.Min):
        value, low, high = expr.a.a, expr.b, expr.a.b
    else:
        return None
    low, high = _integral(low), _integral(high)
    if low is None or high is None or low > high:
        return None
    return value, low, high


def _rounded(expr) -> tuple[tirx.PrimExpr, int] | None:
    """``nearbyint(x)`` or ``nearbyint(x) + z`` (z integral) as ``(x, z)``."""
    zero_point = 0
    if isinstance(expr, tirx.Add):
        for rounded, shift in ((expr.a, expr.b), (expr.b, expr.a)):
            if _integral(shift) is not None and _is_nearbyint(rounded):
                expr, zero_point = rounded, _integral(shift)
                break
        else:
            return None
    if not _is_nearbyint(expr):
        return None
    return expr.args[0], zero_point


def _is_nearbyint(expr) -> bool:
    return isinstance(expr, tvm.ir.expr.Call) and expr.op.same_as(NEARBYINT) and str(expr.ty) == "float32"


def _integral(expr) -> int | None:
    if isinstance(expr, tirx.FloatImm) and float(expr.value).is_integer() and abs(expr.value) <= _LIMIT:
        return int(expr.value)
    return None
