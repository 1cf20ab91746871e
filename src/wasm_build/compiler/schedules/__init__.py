"""Hand-written CPU schedules for fused TIR kernels, tuned for 128-bit SIMD.

The default Relax pipeline leaves every kernel as a naive loop nest.  The pass
built by :func:`default_schedule_pass` runs right after ``FuseTIR`` and
reschedules the PrimFuncs it recognises by their block structure:

* contractions -- a reduction block whose output's innermost index is a
  spatial iterator (dense, matmul, batch matmul, conv2d NCHW incl. depthwise
  and 1x1, stride-1 pooling windows): register-blocked tile of ``rows x lanes``
  accumulators in a tile-sized buffer, reduction loops outside the tile,
  innermost output axis vectorized, elementwise epilogues fused into the
  write-back of the tile; a constant vector-loaded operand (the weights) is
  stored packed per lane tile, repacked once at compile time; when 4 tile rows
  read one input dimension by the row alone (matmuls, 1x1 convs), their inputs
  are copied side by side per row tile, for `compiler.tir.lane_shuffle`;
* row reductions -- a reduction over the innermost, contiguous axis of its
  input (softmax, layer norm, global pooling): vector partial sums via rfactor;
* injective blocks -- producers with a single spatial consumer are inlined,
  the remaining loop nests get their innermost axis vectorized.

Every rule works on a copy of the schedule and is abandoned on any error, so
a kernel is either rescheduled by verified schedule primitives or left as is.

The graph passes in `compiler.passes` make the layout and algorithm choices these
rules rely on.
"""

from __future__ import annotations

import logging

import numpy as np

import tvm
from tvm import relax, s_tir, tirx
from tvm.s_tir.schedule import LoopRV, SBlockRV, ScheduleError
from tvm.sym.pattern import detect_linear_equation

from ..tiles import (
    CACHE_BYTES,
    COMPUTED_ROWS_ATTR,
    LAYOUT_FREE_ATTR,
    PACKED_ROWS,
    PACKED_ROWS_ATTR,
    SCHEDULED_ATTR,
)
from ..tir import walk as tir_walk
from . import winograd_transforms
from .analysis import all_blocks, root_blocks

logger = logging.getLogger(__name__)

# Revision of the default schedules' output. Tuning databases record the revision their
# records were compared with (see wasm_build.tuning): bump it when a change makes default
# kernels faster or slower, so that builds stop applying records that beat an older default.
SCHEDULES_REVISION = 8
_VECTOR_BITS = 128
# Accumulator tile budget in elements: 16 v128 registers of f32.
_ACC_ELEMS = 64
# ... for tiles of more than 4 rows (7-wide planes): 16 lanes a row all the same. A 7 x 16 tile
# keeps 28 vectors and spills on x86, yet its convs ran 20% faster than 7 x 8 in MobileNetV2's
# and ResNet-18's 7x7 planes (fewer weight loads per broadcast; tuning chose it there too).
_LONG_ROW_LANES = 16
# ... for contractions whose broadcast rows are packed (see _pack_row_operand): 4 x 8, what
# leaves x86's 16 xmm registers for the weight vectors and the lane shuffles.
_ACC_ELEMS_PACKED_ROWS = 32
# ... for contractions whose operands all move with the lanes (depthwise convs):
# 4 accumulators, leaving registers for the per-tap weight vectors.
_ACC_ELEMS_ELEMENTWISE = 16
# Rows of the register tile (the axis whose values reuse one vector load):
# 4 where it divides, else 7/6/5/3 so 7x7 and 14x14 planes (late convs) still
# reuse each weight vector across a row of outputs.
_ROW_FACTORS = (4, 7, 6, 5, 3, 2)
# An epilogue costing more float ops per output than this (GELU with vector_erf: about
# 30) runs over whole rows after their register tiles, not in each tile's write-back.
# In the write-back it made the transformer's 64x128x512 matmul + GELU cost 0.58 ms
# a call against 0.38 without GELU; over whole rows 0.43 (the erf alone: 0.05 ms).
_HEAVY_EPILOGUE_OPS = 8
# ... as long as a row tile's outputs fit in L1 (they are written, then read back).
_ROW_EPILOGUE_BYTES = 32 * 1024

