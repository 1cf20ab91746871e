"""ONNX ``Clip`` (ReLU6), which the frontend emits as TE kernels, and Relax ``clip``
(HardSigmoid) as Relax ``maximum``/``minimum``: they then follow the conv's layout and fuse
into the conv kernel, and their bounds become constants in the kernel, which keeps NaN
(`compiler.tir.nan_propagation`)."""

from __future__ import annotations

import tvm
from tvm import relax, s_tir, tirx

from ..schedules.analysis import root_blocks
from .analysis import mutate_functions
from .vector_math import is_float32


def scalar_clamp_op(func: tirx.PrimFunc):  # -> relax.op.maximum | relax.op.minimum | None
    """relax.op.maximum / minimum when ``func`` is one block computing
    ``out[i] = max|min(x[i], c[()])`` (what the ONNX frontend emits for Clip), else None."""
    if len(func.params) != 3:
        return None
    sch = s_tir.Schedule(func)
    blocks = root_blocks(sch)
    if len(blocks) != 1:
        return None
    body = sch.get(blocks[0]).body
    value = getattr(body, "value", None)
    ops = {tvm.ir.prim.expr.Max: relax.op.maximum, tvm.ir.prim.expr.Min: relax.op.minimum}
    if type(value) not in ops or not isinstance(value.a, tvm.ir.TensorLoad) or not isinstance(value.b, tvm.ir.TensorLoad):
        return None
    a, b = value.a, value.b
    names = [str(param) for param in func.params]
    if not (a.source.name == names[0] and b.source.name == names[1] and len(b.indices) == 0):
        return None
    if len(a.indices) != len(body.indices) or not all(i.same_as(j) for i, j in zip(a.indices, body.indices)):
        return None
    return ops[type(value)]


def _clip_as_clamp(call: relax.Call) -> relax.Expr:
    """``relax.clip(x, low, high)`` of a float32 tensor as ``minimum(maximum(x, low), high)``:
    clip has no layout inference either (HardSigmoid, ReLU6 from PyTorch's exporters)."""
    x, low, high = call.args
    if not is_float32(x) or not all(isinstance(b, (tirx.IntImm, tirx.FloatImm)) for b in (low, high)):
        return call
    clamped = relax.op.maximum(x, relax.const(float(low.value), "float32"))
    return relax.op.minimum(clamped, relax.const(float(high.value), "float32"))


@relax.expr_functor.mutator
class _ScalarClamp(relax.PyExprMutator):
    """``call_tir(max|min kernel, (x, scalar const))`` -> ``relax.maximum|minimum``:
    an opaque call_tir stops ConvertLayout, which then wraps every ReLU6 of
    MobileNetV2 in two transposes and a kernel of its own."""

    def __init__(self, mod: tvm.IRModule):
        super().__init__(mod)
        self.mod = mod

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.clip":
            return _clip_as_clamp(call)
        if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.call_tir"):
            return call
        callee, args = call.args[0], call.args[1]
        if not isinstance(args, relax.Tuple) or len(args.fields) != 2:
            return call
        x, c = args.fields
        if not (isinstance(c, tvm.ir.expr.Constant) and len(c.value.shape) == 0 and is_float32(x)
                and c.value.dtype == "float32"):
            return call
        func = self.mod[callee] if callee in self.mod.functions else None
        op = scalar_clamp_op(func) if isinstance(func, tirx.PrimFunc) else None
        return call if op is None else op(x, c)


def scalar_clamp_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmScalarClamp")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return relax.transform.DeadCodeElimination()(mutate_functions(_ScalarClamp(mod), mod))

    return _pass
