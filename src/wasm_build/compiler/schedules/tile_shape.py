"""The contraction rule's register tile: which output axes it spans, its size, and whether
lane tiles go outermost."""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import collect_vars_used_in_prim_expr
from tvm.s_tir.schedule import LoopRV, SBlockRV

from ..tiles import CACHE_BYTES, PACKED_ROWS
from .analysis import (
    extent,
    first_divisor,
    has_broadcast_operand,
    is_one,
    iter_kinds,
    lane_axis,
    lanes,
    region_vars,
    steps_by_one,
    uses,
)
from .packing import RowOperand, copies_rows, row_operand

# Accumulator tile budget in elements: 16 v128 registers of f32.
_ACC_ELEMS = 64
# ... for tiles of more than 4 rows (7-wide planes): 16 lanes a row all the same. A 7 x 16 tile
# keeps 28 vectors and spills on x86, yet its convs ran 20% faster than 7 x 8 in MobileNetV2's
# and ResNet-18's 7x7 planes (fewer weight loads per broadcast; tuning chose it there too).
_LONG_ROW_LANES = 16
# ... for a single row (matrix-vector products: an RNN step, a decoder token, a classifier
# head): every weight vector is used once, so the loads need registers next to the
# accumulators; 8 accumulators ran GEMVs of K = 32..768, N = 60..3072 in wasmtime 5-80%
# faster than 16 (which spill on x86), and 4 no faster than 8.
_ACC_ELEMS_SINGLE_ROW = 32
# ... for contractions whose broadcast rows are packed (see packing.pack_row_operand): 4 x 8,
# what leaves x86's 16 xmm registers for the weight vectors and the lane shuffles.
_ACC_ELEMS_PACKED_ROWS = 32
# ... for contractions whose operands all move with the lanes (depthwise convs):
# 4 accumulators, leaving registers for the per-tap weight vectors.
_ACC_ELEMS_ELEMENTWISE = 16
# Rows of the register tile (the axis whose values reuse one vector load):
# 4 where it divides, else 7/6/5/3 so 7x7 and 14x14 planes (late convs) still
# reuse each weight vector across a row of outputs.
_ROW_FACTORS = (4, 7, 6, 5, 3, 2)


@dataclass(frozen=True)
class TileShape:
    """A tile of ``rows x lane_tile`` outputs, kept in registers across the reduction."""

    lane_axis: int  # block iterator along the vector lanes: the output's innermost index
    lane_var: tirx.Var  # ... its variable
    lanes: int  # elements in one vector
    lane_extent: int  # extent of the lane axis
    lane_tile: int  # tile size along the lane axis
    row_axis: int | None  # block iterator unrolled across the tile rows, if any
    rows: int  # tile size along the row axis (1 without one)
    # Lane tiles outermost (a streamed operand larger than the cache), else innermost.
    lane_tiles_outermost: bool
    row_operand: RowOperand | None  # the rows' input to pack side by side, if any
    # With lane tiles outermost: how many go together, their streamed slice within the cache,
    # around the row tiles, whose rows are then packed once per row tile and block. At 1, one
    # lane tile at a time, and the rows are packed once per call.
    lane_block: int = 1


