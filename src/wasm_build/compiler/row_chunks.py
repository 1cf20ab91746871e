"""Row chunks: kernels over a symbolic number of rows, compiled for a fixed number of rows.

wasm-build's schedules need static loop extents; a kernel over `seq` rows would stay a naive
loop nest (a BERT encoder's dense layers ran 13 times slower than pinned). Most of a
sequence model's work is row-wise, though: dense layers, layer norms, activations compute
row `i` of their outputs from row `i` of their inputs and from weights alone. Such a kernel
is compiled for `ROWS` rows, scheduled like any static kernel, and the executor calls it
once per chunk of `ROWS` rows, each chunk's tensors pointing `ROWS` rows further
(`codegen.plan` reads the attribute this pass leaves). The last chunk may run past the
actual rows: tensors are planned with room for whole chunks, and a kernel is chunked only
where rows of stale data cost time, never a trap: its tensors are floating point, or
integers only computed with (a quantized model's products and requantizes: no load addressed
by a loaded value, no integer division by one).

A kernel qualifies when it has one symbolic variable `n` and every use of it is a row:
- every buffer is `[1, ..., 1, n, static...]` (rows contiguous) or static;
- loops and block iterators over `n` are spatial, and a block's row iterator indexes only
  the row axis of buffers with rows, exactly, and nothing else (no weights indexed by the
  row, no arithmetic on it: a causal mask or a position table stays symbolic);
- `n` is used only as those loops' and iterators' extent (a mean over rows does not qualify).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import tvm
import tvm_ffi
from tvm import tirx
from tvm.script import tirx as T

from .irmodule import with_functions
from .tir.walk import field_names

# Rows per chunk: the contraction rule's row tile (a multiple of it keeps its tiles whole),
# small enough that a padded last chunk wastes at most 3 rows.
ROWS = 4
# PrimFunc attribute of a chunked kernel: {"rows": ROWS, "axes": [row axis per parameter, -1 if none]}.
ROW_CHUNK_ATTR = "wasm_build.row_chunks"


@dataclass(frozen=True)
class RowAxes:
    var: tirx.Var  # the symbolic number of rows
    axes: tuple[int, ...]  # per parameter: its row axis, or -1


def row_chunk_pass(rows: int = ROWS) -> tvm.transform.Pass:
    """Module pass (after fusion, before scheduling): every row-wise kernel over a symbolic
    number of rows becomes the same kernel over `rows` rows, marked with `ROW_CHUNK_ATTR`."""

    @tvm.transform.module_pass(opt_level=0, name="WasmRowChunks")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        updates = {}
        for gvar, func in mod.functions_items():
            if isinstance(func, tirx.PrimFunc) and not (func.attrs and ROW_CHUNK_ATTR in func.attrs):
                found = row_axes(func)
                chunked = _with_rows(func, found.var, rows) if found is not None else None
                if chunked is not None:
                    updates[gvar] = chunked.with_attr(ROW_CHUNK_ATTR, {"rows": rows, "axes": list(found.axes)})
        return with_functions(mod, updates)

    return _pass


def row_axes(func: tirx.PrimFunc) -> RowAxes | None:
    """The symbolic row count and each parameter's row axis, if `func` is row-wise."""
    symbols = {_key(d): d for p in func.params for d in _shape(p) if isinstance(d, tirx.Var)}
    if len(symbols) != 1:
        return None
    (n,) = symbols.values()
    axes = []
    integers = False
    for param in func.params:
        if not isinstance(param.ty, tirx.BufferType):
            return None  # scalars (symbolic values passed in)
        dtype = str(param.ty.dtype)
        if not dtype.startswith(("float", "bfloat")):
            if dtype not in _INTEGERS:
                return None
            integers = True
        axis = _row_axis(param, n)
        if axis is None:
            return None
        axes.append(axis)
    if not _only_row_uses(func, n) or (integers and not _values_only(func)):
        return None
    return RowAxes(n, tuple(axes))


# Integer tensors a chunked kernel may hold (stale rows of them are values, see `_values_only`).
_INTEGERS = ("int8", "uint8", "int16", "int32")
_DIVISIONS = ("Div", "FloorDiv", "Mod", "FloorMod")


def _values_only(func: tirx.PrimFunc) -> bool:
    """Whether the data `func` loads only ever becomes values: no load or store addressed by
    a loaded value (a gather: stale indices could point anywhere) and no division or remainder
    by anything but a constant (a stale zero would trap)."""
    for node in _nodes(func.body, Counter()):
        kind = type(node).__name__
        if kind in ("TensorLoad", "BufferStore") and any(_loads(index) for index in node.indices):
            return False
        if kind in _DIVISIONS and not isinstance(node.b, (tirx.IntImm, tirx.FloatImm)):
            return False
    return True


def _loads(expr: Any) -> bool:
    return any(type(node).__name__ == "TensorLoad" for node in _nodes(expr, Counter()))


def _shape(buffer: Any) -> list[Any]:
    return list(buffer.ty.shape) if isinstance(buffer.ty, tirx.BufferType) else []


def _row_axis(buffer: Any, n: tirx.Var) -> int | None:
    """The row axis of `[1, ..., 1, n, static...]`, -1 for a static shape, None otherwise."""
    shape = _shape(buffer)
    if all(isinstance(d, tirx.IntImm) for d in shape):
        return -1
    rows = [i for i, d in enumerate(shape) if d.same_as(n)]
    if len(rows) != 1:
        return None
    axis = rows[0]
    others_static = all(isinstance(d, tirx.IntImm) for i, d in enumerate(shape) if i != axis)
    leading_ones = all(int(d.value) == 1 for d in shape[:axis]) if others_static else False
    return axis if others_static and leading_ones else None


