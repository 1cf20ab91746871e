"""Lowering step after TVM's TIR pipeline: packed int16 activation pairs stored pre-splat.

The integer contraction (`compiler.schedules.integer_contraction`) copies its tile rows'
int16 activations side by side per row tile, ``P[k // 2, r, k % 2]``, and each reduction step
broadcasts one row's pair to the four 32-bit lanes of ``i32x4.dot_i16x8_s``:
``Broadcast(reinterpret(int32, P[pair]), 4)``. This step stores every pair four times
instead, so that broadcast is one plain ``v128.load``: TVM makes the copy's buffer one of
``int16x2`` elements (its pairs vectorized), which becomes one of ``int16x8`` elements, index
for index (an int16 buffer read as ``P[i : i + 2]`` becomes ``P4[4 * i : 4 * i + 8]``).

Why: Cranelift makes the broadcast (``v128.load32_splat``) a scalar load, a move to a vector
register and a broadcast, the last two on the port that also widens the int8 weights
(``i16x8.load8x8_s``): the tile's steps queue there. In C micro-kernels in wasmtime (a 1x1
conv's shapes, 196 pixels x 96 -> 576 channels and three others), 4 x 8 tiles over pre-splat
pairs ran 38-41 G int8 multiply-adds a second where 2 x 16 tiles splatting their pairs ran
28-30 (the float32 multiply-add peak: 21 G a second); in wasm-build's kernels, 1x1 convs of
int8 MobileNetV2 went from 26-28 to 30-34. The copy writes four times the pairs' bytes, once
per row tile, against a product over every lane tile.

A packed buffer is rewritten only when every access to it is one of those two forms (a pair
stored, a pair broadcast); otherwise it is left as it is, which computes the same.
"""

from __future__ import annotations

import tvm
from tvm import tirx

from ..tiles import PRESPLAT_PAIRS_ATTR
from .pair_shuffle import broadcast_pair
from .walk import attribute_names, body_rewriting_pass, integer_lets, is_const, visit

COPIES = 4  # 32-bit lanes of a v128: one copy of the pair each


def presplat_activation_pairs() -> tvm.transform.Pass:
    def replacer(func: tirx.PrimFunc):
        names = attribute_names(func, PRESPLAT_PAIRS_ATTR)
        widened = {old: _widened(old) for old in _rewritable(func.body, names)} if names else {}
        return _presplat(widened, integer_lets(func.body)) if widened else None

    return body_rewriting_pass("WasmPresplatActivationPairs", replacer)


def _widened(buffer: tirx.Buffer) -> tirx.Buffer:
    """The same storage, four copies of each of ``buffer``'s pairs: an ``int16x2`` buffer (TVM
    vectorized the copy's pairs into elements) becomes an ``int16x8`` one, an int16 one four
    times longer."""
    if str(buffer.dtype) == "int16x2":
        return tirx.decl_buffer(buffer.shape, "int16x8", buffer.name, data=buffer.data, scope=buffer.scope())
    return tirx.decl_buffer(
        (int(buffer.shape[0]) * COPIES,), buffer.dtype, buffer.name, data=buffer.data, scope=buffer.scope()
    )


def _pair_access(buffer: tirx.Buffer, indices) -> bool:
    """Whether ``buffer[indices]`` is one pair: an element of an ``int16x2`` buffer, or two
    consecutive int16 values."""
    if len(indices) != 1:
        return False
    index = indices[0]
    if str(buffer.dtype) == "int16x2":
        return int(getattr(index.ty, "lanes", 1)) == 1 and not isinstance(index, (tirx.Ramp, tirx.Broadcast))
    return str(buffer.dtype) == "int16" and isinstance(index, tirx.Ramp) and is_const(index.stride, 1) and int(index.lanes) == 2


def _pair_splat(expr):
    """The load of ``Broadcast(reinterpret(int32, P[pair]), 4)``, else None."""
    load = broadcast_pair(expr)
    return load if load is not None and _pair_access(load.source, load.indices) else None


def _rewritable(body: tirx.Stmt, names: set[str]) -> list[tirx.Buffer]:
    """The 1-D int16 buffers named ``names`` that ``body`` allocates, stores pairs into and loads
    only as broadcast pairs."""
    allocated = {}
    broadcast_loads = set()
    loads = []
    refused = set()

    def note(node):
        if isinstance(node, tirx.AllocBuffer) and node.buffer.name in names:
            buffer = node.buffer
            if len(buffer.shape) == 1 and isinstance(buffer.shape[0], tirx.IntImm) and str(buffer.dtype) in ("int16", "int16x2"):
                allocated[buffer.name] = buffer
        elif isinstance(node, tirx.BufferStore) and node.buffer.name in names:
            if not _pair_access(node.buffer, node.indices) or str(node.value.ty) != "int16x2":
                refused.add(node.buffer.name)
        elif isinstance(node, tvm.ir.TensorLoad) and node.source.name in names:
            loads.append(node)
        elif isinstance(node, tirx.Broadcast):
            load = _pair_splat(node)
            if load is not None:
                broadcast_loads.add(load)
        elif isinstance(node, tirx.DeclBuffer) and node.buffer.name in names:
            refused.add(node.buffer.name)  # another view of the storage

    visit(body, note)
    for load in loads:
        if not any(load.same_as(b) for b in broadcast_loads):
            refused.add(load.source.name)
    return [buffer for name, buffer in allocated.items() if name not in refused]


def _presplat(widened: dict[tirx.Buffer, tirx.Buffer], analyzer: tvm.sym.Analyzer):
    def wide(buffer):
        return next((new for old, new in widened.items() if buffer.same_as(old)), None)

    def copies(buffer, indices):
        index = indices[0]
        if str(buffer.dtype) == "int16x2":
            return [index]  # the same element of the widened vectors
        base = analyzer.simplify(index.base * COPIES)
        return [tirx.Ramp(base, tirx.const(1, str(base.ty)), 2 * COPIES)]

    def replace(node):
        if isinstance(node, tirx.AllocBuffer) and wide(node.buffer) is not None:
            return tirx.AllocBuffer(wide(node.buffer), node.annotations)
        if isinstance(node, tirx.BufferStore) and wide(node.buffer) is not None:
            splat = tirx.reinterpret("int16x8", tirx.Broadcast(tirx.reinterpret("int32", node.value), COPIES))
            return tirx.BufferStore(wide(node.buffer), splat, copies(node.buffer, node.indices))
        if isinstance(node, tirx.Broadcast):
            load = _pair_splat(node)
            if load is not None and wide(load.source) is not None:
                whole = tirx.BufferLoad(wide(load.source), copies(load.source, load.indices))
                return tirx.reinterpret("int32x4", whole)
        return None

    return replace
