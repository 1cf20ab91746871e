"""Quantized tensors kept integer through operators that only move or select values.

onnxruntime's quantizer wraps reshapes, transposes, max pooling and concatenations in
``dequantize -> op -> quantize`` with the same scale and zero point on both sides (they do not
change a value's quantization). ``quantize(op(dequantize(x, s, z)), s, z)`` is then ``op(x)``
exactly: the op runs on int8 data (a quarter of the bytes) and no float kernel is made for it.

A concatenation of inputs quantized with other parameters than its output's (each input's own
range: GhostNet, ShuffleNet, Inception) becomes a concatenation of the inputs each quantized
with the output's parameters, ``concat(quantize(dequantize(x_i, s_i), s))``: the same values, as
quantizing is elementwise, and the requantize of each input fuses into the kernel making it.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from .analysis import mutate_functions
from .qdq import QUANTIZE, Dequantized, as_dequantize, bound, constant, dtype_of, op_name

# Operators whose output values are some of their input values, in any order.
_VALUE_PRESERVING = frozenset({
    "relax.reshape",
    "relax.permute_dims",
    "relax.squeeze",
    "relax.expand_dims",
    "relax.flatten",
    "relax.strided_slice",
    "relax.nn.max_pool2d",
    "relax.concat",
})


def _same_quantization(dq: Dequantized, scale: np.ndarray, zero_point: np.ndarray, dtype: str) -> bool:
    return (
        dq.per_tensor
        and dtype_of(dq.tensor) == dtype
        and np.float32(dq.scale.reshape(-1)[0]) == np.float32(scale.reshape(-1)[0])
        and int(dq.zero_point.reshape(-1)[0]) == int(zero_point.reshape(-1)[0])
    )


@relax.expr_functor.mutator
class _RequantIdentities(relax.PyExprMutator):
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if op_name(call) != QUANTIZE:
            return call
        scale, zero_point = constant(call.args[1], self.lookup_binding), constant(call.args[2], self.lookup_binding)
        inner = bound(call.args[0], self.lookup_binding)
        if scale is None or zero_point is None or scale.size != 1 or op_name(inner) not in _VALUE_PRESERVING:
            return call
        dtype = str(call.attrs.out_dtype)
        if op_name(inner) == "relax.concat":
            fields = bound(inner.args[0], self.lookup_binding)
            if not isinstance(fields, relax.Tuple):
                return call
            dqs = [as_dequantize(field, self.lookup_binding) for field in fields.fields]
            if not all(dq is not None for dq in dqs):
                return call
            # Quantized input by input (exact: quantize is elementwise), the concatenation moves
            # integers: an input with other parameters is requantized in its own producer's kernel.
            quantized = [
                dq.tensor if _same_quantization(dq, scale, zero_point, dtype)
                else self.builder_.emit(relax.Call(call.op, [field, *call.args[1:]], call.attrs))
                for dq, field in zip(dqs, fields.fields)
            ]
            return relax.Call(inner.op, [relax.Tuple(quantized)], inner.attrs)
        dq = as_dequantize(inner.args[0], self.lookup_binding)
        if dq is None or not _same_quantization(dq, scale, zero_point, dtype):
            return call
        return relax.Call(inner.op, [dq.tensor, *inner.args[1:]], inner.attrs)


def requant_identities_pass() -> tvm.transform.Pass:
    """``quantize(op(dequantize(x)))`` with the same parameters -> ``op(x)`` (module doc)."""

    @tvm.transform.module_pass(opt_level=0, name="WasmRequantIdentities")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return mutate_functions(_RequantIdentities(mod), mod)

    return _pass
