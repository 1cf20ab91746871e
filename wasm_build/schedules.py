"""Hand-written CPU schedules for fused TIR kernels, tuned for 128-bit SIMD.

The default Relax pipeline leaves every kernel as a naive loop nest.  The pass
built by :func:`default_schedule_pass` runs right after ``FuseTIR`` and
reschedules the PrimFuncs it recognises by their block structure:

* contractions -- a reduction block whose output's innermost index is a
  spatial iterator (dense, matmul, batch matmul, conv2d NCHW incl. depthwise
  and 1x1, stride-1 pooling windows): register-blocked tile of ``rows x lanes``
  accumulators in a tile-sized buffer, reduction loops outside the tile,
  innermost output axis vectorized, elementwise epilogues fused into the
  write-back of the tile;
* row reductions -- a reduction over the innermost, contiguous axis of its
  input (softmax, layer norm, global pooling): vector partial sums via rfactor;
* injective blocks -- producers with a single spatial consumer are inlined,
  the remaining loop nests get their innermost axis vectorized.

Every rule works on a copy of the schedule and is abandoned on any error, so
a kernel is either rescheduled by verified schedule primitives or left as is.
"""

from __future__ import annotations

import logging

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.schedule import LoopRV, SBlockRV, ScheduleError
from tvm.sym.pattern import detect_linear_equation

logger = logging.getLogger(__name__)

_VECTOR_BITS = 128
# Accumulator tile budget in elements: 16 v128 registers of f32.
_ACC_ELEMS = 64
# Rows of the register tile (the axis whose values reuse one vector load).
_ROW_FACTORS = (4, 2)
_SCHEDULED_ATTR = "tirx.is_scheduled"

_get_block_realize = tvm.get_global_func("s_tir.schedule.GetSBlockRealize")
_has_if_then_else_ffi = tvm.get_global_func("s_tir.schedule.HasIfThenElse")


def default_schedule_pass(target: tvm.target.Target) -> tvm.transform.Pass:
    """Module pass over an IRModule containing Relax + fused TIR PrimFuncs (right after
    relax.transform.FuseTIR), returning the module with every PrimFunc it knows how to
    speed up rescheduled for 128-bit SIMD (4 x f32 lanes), others left untouched."""

    @tvm.transform.module_pass(opt_level=0, name="WasmDefaultSchedule")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        if target.kind.name != "llvm":
            return mod
        updates = {}
        for gvar, func in mod.functions_items():
            if not isinstance(func, tirx.PrimFunc) or _is_scheduled(func):
                continue
            scheduled = schedule_prim_func(func)
            if scheduled is not None:
                updates[gvar] = scheduled
        for gvar, func in updates.items():
            mod[gvar] = func
        return mod

    return _pass


