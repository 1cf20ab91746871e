"""Writes the ONNX nodes that replace one node: fresh names, the form each operator takes at
the model's opset, and arithmetic on constants done here, in numpy, instead of at run time."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, overload

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import Names, Replacement

Value = str | None
"""A tensor's name, or None for a tensor known to be all zeros (an absent bias or initial
state): arithmetic on it is simplified away instead of emitted."""


class Emitter:
    """Collects the nodes and initializers standing for one node of the model.

    Operations whose inputs are all constants are computed here; their results become
    initializers only when an emitted node reads them, so weights re-laid-out in several
    steps (select a direction, a gate, transpose) are stored once, in their final layout.
    """

    def __init__(self, names: Names, prefix: str, opset: int, constants: Mapping[str, np.ndarray], dtype: np.dtype) -> None:
        self.opset = opset
        self.dtype = dtype  # of the constants it creates (1 and clip bounds)
        self._names = names
        self._prefix = prefix
        self._values = dict(constants)
        self._unwritten: dict[str, np.ndarray] = {}
        self._ints_made: dict[tuple[int, tuple[int, ...]], str] = {}
        self._scalars_made: dict[float, str] = {}
        self._nodes: list[onnx.NodeProto] = []
        self._initializers: list[onnx.TensorProto] = []

    def replacement(self) -> Replacement:
        return Replacement(list(self._nodes), list(self._initializers))

    def value(self, name: Value) -> np.ndarray | None:
        """The value of `name` if it is a constant."""
        return None if name is None else self._values.get(name)

    # -- building blocks -------------------------------------------------------------------

    def constant(self, array: np.ndarray, label: str) -> str:
        name = self._names.fresh(f"{self._prefix}/{label}")
        self._values[name] = self._unwritten[name] = np.asarray(array)
        return name

    def scalar(self, value: float, label: str) -> str:
        """A scalar of the model's dtype, shared by every node that needs it."""
        if value not in self._scalars_made:
            self._scalars_made[value] = self.constant(np.asarray(value, dtype=self.dtype), label)
        return self._scalars_made[value]

    def node(self, op_type: str, inputs: Sequence[str], label: str, *, output: str | None = None, **attributes: Any) -> str:
        """Append one single-output node; its output is `output` or a fresh name."""
        for name in inputs:
            if name in self._unwritten:
                self._initializers.append(numpy_helper.from_array(self._unwritten.pop(name), name))
        output = output or self._names.fresh(f"{self._prefix}/{label}")
        node_name = self._names.fresh(f"{self._prefix}/{label}:{op_type}")
        self._nodes.append(helper.make_node(op_type, list(inputs), [output], name=node_name, **attributes))
        return output

    def _fold(self, inputs: Sequence[str], compute: Callable[..., np.ndarray], label: str) -> str | None:
        arrays = [self._values.get(name) for name in inputs]
        if any(array is None for array in arrays):
            return None
        return self.constant(compute(*arrays), label)

    def _ints(self, values: int | Sequence[int]) -> str:
        """An int64 constant (indices, bounds, axes), shared by every node that needs it."""
        key = (np.ndim(values), tuple(np.ravel(values).tolist()))
        if key not in self._ints_made:
            label = "int64_" + "_".join(map(str, key[1])) + ("" if key[0] else "_scalar")
            self._ints_made[key] = self.constant(np.asarray(values, dtype=np.int64), label)
        return self._ints_made[key]

    # -- operators ---------------------------------------------------------------------------

    def gather(self, x: str, index: int, axis: int, label: str) -> str:
        """`x` at `index` along `axis`, which is dropped."""
        folded = self._fold([x], lambda a: np.take(a, index, axis=axis), label)
        return folded or self.node("Gather", [x, self._ints(index)], label, axis=axis)

    def slice(self, x: str, start: int, end: int, axis: int, label: str) -> str:
        """`x[start:end]` along `axis`, which is kept."""
        folded = self._fold([x], lambda a: np.take(a, range(start, end), axis=axis), label)
        if folded:
            return folded
        if self.opset >= 10:
            bounds = [self._ints([start]), self._ints([end]), self._ints([axis])]
            return self.node("Slice", [x, *bounds], label)
        return self.node("Slice", [x], label, starts=[start], ends=[end], axes=[axis])

    def transpose(self, x: str, perm: Sequence[int], label: str) -> str:
        return self._fold([x], lambda a: np.transpose(a, perm), label) or self.node("Transpose", [x], label, perm=list(perm))

    @overload
    def add(self, a: str, b: Value, label: str) -> str: ...
    @overload
    def add(self, a: Value, b: str, label: str) -> str: ...
    @overload
    def add(self, a: None, b: None, label: str) -> None: ...
    def add(self, a: Value, b: Value, label: str) -> Value:
        if a is None or b is None:
            return b if a is None else a
        return self._fold([a, b], np.add, label) or self.node("Add", [a, b], label)

    def sub(self, a: str, b: str, label: str) -> str:
        return self._fold([a, b], np.subtract, label) or self.node("Sub", [a, b], label)

    @overload
    def mul(self, a: str, b: str, label: str) -> str: ...
    @overload
    def mul(self, a: Value, b: Value, label: str) -> Value: ...
    def mul(self, a: Value, b: Value, label: str) -> Value:
        if a is None or b is None:
            return None
        return self._fold([a, b], np.multiply, label) or self.node("Mul", [a, b], label)

    @overload
    def matmul(self, a: str, b: str, label: str) -> str: ...
    @overload
    def matmul(self, a: None, b: str, label: str) -> None: ...
    @overload
    def matmul(self, a: Value, b: str, label: str) -> Value: ...
    def matmul(self, a: Value, b: str, label: str) -> Value:
        if a is None:
            return None
        return self.node("MatMul", [a, b], label)

    def unsqueeze(self, x: str, axis: int, label: str) -> str:
        if self.opset >= 13:
            return self.node("Unsqueeze", [x, self._ints([axis])], label)
        return self.node("Unsqueeze", [x], label, axes=[axis])

    def concat(self, xs: Sequence[str], axis: int, label: str) -> str:
        if len(xs) == 1:
            return xs[0]
        return self._fold(xs, lambda *a: np.concatenate(a, axis=axis), label) or self.node("Concat", list(xs), label, axis=axis)

    def clip(self, x: str, bound: float, label: str) -> str:
        """`x` limited to [-bound, bound]."""
        if self.opset >= 11:
            return self.node("Clip", [x, self.scalar(-bound, "clip_min"), self.scalar(bound, "clip_max")], label)
        return self.node("Clip", [x], label, min=-bound, max=bound)

    def unary(self, op_type: str, x: str, label: str) -> str:
        return self.node(op_type, [x], label)

    def identity(self, x: str, output: str) -> str:
        """`x` under the name `output` (a name the replaced node promised its consumers)."""
        return self.node("Identity", [x], output, output=output)