def choose_tile_shape(sch: s_tir.Schedule, block: SBlockRV) -> TileShape | None:
    """The register tile for a plain reduction ``block``, or None when vector loads along its
    output's innermost index would not pay."""
    stmt = sch.get(block)
    kinds = iter_kinds(sch, block)
    loops = sch.get_loops(block)

    vec = lane_axis(stmt, kinds)
    vector = lanes(stmt.writes[0].source.dtype)
    if vec is None or extent(sch, loops[vec]) < vector:
        return None
    lane_var = stmt.iter_vars[vec].var
    if not _streams_along(stmt, lane_var):
        return None  # e.g. softmax: the input is contiguous along the reduction
    row, rows = _row_axis(sch, stmt, kinds, loops, vec)
    # Without an operand broadcast across lanes (depthwise convs, pooling) nothing is
    # shared between the tile's vectors, and every reduction step's weights are vectors too.
    if has_broadcast_operand(stmt, lane_var):
        budget = _ACC_ELEMS_SINGLE_ROW if rows == 1 else max(_ACC_ELEMS, rows * _LONG_ROW_LANES)
    else:
        budget = _ACC_ELEMS_ELEMENTWISE
    streamed = streamed_bytes(stmt, lane_var)
    outermost = streamed > CACHE_BYTES
    operand = None
    if row is not None and rows == PACKED_ROWS:
        operand = row_operand(stmt, stmt.iter_vars[row].var, lane_var)
        if operand is not None:
            budget = _ACC_ELEMS_PACKED_ROWS
    lane_extent = extent(sch, loops[vec])
    lane_tile = _lane_tile(lane_extent, vector, rows, budget)
    block_lanes = outermost and operand is not None and copies_rows(sch, block, operand)
    return TileShape(
        lane_axis=vec,
        lane_var=lane_var,
        lanes=vector,
        lane_extent=lane_extent,
        lane_tile=lane_tile,
        row_axis=row,
        rows=rows,
        lane_tiles_outermost=outermost,
        row_operand=operand,
        lane_block=_lane_block(streamed, -(-lane_extent // lane_tile)) if block_lanes else 1,
    )


def _lane_block(streamed: int, lane_tiles: int) -> int:
    """Lane tiles per cache block: the most, dividing ``lane_tiles``, whose slice of the
    ``streamed`` operand fits the cache.

    Why blocks: with one lane tile at a time, the rows are packed once per call and every
    reduction step splats them by lane shuffles (`tir.lane_shuffle`); packed per row tile they
    are stored pre-splat (`tir.presplat_rows`), four plain loads a step, and the weights of a
    block stay in cache for every row tile. Matmuls with 1.5 to 9.4 MB of weights (77 to 256
    rows, K 512 to 3072) ran 10-20% faster (journal, round 19)."""
    per_tile = streamed / lane_tiles
    fitting = [d for d in range(1, lane_tiles + 1) if lane_tiles % d == 0 and d * per_tile <= CACHE_BYTES]
    return max(fitting, default=1)


def _streams_along(stmt: tirx.SBlock, var: tirx.Var) -> bool:
    """Whether vector loads along ``var`` pay off for this block.

    Some input's innermost index must move with ``var`` (otherwise, as in
    softmax, the input is contiguous along the reduction instead).  A single
    input read with a stride (strided pooling) gives only gathers and no
    reuse, so that case is left to the naive loops.
    """
    arrays = [r for r in stmt.reads if r.region]  # not scalars (a quantized model's zero points)
    moving = [r for r in arrays if uses([collect_vars_used_in_prim_expr(r.region[-1].min)], var)]
    if not moving:
        return False
    if len(arrays) > 1:
        return True
    return steps_by_one(moving[0].region[-1].min, var)


def _row_axis(
    sch: s_tir.Schedule, stmt: tirx.SBlock, kinds: str, loops: list[LoopRV], vec: int
) -> tuple[int | None, int]:
    """Pick the spatial axis to unroll across tile rows and its tile size.

    Best is an axis the vector-loaded operands do not depend on (matmul rows,
    conv output channels): each vector load is then reused by every row.
    Otherwise take the innermost other spatial axis (conv/pool output rows),
    which still reuses broadcast weights.
    """
    vec_var = stmt.iter_vars[vec].var
    streamed = [region_vars(r) for r in stmt.reads if uses(region_vars(r), vec_var)]
    candidates = []
    for i, kind in enumerate(kinds):
        if kind != "S" or i == vec:
            continue
        rows = first_divisor(extent(sch, loops[i]), _ROW_FACTORS)
        if rows is not None:
            reuse = not any(uses(r, stmt.iter_vars[i].var) for r in streamed)
            # Earlier entries of _ROW_FACTORS win: 4 rows leave room for 16 lanes.
            candidates.append((reuse, -_ROW_FACTORS.index(rows), i, rows))
    if not candidates:
        return None, 1
    *_, row, rows = max(candidates)
    return row, rows


def _lane_tile(lane_extent: int, vector: int, rows: int, budget: int) -> int:
    """Tile size along the vector axis: a multiple of the vector width dividing
    ``lane_extent`` within the accumulator budget (elements), or the whole (short)
    axis, e.g. 14 or 7 in late conv layers, where LLVM splits a 14-wide vector
    into 4+4+4+2 lanes with no remainder loop."""
    budget = budget // rows
    candidates = [vector * m for m in (16, 8, 4, 2, 1) if vector * m <= budget]
    tile = first_divisor(lane_extent, candidates)
    if (tile is None or tile < 2 * vector) and lane_extent <= budget:
        return lane_extent
    return tile or vector


def streamed_bytes(stmt: tirx.SBlock, var: tirx.Var) -> int:
    """Size of the largest input whose innermost index moves with ``var`` and that some
    outputs share (conv weights across pixels, matmul columns across rows, Winograd weights
    across tiles), per batch: the dimensions other output axes index are outer loops, so a
    batched product sweeps one slice at a time (a Winograd product one tile position's
    weights: 64 KB of 2.4 MB for 28x28 planes of 128 channels).  An input indexed by every
    other output axis too (a depthwise conv's or a pooling's activations) has nothing to
    reuse: sweeping it once per lane tile only read each cache line a lane tile at a time
    (MobileNetV2's 112x112x96 depthwise conv 24 times)."""
    others = [iv.var for iv in stmt.iter_vars
              if int(iv.iter_type) == tirx.IterVar.DataPar and not iv.var.same_as(var) and not is_one(iv.dom.extent)]
    sizes = [0]
    for region in stmt.reads:
        dim_vars = region_vars(region)
        if others and all(uses(dim_vars, other) for other in others):
            continue
        if region.region and uses([collect_vars_used_in_prim_expr(region.region[-1].min)], var):
            elems = 1
            for dim, vars_ in zip(region.source.shape, dim_vars):
                if not any(uses([vars_], other) for other in others):
                    elems *= int(dim) if isinstance(dim, tirx.IntImm) else 1
            sizes.append(elems * tvm.DataType(region.source.dtype).bits // 8)
    return max(sizes)