def schedule_prim_func(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """Return ``func`` rescheduled, or None when no rule applied."""
    sch = s_tir.Schedule(func)
    changed = False
    for rule in _RULES:
        for name in [sch.get(b).name_hint for b in _root_blocks(sch)]:
            result = _attempt(sch, rule, name)
            if result is not None:
                sch, changed = result, True
    if not changed:
        return None
    return sch.mod["main"].with_attr(_SCHEDULED_ATTR, True)


def _attempt(sch: s_tir.Schedule, rule, block_name: str) -> s_tir.Schedule | None:
    """Run ``rule`` on a copy of ``sch``; the copy if the rule applied, else None."""
    candidate = sch.copy()
    try:
        block = candidate.get_sblock(block_name)
    except ScheduleError:
        return None  # inlined by an earlier rule
    try:
        if rule(candidate, block):
            return candidate
    except Exception as err:  # pylint: disable=broad-except
        # A primitive refused the transformation: keep the previous state.
        logger.debug("%s on block %s skipped: %s", rule.__name__, block_name, err)
    return None


# --------------------------------------------------------------------------
# Block analysis helpers
# --------------------------------------------------------------------------


def _is_scheduled(func: tirx.PrimFunc) -> bool:
    return func.attrs is not None and bool(func.attrs.get(_SCHEDULED_ATTR, False))


def _root_blocks(sch: s_tir.Schedule) -> list[SBlockRV]:
    root = sch.get_sblock("root")
    return list(sch.get_child_blocks(root))


def _iter_kinds(sch: s_tir.Schedule, block: SBlockRV) -> str:
    """'S'/'R' per block iterator, e.g. 'SSR' for a matmul."""
    kinds = {tirx.IterVar.DataPar: "S", tirx.IterVar.CommReduce: "R"}
    return "".join(kinds.get(int(iv.iter_type), "O") for iv in sch.get(block).iter_vars)


def _is_spatial(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    return set(_iter_kinds(sch, block)) == {"S"}


def _has_trivial_binding(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """True when loop i binds exactly iterator i (the shape FuseTIR produces)."""
    loops = sch.get_loops(block)
    values = _get_block_realize(sch, block).iter_values
    if len(loops) != len(values):
        return False
    return all(
        isinstance(sch.get(loop).extent, tirx.IntImm) and value.same_as(sch.get(loop).loop_var)
        for loop, value in zip(loops, values)
    )


def _extent(sch: s_tir.Schedule, loop: LoopRV) -> int:
    return int(sch.get(loop).extent)


def _lanes(dtype: str) -> int:
    return max(1, _VECTOR_BITS // tvm.DataType(dtype).bits)


def _first_divisor(extent: int, candidates) -> int | None:
    return next((c for c in candidates if extent % c == 0 and c <= extent), None)


def _vars_in(expr) -> list:
    return list(tirx.analysis.undefined_vars(expr))


def _region_vars(region) -> list[list]:
    """Iterator variables used by each dimension of a buffer region."""
    return [_vars_in(rng.min) for rng in region.region]


def _uses(var_lists, var) -> bool:
    return any(v.same_as(var) for vars_ in var_lists for v in vars_)


def _is_float32_block(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    stmt = sch.get(block)
    return len(stmt.writes) == 1 and stmt.writes[0].source.dtype == "float32"




# --------------------------------------------------------------------------
# Rule: inline injective producers
# --------------------------------------------------------------------------


def _inline_into_spatial_consumer(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """Inline a spatial block into its only consumer when that consumer is spatial too.

    Producers feeding a reduction stay separate: inlining them there would
    recompute them (padding, transposes) once per reduction step.
    """
    if not _is_spatial(sch, block) or _is_output(sch, block):
        return False
    consumers = sch.get_consumers(block)
    if len(consumers) != 1 or not _is_spatial(sch, consumers[0]):
        return False
    sch.compute_inline(block)
    return True


def _is_output(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    stmt = sch.get(block)
    root = sch.get_sblock("root")
    return any(sch.get(out).same_as(stmt) for out in sch.get_output_blocks(root))


# --------------------------------------------------------------------------
# Rule: register-blocked contraction (matmul, conv2d, pooling windows)
# --------------------------------------------------------------------------


def _tile_contraction(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """Tile ``rows x lanes`` outputs, keep them in registers across the reduction.

    Loop order: outer spatial, row tile, lane tile, reduction loops, rows, lanes.
    The lane axis is the output's innermost (contiguous) index, so every
    reduction step does one vector load (or a broadcast) per operand and one
    vector FMA per tile row.
    """
    if not _is_plain_reduction(sch, block):
        return False
    stmt = sch.get(block)
    kinds = _iter_kinds(sch, block)
    loops = sch.get_loops(block)

    vec = _lane_axis(stmt, kinds)
    lanes = _lanes(stmt.writes[0].source.dtype)
    if vec is None or _extent(sch, loops[vec]) < lanes:
        return False
    if not _streams_along(stmt, stmt.iter_vars[vec].var):
        return False  # e.g. softmax: the input is contiguous along the reduction
    row, rows = _row_axis(sch, stmt, kinds, loops, vec)
    lane_tile = _lane_tile(_extent(sch, loops[vec]), lanes, rows)

    vec_o, vec_i = sch.split(loops[vec], [None, lane_tile])
    row_outer, row_inner = [], []
    if row is not None:
        row_o, row_i = sch.split(loops[row], [None, rows])
        row_outer, row_inner = [row_o], [row_i]
    outer = [loops[i] for i, k in enumerate(kinds) if k == "S" and i not in (vec, row)]
    reduce = [loops[i] for i, k in enumerate(kinds) if k == "R"]
    sch.reorder(*outer, *row_outer, vec_o, *reduce, *row_inner, vec_i)
    # Vectorize while the block still has its init (decomposed blocks can't be).
    sch.vectorize(vec_i)
    for loop in row_inner:
        sch.unroll(loop)

    # Accumulate in a tile-sized buffer: compacted to a small stack array that
    # LLVM promotes to registers.  ("local" scope would be heap-allocated via
    # TVMBackendAllocWorkspace at function entry and stay in memory.)
    write_back = sch.cache_write(block, 0, "global")
    _fuse_epilogues(sch, write_back)
    sch.reverse_compute_at(write_back, vec_o)
    init = sch.decompose_reduction(block, reduce[0])
    tile_depth = len(outer) + len(row_outer) + 1
    for tile_block in (init, write_back):
        _vectorize_tile(sch, tile_block, tile_depth)
    return True


def _is_plain_reduction(sch: s_tir.Schedule, block: SBlockRV, need_spatial: bool = True) -> bool:
    """A float32 reduction block, iterators "S...SR...R", one loop per iterator."""
    kinds = _iter_kinds(sch, block)
    n_spatial = len(kinds) - len(kinds.lstrip("S"))
    if kinds[n_spatial:] != "R" * (len(kinds) - n_spatial) or n_spatial == len(kinds):
        return False
    if need_spatial and n_spatial == 0:
        return False
    return _is_float32_block(sch, block) and _has_trivial_binding(sch, block)


def _lane_axis(stmt: tirx.SBlock, kinds: str) -> int | None:
    """The spatial iterator that alone indexes the output's innermost dimension."""
    innermost = stmt.writes[0].region[-1].min
    for i, (iv, kind) in enumerate(zip(stmt.iter_vars, kinds)):
        if kind == "S" and innermost.same_as(iv.var):
            return i
    return None


def _streams_along(stmt: tirx.SBlock, var: tirx.Var) -> bool:
    """Whether vector loads along ``var`` pay off for this block.

    Some input's innermost index must move with ``var`` (otherwise, as in
    softmax, the input is contiguous along the reduction instead).  A single
    input read with a stride (strided pooling) gives only gathers and no
    reuse, so that case is left to the naive loops.
    """
    moving = [r for r in stmt.reads if _uses([_vars_in(r.region[-1].min)], var)]
    if not moving:
        return False
    if len(stmt.reads) > 1:
        return True
    coeffs = detect_linear_equation(moving[0].region[-1].min, [var])
    return len(coeffs) == 2 and isinstance(coeffs[0], tirx.IntImm) and int(coeffs[0]) == 1


def _row_axis(sch, stmt, kinds, loops, vec):
    """Pick the spatial axis to unroll across tile rows and its tile size.

    Best is an axis the vector-loaded operands do not depend on (matmul rows,
    conv output channels): each vector load is then reused by every row.
    Otherwise take the innermost other spatial axis (conv/pool output rows),
    which still reuses broadcast weights.
    """
    vec_var = stmt.iter_vars[vec].var
    streamed = [_region_vars(r) for r in stmt.reads if _uses(_region_vars(r), vec_var)]
    candidates = []
    for i, kind in enumerate(kinds):
        if kind != "S" or i == vec:
            continue
        rows = _first_divisor(_extent(sch, loops[i]), _ROW_FACTORS)
        if rows is not None:
            reuse = not any(_uses(r, stmt.iter_vars[i].var) for r in streamed)
            candidates.append((reuse, rows, i))
    if not candidates:
        return None, 1
    _, rows, row = max(candidates)
    return row, rows


def _lane_tile(extent: int, lanes: int, rows: int) -> int:
    """Tile size along the vector axis: a multiple of the vector width dividing
    ``extent`` within the accumulator budget, or the whole (short) axis, e.g.
    14 or 7 in late conv layers, where LLVM splits a 14-wide vector into
    4+4+4+2 lanes with no remainder loop."""
    budget = _ACC_ELEMS // rows
    candidates = [lanes * m for m in (16, 8, 4, 2, 1) if lanes * m <= budget]
    tile = _first_divisor(extent, candidates)
    if (tile is None or tile < 2 * lanes) and extent <= budget:
        return extent
    return tile or lanes


def _fuse_epilogues(sch: s_tir.Schedule, write_back: SBlockRV) -> None:
    """Fold elementwise consumers (bias, relu, ...) into the tile write-back."""
    while True:
        consumers = sch.get_consumers(write_back)
        if len(consumers) != 1 or not _is_spatial(sch, consumers[0]):
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except ScheduleError:
            return


def _vectorize_tile(sch: s_tir.Schedule, block: SBlockRV, depth: int) -> None:
    """Vectorize the innermost loop of a tile block, unroll its other tile loops."""
    inner = sch.get_loops(block)[depth:]
    if not inner:
        return
    for loop in inner[:-1]:
        sch.unroll(loop)
    sch.vectorize(inner[-1])


# --------------------------------------------------------------------------
# Rule: row reductions (softmax, layer norm, global pooling)
# --------------------------------------------------------------------------


def _vectorize_row_reduction(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """Reduce the innermost contiguous axis into a vector of partial results.

    rfactor turns ``acc = op(acc, x[..., k])`` into lane-wise partials
    ``part[..., l] = op(part[..., l], x[..., ko * L + l])`` (vectorized over l)
    followed by a short scalar reduction of the partials.
    """
    if not _is_plain_reduction(sch, block, need_spatial=False):
        return False
    stmt = sch.get(block)
    loops = sch.get_loops(block)
    inner_var = stmt.iter_vars[-1].var
    if not any(r.region[-1].min.same_as(inner_var) for r in stmt.reads):
        return False
    lanes = _lanes(stmt.writes[0].source.dtype)
    factor = _first_divisor(_extent(sch, loops[-1]), (4 * lanes, 2 * lanes, lanes))
    if factor is None:
        return False
    _, lane = sch.split(loops[-1], [None, factor])
    partial = sch.rfactor(lane, factor_axis=len(stmt.writes[0].region))
    sch.vectorize(sch.get_loops(partial)[-1])
    n_outer_spatial = _iter_kinds(sch, block).count("S")
    sch.decompose_reduction(partial, sch.get_loops(partial)[n_outer_spatial])
    return True


# --------------------------------------------------------------------------
# Rule: vectorize injective loop nests
# --------------------------------------------------------------------------


def _vectorize_spatial_nest(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """Vectorize the innermost loops of a root-level spatial block.

    Trailing loops are fused until their extent is a multiple of the vector
    width (e.g. the 7x7 plane of a late conv layer), except in blocks with a
    condition (padding): there the fused index needs a division per element
    and the condition scalarizes the vector anyway.
    """
    if not _is_spatial(sch, block) or not _has_trivial_binding(sch, block):
        return False
    stmt = sch.get(block)
    if len(stmt.writes) != 1:
        return False
    lanes = _lanes(stmt.writes[0].source.dtype)
    loops = sch.get_loops(block)
    max_fused = 1 if _has_if_then_else(stmt) else len(loops)
    extent, count = 1, 0
    for loop in reversed(loops[-max_fused:]):
        extent *= _extent(sch, loop)
        count += 1
        if extent % lanes == 0:
            break
    factor = _first_divisor(extent, (4 * lanes, 2 * lanes, lanes))
    if factor is None:
        return False
    fused = sch.fuse(*loops[-count:]) if count > 1 else loops[-1]
    _, inner = sch.split(fused, [None, factor])
    sch.vectorize(inner)
    return True


def _has_if_then_else(stmt: tirx.SBlock) -> bool:
    return bool(_has_if_then_else_ffi(stmt))


_RULES = (
    _inline_into_spatial_consumer,
    _tile_contraction,
    _vectorize_row_reduction,
    _vectorize_spatial_nest,
)
