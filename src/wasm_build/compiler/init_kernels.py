"""Kernels that compute from constants once, when the model is initialized.

Some weights are cheaper to ship than to use: Winograd's transformed filters are 16/9 the
values of a 3x3 conv's, widened to int16 for integer convs (32/9 the bytes). Folded at
compile time, they would grow the artifact by that much; a graph pass instead emits the
transform as a kernel marked with `INIT_KERNEL_ATTR`, on the original constant, and the
executor (`codegen.plan`) runs every kernel call that reads only constants and its results
once, from ``NAME_init``, into memory of their own.

TVM's ``FoldConstant`` evaluates every ``call_tir`` whose arguments are all constants, so it
would undo that: `fold_constants` is ``FoldConstant`` that leaves init kernels' calls in
place, and `derived_from_constants` lets the schedules treat what those calls compute like
constants (the contraction rule packs such weights; the packing then runs at init too).
"""

from __future__ import annotations

import logging

import tvm
from tvm import relax, tirx

from .irmodule import is_call_tir
from .tiles import SCHEDULED_ATTR

logger = logging.getLogger(__name__)

# PrimFunc attribute: the kernel reads constants only and runs once, at init.
INIT_KERNEL_ATTR = "wasm_build.init_kernel"


def init_kernels(mod: tvm.IRModule) -> set[tvm.ir.GlobalVar]:
    return {
        gvar
        for gvar, func in mod.functions_items()
        if isinstance(func, tirx.PrimFunc) and func.attrs is not None and INIT_KERNEL_ATTR in func.attrs
    }


def _calls_init_kernel(expr: relax.Expr, kernels: set[tvm.ir.GlobalVar]) -> bool:
    return is_call_tir(expr) and expr.args[0] in kernels


def derived_from_constants(func: relax.Function, kernels: set[tvm.ir.GlobalVar]) -> set[relax.Var]:
    """The variables of ``func`` that init kernels compute from constants (and tuple items
    of those)."""
    derived: set[relax.Var] = set()
    if not kernels or not isinstance(func.body, relax.SeqExpr):
        return derived

    def constant(arg: relax.Expr) -> bool:
        return isinstance(arg, tvm.ir.expr.Constant) or arg in derived

    for block in func.body.blocks:
        for binding in block.bindings:
            value = binding.value
            if _calls_init_kernel(value, kernels) and all(constant(a) for a in value.args[1].fields):
                derived.add(binding.var)
            elif isinstance(value, relax.TupleGetItem) and value.tuple_value in derived:
                derived.add(binding.var)
    return derived


@relax.expr_functor.mutator
class _LiftInitArguments(relax.PyExprMutator):
    """Replaces the constant arguments of init kernels' calls by new parameters."""

    def __init__(self, mod: tvm.IRModule, kernels: set[tvm.ir.GlobalVar]) -> None:
        super().__init__(mod)
        self.kernels = kernels
        self.lifted: dict[relax.Var, tvm.runtime.Tensor] = {}

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not _calls_init_kernel(call, self.kernels):
            return call
        fields = []
        for arg in call.args[1].fields:
            if isinstance(arg, tvm.ir.expr.Constant):
                var = relax.Var(f"init_constant{len(self.lifted)}", arg.ty)
                self.lifted[var] = arg.value
                arg = var
            fields.append(arg)
        return relax.Call(call.op, [call.args[0], relax.Tuple(fields), *call.args[2:]], call.attrs, call.ty_args)


def fold_constants() -> tvm.transform.Pass:
    """``FoldConstant``, except for the calls of init kernels: their constant arguments are
    parameters while it runs, and bound again after."""

    @tvm.transform.module_pass(opt_level=0, name="WasmFoldConstants")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        kernels = init_kernels(mod)
        if not kernels:
            return relax.transform.FoldConstant()(mod)
        lifted: dict[tvm.ir.GlobalVar, tuple[relax.Function, dict[relax.Var, tvm.runtime.Tensor]]] = {}
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                lifter = _LiftInitArguments(mod, kernels)
                body = lifter.visit_expr(func.body)
                if lifter.lifted:
                    params = [*func.params, *lifter.lifted]
                    lifted[gvar] = (relax.Function(params, body, func.ret_ty, func.is_pure, func.attrs, func.span), lifter.lifted)
        if lifted:
            mod = mod.clone()
            for gvar, (func, _) in lifted.items():
                mod[gvar] = func
        mod = relax.transform.FoldConstant()(mod)
        for gvar, (_, values) in lifted.items():
            mod = relax.transform.BindParams(gvar.name_hint, values)(mod)
        return mod

    return _pass


