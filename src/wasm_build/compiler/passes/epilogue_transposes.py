"""Transposes a contraction writes itself: a float32 conv or matmul whose output (through its
elementwise epilogue) is only transposed, so that the transposed result is contiguous along
the contraction's tile rows, fuses with that transpose; the contraction rule then stores each
register tile transposed, one vector along its rows at a time (`schedules.contraction`).

A model in NCHW around NHWC convs (`nhwc_conv`) transposes the last conv's output back,
and a matmul feeding a transposed layout does the same: as a kernel of its own that
transpose read and wrote the whole output once more (`conv_32x192x28x28` of the shape
sweep: 15% of its time, at 30 GB/s through L2). In the tile's write-back it is a transpose
of registers by lane shuffles.

Runs after legalization, before ``FuseOps``: TVM fuses a contraction with elementwise
consumers only, so the transposes taken are given a kernel of their own marked elementwise
(the same transpose elsewhere keeps its injective one). Taken only where the tile's rows can
be whole vectors of the transposed output: the producer's second-to-last axis (a conv's
pixel columns, a matmul's rows, which the tile takes 4 at a time when it divides by 4)
becomes the output's innermost; and not where the result is transposed again (a scale applied
in the other layout, tokens reshaped into an image), which TVM's fusion already makes one
kernel of.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax, tirx
from tvm.s_tir.stmt import SBlock

from ..irmodule import is_call_tir
from ..tir import walk
from ..work import is_multiply_add
from .analysis import var_uses
from .conv_rewrite import BROADCAST, ELEMWISE, INJECTIVE, OUT_ELEMWISE_FUSABLE, rewrite_calls, static_shape

# The tile's rows: 4 float32 values, one vector (`schedules.tile_shape`, `tiles.PACKED_ROWS`).
_VECTOR_ROWS = 4
# Kernels followed from a transpose: back to the contraction (bias, activation, residual add,
# scale), and on to a transpose that undoes it.
_MAX_EPILOGUE_KERNELS = 4


def epilogue_transposes_pass() -> tvm.transform.Pass:
    """Module pass: every transpose a float32 contraction can write itself, marked elementwise."""

    @tvm.transform.module_pass(opt_level=0, name="WasmEpilogueTransposes")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        taken: dict[relax.Call, tvm.ir.GlobalVar] = {}
        for _, func in mod.functions_items():
            if isinstance(func, relax.Function) and isinstance(func.body, relax.SeqExpr):
                taken.update(_taken(_Dataflow.of(mod, func)))
        copies: dict[tvm.ir.GlobalVar, tvm.ir.GlobalVar] = {}

        def elementwise(builder: relax.BlockBuilder, call: relax.Call, gvar: tvm.ir.GlobalVar) -> relax.Expr:
            if gvar not in copies:
                copies[gvar] = builder.add_func(mod[gvar].with_attr("op_pattern", ELEMWISE), f"{gvar.name_hint}_epilogue")
            return relax.Call(call.op, [copies[gvar], *call.args[1:]], call.attrs, call.ty_args)

        return rewrite_calls(mod, taken.get, elementwise) if taken else mod

    return _pass


@dataclass
class _Dataflow:
    """A Relax function's bindings: each variable's value, how often it is used, and the
    variables bound to the calls that read it."""

    mod: tvm.IRModule
    values: dict[relax.Var, relax.Expr]
    uses: dict[relax.Var, int]
    consumers: dict[relax.Var, list[relax.Var]]

    @classmethod
    def of(cls, mod: tvm.IRModule, func: relax.Function) -> _Dataflow:
        values = {b.var: b.value for block in func.body.blocks for b in block.bindings}
        consumers: dict[relax.Var, list[relax.Var]] = {}
        for var, value in values.items():
            for arg in _arguments(value):
                consumers.setdefault(arg, []).append(var)
        return cls(mod, values, var_uses(func), consumers)

    def kernel(self, var: relax.Var) -> tirx.PrimFunc | None:
        """The kernel ``var``'s value calls, if it is a kernel call."""
        value = self.values.get(var)
        return self.mod[value.args[0]] if is_call_tir(value) else None


def _taken(flow: _Dataflow) -> dict[relax.Call, tvm.ir.GlobalVar]:
    """The transpose calls a contraction of ``flow`` can write itself, to the kernels they call."""
    taken = {}
    for var, value in flow.values.items():
        perm = _permutation(flow.kernel(var))
        data = _arguments(value)
        if perm is None or len(data) != 1 or not _rows_become_innermost(data[0], perm):
            continue
        if _follows_float_contraction(flow, data[0]) and not _transposed_again(flow, var):
            taken[value] = value.args[0]
    return taken


def _arguments(value: relax.Expr) -> list[relax.Var]:
    """The variables a kernel call reads (none for other values)."""
    if not is_call_tir(value):
        return []
    return [arg for arg in value.args[1].fields if isinstance(arg, relax.Var)]


