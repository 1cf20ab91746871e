"""Constant weights around the schedules: which kernel parameters are constants (before
scheduling, so the contraction rule may store them packed), and the fold that packs them at
compile time (after scheduling)."""

from __future__ import annotations

import tvm
from tvm import relax


def constant_params(mod: tvm.IRModule) -> dict[tvm.ir.GlobalVar, set[int]]:
    """For each PrimFunc, the parameters that every ``call_tir`` passes a constant."""
    found: dict[tvm.ir.GlobalVar, set[int]] = {}

    def visit(expr):
        if not (isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == "relax.call_tir"):
            return
        callee, args = expr.args[0], expr.args[1]
        if not isinstance(args, relax.Tuple):
            return
        constants = {i for i, arg in enumerate(args.fields) if isinstance(arg, tvm.ir.expr.Constant)}
        found[callee] = found[callee] & constants if callee in found else constants

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return found


def fold_packed_constants(mod: tvm.IRModule) -> tvm.IRModule:
    """Move the weight-packing copies that the contraction rule put in kernels
    (blocks marked as layout-rewrite preprocessing) into functions of their own,
    and apply them to the constant weights now, at compile time."""
    return tvm.transform.Sequential(
        [
            relax.transform.SplitLayoutRewritePreproc(),
            relax.transform.FoldConstant(),
            relax.transform.DeadCodeElimination(),
        ]
    )(mod)
