"""Module-level helpers the compiler's passes share."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import tvm
from tvm import relax


def with_functions(mod: tvm.IRModule, updates: Mapping[tvm.ir.GlobalVar, tvm.ir.BaseFunc]) -> tvm.IRModule:
    """A new module with `updates` in place of those functions: passes must not change their
    input (tuning reuses it to extract tasks), and attributes and global infos carry over."""
    if not updates:
        return mod
    functions = dict(mod.functions_items())
    functions.update(updates)
    return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)


def is_call_tir(expr: relax.Expr | None) -> bool:
    """Whether ``expr`` calls a kernel (``relax.call_tir``)."""
    return isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.call_tir"


def op_calls(mod: tvm.IRModule, accept: Callable[[relax.Call], bool]) -> list[relax.Call]:
    """Every call of an operator in ``mod``'s Relax functions that ``accept`` takes, in post order."""
    found: list[relax.Call] = []

    def visit(expr) -> None:
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and accept(expr):
            found.append(expr)

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return found
