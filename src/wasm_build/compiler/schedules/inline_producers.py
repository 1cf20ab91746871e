"""Rule: inline injective producers into their only consumer."""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.schedule import SBlockRV

from . import winograd_transforms
from .concat_segments import concatenation_bounds
from .analysis import has_broadcast_operand, is_float32_block, is_output, is_spatial, iter_kinds
from .rule import Rule


class InlineProducers(Rule):
    """Inline a spatial block into its only consumer when that consumer is spatial too.

    Producers feeding a reduction stay separate (inlining them there would
    recompute them, e.g. a padding condition, once per reduction step), unless
    they are plain copies, or the reduction is lane-wise (a depthwise conv):
    there a step is one tap, a vector load under one condition, and the padded
    copy cost a full pass over the activations (and megabytes of workspace)
    to save a compare per tap.
    """

    name = "inline_producers"

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        if not is_spatial(sch, block) or is_output(sch, block) or winograd_transforms.stage(sch, block):
            return False  # Winograd stages keep their own buffers (see winograd_transforms.WinogradTransforms)
        if concatenation_bounds(sch.get(block)) is not None:
            return False  # copied input by input (see concat_segments.ConcatSegments)
        consumers = sch.get_consumers(block)
        if len(consumers) != 1:
            return False
        consumer = consumers[0]
        if not (is_spatial(sch, consumer) or _is_plain_copy(sch.get(block)) or _is_lanewise_reduction(sch, consumer)):
            return False
        sch.compute_inline(block)
        return True


def _is_lanewise_reduction(sch: s_tir.Schedule, block: SBlockRV) -> bool:
    """A float reduction whose every input moves with the output's innermost index (depthwise
    conv). Integer ones keep their padded input: `integer_contraction` copies the rows a row of
    outputs reads, a quarter of the bytes, and its taps then need no bounds checks."""
    stmt = sch.get(block)
    lane = stmt.writes[0].region[-1].min if stmt.writes and stmt.writes[0].region else None
    return (
        "R" in iter_kinds(sch, block)
        and is_float32_block(sch, block)
        and isinstance(lane, tirx.Var)
        and not has_broadcast_operand(stmt, lane)
    )


def _is_plain_copy(stmt: tirx.SBlock) -> bool:
    """A block that only moves data (e.g. the zero-width padding of a 1x1 conv):
    inlined into a reduction, it costs nothing per step."""
    body = stmt.body
    return isinstance(body, tirx.BufferStore) and isinstance(body.value, tvm.ir.TensorLoad)
