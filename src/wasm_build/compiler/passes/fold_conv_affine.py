"""Per-output-channel ``add``/``subtract``/``multiply``/``divide`` by constants after a conv
(the decomposed batch norm, a conv bias) folded into its weights and a single bias add, so the
conv kernel's epilogue is ``bias (+ residual) (+ relu)``: FuseOps fuses the ReLU that the
batch-norm tuple used to keep in a kernel of its own."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from .analysis import calls_op, var_uses


_AFFINE_OPS = ("relax.add", "relax.subtract", "relax.multiply", "relax.divide")


def _channel_vector(const: tvm.ir.expr.Constant, channels: int, out_ndim: int, axis: int) -> np.ndarray | None:
    """``const`` as a length-``channels`` vector when it only varies along the output
    channel axis of a conv output (rank ``out_ndim``), else None."""
    value = const.value.numpy()
    if value.dtype != np.float32 or value.ndim > out_ndim:
        return None
    shape = (1,) * (out_ndim - value.ndim) + value.shape
    if any(size != 1 for i, size in enumerate(shape) if i != axis) or shape[axis] not in (1, channels):
        return None
    return np.broadcast_to(value.reshape(-1), (channels,)).astype(np.float32)


@relax.expr_functor.mutator
class _FoldConvAffine(relax.PyExprMutator):
    """``conv2d(x, W) (+|-|*|/) c`` with a per-output-channel constant ``c`` becomes
    ``conv2d(x, W') + b``: the decomposed batch norm after every conv (subtract,
    divide, multiply, add) costs nothing at run time, and the conv's epilogue is a
    single bias add that FuseOps fuses with a following ReLU."""

    def __init__(self, mod: tvm.IRModule, uses: dict):
        super().__init__(mod)
        self.uses = uses

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not (isinstance(call.op, tvm.ir.Op) and call.op.name in _AFFINE_OPS):
            return call
        lhs, rhs = call.args
        if not (isinstance(lhs, relax.Var) and isinstance(rhs, tvm.ir.expr.Constant)) or self.uses.get(lhs, 0) != 1:
            return call
        conv, bias = self._conv_and_bias(lhs)
        if conv is None:
            return call
        out_ndim = len(lhs.ty.shape)
        axis = str(conv.attrs.out_layout).index("C")
        weight = conv.args[1].value.numpy()
        o_axis = str(conv.attrs.kernel_layout).index("O")
        channels = weight.shape[o_axis]
        c = _channel_vector(rhs, channels, out_ndim, axis)
        if c is None or (call.op.name == "relax.divide" and not np.all(c)):
            return call
        bias = np.zeros(channels, np.float32) if bias is None else bias
        scale = None
        if call.op.name == "relax.add":
            bias = bias + c
        elif call.op.name == "relax.subtract":
            bias = bias - c
        else:
            scale = c if call.op.name == "relax.multiply" else np.float32(1) / c
            bias = bias * scale
        if scale is not None:
            shape = [1] * weight.ndim
            shape[o_axis] = channels
            weight = (weight * scale.reshape(shape)).astype(np.float32)
        new_conv = self.builder_.emit(relax.Call(conv.op, [conv.args[0], relax.const(weight)], conv.attrs))
        shape = [1] * out_ndim
        shape[axis] = channels
        return relax.op.add(new_conv, relax.const(bias.astype(np.float32).reshape(shape)))

    def _conv_and_bias(self, var: relax.Var):
        """(conv2d call, bias vector or None) when ``var`` is ``conv2d`` or ``conv2d + bias``
        as built by this pass, with a constant float32 weight."""
        value = self.lookup_binding(var)
        bias = None
        if (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op) and value.op.name == "relax.add"
                and isinstance(value.args[0], relax.Var) and isinstance(value.args[1], tvm.ir.expr.Constant)):
            bias = value.args[1].value.numpy().reshape(-1)
            value = self.lookup_binding(value.args[0])
        if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)
                and value.op.name == "relax.nn.conv2d" and isinstance(value.args[1], tvm.ir.expr.Constant)):
            return None, None
        if value.args[1].value.dtype != "float32" or str(value.attrs.out_dtype) not in ("None", "", "void", "float32"):
            return None, None
        if bias is not None and bias.size != value.args[1].value.shape[str(value.attrs.kernel_layout).index("O")]:
            return None, None
        return value, bias


def fold_conv_affine_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmFoldConvAffine")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        if not calls_op(mod, "relax.nn.conv2d"):
            return mod
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                mutator = _FoldConvAffine(mod, var_uses(func))
                mutator.builder_.update_func(gvar, mutator.visit_expr(func))
                mod = mutator.builder_.get()
        return mod

    return _pass
