"""Lowering step after TVM's TIR pipeline: splat packed tile rows with lane shuffles.

The contraction schedule (``compiler.schedules``, packing the row operand) copies the four rows of a
register tile's broadcast operand side by side, ``P[..., k, r]``.  After
vectorization each reduction step still reads them as four scalar broadcasts,
``Broadcast(P[4*k + r], lanes)``, which LLVM emits as four ``v128.load32_splat``;
Cranelift turns each into a scalar load, a move to a vector register and a shuffle.
This pass rewrites each of them to lane ``r`` of the vector ``P[4*k : 4*k + 4]``:
the four rows share one ``v128.load`` and each costs one ``i8x16.shuffle``.

It runs on the lowered PrimFuncs (loops unrolled, buffers flattened) of the kernels
carrying :data:`compiler.tiles.PACKED_ROWS_ATTR`, and touches only loads from the
buffers that attribute names, or from the kernel's own allocations: TVM's
``StorageRewrite`` lets a packed buffer reuse the storage of a buffer that died before
it (a Winograd kernel's packed tile rows take its input transform's), and the loads then
name the buffer whose storage they share.  TVM 0.27's Python API has no TIR mutator, so
the rewrite goes through `compiler.tir.walk`.
"""

from __future__ import annotations

import tvm
from tvm import tirx

from ..tiles import PACKED_ROWS, PACKED_ROWS_ATTR
from .walk import attribute_names, body_rewriting_pass, integer_lets, visit


def shuffle_packed_rows() -> tvm.transform.Pass:
    def replacer(func: tirx.PrimFunc):
        packed = attribute_names(func, PACKED_ROWS_ATTR)
        if not packed:
            return None
        return _lane_splats(packed | _allocations_of_groups(func.body), integer_lets(func.body))

    return body_rewriting_pass("WasmShufflePackedRows", replacer)


def _allocations_of_groups(body: tirx.Stmt) -> set[str]:
    """Names of the buffers ``body`` allocates with a constant extent that is a whole number
    of 4-element groups (so the aligned group around any element is in bounds)."""
    names = set()

    def note(node):
        if isinstance(node, tirx.AllocBuffer):
            extent = static_extent(node.buffer)
            if extent and extent % PACKED_ROWS == 0:
                names.add(node.buffer.name)

    visit(body, note)
    return names


def _lane_splats(groups: set[str], analyzer: tvm.sym.Analyzer):
    def splat(expr):
        if not (isinstance(expr, tirx.Broadcast) and isinstance(expr.value, tvm.ir.TensorLoad)):
            return None
        load = expr.value
        if load.source.name not in groups or len(load.indices) != 1 or str(load.ty) != "float32":
            return None
        index = load.indices[0]
        lane = analyzer.simplify(tirx.floormod(index, PACKED_ROWS))
        if not isinstance(lane, tirx.IntImm):
            return None
        # The buffer's extent is a multiple of 4: the aligned group is in bounds.
        start = analyzer.simplify(index - lane)
        group = tirx.BufferLoad(load.source, [tirx.Ramp(start, tirx.const(1, str(start.ty)), PACKED_ROWS)])
        lanes = int(expr.lanes)
        # Shuffle picks from the concatenated inputs, so repeat the group to cover every lane.
        return tirx.Shuffle([group] * -(-lanes // PACKED_ROWS), [tirx.const(int(lane), "int32")] * lanes)

    return splat


def static_extent(buffer: tirx.Buffer) -> int | None:
    """The number of elements of ``buffer``, None when its shape is not constant."""
    extent = 1
    for dim in buffer.shape:
        if not isinstance(dim, tirx.IntImm):
            return None
        extent *= int(dim)
    return extent
