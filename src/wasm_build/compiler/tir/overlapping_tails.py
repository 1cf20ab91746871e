"""TIR step before lowering: a ragged vector loop's last vector overlaps the one before it.

A vectorized loop split from an axis that is not a whole number of vectors (49 keys of a Swin
window, 197 tokens, an output cropped from a padded tile) carries the split's predicate,
``i * V + l < E``, and TVM 0.27's vectorizer turns any predicated loop into scalar code: every
vector of the axis, not only the last, runs one lane at a time (Swin's 49-key softmax at
4 GB/s, its 49 x 49 attention scores at a seventh of the dense rate, an int8 crop's requantize
epilogue).

A block that only computes its output from other buffers may compute an output twice: the
second time writes the same value. So the last vector starts at ``E - V`` instead of
``(E // V) * V`` and overlaps its neighbour, no lane out of range: its bindings read
``min(i * V, E - V) + l``, and the predicate's conjunct goes (`may_overlap` says which blocks
qualify). A loop over register tiles of ragged lanes (a depthwise conv over 18 channels) moves
its whole last tile the same way: the accumulator's init and update, and the write-back.
"""

from __future__ import annotations

import functools

import tvm
import tvm_ffi
from tvm import tirx
from tvm.s_tir.dlight.analysis import collect_vars_used_in_prim_expr
from tvm.sym.pattern import detect_linear_equation

from .lane_shuffle import static_extent
from .walk import body_rewriting_pass, is_const, rewrite, substitute, visit, with_fields


def overlapping_tails() -> tvm.transform.Pass:
    return body_rewriting_pass("WasmOverlappingTails", lambda func: functools.partial(_rewritten, func=func, loops=_common_loops(func)))


def _rewritten(node, func: tirx.PrimFunc, loops: dict) -> tirx.Stmt | None:
    return _overlapped(node, func, loops) or _overlapped_tiles(node, func, loops)


def may_overlap(block: tirx.SBlock, func: tirx.PrimFunc) -> bool:
    """Whether computing some of ``block``'s outputs twice is harmless (``func``: its kernel).

    Not in a reduction, nor where an output is among the inputs (an accumulation would add
    twice), nor where another block of the kernel writes an output too (a contraction's
    accumulator zeroed by its init block: zeroed again after the previous tile's update, the
    overlapped lanes would lose it); nor where TVM's StorageRewrite may give an output the
    memory of an input the kernel allocates, of its type and at least its size (an in-place
    update, done where both are read and written at the same index: the layer norm's
    ``sum / n``), since the overlapping vector would read values already overwritten."""
    if block.init is not None or any(int(iv.iter_type) != tirx.IterVar.DataPar for iv in block.iter_vars):
        return False
    written = [region.source for region in block.writes]
    if any(region.source.same_as(out) for region in block.reads for out in written):
        return False
    if any(_writers(func, out) > 1 for out in written):
        return False
    allocated = [out for out in written if _allocated(out, func)]
    return not any(_may_share(region.source, out, func) for region in block.reads for out in allocated)


def _writers(func: tirx.PrimFunc, buffer) -> int:
    """How many blocks of ``func`` write ``buffer``."""
    return sum(1 for written in _written_buffers(func) if written.same_as(buffer))


# The kernels whose written buffers were looked up last, by identity (kernels that print the
# same are still other objects, with buffers of their own).
_WRITTEN: list = []


def _written_buffers(func: tirx.PrimFunc) -> tuple:
    """Every block's written buffers, a block's each once: walked once per kernel, not once per
    vectorized loop (a bidirectional LSTM's unrolled steps: hundreds of loops in one kernel,
    each walk over all of it, took minutes of its build)."""
    for known, written in _WRITTEN:
        if known.same_as(func):
            return written
    found: list = []

    def look(node) -> None:
        if isinstance(node, tvm.s_tir.SBlock):
            sources: list = []
            for region in node.writes:
                if not any(region.source.same_as(seen) for seen in sources):
                    sources.append(region.source)
            found.extend(sources)

    visit(func.body, look)
    _WRITTEN[:] = [(func, tuple(found)), *_WRITTEN[:7]]
    return tuple(found)


def _may_share(source, out, func: tirx.PrimFunc) -> bool:
    """Whether StorageRewrite could update ``out`` in place of ``source``."""
    if not _allocated(source, func) or str(source.dtype) != str(out.dtype):
        return False
    sizes = static_extent(source), static_extent(out)
    return None in sizes or sizes[0] >= sizes[1]


