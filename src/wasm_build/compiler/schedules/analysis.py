"""Block analysis shared by the schedule rules (and graph passes that read kernels)."""

from __future__ import annotations

from tvm import s_tir
from tvm.s_tir.schedule import SBlockRV


def root_blocks(sch: s_tir.Schedule) -> list[SBlockRV]:
    root = sch.get_sblock("root")
    return list(sch.get_child_blocks(root))


def all_blocks(sch: s_tir.Schedule) -> list[SBlockRV]:
    blocks = []
    pending = root_blocks(sch)
    while pending:
        block = pending.pop()
        blocks.append(block)
        pending.extend(sch.get_child_blocks(block))
    return blocks
