"""Lowering step: a transpose's 4 x 4 blocks by vector loads and two rounds of interleaves.

`schedules.transpose_tiles` leaves each vector step of a transpose as four stores whose values
gather a column of a 4 x 4 block of the input: ``X[Ramp(b + j, S, 4)]`` for j = 0..3, row
stride ``S``. Left to LLVM, each gather is four scalar loads and three lane inserts. Here the
block's rows are loaded as four vectors, ``X[Ramp(b + k * S, 1, 4)]``, and the columns made by
the textbook butterfly: rows 0/1 and 2/3 interleaved by 32-bit lanes (low and high halves),
then 64-bit halves of those; eight shuffles in all, each one ``punpck*`` instruction on x86.

The interleaves are bound once, before the first store: each then feeds two columns, and LLVM
cannot narrow it to the lanes one column needs (narrowed, every shuffle became one Cranelift
has no single instruction for). Only gathers from the buffers the rule names
(`tiles.TRANSPOSED_BLOCKS_ATTR`) are rewritten, and only in whole groups of four.
"""

from __future__ import annotations

import functools
import re

import tvm
from tvm import tirx

from ..tiles import TRANSPOSED_BLOCKS_ATTR
from .walk import (
    attribute_names,
    body_rewriting_pass,
    integer_lets,
    is_const,
    rewrite,
    visit,
)

_SIDE = 4  # a block of 4 rows of 4 lanes: one v128 of 32-bit values each
# First round, rows (0, 1) and (2, 3): their low and high halves interleaved by 32-bit lanes.
_LOW, _HIGH = (0, 4, 1, 5), (2, 6, 3, 7)
# Second round: 64-bit halves of two interleaves. Column j = the (j % 2) half of the
# (j // 2) interleaves.
_HALVES = ((0, 1, 4, 5), (2, 3, 6, 7))


def shuffle_transposed_blocks() -> tvm.transform.Pass:
    def replacer(func: tirx.PrimFunc):
        names = attribute_names(func, TRANSPOSED_BLOCKS_ATTR)
        if not names:
            return None
        analyzer = integer_lets(func.body)
        return lambda node: _blocks_of(node, names, analyzer)

    return body_rewriting_pass("WasmShuffleTransposedBlocks", replacer)


def _blocks_of(node, names: set[str], analyzer: tvm.sym.Analyzer) -> tirx.Stmt | None:
    """``node``, a sequence of statements, with each whole group of four column gathers of a
    block read from its rows' interleaves, bound before the group's first statement."""
    if not isinstance(node, tirx.SeqStmt):
        return None
    statements = list(node.seq)
    # Stores directly in this sequence only: bindings placed here must see every variable
    # the gathers use, which an enclosing sequence may not.
    gathers = [(i, load) for i, statement in enumerate(statements) if isinstance(statement, tirx.BufferStore)
               for load in _gathers(statement, names)]
    changed = False
    for group in _groups([load for _, load in gathers], analyzer):
        first = min(i for i, load in gathers if any(load is g for g in group.values()))
        interleaves, binds = _interleaves(group[0])
        replace = functools.partial(_column, start=group[0], interleaves=interleaves, analyzer=analyzer)
        statements = [*statements[:first], *binds, *(rewrite(s, replace) for s in statements[first:])]
        gathers = [(i + len(binds) if i >= first else i, load) for i, load in gathers]
        changed = True
    return tirx.SeqStmt(statements) if changed else None


def _gathers(statement, names: set[str]) -> list:
    """Loads ``X[Ramp(base, S, 4)]`` with a stride other than 1 from the named buffers."""
    found = []

    def note(node):
        if not (isinstance(node, tvm.ir.TensorLoad) and _named(node.source, names) and len(node.indices) == 1):
            return
        ramp = node.indices[0]
        if isinstance(ramp, tirx.Ramp) and int(ramp.lanes) == _SIDE and not is_const(ramp.stride, 1):
            found.append(node)

    visit(statement, note)
    return found


def _named(buffer: tirx.Buffer, names: set[str]) -> bool:
    """Whether ``buffer`` is one of ``names`` or its flattened view (lowering turns the
    parameter ``x`` into ``x_1``)."""
    return buffer.name in names or any(re.fullmatch(rf"{re.escape(name)}_\d+", buffer.name) for name in names)


def _groups(loads: list, analyzer: tvm.sym.Analyzer) -> list[dict[int, tvm.ir.TensorLoad]]:
    """Groups ``{j: load}`` of four loads of one buffer with one stride whose bases are
    ``b + j`` for j = 0..3, each load in at most one group."""
    groups, taken = [], set()
    for start in loads:
        if id(start) in taken:
            continue
        group = {0: start}
        for other in loads:
            if id(other) in taken or other is start or not _same_rows(start, other, analyzer):
                continue
            offset = analyzer.simplify(other.indices[0].base - start.indices[0].base)
            if isinstance(offset, tirx.IntImm) and 0 < int(offset) < _SIDE:
                group.setdefault(int(offset), other)
        if len(group) == _SIDE:
            groups.append(group)
            taken.update(id(load) for load in group.values())
    return groups


def _same_rows(a, b, analyzer: tvm.sym.Analyzer) -> bool:
    stride = analyzer.simplify(a.indices[0].stride - b.indices[0].stride)
    return a.source.same_as(b.source) and is_const(stride, 0)


def _interleaves(start: tvm.ir.TensorLoad) -> tuple[dict[tuple[int, int], tirx.Var], list[tirx.Stmt]]:
    """The block's rows loaded as vectors and interleaved in pairs (0, 1) and (2, 3), low and
    high halves, as bound variables ``{(pair, half): var}``, and their bindings."""
    ramp = start.indices[0]
    rows = [tirx.BufferLoad(start.source, [tirx.Ramp(ramp.base + k * ramp.stride, tirx.const(1, str(ramp.stride.ty)), _SIDE)])
            for k in range(_SIDE)]
    interleaves, binds = {}, []
    for pair in (0, 1):
        for half, lanes in enumerate((_LOW, _HIGH)):
            var = tirx.Var(f"{start.source.name}_interleave{pair}{half}", str(start.ty))
            interleaves[pair, half] = var
            binds.append(tirx.Bind(var, _shuffle(rows[2 * pair], rows[2 * pair + 1], lanes)))
    return interleaves, binds


def _column(expr, start: tvm.ir.TensorLoad, interleaves, analyzer: tvm.sym.Analyzer) -> tirx.PrimExpr | None:
    """Column ``j`` of the block for the gather ``X[Ramp(b + j, S, 4)]`` (``start`` is j = 0):
    the ``j % 2`` 64-bit halves of the ``j // 2`` interleaves."""
    if not (isinstance(expr, tvm.ir.TensorLoad) and len(expr.indices) == 1 and isinstance(expr.indices[0], tirx.Ramp)):
        return None
    if int(expr.indices[0].lanes) != _SIDE or not _same_rows(expr, start, analyzer):
        return None
    j = analyzer.simplify(expr.indices[0].base - start.indices[0].base)
    if not (isinstance(j, tirx.IntImm) and 0 <= int(j) < _SIDE):
        return None
    return _shuffle(interleaves[0, int(j) // 2], interleaves[1, int(j) // 2], _HALVES[int(j) % 2])


def _shuffle(a: tirx.PrimExpr, b: tirx.PrimExpr, lanes: tuple[int, ...]) -> tirx.PrimExpr:
    return tirx.Shuffle([a, b], [tirx.const(lane, "int32") for lane in lanes])
