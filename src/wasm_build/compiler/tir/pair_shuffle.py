"""Lowering step: the int16 activation pairs of dot-product tiles splat by lane shuffles.

Each reduction step of an integer tile (``schedules.dot_products``) broadcasts one row's pair
of int16 activations to every 32-bit lane: ``Broadcast(reinterpret(int32, A[i : i + 2]), 4)``,
which LLVM emits as ``v128.load32_splat`` and Cranelift as a scalar load, a move to a vector
register and a broadcast, each with its own address add. The integer contraction unrolls its
steps by four (`integer_contraction.PAIR_GROUP`), so four consecutive steps read the pairs of
one aligned group of 8 values: this step rewrites each broadcast to lane ``(i % 8) / 2`` of
that group, ``A[i - i % 8 : i - i % 8 + 8]`` loaded once (LLVM merges the four loads), at the
cost of one shuffle.

Only loads of int16 buffers whose extent is a whole number of groups are rewritten (the group
around any pair is then in bounds), and only where ``i % 8`` is a constant.
"""

from __future__ import annotations

import tvm
from tvm import tirx

from .lane_shuffle import static_extent
from .walk import body_rewriting_pass, integer_lets, is_const

GROUP = 8  # int16 values in a v128: four pairs
_REINTERPRET = "tirx.reinterpret"


def shuffle_activation_pairs() -> tvm.transform.Pass:
    return body_rewriting_pass("WasmShuffleActivationPairs", lambda func: _pair_splats(integer_lets(func.body)))


def broadcast_pair(expr) -> tvm.ir.TensorLoad | None:
    """The load of ``Broadcast(reinterpret(int32, <int16x2 load>), 4)`` (a dot-product tile's
    activation pair, splat to the four 32-bit lanes), else None."""
    if not (isinstance(expr, tirx.Broadcast) and str(expr.ty) == "int32x4"):
        return None
    call = expr.value
    if not (isinstance(call, tvm.ir.Call) and getattr(call.op, "name", None) == _REINTERPRET):
        return None
    load = call.args[0]
    if isinstance(load, tvm.ir.TensorLoad) and str(load.ty) == "int16x2" and len(load.indices) == 1:
        return load
    return None


def _pair_splats(analyzer: tvm.sym.Analyzer):
    def splat(expr):
        load = broadcast_pair(expr)
        if load is None:
            return None
        ramp = load.indices[0]
        if not (isinstance(ramp, tirx.Ramp) and is_const(ramp.stride, 1) and _whole_groups(load.source)):
            return None
        offset = analyzer.simplify(tirx.floormod(ramp.base, GROUP))
        if not isinstance(offset, tirx.IntImm) or int(offset) % 2:
            return None
        start = analyzer.simplify(ramp.base - offset)
        group = tirx.BufferLoad(load.source, [tirx.Ramp(start, tirx.const(1, str(start.ty)), GROUP)])
        lane = tirx.const(int(offset) // 2, "int32")
        return tirx.Shuffle([tirx.reinterpret("int32x4", group)], [lane] * 4)

    return splat


def _whole_groups(buffer: tirx.Buffer) -> bool:
    extent = static_extent(buffer)
    return str(buffer.dtype) == "int16" and extent is not None and extent % GROUP == 0
