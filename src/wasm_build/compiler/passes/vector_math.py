"""``exp``, ``erf``, ``log``, ``sigmoid``, ``tanh``, SiLU, both GELUs, ``softmax`` and
``log_softmax`` in float32 become TE kernels built from vectorizable operations
(`compiler.tir.vector_math`): wasm has no vector ``expf``/``erff``, and a libm call per
lane serializes the kernel. ``power`` by a constant 2, 3 or 4 (GPT-2's GELU cubes its input)
is multiplied out for the same reason: ``powf`` per lane."""

from __future__ import annotations

import tvm
from tvm import relax, te, tirx, topi

from ..tir.vector_math import (
    normal_exp,
    vector_erf,
    vector_exp,
    vector_gelu,
    vector_gelu_tanh,
    vector_log,
    vector_sigmoid,
    vector_silu,
    vector_tanh,
)
from .analysis import mutate_functions


def _elementwise_te(fn):
    def compute(x: te.Tensor) -> te.Tensor:
        return te.compute(x.shape, lambda *i: fn(x(*i)), name="T_" + fn.__name__)

    return compute


def _row_of(index, axis: int) -> list:
    """The index of an element's row in a reduction over ``axis`` that keeps its dims."""
    return [0 if d == axis else i for d, i in enumerate(index)]


# Values in a vector, and in the four vectors a long row reduction keeps apart (so that each
# step does not wait for the last one's result).
_LANES = 4
_LANES_APART = 16


def _row_reduce(x: te.Tensor, axis: int, reduce_name: str) -> te.Tensor:
    """``max`` or ``sum`` over ``axis``, keeping it as a dimension of one.

    A row whose length is not a multiple of 4 (197 tokens) is reduced in two parts: the whole
    vectors of its start, which the row_reduction rule vectorizes (four vectors apart once
    there are 32 values or more), then the values left, once per row. In one piece it stayed
    a scalar loop: float reductions are never reordered, so LLVM does not vectorize them
    either (ViT-Tiny's softmax: 9 cycles a value)."""
    topi_reduce, reducer = _REDUCTIONS[reduce_name]
    if not isinstance(x.shape[axis], tvm.tirx.IntImm):  # a symbolic row (seq): in one piece
        return topi_reduce(x, axis=axis, keepdims=True)
    length = int(x.shape[axis])
    whole = length - length % (_LANES_APART if length >= 2 * _LANES_APART else _LANES)
    if length % _LANES == 0 or whole < 2 * _LANES:
        return topi_reduce(x, axis=axis, keepdims=True)
    shape = [1 if d == axis else n for d, n in enumerate(x.shape)]

    def at(index, position):
        return x(*[position if d == axis else i for d, i in enumerate(index)])

    def vectors(*index):
        k = te.reduce_axis((0, whole), name="k")
        return reducer(at(index, k), axis=k)

    part = te.compute(shape, vectors, name=f"T_{reduce_name}_vectors")

    def row(*index):
        # Step 0 takes the vectors' result, steps 1.. the values left (a reduction: computed once
        # per row, not inlined into each value's consumer).
        t = te.reduce_axis((0, length - whole + 1), name="k_rest")
        return reducer(tvm.tirx.Select(t == 0, part(*index), at(index, whole + t - 1)), axis=t)

    return te.compute(shape, row, name=f"T_{reduce_name}_row")


_REDUCTIONS = {"max": (topi.max, te.max), "sum": (topi.sum, te.sum)}


# exp(x) is subnormal below this (ln of float32's smallest normal). Subnormal arithmetic costs
# x86 about a hundred cycles an operation: a causal mask's -3.4e38 shifted values, computed to
# subnormals and added up, made a masked softmax four times slower than an unmasked one.
_SUBNORMAL_EXP_BELOW = -87.336544


def _softmax_exp(shifted: tirx.PrimExpr) -> tirx.PrimExpr:
    """exp of a value shifted by its row's maximum, 0 where it would be subnormal: against the
    row's sum (at least 1) such a value is below float32's smallest normal number anyway."""
    floor = tirx.const(_SUBNORMAL_EXP_BELOW, "float32")
    return tirx.Select(shifted < floor, tirx.const(0.0, "float32"), normal_exp(tirx.max(shifted, floor)))


