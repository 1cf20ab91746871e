"""Integer shape arithmetic on constants, evaluated in numpy exactly as TVM computes it.

Frontends compute slice bounds and shapes with small Relax tensor programs (``shape_of``,
``take``, ``scatter_elements``, ...). Folding them with TVM's FoldConstant builds every
operation with LLVM (~30 ms each: seconds for a ShuffleNet); these few operations are
evaluated here instead, with TVM's semantics (truncating ``divide``, ``take`` modes,
negative scatter indices). Anything else raises `NotEvaluable`, and callers fold with TVM.
tests/test_channel_shuffle.py checks each operation against FoldConstant.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import tvm
from tvm import relax


class NotEvaluable(Exception):
    """The expression is not known at build time, or uses an operation not evaluated here."""


@dataclass(frozen=True)
class StaticShape:
    """A `relax.ShapeExpr` with constant dimensions."""

    dims: tuple[int, ...]


Value = Any  # np.ndarray | StaticShape | int | list[Value]
Lookup = Callable[[relax.Var], relax.Expr]  # a var's definition; raises NotEvaluable


def _nonzero(b: np.ndarray) -> np.ndarray:
    if np.any(b == 0):
        raise NotEvaluable("division by zero")
    return b


def _trunc_divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    quotient = np.abs(a) // np.abs(_nonzero(b))
    return np.where((a < 0) != (b < 0), -quotient, quotient)


def _take(call: relax.Call, data: np.ndarray, indices: np.ndarray) -> np.ndarray:
    axis = int(call.attrs.axis) if call.attrs.axis is not None else None
    extent = data.size if axis is None else data.shape[axis]
    mode = str(call.attrs.mode)
    if mode == "wrap":
        indices = np.mod(indices, extent)
    elif mode == "clip":
        indices = np.clip(indices, 0, extent - 1)
    elif np.any((indices < 0) | (indices >= extent)):  # "fast": out of range reads memory in TVM
        raise NotEvaluable("take out of range")
    return np.take(data, indices, axis=axis)


def _scatter_elements(call: relax.Call, data: np.ndarray, indices: np.ndarray, updates: np.ndarray) -> np.ndarray:
    if str(call.attrs.reduction) != "update":
        raise NotEvaluable("scatter_elements reduction")
    axis = int(call.attrs.axis) % data.ndim
    indices = np.where(indices < 0, indices + data.shape[axis], indices)
    result = data.copy()
    np.put_along_axis(result, indices, updates, axis)
    return result


def _shape_to_tensor(_call: relax.Call, shape: Value) -> np.ndarray:
    if not isinstance(shape, StaticShape):
        raise NotEvaluable("shape_to_tensor of something other than a shape")
    return np.array(shape.dims, dtype="int64")


def _binary(function: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[..., np.ndarray]:
    return lambda _call, a, b: function(a, b)


_OPERATIONS: dict[str, Callable[..., Value]] = {
    "relax.add": _binary(np.add),
    "relax.subtract": _binary(np.subtract),
    "relax.multiply": _binary(np.multiply),
    "relax.divide": _binary(_trunc_divide),
    "relax.floor_divide": _binary(lambda a, b: np.floor_divide(a, _nonzero(b))),
    "relax.maximum": _binary(np.maximum),
    "relax.minimum": _binary(np.minimum),
    "relax.less": _binary(np.less),
    "relax.less_equal": _binary(np.less_equal),
    "relax.greater": _binary(np.greater),
    "relax.greater_equal": _binary(np.greater_equal),
    "relax.equal": _binary(np.equal),
    "relax.not_equal": _binary(np.not_equal),
    "relax.where": lambda _call, c, a, b: np.where(c, a, b),
    "relax.take": _take,
    "relax.scatter_elements": _scatter_elements,
    "relax.concat": lambda call, items: np.concatenate(items, axis=int(call.attrs.axis)),
    "relax.astype": lambda _call, a: a,  # cast to the call's dtype below
    "relax.shape_to_tensor": _shape_to_tensor,
}


def _integer_dtype(ty: Any) -> str:
    """The dtype of an integer or boolean tensor type; NotEvaluable for anything else."""
    dtype = str(ty.dtype) if isinstance(ty, relax.TensorType) else ""
    if not (dtype.startswith(("int", "uint")) or dtype == "bool"):
        raise NotEvaluable(f"not an integer tensor: {ty}")
    return dtype


def _is_float(value: Value) -> bool:
    if isinstance(value, list):
        return any(_is_float(item) for item in value)
    return isinstance(value, np.ndarray) and value.dtype.kind not in "iub"


class Evaluator:
    """Evaluates integer expressions of one function; values are remembered per var."""

    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self.values: dict[Any, Value] = {}

    def evaluate(self, expr: relax.Expr) -> Value:
        if isinstance(expr, relax.Var):
            if expr not in self.values:
                self.values[expr] = self.evaluate(self.lookup(expr))
            return self.values[expr]
        if isinstance(expr, tvm.ir.expr.GenericConst):
            return expr.value.numpy()
        if isinstance(expr, relax.ShapeExpr):
            if not all(isinstance(d, tvm.tirx.IntImm) for d in expr.values):
                raise NotEvaluable("symbolic shape")
            return StaticShape(tuple(int(d) for d in expr.values))
        if isinstance(expr, relax.Tuple):
            return [self.evaluate(field) for field in expr.fields]
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            return self._call(expr)
        raise NotEvaluable(type(expr).__name__)

    def _call(self, call: relax.Call) -> Value:
        operation = _OPERATIONS.get(call.op.name)
        if operation is None:
            raise NotEvaluable(call.op.name)
        dtype = _integer_dtype(call.ty)
        args = [self.evaluate(arg) for arg in call.args]
        if any(_is_float(arg) for arg in args):
            raise NotEvaluable(f"{call.op.name} of floats")  # rounding and NaN casts: left to TVM
        with np.errstate(over="ignore"):  # int64 wraps in TVM as in numpy
            result = operation(call, *args)
        return np.asarray(result).astype(dtype)
