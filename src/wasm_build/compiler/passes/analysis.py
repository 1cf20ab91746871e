"""Questions graph passes ask of a Relax module."""

from __future__ import annotations

import tvm
from tvm import relax

from ..irmodule import op_calls


def calls_op(mod: tvm.IRModule, op_name: str) -> bool:
    return bool(op_calls(mod, lambda call: call.op.name == op_name))


def var_uses(func: relax.Function) -> dict:
    uses: dict = {}

    def visit(expr):
        if isinstance(expr, relax.Var):
            uses[expr] = uses.get(expr, 0) + 1

    relax.analysis.post_order_visit(func.body, visit)
    return uses


def bindings(mod: tvm.IRModule) -> dict:
    """Every variable bound in ``mod``'s Relax functions, to the expression it is bound to."""
    bound: dict = {}
    for _, func in mod.functions_items():
        if isinstance(func, relax.Function) and isinstance(func.body, relax.SeqExpr):
            for block in func.body.blocks:
                for binding in block.bindings:
                    if isinstance(binding, relax.VarBinding):
                        bound[binding.var] = binding.value
    return bound


def mutate_functions(mutator: relax.PyExprMutator, mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with each of its Relax functions rewritten by ``mutator`` (one made on ``mod``)."""
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            mutator.builder_.update_func(gvar, mutator.visit_expr(func))
    return mutator.builder_.get()
