"""The quantize and dequantize calls no integer kernel absorbed, as elementwise arithmetic.

``R.quantize`` and ``R.dequantize`` have no layout inference: ``ConvertLayout`` would wrap
each one in two transposes, so the NHWC convs would exchange their int8 activations through
NCHW copies. Written as the arithmetic TVM's legalization makes of them anyway
(``saturate(round(x / s) + z)``, ``float(q - z) * s``), they follow the convs' layout and fuse
with their neighbours (a residual add becomes one kernel reading two int8 tensors).
"""

from __future__ import annotations

import tvm
from tvm import relax

from .analysis import mutate_functions
from .qdq import DEQUANTIZE, INT_RANGES, QUANTIZE, dequantize_arithmetic, dtype_of, op_name, parameter, saturate


@relax.expr_functor.mutator
class _QdqArithmetic(relax.PyExprMutator):
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        name = op_name(call)
        if name not in (QUANTIZE, DEQUANTIZE):
            return call
        data, scale, zero_point = call.args
        ndim = len(data.ty.shape.values) if data.ty.shape is not None else 0
        axis = int(call.attrs.axis)
        out_dtype = str(call.attrs.out_dtype)
        if name == DEQUANTIZE:
            if out_dtype != "float32" or dtype_of(data) not in (*INT_RANGES, "int32"):
                return call
            return dequantize_arithmetic(data, scale, zero_point, axis, ndim)
        if out_dtype not in INT_RANGES or dtype_of(data) != "float32":
            return call
        low, high = INT_RANGES[out_dtype]
        scaled = relax.op.round(relax.op.divide(data, parameter(scale, ndim, axis, "float32")))
        shifted = relax.op.add(scaled, relax.op.astype(parameter(zero_point, ndim, axis, "int32"), "float32"))
        return saturate(shifted, float(low), float(high), out_dtype)


def qdq_arithmetic_pass() -> tvm.transform.Pass:
    """Lower the remaining quantize/dequantize calls to layout-friendly arithmetic (module doc)."""

    @tvm.transform.module_pass(opt_level=0, name="WasmQdqArithmetic")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return mutate_functions(_QdqArithmetic(mod), mod)

    return _pass
