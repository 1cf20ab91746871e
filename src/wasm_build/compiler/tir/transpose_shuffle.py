"""Lowering step: the columns of a transpose's 4 x 4 blocks read by two rounds of interleaves.

`schedules.transpose_tiles` loads 4 input rows of 4 values into a block ``B`` (16 values, row
after row) and writes each output vector from one column, ``B[Ramp(j, 4, 4)]``. LLVM builds
each column lane by lane into a chain of three shuffles whose masks Cranelift has no single
x86 instruction for (two byte shuffles and an or each). The 4 x 4 transpose is rewritten
here as the textbook butterfly: interleave rows 0/1 and 2/3 by 32-bit lanes, then the halves
of those by 64-bit lanes; eight shuffles in all, each one ``punpck*`` instruction on x86.

Only loads of the buffers the rule names (`tiles.TRANSPOSED_BLOCKS_ATTR`) are rewritten, and
only where the column is a constant.
"""

from __future__ import annotations

import functools

import tvm
from tvm import tirx

from ..tiles import TRANSPOSED_BLOCKS_ATTR
from .lane_shuffle import integer_lets, static_extent
from .walk import rewrite, visit

_SIDE = 4  # a block of 4 rows of 4 lanes: one v128 of 32-bit values each
# First round, rows (0, 1) and (2, 3): their low and high halves interleaved by 32-bit lanes.
_LOW, _HIGH = (0, 4, 1, 5), (2, 6, 3, 7)
# Second round: 64-bit halves of two interleaved pairs. Column j = the (j % 2) half of the
# (j // 2) interleave.
_HALVES = ((0, 1, 4, 5), (2, 3, 6, 7))


def shuffle_transposed_blocks() -> tvm.transform.Pass:
    @tirx.transform.prim_func_pass(opt_level=0, name="WasmShuffleTransposedBlocks")
    def _pass(func: tirx.PrimFunc, _mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tirx.PrimFunc:
        names = set(func.attrs.get(TRANSPOSED_BLOCKS_ATTR, [])) if func.attrs is not None else set()
        if not names:
            return func
        analyzer = integer_lets(func.body)
        body = rewrite(func.body, lambda node: _interleaved(node, names, analyzer))
        return func if body.same_as(func.body) else func.with_body(body)

    return _pass


def _interleaved(node, names: set[str], analyzer: tvm.sym.Analyzer) -> tirx.Stmt | None:
    """A sequence of statements whose columns of a block are read by shuffles of the first
    round's interleaves, bound once before the first read: each interleave then feeds two
    columns, and LLVM cannot narrow it to the lanes one column needs (which turned every
    shuffle into one Cranelift has no single instruction for)."""
    if not isinstance(node, tirx.SeqStmt):
        return None
    statements = list(node.seq)
    # Blocks in the order they are first read: the output does not depend on hashing.
    blocks = {load.source: None for statement in statements for load in _columns(statement, names, analyzer)}
    for block in blocks:
        first = next(i for i, statement in enumerate(statements) if _columns(statement, names, analyzer, block))
        if any(_writes(statement, block) for statement in statements[first:]):
            continue
        rounds, binds = _first_round(block)
        replace = functools.partial(_column, block=block, rounds=rounds, analyzer=analyzer)
        statements = [*statements[:first], *binds, *(rewrite(s, replace) for s in statements[first:])]
    return None if len(statements) == len(node.seq) else tirx.SeqStmt(statements)


def _column_index(expr, analyzer: tvm.sym.Analyzer) -> int | None:
    """``j`` when ``expr`` loads column ``j`` of a 4 x 4 block, ``B[Ramp(j, 4, 4)]``."""
    if not (isinstance(expr, tvm.ir.TensorLoad) and len(expr.indices) == 1 and static_extent(expr.source) == _SIDE * _SIDE):
        return None
    ramp = expr.indices[0]
    if not (isinstance(ramp, tirx.Ramp) and _is_const(ramp.stride, _SIDE) and int(ramp.lanes) == _SIDE):
        return None
    j = analyzer.simplify(ramp.base)
    return int(j) if isinstance(j, tirx.IntImm) and 0 <= int(j) < _SIDE else None


def _columns(statement, names: set[str], analyzer: tvm.sym.Analyzer, block=None) -> list:
    found = []

    def note(node):
        column = _column_index(node, analyzer) is not None and node.source.name in names
        if column and (block is None or node.source.same_as(block)):
            found.append(node)

    visit(statement, note)
    return found


def _writes(statement, block: tirx.Buffer) -> bool:
    found = []
    visit(statement, lambda node: found.append(node) if isinstance(node, tirx.BufferStore) and node.buffer.same_as(block) else None)
    return bool(found)


def _first_round(block: tirx.Buffer) -> tuple[dict[tuple[int, int], tirx.Var], list[tirx.Stmt]]:
    """The interleaves of rows (0, 1) and (2, 3), low and high halves, as bound variables:
    ``{(pair, half): var}`` and their bindings."""
    index = "int32"
    vector = f"{block.dtype}x{_SIDE}"
    rows = [tirx.BufferLoad(block, [tirx.Ramp(tirx.const(_SIDE * r, index), tirx.const(1, index), _SIDE)]) for r in range(_SIDE)]
    rounds, binds = {}, []
    for pair in (0, 1):
        for half, lanes in enumerate((_LOW, _HIGH)):
            var = tirx.Var(f"{block.name}_interleave{pair}{half}", vector)
            rounds[pair, half] = var
            binds.append(tirx.Bind(var, _shuffle(rows[2 * pair], rows[2 * pair + 1], lanes)))
    return rounds, binds


def _column(expr, block: tirx.Buffer, rounds, analyzer: tvm.sym.Analyzer) -> tirx.PrimExpr | None:
    """Column ``j`` of ``block``: the ``j % 2`` 64-bit halves of the ``j // 2`` interleaves."""
    if not (isinstance(expr, tvm.ir.TensorLoad) and expr.source.same_as(block)):
        return None
    j = _column_index(expr, analyzer)
    if j is None:
        return None
    half = j // 2
    return _shuffle(rounds[0, half], rounds[1, half], _HALVES[j % 2])


def _shuffle(a: tirx.PrimExpr, b: tirx.PrimExpr, lanes: tuple[int, ...]) -> tirx.PrimExpr:
    return tirx.Shuffle([a, b], [tirx.const(lane, "int32") for lane in lanes])


def _is_const(expr, value: int) -> bool:
    return isinstance(expr, tirx.IntImm) and int(expr) == value
