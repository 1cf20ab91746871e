"""Rule: vectorize the innermost loops of injective loop nests."""

from __future__ import annotations

import tvm
from tvm import s_tir
from tvm.s_tir.schedule import SBlockRV

from ..tir.overlapping_tails import may_overlap
from .analysis import extent, first_divisor, has_trivial_binding, is_spatial, lanes
from .rule import Rule

_has_if_then_else = tvm.get_global_func("s_tir.schedule.HasIfThenElse")


class VectorizeSpatial(Rule):
    """Vectorize the innermost loops of a root-level spatial block.

    A ragged innermost axis longer than a vector gets whole vectors, the last one
    overlapping (see `vectorize_innermost`); a short one is fused with the loops out until
    their extent is a multiple of the vector width (e.g. the 7x7 plane of a late conv
    layer), except in blocks with a condition (padding): there the fused index needs a
    division per element and the condition scalarizes the vector anyway.
    """

    name = "vectorize_spatial"

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        if not is_spatial(sch, block) or not has_trivial_binding(sch, block):
            return False
        stmt = sch.get(block)
        if len(stmt.writes) != 1:
            return False
        loops = sch.get_loops(block)
        return vectorize_innermost(sch, block, loops[-1:] if _has_if_then_else(stmt) else loops)


def vectorize_innermost(sch: s_tir.Schedule, block: SBlockRV, loops: list) -> bool:
    """Vectorize the innermost of ``loops`` (``block``'s, outermost first), fused with the
    next ones out until their extent is a multiple of the vector width; False when no
    multiple of it is found."""
    vector = lanes(sch.get(block).writes[0].source.dtype)
    last = extent(sch, loops[-1])
    if last % vector and last > vector and may_overlap(sch.get(block), sch.mod["main"]):
        # Whole vectors along the axis, the last overlapping the one before it
        # (`tir.overlapping_tails`): fused with the next axes out, every lane would divide
        # its index (a 49-key softmax row: 4 GB/s).
        _, inner = sch.split(loops[-1], [None, vector])
        sch.vectorize(inner)
        return True
    fused_extent, count = 1, 0
    for loop in reversed(loops):
        fused_extent *= extent(sch, loop)
        count += 1
        if fused_extent % vector == 0:
            break
    factor = first_divisor(fused_extent, (4 * vector, 2 * vector, vector))
    if factor is None:
        return False
    fused = sch.fuse(*loops[-count:]) if count > 1 else loops[-1]
    _, inner = sch.split(fused, [None, factor])
    sch.vectorize(inner)
    return True