_get_block_realize = tvm.get_global_func("s_tir.schedule.GetSBlockRealize")
_has_if_then_else_ffi = tvm.get_global_func("s_tir.schedule.HasIfThenElse")


def default_schedule_pass(target: tvm.target.Target) -> tvm.transform.Pass:
    """Module pass over an IRModule containing Relax + fused TIR PrimFuncs (right after
    relax.transform.FuseTIR), returning the module with every PrimFunc it knows how to
    speed up rescheduled for 128-bit SIMD (4 x f32 lanes), others left untouched. Constant
    weights that a rescheduled kernel reads packed are repacked in the Relax functions too
    (folded into new constants), so the returned module's callers change as well."""

    @tvm.transform.module_pass(opt_level=0, name="WasmDefaultSchedule")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        if target.kind.name != "llvm":
            return mod
        constants = constant_params(mod)
        updates = {}
        for gvar, func in mod.functions_items():
            if not isinstance(func, tirx.PrimFunc) or _is_scheduled(func):
                continue
            if constants.get(gvar):
                func = func.with_attr(LAYOUT_FREE_ATTR, sorted(constants[gvar]))
            scheduled = schedule_prim_func(func)
            if scheduled is not None:
                updates[gvar] = scheduled
        if not updates:
            return mod
        # A new module: passes must not change their input (tuning reuses it to extract tasks).
        functions = dict(mod.functions_items())
        functions.update(updates)
        mod = tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)
        return _fold_packed_constants(mod)

    return _pass


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


def _fold_packed_constants(mod: tvm.IRModule) -> tvm.IRModule:
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








def schedule_prim_func(func: tirx.PrimFunc) -> tirx.PrimFunc | None:
    """Return ``func`` rescheduled, or None when no rule applied."""
    sch = s_tir.Schedule(func)
    changed = False
    for rule in _RULES:
        for name in [sch.get(b).name_hint for b in root_blocks(sch)]:
            result = _attempt(sch, rule, name)
            if result is not None:
                sch, changed = result, True
    if not changed:
        return None
    func = sch.mod["main"].with_attr(SCHEDULED_ATTR, True)
    annotations = [sch.get(block).annotations for block in all_blocks(sch)]
    packed = [a[PACKED_ROWS_ATTR] for a in annotations if PACKED_ROWS_ATTR in a]
    return func.with_attr(PACKED_ROWS_ATTR, packed) if packed else func


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
    return func.attrs is not None and bool(func.attrs.get(SCHEDULED_ATTR, False))






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

    Producers feeding a reduction stay separate (inlining them there would
    recompute them, e.g. a padding condition, once per reduction step), unless
    they are plain copies, or the reduction is lane-wise (a depthwise conv):
    there a step is one tap, a vector load under one condition, and the padded
    copy cost a full pass over the activations (and megabytes of workspace)
    to save a compare per tap.
    """
    if not _is_spatial(sch, block) or _is_output(sch, block) or winograd_transforms.stage(sch, block):
        return False  # Winograd stages keep their own buffers (see winograd_transforms.schedule_transform)
    consumers = sch.get_consumers(block)
    if len(consumers) != 1:
        return False
    consumer = consumers[0]
    if not (_is_spatial(sch, consumer) or _is_plain_copy(sch.get(block)) or _is_lanewise_reduction(sch, consumer)):
        return False
    sch.compute_inline(block)
    return True


def _is_lanewise_reduction(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """A reduction whose every input moves with the output's innermost index (depthwise conv)."""
    stmt = sch.get(block)
    lane = stmt.writes[0].region[-1].min if stmt.writes and stmt.writes[0].region else None
    return "R" in _iter_kinds(sch, block) and isinstance(lane, tirx.Var) and not _has_broadcast_operand(stmt, lane)


