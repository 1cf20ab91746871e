"""Rule: a concatenation of many tensors as one copy loop per input.

TVM's concatenate is one loop nest over the output whose value is a chain of
``if_then_else(c_k <= v, input_k[v - c_k], ...)``, one link per input: every element walks the
chain (the 49 time steps an unrolled RNN concatenates: 49 compares an element, and the
vectorizer gives up on the selects). The loop over ``v`` is partitioned at the boundaries
``c_k``; in each part the loop's range decides every condition, the simplifier drops them,
and the part is a plain, vectorized copy of its input.

Such a block is also kept out of its consumer (`inline_producers`), where the chain would sit
behind the consumer's index arithmetic (a transpose, a reshape) and no loop range could decide it.

A concatenation along the innermost axis inside other arithmetic (a quantized concatenation:
each input dequantized, the result quantized, all in one kernel) is partitioned from two
inputs (up to `MAX_LANE_SEGMENTS`): there every vector lane would take its own branch, and
TVM's vectorizer turns the lane-dependent ``if_then_else`` into scalar code with the arithmetic
(0.5-4 GB/s). A bare concatenation along the lanes vectorizes as selects of loads.
"""

from __future__ import annotations

import math

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.schedule import SBlockRV

from ..tiles import PARTITIONED_ATTR
from ..tir.walk import is_if_then_else, visit
from .analysis import extent, first_divisor, has_trivial_binding, is_spatial, lanes
from .rule import Rule
from .spatial import vectorize_innermost

# Inputs from which a concatenation is split into copies (fewer: the chain is cheap, and
# inlined into its consumer the concatenation costs no pass over memory).
MIN_SEGMENTS = 4
# Inputs up to which a concatenation along the lanes is partitioned: each part holds the whole
# chain until lowering simplifies it, and the partitioned kernel is printed and parsed again
# (`schedules._with_own_block_iterators`), a size that grows with the square of the inputs.
MAX_LANE_SEGMENTS = 16


def _link(node) -> tuple[tirx.Var, int] | None:
    """``(v, c)`` when ``node`` is ``if_then_else(c <= v, _, _)``: one link of TVM's concatenate."""
    if not is_if_then_else(node):
        return None
    condition = node.args[0]
    if not (isinstance(condition, tvm.ir.prim.expr.LE) and isinstance(condition.a, tvm.ir.prim.expr.IntImm)
            and isinstance(condition.b, tirx.Var)):
        return None
    return condition.b, int(condition.a.value)


def select_chain(value: tirx.PrimExpr) -> tuple[tirx.Var, list[int]] | None:
    """``(v, [c_1, ..., c_n])`` when ``value`` is ``if_then_else(c_1 <= v, _, if_then_else(c_2
    <= v, _, ... _))`` (TVM's concatenate), else None."""
    var, bounds = None, []
    while is_if_then_else(value):
        link = _link(value)
        if link is None or (var is not None and not link[0].same_as(var)):
            return None
        var = link[0]
        bounds.append(link[1])
        value = value.args[2]
    return (var, bounds) if var is not None else None


def concatenation_bounds(stmt: tirx.SBlock) -> tuple[tirx.Var, list[int]] | None:
    """The concatenated axis and its segment starts (ascending, without 0) when ``stmt`` is a
    concatenation of at least `MIN_SEGMENTS` inputs, else None."""
    body = stmt.body
    if not isinstance(body, tirx.BufferStore):
        return None
    chain = select_chain(body.value)
    if chain is None:
        return None
    var, bounds = chain
    starts = sorted({b for b in bounds if b > 0})
    return (var, starts) if len(starts) + 1 >= MIN_SEGMENTS else None


def nested_concatenation(stmt: tirx.SBlock) -> tuple[tirx.Var, list[int]] | None:
    """The concatenated axis and its segment starts when ``stmt``'s value holds concatenation
    links (``if_then_else(c <= v, ...)``) anywhere, all over one variable, else None."""
    body = stmt.body
    if not isinstance(body, tirx.BufferStore):
        return None
    links: list[tuple[tirx.Var, int]] = []

    def collect(node) -> None:
        link = _link(node)
        if link is not None:
            links.append(link)

    visit(body.value, collect)
    if not links or any(not var.same_as(links[0][0]) for var, _ in links):
        return None
    return links[0][0], sorted({bound for _, bound in links if bound > 0})


class ConcatSegments(Rule):
    name = "concat_segments"

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        if not is_spatial(sch, block) or not has_trivial_binding(sch, block):
            return False
        stmt = sch.get(block)
        if not isinstance(stmt.body, tirx.BufferStore):
            return False
        # A bare concatenation is partitioned along an outer axis only: along the lanes the
        # spatial rule's vector selects ran 1.2-2x faster than partitioned copies (GoogLeNet's
        # four branches of 32 to 128 channels). One inside other arithmetic, along the lanes only.
        bare = select_chain(stmt.body.value) is not None
        found = concatenation_bounds(stmt) if bare else nested_concatenation(stmt)
        if found is None:
            return False
        var, starts = found
        axis = next((i for i, iv in enumerate(stmt.iter_vars) if iv.var.same_as(var)), None)
        if axis is None or (axis == len(stmt.iter_vars) - 1) == bare:
            return False
        loop = sch.get_loops(block)[axis]
        starts = [start for start in starts if start < extent(sch, loop)]  # a slice may drop the last inputs
        if not starts:
            return False
        if not bare:
            return len(starts) < MAX_LANE_SEGMENTS and _partition_lanes(sch, block, loop, starts)
        lengths = [b - a for a, b in zip([0, *starts], starts)]
        for part in sch.loop_partition(loop, [*lengths, None]):
            (copy,) = sch.get_child_blocks(part)
            loops = sch.get_loops(copy)  # from the part's loop in (the loops outside sit above a block)
            first = next(i for i, each in enumerate(loops) if sch.get(each).same_as(sch.get(part)))
            vectorize_innermost(sch, copy, loops[first + 1:])
        return True


def _partition_lanes(sch: s_tir.Schedule, block: SBlockRV, loop, starts: list[int]) -> bool:
    """Concatenated along the innermost axis: split it into vectors that no segment boundary
    cuts (a vector is then wholly inside one input), and partition the loop over them at the
    boundaries. False when the boundaries leave no vector of 4 or more lanes."""
    vector = lanes(sch.get(block).writes[0].source.dtype)
    common = math.gcd(extent(sch, loop), *starts)
    step = first_divisor(common, [width for width in (4 * vector, 2 * vector, vector, vector // 2, vector // 4) if width >= 4])
    if step is None:
        return False
    outer, inner = sch.split(loop, [None, step])
    lengths = [(b - a) // step for a, b in zip([0, *starts], starts)]
    for part in sch.loop_partition(outer, [*lengths, None]):
        (copy,) = sch.get_child_blocks(part)
        sch.vectorize(sch.get_loops(copy)[-1])
        sch.annotate(copy, PARTITIONED_ATTR, True)
    return True