def _pattern(func: tvm.ir.BaseFunc | None) -> int | None:
    if not isinstance(func, tirx.PrimFunc) or func.attrs is None or "op_pattern" not in func.attrs:
        return None
    return int(func.attrs["op_pattern"])


def _permutation(func: tvm.ir.BaseFunc | None) -> tuple[int, ...] | None:
    """The axes of an injective kernel that only permutes its one input's axes (output axis
    ``i`` is input axis ``perm[i]``), else None."""
    if _pattern(func) != INJECTIVE or len(func.params) != 2:
        return None
    blocks = _blocks(func)
    if len(blocks) != 1 or not isinstance(blocks[0].body, tirx.BufferStore):
        return None
    store, load = blocks[0].body, blocks[0].body.value
    if not isinstance(load, tvm.ir.TensorLoad):
        return None
    iter_vars = [iv.var for iv in blocks[0].iter_vars]
    if len(store.indices) != len(iter_vars) or len(load.indices) != len(iter_vars):
        return None
    if not all(index.same_as(var) for index, var in zip(store.indices, iter_vars)):
        return None
    position = {var: i for i, var in enumerate(iter_vars)}
    read = [position.get(index) for index in load.indices]
    if None in read or sorted(read) != list(range(len(read))):
        return None
    # Input axis a is read by output axis read[a]: output axis i is input axis perm[i].
    perm = [0] * len(read)
    for axis, out_axis in enumerate(read):
        perm[out_axis] = axis
    return tuple(perm)


def _rows_become_innermost(data: relax.Var, perm: tuple[int, ...]) -> bool:
    """Whether the transposed output's innermost axis is ``data``'s second-to-last (the tile's
    rows), whole vectors of rows long, and ``data``'s innermost axis (the tile's lanes)
    moves elsewhere."""
    shape = static_shape(data, ("float32",))
    if shape is None or len(shape) < 2:
        return False
    rows, lanes = shape[-2], shape[-1]
    return perm[-1] == len(shape) - 2 and rows % _VECTOR_ROWS == 0 and lanes >= _VECTOR_ROWS


def _follows_float_contraction(flow: _Dataflow, var: relax.Var, depth: int = _MAX_EPILOGUE_KERNELS) -> bool:
    """Whether ``var`` is a float32 contraction's output, through at most a few elementwise
    kernels (a residual add: either operand), every value on the way used once (FuseOps then
    fuses them all with the transpose)."""
    kernel = flow.kernel(var)
    if kernel is None or flow.uses.get(var, 0) != 1:
        return False
    pattern = _pattern(kernel)
    if pattern == OUT_ELEMWISE_FUSABLE:
        return _is_float_contraction(kernel) and static_shape(var, ("float32",)) is not None
    if pattern not in (ELEMWISE, BROADCAST) or depth == 0:
        return False
    return any(
        _same_shape(arg, var) and _follows_float_contraction(flow, arg, depth - 1) for arg in _arguments(flow.values[var])
    )


def _transposed_again(flow: _Dataflow, var: relax.Var, depth: int = _MAX_EPILOGUE_KERNELS) -> bool:
    """Whether ``var``, through elementwise kernels and reshapes, is transposed again. FastViT
    scales its NHWC channels in NCHW (transpose, multiply, transpose back) and PVT-v2 turns
    tokens into an image (transpose, reshape, transpose): TVM fuses each chain into one kernel
    that moves little or nothing; taken, the contraction wrote the transposed layout and a
    transpose read it back (FastViT's chains: 0.018 -> 0.033 ms)."""
    for consumer in flow.consumers.get(var, []):
        kernel = flow.kernel(consumer)
        if _permutation(kernel) is not None:
            return True
        moves_values = _pattern(kernel) in (ELEMWISE, BROADCAST, INJECTIVE)
        if depth and moves_values and _transposed_again(flow, consumer, depth - 1):
            return True
    return False


def _is_float_contraction(func: tirx.PrimFunc) -> bool:
    """Whether ``func``'s one reduction is a float32 multiply-add (`work.is_multiply_add`)
    writing its output: a conv or matmul the contraction rule tiles, not a layer norm or a
    pooling."""
    reductions = [block for block in _blocks(func) if any(int(iv.iter_type) == tirx.IterVar.CommReduce for iv in block.iter_vars)]
    if len(reductions) != 1 or not is_multiply_add(reductions[0].body):
        return False
    written = reductions[0].body.buffer
    return written.dtype == "float32" and written.same_as(func.params[-1])


def _blocks(func: tirx.PrimFunc) -> list[SBlock]:
    found: list[SBlock] = []
    walk.visit(func.body, lambda node: found.append(node) if isinstance(node, SBlock) and node.name_hint != "root" else None)
    return found


def _same_shape(a: relax.Expr, b: relax.Expr) -> bool:
    shape = static_shape(a, ("float32",))
    return shape is not None and shape == static_shape(b, ("float32",))
