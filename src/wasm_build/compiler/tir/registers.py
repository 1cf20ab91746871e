"""Lowering step: values a kernel's math binds with ``Let`` go through registers.

TVM's LLVM code generator hands every bound value to its arithmetic analyzer
(``Analyzer.Bind``), which simplifies it with the earlier bindings substituted and walks the
result as a tree. The vectorized exp/log/tanh of `compiler.passes.vector_math` bind a dozen
values each, most read several times, so nesting them costs exponential time: Mish
(x * tanh(log(1 + exp(x)))) did not finish building in ten minutes, GELU and softmax kernels
took seconds each. The analyzer has nothing to learn from float or vector values (it reasons
about integer indices), so this step binds them to a load from a local buffer that holds the
value: the analyzer sees a load, LLVM promotes the buffer to a register and emits the same code.

Only ``Let`` inside the value of a buffer store move, in evaluation order; those inside a
guarded ``if_then_else`` stay, since moving them out would evaluate what the guard protects.
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import tirx

from .walk import field_names, is_if_then_else, rewriting_pass


def bind_through_registers() -> tvm.transform.Pass:
    return rewriting_pass("WasmBindThroughRegisters", _hoist_store_lets)


def _hoist_store_lets(node) -> tirx.Stmt | None:
    if not isinstance(node, tirx.BufferStore):
        return None
    bindings: list[tuple[tirx.Var, tirx.PrimExpr]] = []
    value = _without_lets(node.value, bindings, set())
    if not bindings:
        return None
    statements: list[tirx.Stmt] = []
    for var, bound in bindings:
        statements.extend(_bind(var, bound))
    fields = {name: getattr(node, name) for name in field_names(type(node))}
    statements.append(tvm.ir.make_node(type(node).__tvm_ffi_type_info__.type_key, **{**fields, "value": value}))
    return tirx.SeqStmt(statements)


def _bind(var: tirx.Var, value: tirx.PrimExpr) -> list[tirx.Stmt]:
    """``var = value``: directly for a scalar integer (the analyzer uses those for indices),
    else through a local buffer."""
    dtype = tvm.DataType(str(var.ty))
    lanes = int(dtype.lanes)
    element = str(dtype.with_lanes(1))
    if lanes == 1 and not dtype.is_float:
        return [tirx.Bind(var, value)]
    register = tirx.decl_buffer((lanes,), element, f"{var.name}_register", scope="local")
    index = [tirx.Ramp(tirx.const(0, "int32"), tirx.const(1, "int32"), lanes)] if lanes > 1 else [tirx.const(0, "int32")]
    return [
        tirx.AllocBuffer(register, {"disable_lower_builtin": tirx.IntImm("bool", 1)}),
        tirx.BufferStore(register, value, index),
        tirx.Bind(var, tirx.BufferLoad(register, index)),
    ]


def _without_lets(expr, bindings: list, bound: set):
    """``expr`` with its ``Let`` nodes removed, their bindings appended to ``bindings`` in the
    order they are evaluated (a value's own bindings first). A variable bound twice (TVM reuses
    a ``Let`` with the same value) is bound once."""
    if isinstance(expr, tirx.Let):
        value = _without_lets(expr.value, bindings, bound)
        if expr.var not in bound:
            bound.add(expr.var)
            bindings.append((expr.var, value))
        return _without_lets(expr.body, bindings, bound)
    if is_if_then_else(expr) or not isinstance(expr, tvm.ir.expr.Expr) or isinstance(expr, (tirx.Var, tirx.IntImm, tirx.FloatImm)):
        return expr
    names = field_names(type(expr))
    changed = {}
    for name in names:
        child = getattr(expr, name)
        if isinstance(child, tvm_ffi.Array):
            items = [_without_lets(item, bindings, bound) if isinstance(item, tvm.ir.expr.Expr) else item for item in child]
            if any(new is not old for new, old in zip(items, child)):
                changed[name] = items
        elif isinstance(child, tvm.ir.expr.Expr):
            new = _without_lets(child, bindings, bound)
            if new is not child:
                changed[name] = new
    if not changed:
        return expr
    fields = {name: getattr(expr, name) for name in names}
    return tvm.ir.make_node(type(expr).__tvm_ffi_type_info__.type_key, **{**fields, **changed})
