"""Rule: a transpose that moves the innermost axis, in 4 x 4 blocks of whole vectors.

Vectorized along its output's innermost axis, such a transpose (NCHW <-> NHWC at a model's
edges, ``[pixels, channels] -> [channels, pixels]``) reads every lane from another row: four
scalar loads and three lane inserts per vector. Here the output's innermost axes that stay
together in the input (a 14 x 14 plane: 196 pixels) are one vectorized axis, and each vector
step writes 4 output rows from 4 input rows: four gathers ``X[Ramp(b + j, S, 4)]``, j = 0..3,
which `compiler.tir.transpose_shuffle` turns into 4 vector loads and two rounds of lane
interleaves (8 shuffles, 4 stores per 16 values).

Rows or columns that are not whole vectors (a 7x7 plane: 49 pixels, a sequence of 77 tokens)
take the same blocks up to their last whole one; the partial block is split off by
``loop_partition`` and copied value by value (before, such a transpose was vectorized over
its flattened output with a division per lane: NHWC -> NCHW of 7x7x960 at 4.5 GB/s, 6x slower).

An output row narrower than a vector (3 channels last, an RGB image to NHWC) takes 4 input
positions at a time instead: a block of 3 rows x 4 lanes is loaded as 3 vectors into a stack
array and the 12 contiguous output values are read across it (LLVM shuffles the lanes).
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import collect_vars_used_in_prim_expr
from tvm.s_tir.schedule import SBlockRV

from ..tiles import PARTITIONED_ATTR, TRANSPOSED_BLOCKS_ATTR
from .analysis import extent, has_trivial_binding, is_spatial, iter_index, lanes
from .rule import Rule

_BITS = 32  # four lanes a vector: 8- and 16-bit values would need 16 x 16 and 8 x 8 blocks


@dataclass(frozen=True)
class _Transpose:
    out_axes: tuple[int, ...]  # iterators of the output's innermost indices that move together
    in_axes: tuple[int, ...]  # the same for the input's (adjacent loops: they follow each other in the output)
    narrow: bool  # fewer output values a row than a vector (RGB channels last): rows of 4 x that
    source: str  # the transposed buffer (other reads are scalars)


class TransposeTiles(Rule):
    name = "transpose_tiles"

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        found = _transpose(sch, block)
        if found is None:
            return False
        width = lanes(sch.get(block).writes[0].source.dtype)
        loops = sch.get_loops(block)
        in_loop = sch.fuse(*(loops[i] for i in found.in_axes)) if len(found.in_axes) > 1 else loops[found.in_axes[0]]
        column = extent(sch, in_loop)
        in_o, in_i = sch.split(in_loop, [None, width])
        if found.narrow:
            _narrow_rows(sch, block, loops, found, in_o, in_i)
            return True
        out_loops = [loops[i] for i in found.out_axes]
        # The loops outside the block, in order; the input's innermost axes are now `in_o`.
        outer = [in_o if i == found.in_axes[0] else loop for i, loop in enumerate(loops)
                 if i not in found.out_axes and (i not in found.in_axes or i == found.in_axes[0])]
        sch.reorder(*outer, *out_loops, in_i)
        out_loop = sch.fuse(*out_loops) if len(out_loops) > 1 else out_loops[0]
        row = extent(sch, out_loop)
        out_o, out_i = sch.split(out_loop, [None, width])
        sch.reorder(out_o, in_i, out_i)
        # Rows or columns that are not whole vectors (a 7x7 plane: 49 pixels): the last,
        # partial block of each apart, where the split's bound check stays; the whole
        # blocks' check is always true and simplified away, so they take the shuffles.
        if row % width:
            block = _whole_blocks(sch, out_o, row // width)
        if column % width:
            block = _whole_blocks(sch, sch.get_loops(block)[outer.index(in_o)], column // width)
        *_, in_i, out_i = sch.get_loops(block)
        sch.unroll(in_i)
        sch.vectorize(out_i)
        # The gathers `tir.transpose_shuffle` rewrites read this buffer.
        sch.annotate(block, TRANSPOSED_BLOCKS_ATTR, found.source)
        return True


def _whole_blocks(sch: s_tir.Schedule, loop, whole: int) -> SBlockRV:
    """Partition ``loop`` over blocks of 4 into its ``whole`` blocks and the partial last one
    (left as a plain, bound-checked copy); the whole blocks' block. The partition makes new
    loops: take them from the block."""
    whole_blocks, _partial = sch.loop_partition(loop, [whole, None])
    (block,) = sch.get_child_blocks(whole_blocks)
    sch.annotate(block, PARTITIONED_ATTR, True)
    return block


def _narrow_rows(sch: s_tir.Schedule, block: SBlockRV, loops, found: _Transpose, in_o, in_i) -> None:
    """4 positions of the input axis (the output's next-innermost) times every output value:
    one contiguous run of whole vectors, read across a block of input rows."""
    (out_axis,), (in_axis,) = found.out_axes, found.in_axes
    outer = [in_o if i == in_axis else loop for i, loop in enumerate(loops) if i != out_axis]
    sch.reorder(*outer, in_i, loops[out_axis])
    out_i = sch.fuse(in_i, loops[out_axis])
    # A "global" block at a loop is compacted to a stack array that LLVM keeps in registers
    # (a "local" one would be allocated from the workspace on every call).
    rows = sch.cache_read(block, 0, "global")
    sch.compute_at(rows, outer[-1])
    *_, row, lane = sch.get_loops(rows)
    sch.unroll(row)
    sch.vectorize(lane)
    sch.vectorize(out_i)


def _transpose(sch: s_tir.Schedule, block: SBlockRV) -> _Transpose | None:
    """``block`` as a `_Transpose` when it copies one 32-bit tensor into another with its axes
    permuted, each index an iterator, the innermost axis moved, and the input's and the
    output's innermost extents at least a vector each (a partial last block is copied
    apart); or output rows narrower than one from input rows of whole vectors.

    The input may be read at constant indices too (a squeezed axis), and the copied value
    scaled by scalars (attention's ``K^T * 1/sqrt(d)``): the gathers stay gathers."""
    if not is_spatial(sch, block) or not has_trivial_binding(sch, block):
        return None
    stmt = sch.get(block)
    moved = [region for region in stmt.reads if not _is_scalar(region)]
    if len(stmt.writes) != 1 or len(moved) != 1 or not isinstance(stmt.body, tirx.BufferStore):
        return None
    write, read = stmt.writes[0], moved[0]
    if str(write.source.dtype) != str(read.source.dtype) or tvm.DataType(str(write.source.dtype)).bits != _BITS:
        return None
    if any(not _is_unit(r.extent) for r in (*write.region, *read.region)):
        return None
    out_indices = [r.min for r in write.region]
    # Constant indices on outer axes (a slice) or on axes of one value (a squeeze): one of many
    # values between moving axes would put the input's rows apart in memory.
    squeezed = [_is_constant(r.min) for r in read.region]
    first_moving = squeezed.index(False) if False in squeezed else len(squeezed)
    if any(s and d > first_moving and not _is_unit(n) for d, (s, n) in enumerate(zip(squeezed, read.source.shape))):
        return None
    in_indices = [r.min for r, s in zip(read.region, squeezed) if not s]
    if not all(isinstance(i, tirx.Var) for i in (*out_indices, *in_indices)):
        return None
    out_axes = [iter_index(stmt, i) for i in out_indices]
    in_axes = [iter_index(stmt, i) for i in in_indices]
    if sorted(out_axes) != sorted(in_axes):  # each iterator once on either side: no broadcast
        return None
    if None in out_axes or None in in_axes or out_axes[-1] == in_axes[-1]:
        return None
    loops = sch.get_loops(block)
    width = lanes(write.source.dtype)
    together = _moving_together(out_axes, in_axes)
    if together != tuple(range(len(loops) - len(together), len(loops))):
        return None  # not the innermost loops: they cannot be fused
    out_extent = _extent(sch, loops, together)
    in_together = _moving_together(in_axes, out_axes)
    column = _extent(sch, loops, in_together)  # the input's rows
    if column < width:
        return None
    source = read.source.name
    if out_extent >= width:  # whole vectors, then a partial block (`_whole_blocks`)
        return _Transpose(together, in_together, narrow=False, source=source)
    narrow_from_whole_rows = extent(sch, loops[in_axes[-1]]) % width == 0 and len(together) == 1
    plain_copy = len(stmt.reads) == 1 and len(in_indices) == len(read.region)  # `_narrow_rows` caches read 0
    if narrow_from_whole_rows and plain_copy and len(out_axes) >= 2 and out_axes[-2] == in_axes[-1]:
        return _Transpose(together, (in_axes[-1],), narrow=True, source=source)
    return None


def _extent(sch: s_tir.Schedule, loops, axes: tuple[int, ...]) -> int:
    product = 1
    for axis in axes:
        product *= extent(sch, loops[axis])
    return product


def _moving_together(out_axes: list[int], in_axes: list[int]) -> tuple[int, ...]:
    """The output's innermost axes that follow each other in the same order in the input (so
    their flattened index moves by one in both): ``(h, w)`` of NHWC -> NCHW. With the
    arguments swapped, the same for the input: ``(h, w)`` of NCHW -> NHWC."""
    together = [out_axes[-1]]
    for axis in reversed(out_axes[:-1]):
        at = in_axes.index(together[0])
        if at == 0 or in_axes[at - 1] != axis:
            break
        together.insert(0, axis)
    return tuple(together)


def _is_scalar(region) -> bool:
    """A read of one value at constant indices (a scale factor)."""
    return all(_is_constant(r.min) and _is_unit(r.extent) for r in region.region)


def _is_constant(index) -> bool:
    """An index without iterators (``0 + 1`` from an inlined slice too)."""
    return not collect_vars_used_in_prim_expr(index)


def _is_unit(value) -> bool:
    return isinstance(value, tirx.IntImm) and int(value) == 1