def _overlapped(node, func: tirx.PrimFunc, loops: dict) -> tirx.Stmt | None:
    """A vectorized loop over one block predicated ``base + l < E``, with its last vector
    overlapping, where the block qualifies and reads no register tile of the loop's."""
    if not (isinstance(node, tirx.For) and node.kind == tirx.ForKind.VECTORIZED and isinstance(node.extent, tirx.IntImm)):
        return None
    realize = node.body
    if not isinstance(realize, tvm.s_tir.SBlockRealize) or not may_overlap(realize.block, func):
        return None
    lane, width = node.loop_var, int(node.extent)
    conjuncts = _conjuncts(realize.predicate)
    tails = [(i, start) for i, c in enumerate(conjuncts) if (start := _lane_bound(c, lane, width)) is not None]
    others = [c for c in conjuncts if _uses(c, lane)]
    if len(tails) != 1 or len(others) != 1:
        return None  # no lane bound, or the lanes are bound in more ways than one
    index, (base, bound) = tails[0]
    if str(base.ty) != str(lane.ty) or _reads_tile_local(realize.block, base, func, loops):
        return None
    values = [_shifted(v, lane, base, bound - width) for v in realize.iter_values]
    new_realize = with_fields(realize, iter_values=values, predicate=_without(conjuncts, index))
    return with_fields(node, body=new_realize)


def _overlapped_tiles(node, func: tirx.PrimFunc, loops: dict) -> tirx.Stmt | None:
    """A loop over register tiles of ``V`` lanes (``t``) whose blocks are predicated
    ``t * V + l < E``: every block starts its last tile at ``E - V`` instead, the whole tile
    computed again over lanes the tile before had (a depthwise conv over 18 channels: its
    accumulator, its init, its update and its write-back). Taken when each block using ``t``
    writes buffers that live inside the loop (the accumulator tile) or outputs it alone writes,
    as `may_overlap` asks."""
    if not (isinstance(node, tirx.For) and node.kind in (tirx.ForKind.SERIAL, tirx.ForKind.UNROLLED)):
        return None
    tile = node.loop_var
    extents: dict = {}
    realizes: list = []

    def look(item) -> None:
        if isinstance(item, tirx.For) and isinstance(item.extent, tirx.IntImm):
            extents[item.loop_var] = int(item.extent)
        elif isinstance(item, tvm.s_tir.SBlockRealize):
            realizes.append(item)

    visit(node.body, look)
    plans = {}  # block name -> (index of the tail conjunct, width, bound)
    shape = None
    for realize in realizes:
        if not any(_uses(v, tile) for v in realize.iter_values):
            continue
        plan = _tile_tail(realize, tile, extents)
        if plan is None or (shape is not None and plan[1:] != shape):
            return None
        shape = plan[1:]
        for region in realize.block.writes:
            local = _allocated(region.source, func) and any(v.same_as(tile) for v in loops.get(region.source, ()))
            if not local and not may_overlap(realize.block, func):
                return None
        plans[realize.block.name_hint] = plan
    if not plans:
        return None
    width, bound = shape
    base = tile * tirx.const(width, tile.ty)
    start = tirx.min(base, tirx.const(bound - width, tile.ty))

    shifted = []

    def shift(item) -> tvm.s_tir.SBlockRealize | None:
        if not isinstance(item, tvm.s_tir.SBlockRealize) or item.block.name_hint not in plans:
            return None
        values = [start + detect_linear_equation(v, [tile])[1] if _uses(v, tile) else v for v in item.iter_values]
        predicate = _without(_conjuncts(item.predicate), plans[item.block.name_hint][0])
        shifted.append(item.block.name_hint)
        return with_fields(item, iter_values=values, predicate=predicate)

    body = rewrite(node.body, shift)
    if sorted(shifted) != sorted(plans):
        return None  # a block met twice, or not at all: leave the loop as it was
    return with_fields(node, body=body)


def _allocated(buffer, func: tirx.PrimFunc) -> bool:
    """Whether ``buffer`` is the kernel's own (TVM places and sizes it), not a parameter."""
    return not any(buffer.same_as(p) for p in func.params)


def _tile_tail(realize, tile: tirx.Var, extents: dict) -> tuple[int, int, int] | None:
    """``(conjunct, V, E)`` when ``realize`` binds spatial iterators only to ``t * V + l``
    (``l`` a loop of ``V`` iterations), wherever ``t`` is used, and is predicated by
    ``t * V + l < E``, ``E >= V``, in exactly one conjunct using ``t``."""
    width = lane = None
    for iter_var, value in zip(realize.block.iter_vars, realize.iter_values):
        if not _uses(value, tile):
            continue
        if int(iter_var.iter_type) != tirx.IterVar.DataPar:
            return None  # the tile runs along a reduction: its lanes would be added twice
        coeffs = detect_linear_equation(value, [tile])
        if len(coeffs) != 2 or not isinstance(coeffs[0], tirx.IntImm) or not isinstance(coeffs[1], tirx.Var):
            return None
        lane_extent = next((e for v, e in extents.items() if v.same_as(coeffs[1])), None)
        if lane_extent is None or lane_extent != int(coeffs[0]) or (lane is not None and not lane.same_as(coeffs[1])):
            return None
        width, lane = lane_extent, coeffs[1]
    conjuncts = _conjuncts(realize.predicate)
    using = [i for i, c in enumerate(conjuncts) if _uses(c, tile)]
    if width is None or len(using) != 1:
        return None
    found = _upper_bound(conjuncts[using[0]], tile, width)
    if found is None or not is_const(found[0], width) or not found[1].same_as(lane):
        return None
    return using[0], width, found[2]