def _only_row_uses(func: tirx.PrimFunc, n: tirx.Var) -> bool:
    """Whether `n`, the loops over it and the row iterators occur only where rows stay rows.

    Every occurrence is counted, and so are the allowed ones; they must be the same."""
    seen: Counter[int] = Counter()
    allowed: Counter[int] = Counter()
    row_loops: set[int] = set()
    row_iters: set[int] = set()
    axes: dict[int, int] = {}  # buffer -> row axis (-1 static)

    def buffer_axis(buffer: Any) -> int | None:
        if _key(buffer) not in axes:
            axis = _row_axis(buffer, n)
            if axis is None:
                return None
            axes[_key(buffer)] = axis
        return axes[_key(buffer)]

    nodes = list(_nodes(func.body, seen))
    for node in nodes:  # declarations first: loops and iterators over n
        kind = type(node).__name__
        if kind == "For" and node.extent.same_as(n):
            row_loops.add(_key(node.loop_var))
            allowed[_key(n)] += 1
            allowed[_key(node.loop_var)] += 1
        elif kind == "IterVar" and node.dom.extent.same_as(n):
            if int(node.iter_type) != tirx.IterVar.DataPar or not _is_zero(node.dom.min):
                return False  # a reduction over rows
            row_iters.add(_key(node.var))
            allowed[_key(n)] += 1
            allowed[_key(node.var)] += 1
        elif kind == "SBlock":
            if any(buffer_axis(b) is None for b in node.alloc_buffers):
                return False
    for node in nodes:
        kind = type(node).__name__
        if kind == "SBlockRealize":
            for value, iter_var in zip(node.iter_values, node.block.iter_vars):
                if _key(iter_var.var) in row_iters and isinstance(value, tirx.Var) and _key(value) in row_loops:
                    allowed[_key(value)] += 1
        elif kind in ("TensorLoad", "BufferStore"):
            buffer = node.source if kind == "TensorLoad" else node.buffer
            axis = buffer_axis(buffer)
            if axis is None:
                return False
            if axis >= 0 and isinstance(node.indices[axis], tirx.Var) and _key(node.indices[axis]) in row_iters:
                allowed[_key(node.indices[axis])] += 1
        elif kind == "TensorRegion":
            axis = buffer_axis(node.source)
            if axis is None:
                return False
            if axis >= 0:
                row = node.region[axis]
                if isinstance(row.min, tirx.Var) and _key(row.min) in row_iters and _is_one(row.extent):
                    allowed[_key(row.min)] += 1
    watched = {_key(n), *row_loops, *row_iters}
    return all(seen[v] == allowed[v] for v in watched)


def _nodes(root: Any, seen: Counter[int]) -> Iterator[Any]:
    """Every IR node under `root` (statements, expressions, iterators, ranges, regions), each
    time it occurs; `seen` counts the occurrences of every variable. Variables are leaves:
    a buffer's shape is checked through `_row_axis`, not walked."""
    if isinstance(root, tirx.Var):
        seen[_key(root)] += 1
        return
    if isinstance(root, (tvm_ffi.Array, list, tuple)):
        for item in root:
            yield from _nodes(item, seen)
        return
    if isinstance(root, tvm_ffi.Map):
        for value in root.values():
            yield from _nodes(value, seen)
        return
    info = getattr(type(root), "__tvm_ffi_type_info__", None)
    if info is None or isinstance(root, (tvm.ir.Type, tirx.IntImm, tirx.FloatImm)):
        return
    yield root
    for name in field_names(type(root)):
        if name not in ("span", "ty"):
            yield from _nodes(getattr(root, name), seen)


def _key(node: Any) -> int:
    """A node's identity: Python wrappers of one node differ, its handle does not."""
    return node.__chandle__()


def _is_zero(expr: Any) -> bool:
    return isinstance(expr, tirx.IntImm) and int(expr.value) == 0


def _is_one(expr: Any) -> bool:
    return isinstance(expr, tirx.IntImm) and int(expr.value) == 1


_TYPE_VAR = re.compile(r'^(\w+) = TypeVar\("([^"]*)"\)$', re.MULTILINE)


def _with_rows(func: tirx.PrimFunc, n: tirx.Var, rows: int) -> tirx.PrimFunc | None:
    """`func` with `n` fixed at `rows`, through TVMScript (the one faithful substitution of a
    symbol in buffer types that TVM 0.27's Python API offers). None when the text is not
    self-contained (metadata) or does not declare exactly `n`."""
    text = func.script()
    declared = _TYPE_VAR.findall(text)
    if "metadata[" in text or len(declared) != 1 or declared[0][1] != n.name:
        return None
    printed = declared[0][0]
    try:
        return tvm.script.from_source(
            _TYPE_VAR.sub("", text), extra_vars={"T": T, printed: tirx.IntImm("int64", rows)}
        )
    except Exception:  # a construct the printer and parser do not round-trip: leave the kernel symbolic
        return None


__all__ = ["ROWS", "ROW_CHUNK_ATTR", "RowAxes", "row_axes", "row_chunk_pass"]
