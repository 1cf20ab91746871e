"""What a kernel has to do, whatever its schedule: the multiply-adds of its contractions, its
other float operations (an activation's polynomial, a normalization) and the bytes of its
arguments.

`annotate_work_pass` runs right after fusion, before any schedule (a tuned one or the
defaults), and records them on each kernel, so padding or recomputation that a schedule adds
is not counted as work. The build writes them into the manifest (`kernel_work`), and
`wasm-build profile` divides them by each kernel's time and by the machine's measured peak
(`wasm.peak`): slow kernels point at themselves.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tvm
from tvm import s_tir, tirx

from .irmodule import with_functions
from .tir import walk as tir_walk

# PrimFunc attribute: [multiply-adds, bytes of arguments, other float operations], set by
# `annotate_work_pass` (records from before float operations were counted have two values).
WORK_ATTR = "wasm_build.work"

_FLOAT_ARITHMETIC = (tirx.Add, tirx.Sub, tirx.Mul, tirx.Div, tirx.Min, tirx.Max)


class Work(NamedTuple):
    macs: int  # multiply-adds accumulated into outputs (matmuls, convs, Winograd products; float or integer)
    bytes: int  # bytes of the kernel's arguments: what it reads and writes at the least
    flops: int = 0  # float operations besides those multiply-adds (GELU's erf polynomial: about 30 an element)


def kernel_work(func: tirx.PrimFunc) -> Work:
    """The work of an unscheduled kernel (every block in its own loop nest)."""
    # Scalar parameters (a kernel that takes an offset or a size) are no buffers.
    buffers = [param for param in func.params if isinstance(param.ty, tirx.BufferType)]
    macs, flops = _count(func.body, 1)
    return Work(macs, sum(_nbytes(buffer) for buffer in buffers), flops)


def work_of(func: tirx.PrimFunc) -> Work | None:
    """The work `annotate_work_pass` recorded on ``func``, if it did."""
    value = func.attrs.get(WORK_ATTR) if func.attrs is not None else None
    return Work(*(int(v) for v in value)) if value is not None else None


def annotate_work_pass() -> tvm.transform.Pass:
    """Record `kernel_work` on every PrimFunc of the module that has no record yet."""

    @tvm.transform.module_pass(opt_level=0, name="WasmKernelWork")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        updates = {
            gvar: func.with_attr(WORK_ATTR, list(kernel_work(func)))
            for gvar, func in mod.functions_items()
            if isinstance(func, tirx.PrimFunc) and work_of(func) is None and not _symbolic(func)
        }
        return with_functions(mod, updates)

    return _pass


def _symbolic(func: tirx.PrimFunc) -> bool:
    """Whether a buffer has a symbolic dimension: its work depends on the run's sizes, so none
    is recorded (the profile then shows no roofline for it)."""
    return any(
        not isinstance(d, tirx.IntImm) for p in func.params if isinstance(p.ty, tirx.BufferType) for d in p.ty.shape
    )


def _count(stmt, times: int) -> tuple[int, int]:
    """Multiply-adds and other float operations in ``stmt`` when it runs ``times`` times."""
    if isinstance(stmt, tirx.For):
        extent = stmt.extent
        return _count(stmt.body, times * int(extent)) if isinstance(extent, tirx.IntImm) else (0, 0)
    if isinstance(stmt, s_tir.SBlock):
        inner_macs, inner_flops = _count(stmt.body, times)
        if is_multiply_add(stmt.body):
            return inner_macs + times, inner_flops
        return inner_macs, inner_flops + times * _float_operations(stmt.body)
    counts = [_count(child, times) for child in (stmt.seq if isinstance(stmt, tirx.SeqStmt) else _child_stmts(stmt))]
    return sum(c[0] for c in counts), sum(c[1] for c in counts)


def _float_operations(body) -> int:
    """Float arithmetic in a block's own statement (its nested blocks count for themselves):
    one per add, subtract, multiply, divide, min or max, and per call of a float function."""
    if not isinstance(body, tirx.BufferStore):
        return 0
    count = 0

    def visit(node) -> None:
        nonlocal count
        if not str(getattr(node, "ty", "")).startswith("float"):
            return
        function = isinstance(node, tvm.ir.expr.Call) and not tir_walk.is_if_then_else(node)
        if function or isinstance(node, _FLOAT_ARITHMETIC):
            count += 1

    tir_walk.visit(body.value, visit)
    return count


def _child_stmts(stmt):
    for name in ("block", "body", "then_case", "else_case"):
        child = getattr(stmt, name, None)
        if isinstance(child, tirx.Stmt):
            yield child


def is_multiply_add(body) -> bool:
    """``acc[i] = acc[i] + a * b`` (either order of the sum), in floats or in integers (an int8
    product accumulates in int32: one multiply-add, like a float one)."""
    if not (isinstance(body, tirx.BufferStore) and isinstance(body.value, tirx.Add)):
        return False
    if not str(body.value.ty).startswith(("float", "int")):
        return False
    terms = (body.value.a, body.value.b)
    accumulates = any(isinstance(t, tvm.ir.TensorLoad) and t.source.same_as(body.buffer) for t in terms)
    return accumulates and any(isinstance(t, tirx.Mul) for t in terms)


def _nbytes(buffer: tirx.Buffer) -> int:
    if not all(isinstance(dim, tirx.IntImm) for dim in buffer.shape):
        return 0
    return int(np.prod([int(dim) for dim in buffer.shape], dtype=np.int64)) * tvm.DataType(buffer.dtype).bits // 8