def compose_init_packing(mod: tvm.IRModule) -> tvm.IRModule:
    """An init kernel whose only consumer packs its result (the weight packing the contraction
    rule asked for, split off by ``SplitLayoutRewritePreproc``) becomes one kernel with it,
    writing the packed values directly: apart, init would need a buffer for the unpacked
    ones too (16.8 MB for float32 ResNet-18's largest Winograd conv), which is memory the
    module keeps for good."""
    kernels = init_kernels(mod)
    builder = relax.BlockBuilder(mod)
    replaced: dict[relax.Call, relax.Call] = {}
    for _, func in mod.functions_items():
        for init, packing in _packings(func, kernels):
            params = [relax.Var(f"arg{i}", arg.ty) for i, arg in enumerate(init.args[1].fields)]
            with builder.function(f"{init.args[0].name_hint}_packed", params, attrs={"Primitive": True}, private=True):
                with builder.dataflow():
                    unpacked = builder.emit(relax.call_tir(init.args[0], relax.Tuple(params), init.ty_args[0]))
                    packed = builder.emit_output(relax.call_tir(packing.args[0], relax.Tuple([unpacked]), packing.ty_args[0]))
                composed = builder.emit_func_output(packed)
            replaced[packing] = relax.Call(composed, list(init.args[1].fields))
    if not replaced:
        return mod
    mod = builder.get()
    for gvar, func in list(mod.functions_items()):
        if isinstance(func, relax.Function) and not (func.attrs and "Primitive" in func.attrs):
            mod[gvar] = _ReplaceCalls(mod, replaced).visit_expr(func)
    # FuseTIR makes each composed function one kernel, the unpacked values a buffer in it.
    mod = tvm.transform.Sequential([relax.transform.DeadCodeElimination(), relax.transform.FuseTIR()])(mod)
    composed_names = {call.op.name_hint for call in replaced.values()}
    for gvar, func in list(mod.functions_items()):
        if gvar.name_hint in composed_names and isinstance(func, tirx.PrimFunc):
            mod[gvar] = _inline_unpacked(func).with_attr(INIT_KERNEL_ATTR, True).with_attr(SCHEDULED_ATTR, True)
    return mod


def _packings(func: relax.Expr, kernels: set[tvm.ir.GlobalVar]) -> list[tuple[relax.Call, relax.Call]]:
    """(init kernel's call, the call that packs its result) pairs of ``func``, where the packing
    is the result's only use and reads nothing else."""
    if not kernels or not isinstance(func, relax.Function) or not isinstance(func.body, relax.SeqExpr):
        return []
    uses: dict[relax.Var, int] = {}

    def count(expr: relax.Expr) -> None:
        if isinstance(expr, relax.Var):
            uses[expr] = uses.get(expr, 0) + 1

    relax.analysis.post_order_visit(func.body, count)
    bindings = [(b.var, b.value) for block in func.body.blocks for b in block.bindings]
    produced = {var: value for var, value in bindings if _calls_init_kernel(value, kernels)}
    pairs = []
    for _, value in bindings:
        if is_call_tir(value):
            fields = value.args[1].fields
            if len(fields) == 1 and fields[0] in produced and uses[fields[0]] == 1:
                pairs.append((produced[fields[0]], value))
    return pairs


def _inline_unpacked(func: tirx.PrimFunc) -> tirx.PrimFunc:
    """``func`` with the blocks that write its intermediate buffers (the unpacked values)
    inlined into their readers. (The transform picks its coefficients by selections on the
    tile axes; unrolling those would fold them, init 24 -> 11 ms for int8 ResNet-18, but
    double the model's code: 198 -> 363 KB.)"""
    from tvm import s_tir  # only here: the rest of the module is graph-level
    from tvm.s_tir.schedule import ScheduleError

    sch = s_tir.Schedule(func)
    root = sch.get_sblock("root")
    intermediates = list(sch.get(root).alloc_buffers)
    for block in sch.get_child_blocks(root):
        if any(w.source.same_as(b) for w in sch.get(block).writes for b in intermediates):
            try:
                sch.compute_inline(block)
            except ScheduleError:  # not a plain spatial block: the buffer stays (workspace, freed after)
                logger.debug("%s: kept an intermediate buffer at init", sch.get(block).name_hint)
    return sch.mod["main"]


@relax.expr_functor.mutator
class _ReplaceCalls(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule, replaced: dict[relax.Call, relax.Call]) -> None:
        super().__init__(mod)
        self.replaced = replaced

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        for old, new in self.replaced.items():
            if call.same_as(old):
                return new
        return super().visit_call_(call)
