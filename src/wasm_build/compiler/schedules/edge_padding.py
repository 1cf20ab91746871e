"""Ragged edges padded to whole tiles: a contraction whose rows or lanes do not come in whole
register tiles (197 tokens, 49 or 77 rows, 197 keys) computes a few zero rows or lanes more
instead of falling back to smaller tiles.

The contraction's fastest step is 4 rows x 8 lanes with the rows' inputs packed side by side
(`packing.pack_row_operand`). No row tile size divides 197 (a prime): ViT's matmuls ran
1-row tiles at a third of that rate, and its attention products 3-row tiles over the heads
with 4-lane vectors under a predicate. `pad_to_tiles` pads the block's iteration domain
(TVM's ``pad_einsum``): the row operand's zero rows are computed in its packed copy
(`COMPUTED_ROWS_ATTR`), a lane operand is copied with zero columns (once per call, a pass over
an input against a product over it), and the write-back stores only the real outputs: one
predicate per tile row, outside the reduction.
"""

from __future__ import annotations

from typing import NamedTuple

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.schedule import SBlockRV

from ..tiles import COMPUTED_ROWS_ATTR, PACKED_ROWS, PADDED_COPY_ATTR
from .analysis import is_one, iter_kinds, lane_axis, lanes, region_vars, uses

# Lanes are padded to whole 2-vector tiles (4 x 8 is the packed step), rows to whole 4-row tiles.
_LANE_VECTORS = 2
# Padding may add at most this fraction of work; the packed 4 x 8 step runs 1.2-3x faster than
# the tiles it replaces (7 x 16 with a splat per row, 1 x 64, 4-lane tiles under a predicate).
_MAX_PADDING_FRACTION = 1 / 8


class Padding(NamedTuple):
    crop: SBlockRV  # the block copying the padded outputs' real part to the block's output
    rows: bool  # whether the row axis was padded (its operand's zero rows are computed, not stored)


def pad_to_tiles(sch: s_tir.Schedule, block: SBlockRV) -> Padding | None:
    """Pad ``block``'s row axis to whole 4-row tiles and its lane axis to whole 8-lane tiles
    where they are ragged and the rows' operand can be packed; None when nothing is padded."""
    stmt = sch.get(block)
    kinds = iter_kinds(sch, block)
    vec = lane_axis(stmt, kinds)
    if vec is None or not _is_einsum(stmt):
        return None
    lane_var = stmt.iter_vars[vec].var
    row = _packable_row_axis(stmt, kinds, vec)
    if row is None:
        return None
    extents = [int(iv.dom.extent) for iv in stmt.iter_vars]
    vector = lanes(stmt.writes[0].source.dtype)
    padding = [1] * len(extents)
    # Unless some reusing axis already comes in whole 4-row tiles.
    whole = any(e % PACKED_ROWS == 0 for i, e in enumerate(extents) if kinds[i] == "S" and i != vec and _reuses(stmt, i, lane_var))
    if not whole and _cheap(extents[row], PACKED_ROWS):
        padding[row] = PACKED_ROWS
    if _cheap(extents[vec], vector * _LANE_VECTORS):
        padding[vec] = vector * _LANE_VECTORS
    if padding == [1] * len(extents):
        return None
    output = stmt.writes[0].source
    name = stmt.name_hint
    sch.pad_einsum(block, padding)
    block = sch.get_sblock(name)
    row_buffer = _operand_of(sch.get(block), stmt.iter_vars[row].var) if padding[row] > 1 else None
    for producer in sch.get_producers(block):
        if not sch.get(producer).name_hint.endswith("_pad"):
            continue  # made before, not by pad_einsum
        rows = row_buffer is not None and sch.get(producer).writes[0].source.same_as(row_buffer)
        sch.annotate(producer, COMPUTED_ROWS_ATTR if rows else PADDED_COPY_ATTR, True)
    (crop,) = [c for c in sch.get_consumers(block) if sch.get(c).writes[0].source.same_as(output)]
    return Padding(crop, padding[row] > 1)


def _cheap(extent_: int, multiple: int) -> bool:
    pad = -extent_ % multiple
    return 0 < pad <= extent_ * _MAX_PADDING_FRACTION


def _is_einsum(stmt: tirx.SBlock) -> bool:
    """Every buffer index a block variable or a constant: what ``pad_einsum`` accepts."""
    regions = [*stmt.reads, *stmt.writes]
    return all(isinstance(r.min, (tirx.Var, tirx.IntImm)) and is_one(r.extent) for region in regions for r in region.region)


def _reuses(stmt: tirx.SBlock, axis: int, lane_var: tirx.Var) -> bool:
    """Whether no input moving with the lanes depends on iterator ``axis``: each of their vector
    loads then serves every value of it (a matmul's rows)."""
    var = stmt.iter_vars[axis].var
    streamed = [region_vars(r) for r in stmt.reads if uses(region_vars(r), lane_var)]
    return not any(uses(dims, var) for dims in streamed)


def _packable_row_axis(stmt: tirx.SBlock, kinds: str, vec: int) -> int | None:
    """The innermost spatial iterator whose values reuse every vector load and that exactly one
    input reads (in one dimension): the axis `pack_row_operand` packs four at a time."""
    lane_var = stmt.iter_vars[vec].var
    for i in reversed(range(len(kinds))):
        if kinds[i] != "S" or i == vec or is_one(stmt.iter_vars[i].dom.extent) or not _reuses(stmt, i, lane_var):
            continue
        if _operand_of(stmt, stmt.iter_vars[i].var) is not None:
            return i
    return None


def _operand_of(stmt: tirx.SBlock, var: tirx.Var) -> tirx.Buffer | None:
    """The one input that ``var`` indexes, in one dimension, if there is exactly one."""
    readers = [r for r in stmt.reads if uses(region_vars(r), var)]
    if len(readers) != 1 or sum(uses([dims], var) for dims in region_vars(readers[0])) != 1:
        return None
    return readers[0].source

