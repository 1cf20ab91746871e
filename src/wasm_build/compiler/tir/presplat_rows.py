"""Lowering step after TVM's TIR pipeline: packed tile rows stored pre-splat.

The contraction schedule (``compiler.schedules``, packing the row operand) copies the four
rows of a register tile's broadcast operand side by side, ``P[..., k, r]``, and each reduction
step broadcasts ``P[4*k + r]`` across a tile row's lanes. This step stores every value four
times instead, ``P4[16*k + 4*r : 16*k + 4*r + 4]``, so each broadcast is one plain
``v128.load`` (at a constant offset from the step's base).

Why: a broadcast made in registers (``i8x16.shuffle`` of one loaded vector, the form
`lane_shuffle` gives, or ``v128.load32_splat``, which Cranelift lowers to a scalar load, a move
and a shuffle) takes a vector port on every step, next to the tile's 8 multiplies and 8 adds;
a vector load does not. On the Xeon of round 12 (three vector ports) the 4 x 8 step ran 20.0
against 16.6 GMAC/s (a C micro-kernel in wasmtime), where the multiply-add peak is 20.5. The
copy writes four times the bytes, once per row tile, against a product over every lane tile.

A packed buffer is rewritten only when every access names it (TVM's ``StorageRewrite`` may
give it another buffer's storage, see `lane_shuffle`); the others keep their lane shuffles.
"""

from __future__ import annotations

import tvm
from tvm import tirx

from ..tiles import PACKED_ROWS, PACKED_ROWS_ATTR
from .walk import attribute_names, body_rewriting_pass, integer_lets, visit


def presplat_packed_rows() -> tvm.transform.Pass:
    def replacer(func: tirx.PrimFunc):
        names = attribute_names(func, PACKED_ROWS_ATTR)
        widened = {old: _widened(old) for old in _packed_allocations(func.body, names)}
        return _presplat(widened, integer_lets(func.body)) if widened else None

    return body_rewriting_pass("WasmPresplatPackedRows", replacer)


def _widened(buffer: tirx.Buffer) -> tirx.Buffer:
    """The same storage, four elements for each of ``buffer``'s."""
    return tirx.decl_buffer(
        (int(buffer.shape[0]) * PACKED_ROWS,), buffer.dtype, buffer.name, data=buffer.data, scope=buffer.scope()
    )


def _packed_allocations(body: tirx.Stmt, names: set[str]) -> list[tirx.Buffer]:
    """The 1-D float32 buffers named ``names`` that ``body`` allocates and accesses in forms this
    step rewrites only: scalar stores, contiguous vector stores, scalar loads."""
    allocated = {}
    other_uses = set()

    def note(node):
        if isinstance(node, tirx.AllocBuffer) and node.buffer.name in names:
            buffer = node.buffer
            extent = buffer.shape[0] if len(buffer.shape) == 1 else None
            # Whole steps of four rows: the aligned step around any element is in bounds.
            if isinstance(extent, tirx.IntImm) and int(extent) % PACKED_ROWS == 0 and buffer.dtype == "float32":
                allocated[buffer.name] = buffer
        elif isinstance(node, tirx.BufferStore) and not _is_scalar(node.indices[0]) and not _is_contiguous(node.indices[0]):
            other_uses.add(node.buffer.name)
        elif isinstance(node, tvm.ir.TensorLoad) and not _is_scalar(node.indices[0]):
            other_uses.add(node.source.name)
        elif isinstance(node, tirx.DeclBuffer):
            other_uses.add(node.buffer.name)  # another view of the storage

    visit(body, note)
    return [buffer for name, buffer in allocated.items() if name not in other_uses]


def _is_scalar(index) -> bool:
    return not isinstance(index, (tirx.Ramp, tirx.Broadcast)) and int(getattr(index.ty, "lanes", 1)) == 1


def _is_contiguous(index) -> bool:
    return isinstance(index, tirx.Ramp) and isinstance(index.stride, tirx.IntImm) and int(index.stride) == 1


def _presplat(widened: dict[tirx.Buffer, tirx.Buffer], analyzer: tvm.sym.Analyzer):
    new_buffers = list(widened.values())

    def first_copy(index):
        # Simplified, (k + r) * 4 becomes k * 4 + r * 4: a step's four loads share one address
        # and LLVM folds their offsets into the loads.
        return analyzer.simplify(index * PACKED_ROWS)

    def wide(buffer):
        return next((new for old, new in widened.items() if buffer.same_as(old)), None)

    def replace(node):
        if isinstance(node, tirx.AllocBuffer) and wide(node.buffer) is not None:
            return tirx.AllocBuffer(wide(node.buffer), node.annotations)
        if isinstance(node, tirx.BufferStore) and wide(node.buffer) is not None:
            return _store_splat(wide(node.buffer), node.value, node.indices[0], first_copy)
        if isinstance(node, tvm.ir.TensorLoad) and wide(node.source) is not None:
            # A value's first copy (broadcasts of it are rewritten next).
            return tirx.BufferLoad(wide(node.source), [first_copy(node.indices[0])])
        if isinstance(node, tirx.Broadcast) and isinstance(node.value, tvm.ir.TensorLoad):
            load = node.value
            if any(load.source.same_as(new) for new in new_buffers):
                return _splat_load(load, int(node.lanes), analyzer)
        return None

    return replace


def _store_splat(buffer: tirx.Buffer, value, index, first_copy) -> tirx.BufferStore:
    """``P[index] = value`` with every stored value repeated four times."""
    if _is_scalar(index):
        return tirx.BufferStore(buffer, tirx.Broadcast(value, PACKED_ROWS), [_ramp(first_copy(index), PACKED_ROWS)])
    lanes = int(index.lanes)
    # (A shuffle picks from its inputs concatenated: four of them give it enough lanes.)
    repeated = tirx.Shuffle([value] * PACKED_ROWS, [tirx.const(i // PACKED_ROWS, "int32") for i in range(lanes * PACKED_ROWS)])
    return tirx.BufferStore(buffer, repeated, [_ramp(first_copy(index.base), lanes * PACKED_ROWS)])


def _splat_load(load, lanes: int, analyzer: tvm.sym.Analyzer):
    """A broadcast of a value's first copy as a load of its four copies (repeated to ``lanes``).

    Taken from a load of the whole step (the four rows' copies, 16 values): each row of a
    step loads the same vector, LLVM keeps one and splits it into four ``v128.load``s at
    offsets 0, 16, 32 and 48 from one address. (Four loads of their own each cost an add.)"""
    index = load.indices[0]
    step = PACKED_ROWS * PACKED_ROWS
    offset = analyzer.simplify(tirx.floormod(index, step))
    if not isinstance(offset, tirx.IntImm):
        group = tirx.BufferLoad(load.source, [_ramp(index, PACKED_ROWS)])
        return tirx.Shuffle([group] * -(-lanes // PACKED_ROWS), [tirx.const(i, "int32") for i in range(lanes)])
    whole = tirx.BufferLoad(load.source, [_ramp(analyzer.simplify(index - offset), step)])
    return tirx.Shuffle([whole], [tirx.const(int(offset) + i % PACKED_ROWS, "int32") for i in range(lanes)])


def _ramp(base, lanes: int) -> tirx.Ramp:
    return tirx.Ramp(base, tirx.const(1, str(base.ty)), lanes)
