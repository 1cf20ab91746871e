"""Edits of a `torch.export` program's graph that mend TVM's exported-program frontend.

Each edit keeps the program's meaning (it stays the smoke test's reference) and changes only
what TVM's translator reads wrongly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GraphEdit:
    name: str
    apply: Callable[[Any], int]  # torch.fx.Graph -> how many nodes it changed


def negative_select_index(graph: Any) -> int:
    """`x.select(dim, -k)` (as in `sequence[:, -1]`) with the index counted from the front.

    TVM's `_select` emits `take(x, const(-k))` in its default "fast" mode, which does not wrap
    negative indices: the kernel reads out of bounds (a recurrent keyword spotter's last frame
    came out as garbage). With the static size of `dim`, `-k` is `size - k`.
    """
    import torch

    changed = 0
    for node in graph.nodes:
        if node.op != "call_function" or node.target is not torch.ops.aten.select.int:
            continue
        source, dim, index = node.args[:3]
        value = getattr(source, "meta", {}).get("val")
        if not isinstance(index, int) or index >= 0 or value is None:
            continue
        size = value.shape[dim]
        if not isinstance(size, int):
            continue  # a symbolic size: left to TVM
        node.args = (source, dim, index + size, *node.args[3:])
        changed += 1
    return changed


EDITS: tuple[GraphEdit, ...] = (GraphEdit("negative_select_index", negative_select_index),)


def apply_edits(program: Any) -> Any:
    """`program` (a `torch.export.ExportedProgram`) with every edit applied in place."""
    module = program.graph_module
    if sum(edit.apply(module.graph) for edit in EDITS):
        module.recompile()
    return program
