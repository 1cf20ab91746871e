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

from tvm import s_tir, tirx
from tvm.s_tir.schedule import SBlockRV

from ..tiles import COMPUTED_ROWS_ATTR, PACKED_ROWS, PADDED_COPY_ATTR
from .analysis import is_one, iter_kinds, lane_axis, lanes, region_vars, uses

# Lanes are padded to whole 2-vector tiles (4 x 8 is the packed step), rows to whole 4-row tiles.
_LANE_VECTORS = 2
# Padding may add at most this fraction of work; the packed 4 x 8 step runs 1.2-3x faster than
# the tiles it replaces (7 x 16 with a splat per row, 1 x 64, 4-lane tiles under a predicate).
_MAX_PADDING_FRACTION = 1 / 8


def pad_to_tiles(sch: s_tir.Schedule, block: SBlockRV) -> SBlockRV | None:
    """Pad ``block``'s row axis to whole 4-row tiles and its lane axis to whole 8-lane tiles
    where they are ragged and the rows' operand can be packed. Returns the crop (the block
    copying the padded outputs' real part to the block's output), None when nothing is padded."""
    stmt = sch.get(block)
    kinds = iter_kinds(sch, block)
    vec = lane_axis(stmt, kinds)
    if vec is None or not can_pad(stmt):
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
    if not whole and cheap_padding(extents[row], PACKED_ROWS):
        padding[row] = PACKED_ROWS
    if cheap_padding(extents[vec], vector * _LANE_VECTORS):
        padding[vec] = vector * _LANE_VECTORS
    elif extents[vec] % vector and extents[vec] > vector * _LANE_VECTORS:
        padding[vec] = vector
    if padding == [1] * len(extents):
        return None
    return _pad(sch, block, padding, computed_rows=row if padding[row] > 1 else None)


def pad_rows(sch: s_tir.Schedule, block: SBlockRV, axis: int, multiple: int) -> SBlockRV | None:
    """Pad iterator ``axis`` of ``block`` to a multiple of ``multiple`` (`integer_contraction`'s
    row tiles: the rows' operand is copied with zero rows once per call). Returns the crop, None
    when the block's indices are not plain iterators (a conv's windows): ``pad_einsum`` cannot
    pad those."""
    stmt = sch.get(block)
    if not can_pad(stmt):
        return None
    padding = [1] * len(stmt.iter_vars)
    padding[axis] = multiple
    return _pad(sch, block, padding, computed_rows=None)


def pad_reduction(sch: s_tir.Schedule, block: SBlockRV, axis: int, multiple: int) -> SBlockRV | None:
    """Pad reduction iterator ``axis`` of ``block`` to a multiple of ``multiple``, its operands
    copied with zeros once per call (attention's scores x V over 79 or 197 keys, whose dot
    products take pairs). Returns the padded block, None where ``pad_einsum`` cannot pad."""
    stmt = sch.get(block)
    if not can_pad(stmt):
        return None
    padding = [1] * len(stmt.iter_vars)
    padding[axis] = multiple
    sch.pad_einsum(block, padding)
    block = sch.get_sblock(stmt.name_hint)
    for copy in _padded_copies(sch, block):
        sch.annotate(copy, PADDED_COPY_ATTR, True)
    return block


def _padded_copies(sch: s_tir.Schedule, block: SBlockRV) -> list[SBlockRV]:
    """The zero-padded copies of ``block``'s operands that ``pad_einsum`` made."""
    return [p for p in sch.get_producers(block) if sch.get(p).name_hint.endswith("_pad")]


def can_pad(stmt: tirx.SBlock) -> bool:
    """Every buffer index a block variable or a constant: what ``pad_einsum`` accepts."""
    regions = [*stmt.reads, *stmt.writes]
    return all(isinstance(r.min, (tirx.Var, tirx.IntImm)) and is_one(r.extent) for region in regions for r in region.region)


def _pad(sch: s_tir.Schedule, block: SBlockRV, padding: list[int], computed_rows: int | None) -> SBlockRV:
    """``pad_einsum`` by ``padding``, its copies annotated: the operand of iterator
    ``computed_rows`` (packed by `packing.pack_row_operand`, its zero rows computed there) or
    a zero-padded copy. Returns the crop."""
    stmt = sch.get(block)
    output = stmt.writes[0].source
    sch.pad_einsum(block, padding)
    block = sch.get_sblock(stmt.name_hint)
    rows = None if computed_rows is None else _operand_of(sch.get(block), stmt.iter_vars[computed_rows].var)
    for copy in _padded_copies(sch, block):
        is_rows = rows is not None and sch.get(copy).writes[0].source.same_as(rows)
        sch.annotate(copy, COMPUTED_ROWS_ATTR if is_rows else PADDED_COPY_ATTR, True)
    (crop,) = [c for c in sch.get_consumers(block) if sch.get(c).writes[0].source.same_as(output)]
    return crop


def cheap_padding(extent_: int, multiple: int) -> bool:
    """Whether ``extent_`` is ragged in tiles of ``multiple`` and padding it adds little work."""
    pad = -extent_ % multiple
    return 0 < pad <= extent_ * _MAX_PADDING_FRACTION


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

