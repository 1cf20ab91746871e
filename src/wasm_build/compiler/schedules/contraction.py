"""Rule: register-blocked contractions (dense, matmul, batch matmul, conv2d incl. depthwise
and 1x1, stride-1 pooling windows).

`tile_shape` chooses the tile, `pixel_axes` lets 4 pixels be its rows, `edge_padding` pads
ragged rows and lanes to whole tiles, `packing` lays out its operands; this module builds the
loop nest around it.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from tvm import s_tir, tirx
from tvm.s_tir.schedule import LoopRV, SBlockRV, ScheduleError

from ..tiles import TRANSPOSED_BLOCKS_ATTR
from ..tir import walk as tir_walk
from .analysis import VECTOR_BITS, block_realize, extent, is_plain_reduction, is_spatial, iter_kinds, steps_by_one
from .edge_padding import pad_to_tiles
from .packing import pack_constant_operand, pack_row_operand
from .pixel_axes import fuse_pixel_axes, write_by_pixel
from .rule import Rule
from .tile_shape import TileShape, choose_tile_shape

# An epilogue costing more float ops per output than this (GELU with vector_erf: about
# 30) runs over whole rows after their register tiles, not in each tile's write-back.
# In the write-back it made the transformer's 64x128x512 matmul + GELU cost 0.58 ms
# a call against 0.38 without GELU; over whole rows 0.43 (the erf alone: 0.05 ms).
_HEAVY_EPILOGUE_OPS = 8
# ... as long as a row tile's outputs fit in L1 (they are written, then read back).
_ROW_EPILOGUE_BYTES = 32 * 1024
# So does an epilogue of more than 3 float ops on a tile padded past its output's lanes
# (79 keys in tiles of 8): in the tile's write-back the crop's predicate on the lanes makes TVM
# compute every value on its own (wav2vec2's int8 attention scores, requantized by 5 float ops
# and 3 conversions: 3.6 G multiply-adds a second, 9.6 over rows, where the last vector
# overlaps the one before it: `tir.overlapping_tails`). A copy or a bias add costs less value
# by value than the row's second pass (50 x 256 @ 256 x 100: 8% slower over rows).
_CROPPED_EPILOGUE_OPS = 3

_FLOAT_OPS = (tirx.Add, tirx.Sub, tirx.Mul, tirx.Div, tirx.Min, tirx.Max)


class Contraction(Rule):
    """Tile ``rows x lanes`` outputs, keep them in registers across the reduction.

    Loop order: lane tile, outer spatial, row tile, reduction loops, rows, lanes.
    The lane axis is the output's innermost (contiguous) index, so every
    reduction step does one vector load (or a broadcast) per operand and one
    vector FMA per tile row.  Elementwise epilogues (bias, ReLU, ...) are fused
    into the write-back of the tile.
    """

    name = "contraction"

    def accepts(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        """Float32 reductions (`integer_contraction` reuses this tile for lane-wise integer ones)."""
        return is_plain_reduction(sch, block)

    def adjust(self, shape: TileShape) -> TileShape | None:
        return shape

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        if not self.accepts(sch, block):
            return False
        width = fuse_pixel_axes(sch, block)
        crop = None if width else pad_to_tiles(sch, block)
        shape = choose_tile_shape(sch, block)
        if shape is not None:
            shape = self.adjust(shape)
        if shape is None:
            return False
        loops = _split_into_tiles(sch, block, shape)
        write_back, row_epilogue = _write_back(sch, block, shape, loops, width, crop)
        init = sch.decompose_reduction(block, loops.reduce[0])
        _vectorize_tile(sch, init, len(loops.tile))
        if not row_epilogue:
            _vectorize_write_back(sch, write_back, len(loops.tile), shape.lanes, sch.get(block).writes[0].source.name)
        pack_constant_operand(sch, block, shape.lane_var, shape.lane_tile, loops.outer_spatial)
        if shape.row_operand is not None:
            once_per_call = shape.lane_tiles_outermost and shape.lane_block == 1
            row_loop = None if once_per_call else loops.row_tile
            pack_row_operand(sch, block, shape.row_operand, row_loop)
        return True


class _TileLoops(NamedTuple):
    tile: list[LoopRV]  # the loops over tiles, outside the reduction
    row_tile: LoopRV | None  # the one over row tiles, if the tile has rows
    reduce: list[LoopRV]  # the reduction loops, around one tile
    outer_spatial: list[tirx.Var]  # iterators of the spatial loops outside the lane tiles


def _split_into_tiles(sch: s_tir.Schedule, block: SBlockRV, shape: TileShape) -> _TileLoops:
    """Split the lane and row axes into tiles and order the loops around the tile."""
    stmt = sch.get(block)
    kinds = iter_kinds(sch, block)
    loops = sch.get_loops(block)
    vec, row = shape.lane_axis, shape.row_axis
    vec_o, vec_i = sch.split(loops[vec], [None, shape.lane_tile])
    row_outer, row_inner = [], []
    if row is not None:
        row_o, row_i = sch.split(loops[row], [None, shape.rows])
        row_outer, row_inner = [row_o], [row_i]
    outer = [loops[i] for i, k in enumerate(kinds) if k == "S" and i not in (vec, row)]
    reduce = [loops[i] for i, k in enumerate(kinds) if k == "R"]
    # With a large vector-loaded operand (conv weights, matmul columns), lane
    # tiles go outermost: one tile's slice stays in cache while every output
    # row reuses it; the default order streams all of it once per row tile
    # (9 MB per 7 outputs in ResNet-18's last convs), or blocks of lane tiles whose slice
    # fits the cache go outermost, lane tiles of the block inside the row tiles.
    if shape.lane_tiles_outermost and shape.lane_block > 1:
        block_o, block_i = sch.split(vec_o, [None, shape.lane_block])
        tile_loops = [block_o, *outer, *row_outer, block_i]
    elif shape.lane_tiles_outermost:
        tile_loops = [vec_o, *outer, *row_outer]
    else:
        tile_loops = [*outer, *row_outer, vec_o]
    sch.reorder(*tile_loops, *reduce, *row_inner, vec_i)
    # Vectorize while the block still has its init (decomposed blocks can't be).
    sch.vectorize(vec_i)
    for loop in row_inner:
        sch.unroll(loop)
    outer_spatial = [] if shape.lane_tiles_outermost else [
        stmt.iter_vars[i].var for i, k in enumerate(kinds) if k == "S" and i not in (vec, row)
    ]
    return _TileLoops(tile_loops, row_outer[0] if row_outer else None, reduce, outer_spatial)


def _write_back(
    sch: s_tir.Schedule, block: SBlockRV, shape: TileShape, loops: _TileLoops, width: int, crop: SBlockRV | None
) -> tuple[SBlockRV, bool]:
    """Accumulate in a tile-sized buffer, written back (epilogues fused) after each tile, or
    after each row tile for a costly epilogue. Returns the write-back block, and whether
    it runs per row tile (then already vectorized)."""
    # A tile-sized buffer is compacted to a small stack array that LLVM promotes to
    # registers.  ("local" scope would be heap-allocated via TVMBackendAllocWorkspace at
    # function entry and stay in memory.)
    write_back = sch.cache_write(block, 0, "global")
    if crop is not None:
        # A padded tile is written back by the crop: real rows and lanes only, never the padding.
        sch.compute_inline(write_back)
        write_back = crop
    _fuse_epilogues(sch, write_back)
    # A costly epilogue (GELU) runs once a row tile's register tiles are all stored, over its rows.
    row_bytes = shape.lane_extent * (VECTOR_BITS // 8 // shape.lanes)
    costly = _CROPPED_EPILOGUE_OPS if _crops_lanes(sch.get(write_back), shape) else _HEAVY_EPILOGUE_OPS
    row_epilogue = (
        loops.row_tile is not None
        and not shape.lane_tiles_outermost
        and shape.lane_extent % shape.lanes == 0
        and shape.rows * row_bytes <= _ROW_EPILOGUE_BYTES
        and _float_ops(sch.get(write_back)) > costly
        and not _stores_transposed(sch.get(write_back))
    )
    if width:
        write_by_pixel(sch, block, write_back, width)
    if row_epilogue:
        sch.reverse_compute_at(write_back, loops.row_tile)
        *_, last = sch.get_loops(write_back)
        sch.vectorize(sch.split(last, [None, shape.lanes])[1])
    else:
        sch.reverse_compute_at(write_back, loops.tile[-1])
    return write_back, row_epilogue


def _fuse_epilogues(sch: s_tir.Schedule, write_back: SBlockRV) -> None:
    """Fold elementwise consumers (bias, relu, ...) into the tile write-back."""
    while True:
        consumers = sch.get_consumers(write_back)
        if len(consumers) != 1 or not is_spatial(sch, consumers[0]):
            return
        if _domain_size(sch, consumers[0]) != _domain_size(sch, write_back):
            # A consumer of part of the outputs (pixel_rows' crop): TVM would inline it over
            # all of them, writing past its buffer for the padding rows.
            return
        try:
            sch.reverse_compute_inline(consumers[0])
        except ScheduleError:
            return


def _domain_size(sch: s_tir.Schedule, block: SBlockRV) -> int | None:
    extents = [iv.dom.extent for iv in sch.get(block).iter_vars]
    if not all(isinstance(e, tirx.IntImm) for e in extents):
        return None
    return int(np.prod([int(e) for e in extents], dtype=np.int64))


def _float_ops(stmt: tirx.SBlock) -> int:
    """Float arithmetic nodes in a block's body: what one output of it costs."""
    count = 0

    def visit(node):
        nonlocal count
        if isinstance(node, _FLOAT_OPS) and str(node.ty).startswith("float"):
            count += 1

    tir_walk.visit(stmt.body, visit)
    return count