def _softmax_te(x: te.Tensor, axis: int) -> te.Tensor:
    axis = axis % len(x.shape)
    row_max = _row_reduce(x, axis, "max")

    def shifted_exp(*i):
        return _softmax_exp(x(*i) - row_max(*_row_of(i, axis)))

    exps = te.compute(x.shape, shifted_exp, name="T_softmax_exp")
    # One division a row, then a multiply a value (a vector division costs x86 about four
    # cycles of its divider: a quarter of a 64-value row's time). onnxruntime's kernels scale
    # by the reciprocal of the sum the same way.
    sums = _row_reduce(exps, axis, "sum")
    scales = te.compute(sums.shape, lambda *i: tirx.const(1.0, "float32") / sums(*i), name="T_softmax_scale")
    return te.compute(x.shape, lambda *i: exps(*i) * scales(*_row_of(i, axis)), name="T_softmax")


def _log_softmax_te(x: te.Tensor, axis: int) -> te.Tensor:
    axis = axis % len(x.shape)
    row_max = _row_reduce(x, axis, "max")
    shifted = te.compute(x.shape, lambda *i: x(*i) - row_max(*_row_of(i, axis)), name="T_log_softmax_shifted")
    exps = te.compute(x.shape, lambda *i: _softmax_exp(shifted(*i)), name="T_log_softmax_exp")
    sums = _row_reduce(exps, axis, "sum")
    log_sum = te.compute(sums.shape, lambda *i: vector_log(sums(*i)), name="T_log_softmax_log_sum")
    return te.compute(x.shape, lambda *i: shifted(*i) - log_sum(*_row_of(i, axis)), name="T_log_softmax")


def is_float32(expr: relax.Expr) -> bool:
    ty = expr.ty
    return isinstance(ty, relax.TensorType) and ty.dtype == "float32"


_ELEMENTWISE = {
    "relax.exp": vector_exp,
    "relax.erf": vector_erf,
    "relax.log": vector_log,
    "relax.sigmoid": vector_sigmoid,
    "relax.tanh": vector_tanh,
    "relax.nn.silu": vector_silu,
    "relax.nn.gelu": vector_gelu,
    "relax.nn.gelu_tanh": vector_gelu_tanh,
}


# Exponents `power` multiplies out (x * x * x, within an ulp or two of powf's rounding).
_MULTIPLIED_EXPONENTS = (2, 3, 4)


def _multiplied_exponent(exponent: relax.Expr) -> int | None:
    """A constant exponent of one value in `_MULTIPLIED_EXPONENTS`, else None."""
    if not isinstance(exponent, tvm.ir.expr.Constant) or not isinstance(exponent.value, tvm.runtime.Tensor):
        return None
    values = exponent.value.numpy().reshape(-1)
    if values.size != 1 or values.dtype.kind != "f" or float(values[0]) not in _MULTIPLIED_EXPONENTS:
        return None
    return int(values[0])


def _power_te(x: te.Tensor, exponent: int) -> te.Tensor:
    def value(*i):
        v = x(*i)
        square = v * v
        return {2: square, 3: square * v, 4: square * square}[exponent]

    return te.compute(x.shape, value, name="T_power")


@relax.expr_functor.mutator
class _VectorMath(relax.PyExprMutator):
    """Replace float32 calls of the ops in ``_ELEMENTWISE`` and softmax by TE kernels."""

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not isinstance(call.op, tvm.ir.Op) or not call.args or not is_float32(call.args[0]):
            return call
        name = call.op.name
        fn = _ELEMENTWISE.get(name)
        if fn is not None:
            hint = name.rsplit(".", 1)[-1]
            return self.builder_.call_te(_elementwise_te(fn), call.args[0], primfunc_name_hint=hint)
        if name == "relax.power":
            exponent = _multiplied_exponent(call.args[1])
            same_shape = tuple(call.ty.shape.values) == tuple(call.args[0].ty.shape.values)  # no broadcast by the exponent
            if exponent is not None and same_shape:
                return self.builder_.call_te(_power_te, call.args[0], exponent, primfunc_name_hint="power")
            return call
        if name == "relax.nn.softmax":
            return self.builder_.call_te(_softmax_te, call.args[0], int(call.attrs.axis),
                                         primfunc_name_hint="softmax")
        if name == "relax.nn.log_softmax":
            return self.builder_.call_te(_log_softmax_te, call.args[0], int(call.attrs.axis),
                                         primfunc_name_hint="log_softmax")
        return call


def vector_math_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmVectorMath")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return mutate_functions(_VectorMath(mod), mod)

    return _pass
