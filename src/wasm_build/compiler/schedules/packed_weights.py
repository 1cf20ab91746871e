"""Constant weights around the schedules: which kernel parameters are constants (before
scheduling, so the contraction rule may store them packed), and the fold that packs them at
compile time (after scheduling)."""

from __future__ import annotations

import tvm
from tvm import relax, tirx
from tvm.s_tir.stmt import SBlock

from ..init_kernels import compose_init_packing, derived_from_constants, fold_constants, init_kernels
from ..irmodule import is_call_tir
from ..tiles import LAYOUT_REWRITE_PREPROC_ATTR
from ..tir import walk


def constant_params(mod: tvm.IRModule) -> dict[tvm.ir.GlobalVar, set[int]]:
    """For each PrimFunc, the parameters that every ``call_tir`` passes a constant, or a value
    that kernels run at init compute from constants (`init_kernels`)."""
    found: dict[tvm.ir.GlobalVar, set[int]] = {}
    kernels = init_kernels(mod)
    derived: set[relax.Var] = set()

    def visit(expr):
        if not is_call_tir(expr):
            return
        callee, args = expr.args[0], expr.args[1]
        if not isinstance(args, relax.Tuple):
            return
        constants = {i for i, arg in enumerate(args.fields) if isinstance(arg, tvm.ir.expr.Constant) or arg in derived}
        found[callee] = found[callee] & constants if callee in found else constants

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            derived = derived_from_constants(func, kernels)
            relax.analysis.post_order_visit(func, visit)
    return found


def _packs_weights(func: tirx.PrimFunc) -> bool:
    """Whether a block of `func` is a weight-packing copy. Read by walking the body: a
    `Schedule` would first check the function, and inlining can leave a kernel whose Let
    bindings TIR's checker refuses though code generation handles them (a sigmoid used twice
    in a GRU cell)."""
    found: list[SBlock] = []

    def visit(node) -> None:
        if isinstance(node, SBlock) and LAYOUT_REWRITE_PREPROC_ATTR in node.annotations:
            found.append(node)

    walk.visit(func.body, visit)
    return bool(found)


def fold_packed_constants(mod: tvm.IRModule) -> tvm.IRModule:
    """Move the weight-packing copies that the contraction rule put in kernels
    (blocks marked as layout-rewrite preprocessing) into functions of their own,
    and apply them to the constant weights now, at compile time.

    SplitLayoutRewritePreproc sees only the kernels that pack: it has nothing to do in the
    others, and it fails on kernels without compute blocks (TOPI's cumsum, in RoBERTa)."""
    others = {gvar: func for gvar, func in mod.functions_items() if isinstance(func, tirx.PrimFunc) and not _packs_weights(func)}
    packing = tvm.IRModule(
        {gvar: func for gvar, func in mod.functions_items() if gvar not in others}, attrs=mod.attrs, global_infos=mod.global_infos
    )
    mod = relax.transform.SplitLayoutRewritePreproc()(packing)
    mod.update(tvm.IRModule(others))
    mod = tvm.transform.Sequential([fold_constants(), relax.transform.DeadCodeElimination()])(mod)
    return compose_init_packing(mod)
