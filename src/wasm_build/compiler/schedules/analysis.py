"""Block analysis shared by the schedule rules (and graph passes that read kernels).

Nothing here changes a schedule. dlight's helpers are used where they give the same
answer: `get_root_block` and `collect_vars_used_in_prim_expr`.
"""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import collect_vars_used_in_prim_expr, get_root_block
from tvm.s_tir.schedule import LoopRV, SBlockRV
from tvm.sym.pattern import detect_linear_equation

VECTOR_BITS = 128

block_realize = tvm.get_global_func("s_tir.schedule.GetSBlockRealize")


# --------------------------------------------------------------------------
# Blocks of a schedule
# --------------------------------------------------------------------------


def root_blocks(sch: s_tir.Schedule) -> list[SBlockRV]:
    return list(sch.get_child_blocks(get_root_block(sch)))


def all_blocks(sch: s_tir.Schedule) -> list[SBlockRV]:
    blocks = []
    pending = root_blocks(sch)
    while pending:
        block = pending.pop()
        blocks.append(block)
        pending.extend(sch.get_child_blocks(block))
    return blocks


def is_output(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    stmt = sch.get(block)
    return any(sch.get(out).same_as(stmt) for out in sch.get_output_blocks(get_root_block(sch)))


# --------------------------------------------------------------------------
# Iterators and loops of a block
# --------------------------------------------------------------------------


def iter_kinds(sch: s_tir.Schedule, block: SBlockRV) -> str:
    """'S'/'R' per block iterator, e.g. 'SSR' for a matmul.

    Not dlight's `get_sblock_info(...).dom_kind()`: that pairs iterators with the block's
    loops and drops the iterators of a block with fewer loops than iterators."""
    kinds = {tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}
    return "".join(kinds.get(int(iv.iter_type), "O") for iv in sch.get(block).iter_vars)


def is_spatial(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    return set(iter_kinds(sch, block)) == {"S"}


def is_plain_reduction(sch: s_tir.Schedule, block: SBlockRV, need_spatial: bool = True) -> bool:
    """A float32 reduction block, iterators "S...SR...R", one loop per iterator."""
    kinds = iter_kinds(sch, block)
    n_spatial = len(kinds) - len(kinds.lstrip("S"))
    if kinds[n_spatial:] != "R" * (len(kinds) - n_spatial) or n_spatial == len(kinds):
        return False
    if need_spatial and n_spatial == 0:
        return False
    return is_float32_block(sch, block) and has_trivial_binding(sch, block)


def has_trivial_binding(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """True when loop i binds exactly iterator i (the shape FuseTIR produces)."""
    loops = sch.get_loops(block)
    values = block_realize(sch, block).iter_values
    if len(loops) != len(values):
        return False
    return all(
        isinstance(sch.get(loop).extent, tirx.IntImm) and value.same_as(sch.get(loop).loop_var)
        for loop, value in zip(loops, values)
    )


def iter_index(stmt: tirx.SBlock, var) -> int | None:
    return next((i for i, iv in enumerate(stmt.iter_vars) if iv.var.same_as(var)), None)


def extent(sch: s_tir.Schedule, loop: LoopRV) -> int:
    return int(sch.get(loop).extent)


def first_divisor(extent: int, candidates) -> int | None:
    return next((c for c in candidates if extent % c == 0 and c <= extent), None)


def is_zero(expr) -> bool:
    return isinstance(expr, tirx.IntImm) and int(expr) == 0


def is_one(extent) -> bool:
    return isinstance(extent, tirx.IntImm) and int(extent) == 1


def steps_by_one(index, var: tirx.Var) -> bool:
    """Whether ``index`` is ``var + c``, ``c`` free of ``var``: consecutive values of ``var``
    address consecutive elements."""
    coeffs = detect_linear_equation(index, [var])
    return len(coeffs) == 2 and is_one(coeffs[0])


# --------------------------------------------------------------------------
# Buffers a block reads and writes
# --------------------------------------------------------------------------


def lanes(dtype: str) -> int:
    """Elements of ``dtype`` in one SIMD vector."""
    return max(1, VECTOR_BITS // tvm.DataType(dtype).bits)


def is_float32_block(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    stmt = sch.get(block)
    return len(stmt.writes) == 1 and stmt.writes[0].source.dtype == "float32"


def region_vars(region) -> list[set]:
    """Variables used by each dimension of a buffer region."""
    return [collect_vars_used_in_prim_expr(rng.min) for rng in region.region]


def indexed_dims(region, variables) -> list[int]:
    """The dimensions of a buffer region whose index uses any of ``variables``."""
    return [d for d, vars_ in enumerate(region_vars(region)) if any(uses([vars_], v) for v in variables)]


def uses(var_lists, var) -> bool:
    """Whether any of the collections of variables ``var_lists`` holds ``var``."""
    return any(v.same_as(var) for vars_ in var_lists for v in vars_)


def lane_axis(stmt: tirx.SBlock, kinds: str) -> int | None:
    """The spatial iterator that alone indexes the output's innermost dimension."""
    innermost = stmt.writes[0].region[-1].min
    for i, (iv, kind) in enumerate(zip(stmt.iter_vars, kinds)):
        if kind == "S" and innermost.same_as(iv.var):
            return i
    return None


def has_broadcast_operand(stmt: tirx.SBlock, var: tirx.Var) -> bool:
    """Whether some input's innermost index does not move with the lane variable
    (a matmul's row operand, a conv's input pixel): it is splat across lanes."""
    return any(not uses([collect_vars_used_in_prim_expr(r.region[-1].min)], var) for r in stmt.reads if r.region)
