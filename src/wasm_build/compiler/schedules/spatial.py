"""Rule: vectorize the innermost loops of injective loop nests."""

from __future__ import annotations

import tvm
from tvm import s_tir, tirx
from tvm.s_tir.dlight.analysis import collect_vars_used_in_prim_expr
from tvm.s_tir.schedule import SBlockRV

from ..tir import walk
from ..tir.overlapping_tails import may_overlap
from .analysis import block_realize, extent, first_divisor, has_trivial_binding, is_spatial, lanes, steps_by_one, uses
from .rule import Rule

_has_if_then_else = tvm.get_global_func("s_tir.schedule.HasIfThenElse")


class VectorizeSpatial(Rule):
    """Vectorize the innermost loops of a root-level spatial block.

    A ragged innermost axis longer than a vector gets whole vectors, the last one
    overlapping (see `vectorize_innermost`); a short one is fused with the loops out until
    their extent is a multiple of the vector width (e.g. the 7x7 plane of a late conv
    layer), except in blocks with a condition (padding): there the fused index needs a
    division per element and the condition scalarizes the vector anyway. Nor is a transposing
    gather (`gathers`: a lookup table's byte loads, its input read across rows) over a ragged
    innermost axis: its vector would be built lane by lane, each lane dividing its index, and
    its loops stay scalar. A block that narrows its values (`narrows`) takes one vector of its
    output a step.
    """

    name = "vectorize_spatial"

    def apply(self, sch: s_tir.Schedule, block: SBlockRV) -> bool:
        if not is_spatial(sch, block) or not has_trivial_binding(sch, block):
            return False
        stmt = sch.get(block)
        if len(stmt.writes) != 1:
            return False
        loops = sch.get_loops(block)
        if (
            gathers(stmt)
            and extent(sch, loops[-1]) % lanes(stmt.writes[0].source.dtype)
            and not _reads_rows(sch, block, loops[-1], gathered=False)
        ):
            # wav2vec2's keys transposed through a lookup over 79 tokens, fused into 16-byte
            # vectors: 0.9 GB/s, twice the time of scalar code.
            return False
        return vectorize_innermost(sch, block, loops[-1:] if _has_if_then_else(stmt) else loops)


def vectorize_innermost(sch: s_tir.Schedule, block: SBlockRV, loops: list) -> bool:
    """Vectorize the innermost of ``loops`` (``block``'s, outermost first), fused with the
    next ones out until their extent is a multiple of the vector width; False when no
    multiple of it is found."""
    stmt = sch.get(block)
    vector = lanes(stmt.writes[0].source.dtype)
    last = extent(sch, loops[-1])
    if last % vector and last > vector and may_overlap(stmt, sch.mod["main"]) and _reads_rows(sch, block, loops[-1]):
        # Whole vectors along the axis, the last overlapping the one before it
        # (`tir.overlapping_tails`): fused with the next axes out, every lane would divide
        # its index (a 49-key softmax row: 4 GB/s). Only for contiguous reads: a gather
        # (an int8 stem's window rows) runs faster as scalar code than as lane inserts.
        _, inner = sch.split(loops[-1], [None, vector])
        sch.vectorize(inner)
        return True
    fused_extent, count = 1, 0
    for loop in reversed(loops):
        fused_extent *= extent(sch, loop)
        count += 1
        if fused_extent % vector == 0:
            break
    factor = first_divisor(fused_extent, (vector,) if narrows(stmt) else (4 * vector, 2 * vector, vector))
    if factor is None:
        return False
    fused = sch.fuse(*loops[-count:]) if count > 1 else loops[-1]
    _, inner = sch.split(fused, [None, factor])
    sch.vectorize(inner)
    return True


def gathers(stmt: tirx.SBlock) -> bool:
    """Whether ``stmt`` loads at an index it loaded (a lookup table read at its input's values)."""
    return any(_loads_in(region) for region in stmt.reads)


def _loads_in(region: tirx.BufferRegion) -> bool:
    """Whether a region's indices hold a buffer load."""
    found = False

    def visit(node) -> None:
        nonlocal found
        found = found or isinstance(node, tvm.ir.TensorLoad)

    for r in region.region:
        walk.visit(r.min, visit)
    return found


def narrows(stmt: tirx.SBlock) -> bool:
    """Whether ``stmt`` computes in wider values than it writes (a quantize: float32 or int32
    to 8 bits). LLVM's wasm backend narrows one output vector's worth with `narrow`
    instructions, and more (32 or 64 int8 lanes from int32 ones) half lane by lane, an
    extract and a replace per value: quantizing a transformer's activations ran at 8 GB/s.
    Value widths are the buffers read and the conversions of values (of floats or of 8- and
    16-bit integers: an index's conversion to int64 is not a value)."""
    written = tvm.DataType(stmt.writes[0].source.dtype).bits
    widest = max((tvm.DataType(region.source.dtype).bits for region in stmt.reads), default=0)

    def visit(node) -> None:
        nonlocal widest
        if isinstance(node, tirx.Cast):
            source = tvm.DataType(str(node.value.ty))
            if source.is_float or source.bits < 32:
                widest = max(widest, source.bits, tvm.DataType(str(node.ty)).bits)

    walk.visit(stmt.body, visit)
    return widest > written


def _reads_rows(sch: s_tir.Schedule, block: SBlockRV, loop, gathered: bool = True) -> bool:
    """Whether every input ``block`` reads along the iterator ``loop`` binds alone is read
    contiguously: through its last index only, as ``iterator + c`` once simplified over the
    iterators' ranges (a reshape's ``v % 49`` is ``v``). False where no iterator is bound to
    ``loop`` alone. Without ``gathered``, reads at loaded indices (a table's) are not asked."""
    stmt = sch.get(block)
    loop_var = sch.get(loop).loop_var
    bound = [iv.var for iv, value in zip(stmt.iter_vars, block_realize(sch, block).iter_values) if value.same_as(loop_var)]
    if len(bound) != 1:
        return False
    var = bound[0]
    analyzer = tvm.sym.Analyzer()
    for iv in stmt.iter_vars:
        analyzer.bind(iv.var, tvm.ir.Range.from_min_extent(iv.dom.min, iv.dom.extent))
    for region in stmt.reads:
        if not gathered and _loads_in(region):
            continue
        indices = [analyzer.simplify(r.min) for r in region.region]
        moving = [i for i, index in enumerate(indices) if uses([collect_vars_used_in_prim_expr(index)], var)]
        if not moving:
            continue
        if moving != [len(indices) - 1]:
            return False
        if not steps_by_one(indices[-1], var):
            return False
    return True
