"""The values an integer input may hold: inputs that index a table (token ids, token types,
positions) must stay inside its rows.

TVM gathers (`R.take(table, indices, mode="fast")`) read whatever lies at a row outside the
table: in WebAssembly that is another tensor's bytes or a trap. onnxruntime and PyTorch refuse
such an index; so does the executor, with these ranges (`NAME_ERROR_VALUE`), and made-up inputs
(the smoke test, `wasm-build profile`) are drawn inside them.

An input is traced to a gather through operators that move values without changing them
(casts to a wide enough integer, reshapes, transposes, broadcasts) and through ONNX's
normalization of negative indices (`where(i < 0, i + rows, i)`), which also admits
`-rows .. -1`. An input that reaches gathers of several tables may hold what fits the
smallest of them; an index changed by arithmetic (`ids + 2`) is not traced, and its input
stays unchecked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import tvm
from tvm import relax

# Operators whose output holds exactly the values of their first argument.
_VALUE_PRESERVING = {
    "relax.reshape",
    "relax.expand_dims",
    "relax.squeeze",
    "relax.permute_dims",
    "relax.broadcast_to",
    "relax.flatten",
}
_INTEGER_BITS = {"int8": 8, "int16": 16, "int32": 32, "int64": 64, "uint8": 8, "uint16": 16, "uint32": 32, "uint64": 64}


@dataclass(frozen=True)
class ValueRange:
    """The values an input may hold: `min` to `max`, both included."""

    min: int
    max: int

    def describe(self) -> dict[str, int]:
        return {"min": self.min, "max": self.max}

    @classmethod
    def of(cls, tensor: dict[str, Any]) -> ValueRange | None:
        """The range in a manifest's description of an input, if it has one."""
        values = tensor.get("values")
        return None if values is None else cls(int(values["min"]), int(values["max"]))


@dataclass(frozen=True)
class _Origin:
    param: int  # index of the input the value comes from
    negatives: bool  # negative values count from the table's end (ONNX's normalization)


def input_value_ranges(module: tvm.IRModule) -> dict[int, ValueRange]:
    """Ranges of the integer inputs of `module["main"]` (a Relax function as a frontend made
    it) that index tables, by input position."""
    main = module["main"]
    origins: dict[relax.Var, _Origin] = {}
    for index, param in enumerate(main.params):
        if _dtype(param) in _INTEGER_BITS:
            origins[param] = _Origin(index, negatives=False)
    bound_to: dict[relax.Var, relax.Expr] = {}
    rows_by_param: dict[int, list[tuple[int, bool]]] = {}
    body = main.body
    if not isinstance(body, relax.SeqExpr):
        return {}
    for block in body.blocks:
        for binding in block.bindings:
            if not isinstance(binding, relax.VarBinding):
                continue
            value = binding.value
            bound_to[binding.var] = value
            if not (isinstance(value, relax.Call) and isinstance(value.op, tvm.ir.Op)):
                continue
            origin = _traced(value, origins, bound_to)
            if origin is not None:
                origins[binding.var] = origin
            if value.op.name == "relax.take" and str(value.attrs.mode) == "fast":
                indices = origins.get(value.args[1]) if isinstance(value.args[1], relax.Var) else None
                rows = _rows(value.args[0], int(value.attrs.axis) if value.attrs.axis is not None else None)
                if indices is not None and rows is not None:
                    rows_by_param.setdefault(indices.param, []).append((rows, indices.negatives))
    ranges = {}
    for param, uses in rows_by_param.items():
        rows = min(r for r, _ in uses)
        # Negatives are safe only where every gather normalizes them.
        negatives = all(n for _, n in uses)
        ranges[param] = ValueRange(-rows if negatives else 0, rows - 1)
    return ranges


def _traced(call: relax.Call, origins: dict, bound_to: dict) -> _Origin | None:
    """The input whose values `call` passes on unchanged, if any."""
    name = call.op.name
    source = call.args[0] if call.args else None
    if name in _VALUE_PRESERVING and isinstance(source, relax.Var):
        return origins.get(source)
    if name == "relax.astype" and isinstance(source, relax.Var) and source in origins:
        # Casts to 32 bits or more keep every row number a table can have (the input itself is
        # checked in its own type, before any cast); narrower ones may wrap a valid-looking value.
        return origins[source] if _dtype(call).startswith("int") and _INTEGER_BITS[_dtype(call)] >= 32 else None
    if name == "relax.where":
        return _normalized_negatives(call, origins, bound_to)
    return None


def _normalized_negatives(call: relax.Call, origins: dict, bound_to: dict) -> _Origin | None:
    """`where(i < 0, i + n, i)`: the values of `i`, negatives counted from the end."""
    condition, shifted, plain = call.args
    if not isinstance(plain, relax.Var) or plain not in origins:
        return None
    origin = origins[plain]
    less = bound_to.get(condition) if isinstance(condition, relax.Var) else None
    add = bound_to.get(shifted) if isinstance(shifted, relax.Var) else None
    if not (_is_op(less, "relax.less") and _is_op(add, "relax.add")):
        return None
    if not (less.args[0].same_as(plain) and _is_zero(less.args[1]) and add.args[0].same_as(plain)):
        return None
    return _Origin(origin.param, negatives=True)


def _rows(table: relax.Expr, axis: int | None) -> int | None:
    shape = getattr(table.ty, "shape", None)
    if shape is None or not hasattr(shape, "values"):
        return None
    dims = list(shape.values)
    if not all(isinstance(d, tvm.tirx.IntImm) for d in dims):
        return None
    return math.prod(int(d) for d in dims) if axis is None else int(dims[axis])  # None: the table flattened


def _is_op(expr: relax.Expr | None, name: str) -> bool:
    return isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) and expr.op.name == name


def _is_zero(expr: relax.Expr) -> bool:
    return isinstance(expr, tvm.ir.expr.Constant) and expr.value.numpy().size == 1 and int(expr.value.numpy().reshape(())) == 0


def _dtype(expr: relax.Expr) -> str:
    return str(getattr(expr.ty, "dtype", ""))