def _crops_lanes(stmt: tirx.SBlock, shape: TileShape) -> bool:
    """Whether a write-back stores fewer lanes than the tiles hold (a crop of padded lanes)."""
    written = stmt.writes[0].source.shape
    return bool(written) and isinstance(written[-1], tirx.IntImm) and int(written[-1]) < shape.lane_extent


def _stores_transposed(stmt: tirx.SBlock) -> bool:
    """Whether a write-back stores its tile transposed (`passes.epilogue_transposes`): the
    output's innermost index is another of its iterators than the tile's lanes (the last)."""
    index = stmt.writes[0].region[-1].min
    return any(index.same_as(iv.var) for iv in stmt.iter_vars[:-1])


def _vectorize_write_back(sch: s_tir.Schedule, write_back: SBlockRV, depth: int, lanes: int, tile: str) -> None:
    """Vectorize a tile's write-back along its output's contiguous axis: the lanes, or the
    tile rows of a tile stored transposed when they are whole vectors, each store one column
    of the ``tile`` buffer's 4 x 4 blocks (`tir.transpose_shuffle` makes them by interleaves,
    eight shuffles a block; LLVM's own took three a column). Otherwise lane by lane."""
    inner = sch.get_loops(write_back)[depth:]
    if len(inner) > 1 and _stores_transposed(sch.get(write_back)):
        index = _written_innermost_index(sch, write_back)
        for position, loop in enumerate(inner[:-1]):
            if steps_by_one(index, sch.get(loop).loop_var) and extent(sch, loop) % lanes == 0:
                sch.reorder(*inner[:position], *inner[position + 1 :], loop)
                sch.annotate(write_back, TRANSPOSED_BLOCKS_ATTR, tile)
                break
    _vectorize_tile(sch, write_back, depth)


def _written_innermost_index(sch: s_tir.Schedule, block: SBlockRV) -> tirx.PrimExpr:
    """The innermost index of the buffer ``block`` writes, in terms of its loops' variables."""
    stmt = sch.get(block)
    index = stmt.writes[0].region[-1].min
    for iv, value in zip(stmt.iter_vars, block_realize(sch, block).iter_values):
        index = tir_walk.substitute(index, iv.var, value)
    return index


def _vectorize_tile(sch: s_tir.Schedule, block: SBlockRV, depth: int) -> None:
    """Vectorize the innermost loop of a tile block, unroll its other tile loops."""
    inner = sch.get_loops(block)[depth:]
    if not inner:
        return
    for loop in inner[:-1]:
        sch.unroll(loop)
    sch.vectorize(inner[-1])


# Shared with `integer_contraction`'s dot-product tiles.
fuse_epilogues = _fuse_epilogues
vectorize_tile = _vectorize_tile
