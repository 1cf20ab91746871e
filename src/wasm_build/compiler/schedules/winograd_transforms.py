"""Rule: Winograd's input and output transforms (`compiler.passes.winograd` makes them),
tiled per tile position and channel vector with every coefficient selection a constant."""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.schedule import SBlockRV

from ..tiles import WINOGRAD_STAGE_ATTR
from .analysis import root_blocks
from .rule import Rule


def stage(sch: s_tir.Schedule, block: SBlockRV) -> str | None:
    return sch.get(block).annotations.get(WINOGRAD_STAGE_ATTR)


def has_transforms(func: tirx.PrimFunc) -> bool:
    """Whether ``func`` holds a Winograd convolution (its stages are root blocks)."""
    sch = s_tir.Schedule(func)
    return any(stage(sch, block) for block in root_blocks(sch))


class WinogradTransforms(Rule):
    """Tile a transform ("cols" block) per tile position and channel vector.

    Loop order: tile position, channel vector, then the ``a x a`` (or ``m x m``)
    outputs unrolled, so every coefficient selection is a constant; the "rows"
    pass is computed inside the same channel vector loop (a small array LLVM
    keeps in registers or on the stack).
    """

    name = "winograd_transforms"

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        if stage(sch, block) != "cols":
            return False
        rows = [b for b in sch.get_producers(block) if stage(sch, b) == "rows"]
        if len(rows) != 1:
            return False
        # One v128 of channels: 4 float32 or int32, 8 int16 (an integer conv's input tiles).
        lanes = 16 // (tvm.DataType(sch.get(block).writes[0].source.dtype).bits // 8)
        i, j, p, c = sch.get_loops(block)
        while int(sch.get(c).extent) % lanes and lanes > 4:
            lanes //= 2
        if int(sch.get(c).extent) % lanes:
            return False
        c_outer, c_inner = sch.split(c, [None, lanes])
        sch.reorder(p, c_outer, i, j, c_inner)
        sch.compute_at(rows[0], c_outer)
        for loop in (i, j):
            sch.unroll(loop)
        sch.vectorize(c_inner)
        inner = sch.get_loops(rows[0])[2:]
        for loop in inner[:-1]:
            sch.unroll(loop)
        sch.vectorize(inner[-1])
        return True