def _is_plain_copy(stmt: tirx.SBlock) -> bool:
    """A block that only moves data (e.g. the zero-width padding of a 1x1 conv):
    inlined into a reduction, it costs nothing per step."""
    body = stmt.body
    return isinstance(body, tirx.BufferStore) and isinstance(body.value, tvm.ir.TensorLoad)


def _is_output(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    stmt = sch.get(block)
    root = sch.get_sblock("root")
    return any(sch.get(out).same_as(stmt) for out in sch.get_output_blocks(root))


# --------------------------------------------------------------------------
# Rule: register-blocked contraction (matmul, conv2d, pooling windows)
# --------------------------------------------------------------------------


def _tile_contraction(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """Tile ``rows x lanes`` outputs, keep them in registers across the reduction.

    Loop order: lane tile, outer spatial, row tile, reduction loops, rows, lanes.
    The lane axis is the output's innermost (contiguous) index, so every
    reduction step does one vector load (or a broadcast) per operand and one
    vector FMA per tile row.
    """
    if not _is_plain_reduction(sch, block):
        return False
    width = _fuse_pixel_axes(sch, block)
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
    # Without an operand broadcast across lanes (depthwise convs, pooling) nothing is
    # shared between the tile's vectors, and every reduction step's weights are vectors too.
    if _has_broadcast_operand(stmt, stmt.iter_vars[vec].var):
        budget = max(_ACC_ELEMS, rows * _LONG_ROW_LANES)
    else:
        budget = _ACC_ELEMS_ELEMENTWISE
    lanes_inner = _streamed_bytes(stmt, stmt.iter_vars[vec].var) <= CACHE_BYTES
    row_operand = None
    if row is not None and rows == PACKED_ROWS:
        row_operand = _row_operand(stmt, stmt.iter_vars[row].var, stmt.iter_vars[vec].var)
        # With lane tiles outermost a copy per row tile would be made again for every lane
        # tile: rows computed in the kernel (pixel_rows) are packed once per call instead.
        # (Other small operands would gain too, 1.88 -> 1.51 ms for 52 x 320 rows, but that
        # changes kernels tuning databases compared against: docs/schedules.md, round 7.)
        if row_operand is not None and not lanes_inner and not _computed_rows(sch, block, row_operand[0]):
            row_operand = None
        if row_operand is not None:
            budget = _ACC_ELEMS_PACKED_ROWS
    lane_extent = _extent(sch, loops[vec])
    lane_tile = _lane_tile(lane_extent, lanes, rows, budget)

    vec_o, vec_i = sch.split(loops[vec], [None, lane_tile])
    row_outer, row_inner = [], []
    if row is not None:
        row_o, row_i = sch.split(loops[row], [None, rows])
        row_outer, row_inner = [row_o], [row_i]
    outer = [loops[i] for i, k in enumerate(kinds) if k == "S" and i not in (vec, row)]
    reduce = [loops[i] for i, k in enumerate(kinds) if k == "R"]
    # With a large vector-loaded operand (conv weights, matmul columns), lane
    # tiles go outermost: one tile's slice stays in cache while every output
    # row reuses it; the default order streams all of it once per row tile
    # (9 MB per 7 outputs in ResNet-18's last convs).
    if lanes_inner:
        tile_loops = [*outer, *row_outer, vec_o]
    else:
        tile_loops = [vec_o, *outer, *row_outer]
    sch.reorder(*tile_loops, *reduce, *row_inner, vec_i)
    # Vectorize while the block still has its init (decomposed blocks can't be).
    sch.vectorize(vec_i)
    for loop in row_inner:
        sch.unroll(loop)

    # Accumulate in a tile-sized buffer: compacted to a small stack array that
    # LLVM promotes to registers.  ("local" scope would be heap-allocated via
    # TVMBackendAllocWorkspace at function entry and stay in memory.)
    write_back = sch.cache_write(block, 0, "global")
    _fuse_epilogues(sch, write_back)
    # A costly epilogue (GELU) runs once a row tile's register tiles are all stored, over its rows.
    row_bytes = lane_extent * (_VECTOR_BITS // 8 // lanes)
    row_epilogue = (
        bool(row_outer)
        and lanes_inner
        and lane_extent % lanes == 0
        and rows * row_bytes <= _ROW_EPILOGUE_BYTES
        and _float_ops(sch.get(write_back)) > _HEAVY_EPILOGUE_OPS
    )
    if width:
        # The tile buffer and its write-back by pixel too: a row tile's 4 pixels are then
        # one exact region (as (h, w) boxes they would span two image rows, all columns).
        def by_pixel(*idx):
            return (*idx[:-3], idx[-3] * width + idx[-2], idx[-1])

        sch.transform_layout(block, ("write", 0), by_pixel)
        write_back_ndim = len(sch.get(write_back).iter_vars)
        sch.transform_block_layout(write_back, tirx.IndexMap.from_func(by_pixel, ndim=write_back_ndim))
    init_depth = len(tile_loops)
    if row_epilogue:
        sch.reverse_compute_at(write_back, row_outer[0])
        *_, last = sch.get_loops(write_back)
        sch.vectorize(sch.split(last, [None, lanes])[1])
    else:
        sch.reverse_compute_at(write_back, tile_loops[-1])
    init = sch.decompose_reduction(block, reduce[0])
    _vectorize_tile(sch, init, init_depth)
    if not row_epilogue:
        _vectorize_tile(sch, write_back, init_depth)
    _pack_constant_operand(sch, block, stmt.iter_vars[vec].var, lane_tile)
    if row_operand is not None:
        _pack_row_operand(sch, block, row_operand, row_outer[0] if lanes_inner else None)
    return True


def _row_operand(stmt: tirx.SBlock, row: tirx.Var, lane: tirx.Var) -> tuple[tirx.Buffer, tuple[int, ...]] | None:
    """The input broadcast across lanes that the tile rows read side by side: (buffer,
    dimensions) when exactly one input is indexed by the row iterator in consecutive
    dimensions whose row-major position is the row itself: one dimension (a matmul's rows,
    a 1x1 conv's output columns) or two (a 1x1 conv's pixels, see _fuse_pixel_axes).
    Iterators of extent 1 (a 1x1 conv's window) may be added."""
    analyzer = tvm.sym.Analyzer()
    for iv in stmt.iter_vars:
        if _is_one(iv.dom.extent):
            analyzer.bind(iv.var, tirx.const(0, str(iv.var.ty.dtype)))
    found = []
    for region in stmt.reads:
        region_vars = _region_vars(region)
        if _uses(region_vars, lane) or not _uses(region_vars, row):
            continue
        dims = tuple(d for d, dim_vars in enumerate(region_vars) if _uses([dim_vars], row))
        shape = region.source.shape
        if dims != tuple(range(dims[0], dims[-1] + 1)) or not all(isinstance(shape[d], tirx.IntImm) for d in dims):
            return None
        position = region.region[dims[0]].min
        for d in dims[1:]:
            position = position * shape[d] + region.region[d].min
        size = int(np.prod([int(shape[d]) for d in dims]))
        if not _is_zero(analyzer.simplify(position - row)) or size % PACKED_ROWS:
            return None
        found.append((region.source, dims))
    return found[0] if len(found) == 1 else None


def _iter_index(stmt: tirx.SBlock, var) -> int | None:
    return next((i for i, iv in enumerate(stmt.iter_vars) if iv.var.same_as(var)), None)


def _is_zero(expr) -> bool:
    return isinstance(expr, tirx.IntImm) and int(expr) == 0


def _is_one(extent) -> bool:
    return isinstance(extent, tirx.IntImm) and int(extent) == 1


def _pack_row_operand(
    sch: s_tir.Schedule, block: SBlockRV, operand: tuple[tirx.Buffer, tuple[int, ...]], row_loop: LoopRV | None
) -> None:
    """Copy the tile rows' broadcast operand into a buffer with the rows innermost:
    ``A[..., r, ..., k]`` becomes ``A[..., r // 4, ..., k, r % 4]``.

    Each reduction step then reads the four rows' values from one 16-byte vector, and
    ``wasm_build.lane_shuffle`` splats each lane with a shuffle, instead of four
    ``v128.load32_splat`` (a scalar load, a move and a shuffle each in Cranelift's x86 code).
    Rows in one dimension are copied once per row tile (the copy vectorized across the four
    rows, reused by every lane tile); rows spread over two (pixels of an image whose width
    is not a multiple of 4) are copied once per call, as a row tile's four pixels can straddle
    two image rows and a copy per tile would cover both rows whole; so are all rows when
    ``row_loop`` is None (lane tiles outermost: every lane tile would copy them again).
    """
    buffer, dims = operand
    shape = [int(buffer.shape[d]) for d in dims]

    def packed(*idx):
        position = idx[dims[0]]
        for d, extent in zip(dims[1:], shape[1:]):
            position = position * extent + idx[d]
        return (*idx[: dims[0]], position // PACKED_ROWS, *idx[dims[-1] + 1 :], position % PACKED_ROWS)

    index = next(i for i, region in enumerate(sch.get(block).reads) if region.source.same_as(buffer))
    pack = sch.cache_read(block, index, "global")
    sch.transform_layout(pack, ("write", 0), packed)
    if len(dims) == 1 and row_loop is not None:
        sch.compute_at(pack, row_loop)
        # The copy's own loops (below the row tile); the one over the rows goes innermost.
        loops = sch.get_loops(pack)
        depth = 1 + next(i for i, loop in enumerate(loops) if sch.get(loop).same_as(sch.get(row_loop)))
        copy_loops = loops[depth:]
        row_binding = _vars_in(_get_block_realize(sch, pack).iter_values[dims[0]])
        is_row = [_uses([row_binding], sch.get(loop).loop_var) for loop in copy_loops]
        sch.reorder(*[l for l, r in zip(copy_loops, is_row) if not r], *[l for l, r in zip(copy_loops, is_row) if r])
        sch.vectorize(sch.get_loops(pack)[-1])
    # Rows computed for the tile (pixel_rows' zero-padded pixels) are computed in the copy.
    for producer in sch.get_producers(pack):
        if sch.get(producer).annotations.get(COMPUTED_ROWS_ATTR):
            sch.compute_inline(producer)
    sch.annotate(pack, PACKED_ROWS_ATTR, sch.get(pack).writes[0].source.name)


def _fuse_pixel_axes(sch: s_tir.Schedule, block: SBlockRV) -> int:
    """Give a 1x1 conv on an image whose width is not a multiple of 4 (14 and 7 wide planes)
    one pixel iterator, ``(h, w) -> h * W + w``, so its tile can take 4 pixels as rows (196 =
    14 * 14 pixels are 49 row tiles; 14 columns are not 4-wide tiles).  Only when the output
    is ``[..., h, w, lanes]`` and every input reading ``h``/``w`` reads them the same way, in
    consecutive dimensions of width ``W`` (the conv reads its input pixel by pixel).
    Returns ``W``, or 0 when the block is left as it is."""
    stmt = sch.get(block)
    kinds = _iter_kinds(sch, block)
    vec = _lane_axis(stmt, kinds)
    out = [r.min for r in stmt.writes[0].region]
    if vec is None or len(out) < 3:
        return 0
    h_var, w_var = out[-3], out[-2]
    h, w = _iter_index(stmt, h_var), _iter_index(stmt, w_var)
    if h is None or w is None:
        return 0
    extents = [iv.dom.extent for iv in stmt.iter_vars]
    if w != h + 1 or kinds[h] + kinds[w] != "SS" or not all(isinstance(extents[i], tirx.IntImm) for i in (h, w)):
        return 0
    height, width = int(extents[h]), int(extents[w])
    if width % PACKED_ROWS == 0 or (height * width) % PACKED_ROWS or height == 1:
        return 0
    others = [int(e) for i, e in enumerate(extents) if kinds[i] == "S" and i not in (h, w, vec) and isinstance(e, tirx.IntImm)]
    if any(extent % PACKED_ROWS == 0 for extent in others):
        return 0  # another axis gives the tile its 4 rows
    for region in stmt.reads:
        region_vars = _region_vars(region)
        dims = [d for d, dim_vars in enumerate(region_vars) if _uses([dim_vars], h_var) or _uses([dim_vars], w_var)]
        if not dims:
            continue
        if dims != [dims[0], dims[0] + 1] or not _uses([region_vars[dims[0]]], h_var) or not _uses([region_vars[dims[1]]], w_var):
            return 0
        window = [_iter_index(stmt, v) for d in dims for v in region_vars[d] if not (v.same_as(h_var) or v.same_as(w_var))]
        if any(i is not None and not _is_one(extents[i]) for i in window):
            return 0
        if not (isinstance(region.source.shape[dims[1]], tirx.IntImm) and int(region.source.shape[dims[1]]) == width):
            return 0
        for d, var in zip(dims, (h_var, w_var)):
            coeffs = detect_linear_equation(region.region[d].min, [var])
            if len(coeffs) != 2 or not (isinstance(coeffs[0], tirx.IntImm) and int(coeffs[0]) == 1):
                return 0
    fuse = tirx.IndexMap.from_func(lambda *ivs: (*ivs[:h], ivs[h] * width + ivs[w], *ivs[w + 1 :]), ndim=len(kinds))
    sch.transform_block_layout(block, fuse)
    return width


def _pack_constant_operand(sch: s_tir.Schedule, block: SBlockRV, var: tirx.Var, lane_tile: int) -> None:
    """Store a constant vector-loaded operand (conv/dense weights) tile by tile.

    ``W[..., n]`` becomes ``W[n // tile, ..., n % tile]``: each lane tile's
    weights are contiguous, in the order the reduction loops read them, instead
    of one short vector per row of a wide matrix (a new cache line, or two, per
    reduction step).  The copy is a block marked as layout-rewrite preprocessing:
    ``SplitLayoutRewritePreproc`` moves it out of the kernel and ``FoldConstant``
    applies it to the weights at compile time, so it never runs in the model.
    """
    func = sch.mod["main"]
    layout_free = func.attrs.get(LAYOUT_FREE_ATTR) if func.attrs is not None else None
    if not layout_free:
        return
    constant_buffers = [func.params[int(i)] for i in layout_free]
    stmt = sch.get(block)
    for index, region in enumerate(stmt.reads):
        buffer = region.source
        if not any(buffer.same_as(b) for b in constant_buffers):
            continue
        last = buffer.shape[-1]
        if not region.region[-1].min.same_as(var) or not isinstance(last, tirx.IntImm):
            continue
        if int(last) <= lane_tile or int(last) % lane_tile:
            continue
        rewrite = sch.cache_read(block, index, "global")
        sch.annotate(rewrite, "meta_schedule.layout_rewrite_preproc", True)
        sch.transform_layout(
            block, ("read", index), lambda *idx: (idx[-1] // lane_tile, *idx[:-1], idx[-1] % lane_tile)
        )
        return


def _streamed_bytes(stmt: tirx.SBlock, var: tirx.Var) -> int:
    """Size of the largest input whose innermost index moves with ``var`` and that some
    outputs share (conv weights across pixels, matmul columns across rows, Winograd weights
    across tiles), per batch: the dimensions other output axes index are outer loops, so a
    batched product sweeps one slice at a time (a Winograd product one tile position's
    weights: 64 KB of 2.4 MB for 28x28 planes of 128 channels).  An input indexed by every
    other output axis too (a depthwise conv's or a pooling's activations) has nothing to
    reuse: sweeping it once per lane tile only read each cache line a lane tile at a time
    (MobileNetV2's 112x112x96 depthwise conv 24 times)."""
    others = [iv.var for iv in stmt.iter_vars
              if int(iv.iter_type) == tirx.IterVar.DataPar and not iv.var.same_as(var) and not _is_one(iv.dom.extent)]
    sizes = [0]
    for region in stmt.reads:
        region_vars = _region_vars(region)
        if others and all(_uses(region_vars, other) for other in others):
            continue
        if _uses([_vars_in(region.region[-1].min)], var):
            elems = 1
            for dim, dim_vars in zip(region.source.shape, region_vars):
                if not any(_uses([dim_vars], other) for other in others):
                    elems *= int(dim) if isinstance(dim, tirx.IntImm) else 1
            sizes.append(elems * tvm.DataType(region.source.dtype).bits // 8)
    return max(sizes)


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
            # Earlier entries of _ROW_FACTORS win: 4 rows leave room for 16 lanes.
            candidates.append((reuse, -_ROW_FACTORS.index(rows), i, rows))
    if not candidates:
        return None, 1
    *_, row, rows = max(candidates)
    return row, rows


def _has_broadcast_operand(stmt: tirx.SBlock, var: tirx.Var) -> bool:
    """Whether some input's innermost index does not move with the lane variable
    (a matmul's row operand, a conv's input pixel): it is splat across lanes."""
    return any(not _uses([_vars_in(r.region[-1].min)], var) for r in stmt.reads if r.region)


def _lane_tile(extent: int, lanes: int, rows: int, budget: int) -> int:
    """Tile size along the vector axis: a multiple of the vector width dividing
    ``extent`` within the accumulator budget (elements), or the whole (short)
    axis, e.g. 14 or 7 in late conv layers, where LLVM splits a 14-wide vector
    into 4+4+4+2 lanes with no remainder loop."""
    budget = budget // rows
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
        if _domain_size(sch, consumers[0]) != _domain_size(sch, write_back):
            # A consumer of part of the outputs (pixel_rows' crop): TVM would inline it over
            # all of them, writing past its buffer for the padding rows.
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except ScheduleError:
            return


def _computed_rows(sch: s_tir.Schedule, block: SBlockRV, buffer: tirx.Buffer) -> bool:
    """Whether ``buffer`` is written in the kernel by a block marked COMPUTED_ROWS_ATTR."""
    return any(
        sch.get(producer).annotations.get(COMPUTED_ROWS_ATTR) and sch.get(producer).writes[0].source.same_as(buffer)
        for producer in sch.get_producers(block)
    )


def _domain_size(sch: s_tir.Schedule, block: SBlockRV) -> int | None:
    extents = [iv.dom.extent for iv in sch.get(block).iter_vars]
    if not all(isinstance(e, tirx.IntImm) for e in extents):
        return None
    return int(np.prod([int(e) for e in extents], dtype=np.int64))


_FLOAT_OPS = (tirx.Add, tirx.Sub, tirx.Mul, tirx.Div, tirx.Min, tirx.Max)


def _float_ops(stmt: tirx.SBlock) -> int:
    """Float arithmetic nodes in a block's body: what one output of it costs."""
    count = 0

    def visit(node):
        nonlocal count
        if isinstance(node, _FLOAT_OPS) and str(node.ty).startswith("float"):
            count += 1

    tir_walk.visit(stmt.body, visit)
    return count


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
    winograd_transforms.schedule_transform,
    _inline_into_spatial_consumer,
    _tile_contraction,
    _vectorize_row_reduction,
    _vectorize_spatial_nest,
)


# --------------------------------------------------------------------------
# Graph pass: fold per-channel affine epilogues (batch norm) into conv weights
# --------------------------------------------------------------------------











# --------------------------------------------------------------------------
# Graph pass: Clip's TE kernels back to Relax ops, so the layout follows the convs
# --------------------------------------------------------------------------






