"""Operand layouts of the contraction rule's register tile: constant weights stored per
lane tile (padded to whole tiles at compile time when `edge_padding` padded them), and the
rows' broadcast operand copied four rows side by side."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import tvm
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import collect_vars_used_in_prim_expr
from tvm.s_tir.schedule import LoopRV, SBlockRV

from ..tiles import (
    COMPUTED_ROWS_ATTR,
    LAYOUT_FREE_ATTR,
    LAYOUT_REWRITE_PREPROC_ATTR,
    PACKED_ROWS,
    PACKED_ROWS_ATTR,
    PADDED_COPY_ATTR,
)
from .analysis import block_realize, indexed_dims, is_one, is_zero, region_vars, uses


class RowOperand(NamedTuple):
    """An input the tile rows read side by side: its buffer and the dimensions the row indexes."""

    buffer: tirx.Buffer
    dims: tuple[int, ...]


def pack_constant_operand(
    sch: s_tir.Schedule, block: SBlockRV, var: tirx.Var, lane_tile: int, outer: Sequence[tirx.Var] = ()
) -> None:
    """Store a constant vector-loaded operand (conv/dense weights) tile by tile.

    ``W[..., n]`` becomes ``W[n // tile, ..., n % tile]``: each lane tile's
    weights are contiguous, in the order the reduction loops read them, instead
    of one short vector per row of a wide matrix (a new cache line, or two, per
    reduction step). Dimensions indexed by ``outer`` (spatial loops outside the lane tiles:
    Winograd's tile positions) go first, ``W[e, n // tile, ..., n % tile]``, so the lane tiles
    of one position are one stream rather than chunks a position's weights apart.
    The copy is a block marked as layout-rewrite preprocessing:
    ``SplitLayoutRewritePreproc`` moves it out of the kernel and ``FoldConstant``
    applies it to the weights at compile time (`packed_weights.fold_packed_constants`),
    so it never runs in the model.
    """
    func = sch.mod["main"]
    layout_free = func.attrs.get(LAYOUT_FREE_ATTR) if func.attrs is not None else None
    if not layout_free:
        return
    constant_buffers = [func.params[int(i)] for i in layout_free]
    stmt = sch.get(block)
    padded = {sch.get(p).writes[0].source: p for p in sch.get_producers(block) if _pads(sch, p, constant_buffers)}
    for index, region in enumerate(stmt.reads):
        buffer = region.source
        pad = next((p for b, p in padded.items() if b.same_as(buffer)), None)
        if not region.region:
            continue  # a scalar: nothing to pack
        if pad is None and not any(buffer.same_as(b) for b in constant_buffers):
            continue
        last = buffer.shape[-1]
        if not region.region[-1].min.same_as(var) or not isinstance(last, tirx.IntImm):
            continue
        if int(last) <= lane_tile or int(last) % lane_tile:
            continue
        # The copy that packs (or pads and packs, see `edge_padding`) the weights.
        rewrite = pad if pad is not None else sch.cache_read(block, index, "global")
        sch.annotate(rewrite, LAYOUT_REWRITE_PREPROC_ATTR, True)
        first = [d for d in indexed_dims(region, outer) if d < len(region.region) - 1]

        def packed(*idx):
            rest = [idx[d] for d in range(len(idx) - 1) if d not in first]
            return (*[idx[d] for d in first], idx[-1] // lane_tile, *rest, idx[-1] % lane_tile)

        sch.transform_layout(block, ("read", index), packed)
        return


def _pads(sch: s_tir.Schedule, block: SBlockRV, constants: list) -> bool:
    """Whether ``block`` is `edge_padding`'s zero-padded copy of a constant."""
    stmt = sch.get(block)
    padded_copy = stmt.annotations.get(PADDED_COPY_ATTR)
    return bool(padded_copy) and len(stmt.reads) == 1 and any(stmt.reads[0].source.same_as(c) for c in constants)


def row_operand(stmt: tirx.SBlock, row: tirx.Var, lane: tirx.Var) -> RowOperand | None:
    """The input broadcast across lanes that the tile rows read side by side: (buffer,
    dimensions) when exactly one input is indexed by the row iterator in consecutive
    dimensions whose row-major position is the row itself: one dimension (a matmul's rows,
    a 1x1 conv's output columns) or two (a 1x1 conv's pixels, see `pixel_axes`).
    Iterators of extent 1 (a 1x1 conv's window) may be added."""
    analyzer = tvm.sym.Analyzer()
    for iv in stmt.iter_vars:
        if is_one(iv.dom.extent):
            analyzer.bind(iv.var, tirx.const(0, str(iv.var.ty.dtype)))
    found = []
    for region in stmt.reads:
        dim_vars = region_vars(region)
        if uses(dim_vars, lane) or not uses(dim_vars, row):
            continue
        dims = tuple(d for d, vars_ in enumerate(dim_vars) if uses([vars_], row))
        shape = region.source.shape
        if dims != tuple(range(dims[0], dims[-1] + 1)) or not all(isinstance(shape[d], tirx.IntImm) for d in dims):
            return None
        position = region.region[dims[0]].min
        for d in dims[1:]:
            position = position * shape[d] + region.region[d].min
        size = int(np.prod([int(shape[d]) for d in dims]))
        if not is_zero(analyzer.simplify(position - row)) or size % PACKED_ROWS:
            return None
        found.append(RowOperand(region.source, dims))
    return found[0] if len(found) == 1 else None


def copies_rows(sch: s_tir.Schedule, block: SBlockRV, operand: RowOperand) -> bool:
    """Whether packing ``operand`` per row tile is cheap enough to repeat: rows in one dimension
    (rows spread over two are packed once per call, see `pack_row_operand`), not gathered from
    windows in the copy (`patch_rows`' patches: ResNet-18's 7x7-plane convs, 4608 values a patch
    with bounds checks on each, ran 20% slower with their patches gathered once per lane block)."""
    if len(operand.dims) != 1:
        return False
    producers = [sch.get(p) for p in sch.get_producers(block)]
    computed = [p for p in producers if p.writes[0].source.same_as(operand.buffer) and p.annotations.get(COMPUTED_ROWS_ATTR)]
    # A window position: an output row and a window offset in one input dimension.
    return not any(len(vars_) > 1 for stmt in computed for region in stmt.reads for vars_ in region_vars(region))


def pack_row_operand(sch: s_tir.Schedule, block: SBlockRV, operand: RowOperand, row_loop: LoopRV | None) -> None:
    """Copy the tile rows' broadcast operand into a buffer with the rows innermost:
    ``A[..., r, ..., k]`` becomes ``A[..., r // 4, ..., k, r % 4]``.

    Each reduction step then reads the four rows' values from one place: lowering stores each
    value four times (``compiler.tir.presplat_rows``, else ``lane_shuffle`` splats lanes of one
    vector), instead of four ``v128.load32_splat`` (a scalar load, a move and a shuffle each
    in Cranelift's x86 code).
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
        # The copy's own loops (below the row tile); the one over the rows goes innermost.
        copy_loops = copy_at(sch, pack, row_loop)
        row_binding = collect_vars_used_in_prim_expr(block_realize(sch, pack).iter_values[dims[0]])
        is_row = [uses([row_binding], sch.get(loop).loop_var) for loop in copy_loops]
        sch.reorder(*[l for l, r in zip(copy_loops, is_row) if not r], *[l for l, r in zip(copy_loops, is_row) if r])
        sch.vectorize(sch.get_loops(pack)[-1])
    compute_rows_in_copy(sch, pack)
    sch.annotate(pack, PACKED_ROWS_ATTR, sch.get(pack).writes[0].source.name)


def copy_at(sch: s_tir.Schedule, copy: SBlockRV, row_loop: LoopRV) -> list[LoopRV]:
    """Compute a row operand's ``copy`` per row tile (at ``row_loop``); its own loops, below it."""
    sch.compute_at(copy, row_loop)
    loops = sch.get_loops(copy)
    depth = 1 + next(i for i, loop in enumerate(loops) if sch.get(loop).same_as(sch.get(row_loop)))
    return loops[depth:]


def compute_rows_in_copy(sch: s_tir.Schedule, copy: SBlockRV) -> None:
    """Rows computed for the tile (`pixel_rows`' pixels, zeros past the image) are computed in
    the row operand's ``copy``."""
    for producer in sch.get_producers(copy):
        if sch.get(producer).annotations.get(COMPUTED_ROWS_ATTR):
            sch.compute_inline(producer)