def _reads_tile_local(block: tirx.SBlock, base: tirx.PrimExpr, func: tirx.PrimFunc, loops: dict) -> bool:
    """Whether ``block`` reads a buffer of the kernel's own that lives only inside the loop
    over vectors (whose variable ``base`` holds): TVM then allocates just the current vector's
    part (a contraction's accumulator tile, read by its crop), and the lanes the last vector
    shares with the one before are no longer there."""
    moving = collect_vars_used_in_prim_expr(base)
    for region in block.reads:
        if not _allocated(region.source, func):
            continue
        enclosing = loops.get(region.source, ())
        if any(v.same_as(m) for v in enclosing for m in moving):
            return True
    return False


def _common_loops(func: tirx.PrimFunc) -> dict:
    """For each buffer of ``func``: the loop variables around every block touching it."""
    common: dict = {}

    def walk_stmt(stmt, around: tuple) -> None:
        if isinstance(stmt, tirx.For):
            walk_stmt(stmt.body, (*around, stmt.loop_var))
        elif isinstance(stmt, tirx.SeqStmt):
            for item in stmt.seq:
                walk_stmt(item, around)
        elif isinstance(stmt, tvm.s_tir.SBlockRealize):
            block = stmt.block
            for region in (*block.reads, *block.writes):
                known = common.get(region.source)
                common[region.source] = around if known is None else tuple(v for v in known if any(v.same_as(a) for a in around))
            walk_stmt(block.body, around)
            if block.init is not None:
                walk_stmt(block.init, around)
        elif hasattr(stmt, "body") and isinstance(stmt.body, tirx.Stmt):
            walk_stmt(stmt.body, around)

    walk_stmt(func.body, ())
    return common


def _shifted(value: tirx.PrimExpr, lane: tirx.Var, base: tirx.PrimExpr, last: int) -> tirx.PrimExpr:
    """Binding ``value`` with its vector starting at ``last`` at most: ``min(base, last) +
    lane`` where it is ``base + lane`` (bounds TVM's simplifier can prove, so a reshape's
    ``v % E`` folds away), else ``lane`` shifted back by the overhang."""
    coeffs = detect_linear_equation(value, [lane])
    if len(coeffs) == 2 and is_const(coeffs[0], 1) and tvm_ffi.structural_equal(coeffs[1], base):
        return tirx.min(base, tirx.const(last, base.ty)) + lane
    return substitute(value, lane, lane - tirx.max(base - tirx.const(last, base.ty), tirx.const(0, base.ty)))


def _lane_bound(cond, lane: tirx.Var, width: int) -> tuple[tirx.PrimExpr, int] | None:
    """``(base, E)`` when ``cond`` is ``base + lane < E`` with ``E >= width`` a constant and
    ``base`` free of ``lane``."""
    found = _upper_bound(cond, lane, width)
    if found is None or not is_const(found[0], 1) or _uses(found[1], lane):
        return None
    return found[1], found[2]


def _upper_bound(cond, var: tirx.Var, width: int) -> tuple[tirx.PrimExpr, tirx.PrimExpr, int] | None:
    """``(c, rest, E)`` when ``cond`` is ``c * var + rest < E``, ``E >= width`` a constant."""
    if not isinstance(cond, tirx.LT) or not isinstance(cond.b, tirx.IntImm) or int(cond.b) < width:
        return None
    coeffs = detect_linear_equation(cond.a, [var])
    return None if len(coeffs) != 2 else (coeffs[0], coeffs[1], int(cond.b))


def _without(conjuncts: list, index: int) -> tirx.PrimExpr:
    """The predicate of ``conjuncts`` but the one at ``index``."""
    rest = [c for i, c in enumerate(conjuncts) if i != index]
    return functools.reduce(tirx.And, rest) if rest else tirx.const(True, "bool")


def _conjuncts(cond) -> list:
    if isinstance(cond, tirx.And):
        return _conjuncts(cond.a) + _conjuncts(cond.b)
    return [] if is_const(cond, 1) else [cond]


def _uses(expr, var: tirx.Var) -> bool:
    return any(v.same_as(var) for v in collect_vars_used_in_prim_expr(expr))
