"""What a kernel has to do, whatever its schedule: the multiply-adds of its contractions and the
bytes of its arguments.

`annotate_work_pass` runs right after fusion, before any schedule (a tuned one or the
defaults), and records both on each kernel, so padding or recomputation that a schedule adds
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

# PrimFunc attribute: [multiply-adds, bytes of arguments], set by `annotate_work_pass`.
WORK_ATTR = "wasm_build.work"


class Work(NamedTuple):
    macs: int  # multiply-adds accumulated into outputs (matmuls, convs, Winograd products; float or integer)
    bytes: int  # bytes of the kernel's arguments: what it reads and writes at the least


def kernel_work(func: tirx.PrimFunc) -> Work:
    """The work of an unscheduled kernel (every block in its own loop nest)."""
    # Scalar parameters (a kernel that takes an offset or a size) are no buffers.
    buffers = [param for param in func.params if isinstance(param.ty, tirx.BufferType)]
    return Work(_macs(func.body, 1), sum(_nbytes(buffer) for buffer in buffers))


def work_of(func: tirx.PrimFunc) -> Work | None:
    """The work `annotate_work_pass` recorded on ``func``, if it did."""
    value = func.attrs.get(WORK_ATTR) if func.attrs is not None else None
    return Work(int(value[0]), int(value[1])) if value is not None else None


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


def _macs(stmt, times: int) -> int:
    """Multiply-adds in ``stmt`` when it runs ``times`` times."""
    if isinstance(stmt, tirx.For):
        extent = stmt.extent
        return _macs(stmt.body, times * int(extent)) if isinstance(extent, tirx.IntImm) else 0
    if isinstance(stmt, s_tir.SBlock):
        return (times if _is_multiply_add(stmt.body) else 0) + _macs(stmt.body, times)
    if isinstance(stmt, tirx.SeqStmt):
        return sum(_macs(s, times) for s in stmt.seq)
    return sum(_macs(child, times) for child in _child_stmts(stmt))


def _child_stmts(stmt):
    for name in ("block", "body", "then_case", "else_case"):
        child = getattr(stmt, name, None)
        if isinstance(child, tirx.Stmt):
            yield child


def _is_multiply_add(body) -> bool:
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
