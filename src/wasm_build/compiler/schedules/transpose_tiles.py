"""Rule: a transpose that moves the innermost axis, in 4 x 4 blocks of whole vectors.

Vectorized along its output's innermost axis, such a transpose (NCHW <-> NHWC at a model's
edges, ``[pixels, channels] -> [channels, pixels]``) reads every lane from another row: four
scalar loads and three lane inserts per vector, about 1 GB/s an instruction stream. Here a
block of 4 input rows x 4 lanes is loaded as four vectors into a small local buffer, and the
output vectors are read across it, in columns that `compiler.tir.transpose_shuffle` turns into
two rounds of lane interleaves (4 loads, 8 shuffles, 4 stores per 16 values). An output row narrower
than a vector (3 channels last, an RGB image to NHWC) takes 4 input positions at a time: 3
vector loads, 3 stores of 12 contiguous values.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.schedule import SBlockRV

from ..tiles import TRANSPOSED_BLOCKS_ATTR
from .analysis import extent, has_trivial_binding, is_spatial, iter_index, lanes
from .rule import Rule

_BITS = 32  # four lanes a vector: 8- and 16-bit values would need 16 x 16 and 8 x 8 blocks


@dataclass(frozen=True)
class _Transpose:
    out_axis: int  # the iterator of the output's innermost index
    in_axis: int  # ... and of the input's
    narrow: bool  # fewer output values a row than a vector (RGB channels last): rows of 4 x that


class TransposeTiles(Rule):
    name = "transpose_tiles"

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        found = _transpose(sch, block)
        if found is None:
            return False
        width = lanes(sch.get(block).writes[0].source.dtype)
        loops = sch.get_loops(block)
        in_o, in_i = sch.split(loops[found.in_axis], [None, width])
        if found.narrow:
            # The input axis is the output's next-innermost: 4 of its positions times every
            # output value make one contiguous run of whole vectors.
            outer = [in_o if i == found.in_axis else loop for i, loop in enumerate(loops) if i != found.out_axis]
            sch.reorder(*outer, in_i, loops[found.out_axis])
            out_i = sch.fuse(in_i, loops[found.out_axis])
        else:
            out_o, out_i = sch.split(loops[found.out_axis], [None, width])
            outer = [out_o if i == found.out_axis else in_o if i == found.in_axis else loop for i, loop in enumerate(loops)]
            sch.reorder(*outer, in_i, out_i)
            sch.unroll(in_i)
        # One block of input rows, each read as a vector along the input's innermost axis.
        # (A "global" block at a loop is compacted to a stack array that LLVM keeps in
        # registers; a "local" one would be allocated from the workspace on every call.)
        rows = sch.cache_read(block, 0, "global")
        sch.compute_at(rows, outer[-1])
        if not found.narrow:  # its columns are read by shuffles after lowering
            sch.annotate(rows, TRANSPOSED_BLOCKS_ATTR, sch.get(rows).writes[0].source.name)
        *_, row, lane = sch.get_loops(rows)
        sch.unroll(row)
        sch.vectorize(lane)
        sch.vectorize(out_i)
        return True


def _transpose(sch: s_tir.Schedule, block: SBlockRV) -> _Transpose | None:
    """``block`` as a `_Transpose` when it copies one 32-bit tensor into another with its axes
    permuted, each index an iterator, the innermost axis moved, the input's innermost extent
    whole vectors and the output's whole vectors too or narrower than one."""
    if not is_spatial(sch, block) or not has_trivial_binding(sch, block):
        return None
    stmt = sch.get(block)
    if len(stmt.writes) != 1 or len(stmt.reads) != 1 or not isinstance(stmt.body, tirx.BufferStore):
        return None
    write, read = stmt.writes[0], stmt.reads[0]
    if str(write.source.dtype) != str(read.source.dtype) or tvm.DataType(str(write.source.dtype)).bits != _BITS:
        return None
    axes = []
    for region in (write, read):
        indices = [r.min for r in region.region]
        if not all(isinstance(i, tirx.Var) for i in indices) or any(not _is_unit(r.extent) for r in region.region):
            return None
        axes.append([iter_index(stmt, i) for i in indices])
    out_axes, in_axes = axes
    out_axis, in_axis = out_axes[-1], in_axes[-1]
    if out_axis is None or in_axis is None or out_axis == in_axis:
        return None
    loops = sch.get_loops(block)
    width = lanes(write.source.dtype)
    out_extent = extent(sch, loops[out_axis])
    if extent(sch, loops[in_axis]) % width:
        return None
    if out_extent % width == 0:
        return _Transpose(out_axis, in_axis, narrow=False)
    if out_extent < width and len(out_axes) >= 2 and out_axes[-2] == in_axis:
        return _Transpose(out_axis, in_axis, narrow=True)
    return None


def _is_unit(value) -> bool:
    return isinstance(value, tirx.IntImm) and int(value) == 1
