"""Loop order for kernels that keep symbolic extents (those `row_chunks` cannot chunk).

wasm-build's schedules need static extents, so a kernel over two symbolic axes (attention's
`q @ k^T` and `softmax(.) @ v` over `seq x seq`) stays a naive loop nest, reduction
innermost: a dot product per output, its operand read with a stride. With the reduction
loops moved outside the innermost spatial loop, the innermost loop walks the output and
an operand contiguously, and LLVM vectorizes it (loops of unknown trip count get a scalar
tail): at seq = 128 a BERT layer's attention products ran 2.5-4.5 times faster. A static
innermost reduction (`q @ k^T`'s head dimension) then has four of its steps unrolled inside
that loop, which halved `q @ k^T` again at seq = 128 (0.71 -> 0.35 ms for an encoder's two).
"""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.schedule import SBlockRV

from .irmodule import with_functions
from .schedules.analysis import iter_kinds, root_blocks
from .schedules.rule import Rule, attempt
from .tiles import SCHEDULED_ATTR


class SymbolicReduction(Rule):
    """A reduction `S...SR...R` over symbolic extents: reduction loops outside the innermost
    spatial loop, the initialization before them."""

    name = "symbolic_reduction"

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        kinds = iter_kinds(sch, block)
        spatial = len(kinds) - len(kinds.lstrip("S"))
        if spatial == 0 or spatial == len(kinds) or set(kinds[spatial:]) != {"R"}:
            return False
        loops = sch.get_loops(block)
        stmt = sch.get(block)
        if len(loops) != len(kinds) or not all(
            value.same_as(sch.get(loop).loop_var) for loop, value in zip(loops, _iter_values(sch, block))
        ):
            return False
        inner = sch.get(loops[spatial - 1]).extent
        if isinstance(inner, tirx.IntImm) and int(inner.value) == 1:
            return False  # nothing to walk along (a row's max or sum)
        if not _indexes_last_axis(stmt, stmt.iter_vars[spatial - 1].var):
            return False
        sch.reorder(*loops[: spatial - 1], *loops[spatial:], loops[spatial - 1])
        sch.decompose_reduction(block, sch.get_loops(block)[spatial - 1])
        _unroll_reduction_inside(sch, block)
        return True


# Reduction steps per pass over the output row: each pass loads and stores the row once.
_REDUCTION_UNROLL = 4


def _unroll_reduction_inside(sch: s_tir.Schedule, block: SBlockRV) -> None:
    """With a static innermost reduction (`q k^T`'s head dimension), move `_REDUCTION_UNROLL`
    of its steps inside the spatial loop, unrolled: the vectorized loop then adds four
    products per load and store of the output, in the same order as before."""
    *_, reduction, inner = sch.get_loops(block)
    extent = sch.get(reduction).extent
    if not isinstance(extent, tirx.IntImm) or int(extent.value) % _REDUCTION_UNROLL or int(extent.value) <= _REDUCTION_UNROLL:
        return
    _outer, steps = sch.split(reduction, [None, _REDUCTION_UNROLL])
    sch.reorder(inner, steps)
    sch.unroll(steps)


def _iter_values(sch: s_tir.Schedule, block: SBlockRV):
    return tvm.get_global_func("s_tir.schedule.GetSBlockRealize")(sch, block).iter_values


def _indexes_last_axis(stmt, var: tirx.Var) -> bool:
    """Whether `var` is the output's innermost index: the loop over it walks memory contiguously."""
    last = stmt.writes[0].region[-1].min
    return isinstance(last, tirx.Var) and last.same_as(var)


def has_symbolic_shape(func: tirx.PrimFunc) -> bool:
    """Whether a buffer of `func` has a dimension that is not a constant (`seq`, `(frames - 1) // 2`)."""
    return any(
        not isinstance(d, tirx.IntImm)
        for p in func.params
        if isinstance(p.ty, tirx.BufferType)
        for d in p.ty.shape
    )


def symbolic_loop_pass() -> tvm.transform.Pass:
    """Module pass (with the schedules, before wasm-build's defaults): the loop order above for
    every unscheduled kernel with a symbolic shape, which is then marked scheduled."""
    rule = SymbolicReduction()

    @tvm.transform.module_pass(opt_level=0, name="WasmSymbolicLoops")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        updates = {}
        for gvar, func in mod.functions_items():
            if not isinstance(func, tirx.PrimFunc) or not has_symbolic_shape(func):
                continue
            if func.attrs is not None and func.attrs.get(SCHEDULED_ATTR, False):
                continue
            sch, changed = s_tir.Schedule(func), False
            for name in [sch.get(b).name_hint for b in root_blocks(sch)]:
                result = attempt(sch, rule, name)
                if result is not None:
                    sch, changed = result, True
            if changed:
                updates[gvar] = sch.mod["main"].with_attr(SCHEDULED_ATTR, True)
        return with_functions(mod, updates)

    return _pass
