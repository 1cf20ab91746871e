"""Pixels as tile rows: a 1x1 conv on an image whose width is not a multiple of 4 (14 and 7
wide planes) gets one pixel iterator, so the contraction rule's tile can take 4 pixels as
its rows (196 = 14 * 14 pixels are 49 row tiles; 14 columns are not 4-wide tiles)."""

from __future__ import annotations

from tvm import s_tir, tirx
from tvm.s_tir.schedule import SBlockRV

from ..tiles import PACKED_ROWS
from .analysis import is_one, iter_index, iter_kinds, lane_axis, region_vars, steps_by_one, uses


def fuse_pixel_axes(sch: s_tir.Schedule, block: SBlockRV) -> int:
    """Fuse the block's ``(h, w)`` iterators into one, ``h * W + w``.

    Only when the output is ``[..., h, w, lanes]`` and every input reading ``h``/``w`` reads
    them the same way, in consecutive dimensions of width ``W`` (the conv reads its input
    pixel by pixel). Returns ``W``, or 0 when the block is left as it is."""
    stmt = sch.get(block)
    kinds = iter_kinds(sch, block)
    vec = lane_axis(stmt, kinds)
    out = [r.min for r in stmt.writes[0].region]
    if vec is None or len(out) < 3:
        return 0
    h_var, w_var = out[-3], out[-2]
    h, w = iter_index(stmt, h_var), iter_index(stmt, w_var)
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
        dim_vars = region_vars(region)
        dims = [d for d, vars_ in enumerate(dim_vars) if uses([vars_], h_var) or uses([vars_], w_var)]
        if not dims:
            continue
        if dims != [dims[0], dims[0] + 1] or not uses([dim_vars[dims[0]]], h_var) or not uses([dim_vars[dims[1]]], w_var):
            return 0
        window = [iter_index(stmt, v) for d in dims for v in dim_vars[d] if not (v.same_as(h_var) or v.same_as(w_var))]
        if any(i is not None and not is_one(extents[i]) for i in window):
            return 0
        if not (isinstance(region.source.shape[dims[1]], tirx.IntImm) and int(region.source.shape[dims[1]]) == width):
            return 0
        if not all(steps_by_one(region.region[d].min, var) for d, var in zip(dims, (h_var, w_var))):
            return 0
    fuse = tirx.IndexMap.from_func(lambda *ivs: (*ivs[:h], ivs[h] * width + ivs[w], *ivs[w + 1 :]), ndim=len(kinds))
    sch.transform_block_layout(block, fuse)
    return width


def write_by_pixel(sch: s_tir.Schedule, block: SBlockRV, write_back: SBlockRV, width: int) -> None:
    """Index the tile buffer ``block`` writes, and its ``write_back``, by pixel too: a row
    tile's 4 pixels are then one exact region (as (h, w) boxes they would span two image
    rows, all columns)."""

    def by_pixel(*idx):
        return (*idx[:-3], idx[-3] * width + idx[-2], idx[-1])

    sch.transform_layout(block, ("write", 0), by_pixel)
    write_back_ndim = len(sch.get(write_back).iter_vars)
    sch.transform_block_layout(write_back, tirx.IndexMap.from_func(by_pixel, ndim=write_back_ndim))
