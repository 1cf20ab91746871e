"""Symbolic dimensions at run time: TVM's shape heap, as the executor keeps it.

With bounded symbolic dimensions, TVM's VM lowering (`VMShapeLower`) keeps every symbolic
value in one int64 array, the shape heap: `vm.builtin.match_shape` stores an input's
symbolic dimensions into slots (and checks the others), kernels named `shape_func`
compute derived values (`(frames - 1) // 2 - 3`) into further slots, and
`vm.builtin.make_shape` / `make_prim_value` read slots back as tensor dimensions and
kernel arguments. The executor keeps the same array: it stores the input dimensions once
per run, calls the shape functions, and sets the shapes of the tensors from it.

This module holds what the planner learns about that heap: which slot is which input
dimension, what each derived slot computes (read from the shape functions, for bounds and
messages), and the bounds of every slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import tvm
from tvm import tirx

from ..compiler.tir import walk as tir_walk
from ..errors import WasmBuildError

# vm.builtin.match_shape's codes (TVM's MatchShapeCode) and make_shape's (MakeShapeCode).
MATCH_ASSERT_IMM, MATCH_STORE, MATCH_NO_OP, MATCH_ASSERT_LOAD = 0, 1, 2, 3
MAKE_IMM, MAKE_LOAD = 0, 1


@dataclass(frozen=True)
class HeapDim:
    """A dimension known at run time: slot `slot` of the shape heap."""

    slot: int


Dim = Union[int, HeapDim]


@dataclass(frozen=True)
class SymbolicDim:
    """A bounded symbolic dimension of the inputs, stored in heap slot `slot`."""

    name: str
    min: int
    max: int
    slot: int


@dataclass(frozen=True)
class InputAxis:
    """How `NAME_run_dims` reads axis `axis` of input `input`: store it into slot `slot`
    (the first input with that dimension), or check it equals what is there."""

    input: int
    axis: int
    slot: int
    store: bool


@dataclass(frozen=True)
class DerivedSlot:
    """A slot a shape function computes, with what it computes and its bounds."""

    slot: int
    text: str  # e.g. "(frames - 1) // 2 - 3"
    min: int
    max: int


@dataclass
class ShapeHeap:
    """The heap of one model: its size, the symbolic dimensions and the derived slots."""

    size: int = 0
    dims: list[SymbolicDim] = field(default_factory=list)
    input_axes: list[InputAxis] = field(default_factory=list)
    derived: list[DerivedSlot] = field(default_factory=list)
    # slot -> its value as an expression of the dimensions' variables
    expressions: dict[int, Any] = field(default_factory=dict)
    variables: dict[str, tirx.Var] = field(default_factory=dict)

    def dim_of_slot(self, slot: int) -> SymbolicDim | None:
        return next((d for d in self.dims if d.slot == slot), None)

    def store_input_dim(self, name: str, bounds: tuple[int, int], slot: int) -> None:
        if self.dim_of_slot(slot) is None:
            var = self.variables.setdefault(name, tirx.Var(name, "int64"))
            self.dims.append(SymbolicDim(name, bounds[0], bounds[1], slot))
            self.expressions[slot] = var

    def add_shape_function(self, func: tirx.PrimFunc, name: str) -> None:
        """Learn the slots a shape function writes (straight-line stores into its one buffer)."""
        stores: list[Any] = []
        tir_walk.visit(func.body, lambda node: stores.append(node) if isinstance(node, tirx.BufferStore) else None)
        for store in stores:
            (index,) = store.indices
            if not isinstance(index, tirx.IntImm):
                raise WasmBuildError(f"shape function '{name}' writes a computed heap slot ({index})")
            slot = int(index.value)
            value = tir_walk.rewrite(store.value, self._load)
            self.expressions[slot] = value
            low, high = self.bounds(value)
            self.derived.append(DerivedSlot(slot, describe(value), low, high))

    def _load(self, node: Any) -> Any:
        if isinstance(node, tvm.ir.TensorLoad):
            (index,) = node.indices
            slot = int(index.value)
            if slot not in self.expressions:
                raise WasmBuildError(f"a shape function reads heap slot {slot} before anything writes it")
            return self.expressions[slot]
        return None

    def analyzer(self) -> Any:
        analyzer = tvm.sym.Analyzer()
        for dim in self.dims:
            var = self.variables[dim.name]
            analyzer.bind(var, tvm.ir.Range(tirx.IntImm("int64", dim.min), tirx.IntImm("int64", dim.max + 1)))
        return analyzer

    def bounds(self, expr: Any) -> tuple[int, int]:
        bound = self.analyzer().const_int_bound(expr)
        return int(bound.min_value), int(bound.max_value)

    def slot_bounds(self, slot: int) -> tuple[int, int]:
        if slot not in self.expressions:
            raise WasmBuildError(f"heap slot {slot} is used as a dimension before anything writes it")
        return self.bounds(self.expressions[slot])

    def slot_text(self, slot: int) -> str:
        return describe(self.expressions[slot]) if slot in self.expressions else f"slot {slot}"


_BINARY = {tirx.Add: "+", tirx.Sub: "-", tirx.Mul: "*", tirx.FloorDiv: "//", tirx.FloorMod: "%"}


def describe(expr: Any) -> str:
    """A dimension's expression as people write it: `(frames - 1) // 2 - 3`."""
    if isinstance(expr, tirx.Var):
        return expr.name
    if isinstance(expr, tirx.IntImm):
        return str(int(expr.value))
    if isinstance(expr, tirx.Cast):
        return describe(expr.value)
    for node_type, symbol in _BINARY.items():
        if isinstance(expr, node_type):
            return f"{_operand(expr.a, expr)} {symbol} {_operand(expr.b, expr, right=True)}"
    if isinstance(expr, (tirx.Min, tirx.Max)):
        return f"{type(expr).__name__.lower()}({describe(expr.a)}, {describe(expr.b)})"
    return str(expr)


_PRECEDENCE = {tirx.Add: 1, tirx.Sub: 1, tirx.Mul: 2, tirx.FloorDiv: 2, tirx.FloorMod: 2}


def _operand(expr: Any, parent: Any, right: bool = False) -> str:
    text = describe(expr)
    inner, outer = _PRECEDENCE.get(type(expr)), _PRECEDENCE[type(parent)]
    if inner is not None and (inner < outer or (right and inner == outer)):
        return f"({text})"
    return text
