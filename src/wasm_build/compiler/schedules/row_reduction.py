"""Rule: row reductions (softmax, layer norm, global pooling) as vector partial sums."""

from __future__ import annotations

from tvm import s_tir
from tvm.s_tir.schedule import SBlockRV

from .analysis import extent, first_divisor, is_plain_reduction, iter_kinds, lanes
from .rule import Rule


# Rows under this many vectors are reduced into one vector of partials.
_SHORT_ROW = 16


class RowReduction(Rule):
    """Reduce the innermost contiguous axis into a vector of partial results.

    rfactor turns ``acc = op(acc, x[..., k])`` into lane-wise partials
    ``part[..., l] = op(part[..., l], x[..., ko * L + l])`` (vectorized over l)
    followed by a short scalar reduction of the partials.
    """

    name = "row_reduction"

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        if not is_plain_reduction(sch, block, need_spatial=False):
            return False
        stmt = sch.get(block)
        loops = sch.get_loops(block)
        inner_var = stmt.iter_vars[-1].var
        if not any(r.region and r.region[-1].min.same_as(inner_var) for r in stmt.reads):
            return False
        vector = lanes(stmt.writes[0].source.dtype)
        row = extent(sch, loops[-1])
        # Four vectors of partials hide the latency of a long row's steps, but leave 16 to add
        # up one after another: a row shorter than that pays more for them than it saves (a
        # 16-value attention row: 4 vector steps and 4 partials instead of 1 step and 16).
        widths = (4 * vector, 2 * vector, vector) if row >= _SHORT_ROW * vector else (vector,)
        factor = first_divisor(row, widths)
        if factor is None:
            return False
        _, lane = sch.split(loops[-1], [None, factor])
        partial = sch.rfactor(lane, factor_axis=len(stmt.writes[0].region))
        sch.vectorize(sch.get_loops(partial)[-1])
        n_outer_spatial = iter_kinds(sch, block).count("S")
        sch.decompose_reduction(partial, sch.get_loops(partial)[n_outer_spatial])
        return True
