"""What ONNX's recurrent operators (LSTM, GRU, RNN) share: reading and checking a node, laying
out its weights per direction and gate, unrolling it over its static sequence length, and
assembling the outputs Y, Y_h (and Y_c).

Unrolled tensors keep X's time axis with size 1: a state is `[1, batch, hidden]` for
`layout = 0` and `[batch, 1, hidden]` for `layout = 1`, which is also where `initial_h`,
`Y_h` and `Y_c` keep the direction axis. So one axis, `Layer.time_axis`, serves every slice and
concat, and no layout needs a transpose. The input projections of all time steps are one
MatMul for every gate, ahead of the loop; each step adds one recurrent MatMul for its gates
(stacked side by side: one kernel on a row of 4 x hidden for an LSTM, not four on rows of hidden).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
from onnx import helper

from ...codegen.abi import MAX_KERNEL_PARAMS
from ...errors import WasmBuildError
from ..shapes import pin_hint
from .emitter import Emitter, Value
from .graph import (
    Names,
    Replacement,
    TensorFacts,
    constants,
    default_opset,
    graphs,
    infer_facts,
    is_standard,
    replace_nodes,
)

# Activations ONNX names (case-insensitively, as onnxruntime reads them) that map to an
# operator of the same meaning. The others take alpha/beta parameters; refused by name.
ACTIVATIONS = {"sigmoid": "Sigmoid", "tanh": "Tanh", "relu": "Relu"}
_DIRECTIONS = {"forward": (False,), "reverse": (True,), "bidirectional": (False, True)}
# Before opset 7, Add and Mul broadcast only with an explicit `broadcast` attribute.
MIN_OPSET = 7
# The operators' inputs, by position (GRU and RNN stop at INITIAL_H).
X, W, R, B, SEQUENCE_LENS, INITIAL_H, INITIAL_C, P = range(8)


@dataclass(frozen=True)
class Cell:
    """The fixed facts of one recurrent operator."""

    op_type: str
    gates: int  # gate blocks stacked in W, R and B (LSTM: i o f c; GRU: z r h; RNN: one)
    activations: tuple[str, ...]  # default activation of each role, for one direction
    states: int  # recurrent states, each an initial_* input and a Y_* output: H (and C for LSTM)


@dataclass(frozen=True)
class Layer:
    """One recurrent node, checked, with what unrolling it needs."""

    node: onnx.NodeProto
    cell: Cell
    hidden_size: int
    seq_length: int
    layout: int
    reverse: tuple[bool, ...]  # per direction
    activations: tuple[tuple[str, ...], ...]  # an ONNX operator per role, per direction
    clip: float | None

    def __str__(self) -> str:
        return describe(self.node)

    @property
    def time_axis(self) -> int:
        return self.layout

    def input(self, index: int) -> str | None:
        """The node's input `index`, None when absent (an empty name or past the end)."""
        return (self.node.input[index] or None) if index < len(self.node.input) else None

    def output(self, index: int) -> str | None:
        """The node's output `index` (Y, Y_h, Y_c), None when unused."""
        return (self.node.output[index] or None) if index < len(self.node.output) else None

    def required(self, index: int) -> str:
        """X, W or R: always present (`read_layer` checks)."""
        return str(self.node.input[index])

    def steps(self, direction: int) -> range:
        """Time steps in the order the direction visits them."""
        return range(self.seq_length - 1, -1, -1) if self.reverse[direction] else range(self.seq_length)


@dataclass
class Unrolled:
    """One direction, unrolled."""

    hidden: list[str]  # H after each time step, in time order
    final: tuple[str, ...]  # the last states: H (then C)


Unroll = Callable[[Emitter, Layer, int], Unrolled]


def describe(node: onnx.NodeProto) -> str:
    """How errors name a node: by its name, or by an output when it has none."""
    if node.name:
        return f"{node.op_type} node '{node.name}'"
    return f"{node.op_type} node (unnamed, output '{next((o for o in node.output if o), '')}')"


def attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """An attribute's value (strings decoded), or `default` when the node does not set it."""
    for attr in node.attribute:
        if attr.name == name:
            value = helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


# -- the rewrite ---------------------------------------------------------------------------


def rewrite_layers(model: onnx.ModelProto, cell: Cell, unroll: Unroll) -> onnx.ModelProto:
    """A copy of `model` with every `cell.op_type` node of the main graph unrolled by `unroll`
    (`model` itself when it has none)."""
    targets = [i for i, node in enumerate(model.graph.node) if is_standard(node, [cell.op_type])]
    _refuse_nested(model, cell)
    if not targets:
        return model
    opset = default_opset(model)
    if opset < MIN_OPSET:
        raise WasmBuildError(
            f"{describe(model.graph.node[targets[0]])}: the model uses ONNX opset {opset}; "
            f"wasm-build unrolls {cell.op_type} for opset {MIN_OPSET} and newer",
            fix="re-export the model with a newer opset (e.g. torch.onnx.export(..., opset_version=17))",
        )
    facts = infer_facts(model)
    known = constants(model.graph)
    names = Names(model)
    replacements: dict[int, Replacement] = {}
    for index in targets:
        node = model.graph.node[index]
        layer = read_layer(node, cell, facts, known, model)
        emitter = Emitter(names, node.name or f"{cell.op_type.lower()}{index}", opset, known, _dtype(layer, facts, known))
        unrolled = [unroll(emitter, layer, direction) for direction in range(len(layer.reverse))]
        _outputs(emitter, layer, unrolled)
        replacements[index] = emitter.replacement()
    return replace_nodes(model, replacements)


def _refuse_nested(model: onnx.ModelProto, cell: Cell) -> None:
    for graph in list(graphs(model.graph))[1:]:
        for node in graph.node:
            if is_standard(node, [cell.op_type]):
                raise WasmBuildError(
                    f"{describe(node)} is inside a subgraph (graph '{graph.name}' of an If, Loop or Scan); "
                    f"wasm-build unrolls {cell.op_type} only in the main graph",
                    fix="export the model without control flow around the recurrent layer (e.g. torch.onnx.export of a module whose forward has no data-dependent branches or loops)",
                )


def _dtype(layer: Layer, facts: TensorFacts, known: Mapping[str, np.ndarray]) -> np.dtype:
    x, w = layer.required(X), layer.required(W)
    if x in facts.elem_types:
        return np.dtype(helper.tensor_dtype_to_np_dtype(facts.elem_types[x]))
    if w in known:
        return known[w].dtype
    return np.dtype(np.float32)


# -- reading and checking a node -----------------------------------------------------------


def read_layer(node: onnx.NodeProto, cell: Cell, facts: TensorFacts, known: Mapping[str, np.ndarray], model: onnx.ModelProto) -> Layer:
    """The node's attributes and static sizes, or an error naming what wasm-build cannot unroll."""
    where = describe(node)
    direction = attribute(node, "direction", "forward")
    if direction not in _DIRECTIONS:
        raise WasmBuildError(f"{where} has direction '{direction}'; ONNX allows forward, reverse or bidirectional", fix="re-export the model")
    reverse = _DIRECTIONS[direction]
    layout = attribute(node, "layout", 0)
    if layout not in (0, 1):
        raise WasmBuildError(f"{where} has layout {layout}; ONNX allows 0 or 1", fix="re-export the model")
    if len(node.input) <= R or not all(node.input[:3]):
        raise WasmBuildError(f"{where} lacks one of its required inputs X, W, R", fix="re-export the model")
    clip = attribute(node, "clip")
    layer = Layer(
        node=node,
        cell=cell,
        hidden_size=_hidden_size(node, facts),
        seq_length=_seq_length(node, layout, facts, model),
        layout=layout,
        reverse=reverse,
        activations=_activations(node, cell, len(reverse)),
        clip=float(clip) if clip is not None else None,
    )
    _check_sequence_lens(layer, known)
    _check_joined_states(layer)
    return layer


def _hidden_size(node: onnx.NodeProto, facts: TensorFacts) -> int:
    size = attribute(node, "hidden_size")
    if size is None:  # optional in the schema: R is [num_directions, gates * hidden, hidden]
        shape = facts.shape(node.input[R]) or ()
        size = shape[-1] if shape else None
    if not isinstance(size, int) or size <= 0:
        raise WasmBuildError(
            f"{describe(node)} has no hidden_size attribute and its R has no static shape", fix="re-export the model with static weight shapes"
        )
    return size


def _seq_length(node: onnx.NodeProto, layout: int, facts: TensorFacts, model: onnx.ModelProto) -> int:
    x = node.input[X]
    shape = facts.shape(x)
    length = shape[layout] if shape is not None and len(shape) == 3 else None
    if isinstance(length, int) and length > 0:
        return length
    where = f"{describe(node)}: the sequence length of its input X '{x}' (dimension {layout})"
    why = f"wasm-build unrolls {node.op_type} over a static number of time steps"
    if length == 0:
        raise WasmBuildError(f"{where} is 0, an empty sequence; {why}", fix="export the model with at least one time step")
    # A symbol of the graph's inputs can be pinned; others are shape inference's own (unk__N).
    for value in model.graph.input:
        dims = [d.dim_value if d.HasField("dim_value") else d.dim_param for d in value.type.tensor_type.shape.dim]
        if isinstance(length, str) and length in dims:
            raise WasmBuildError(
                f"{where} is the symbolic dimension '{length}'; {why}",
                fix=f"pin '{length}' through input '{value.name}': " + pin_hint(value.name, dims),
            )
    raise WasmBuildError(
        f"{where} is not known: ONNX shape inference cannot follow it from the input shapes to this node; {why}",
        fix="export the model with a fixed sequence length; if the length is computed at run time, simplify "
        "the model (e.g. python -m onnxsim) so that it is a constant",
    )


def _activations(node: onnx.NodeProto, cell: Cell, directions: int) -> tuple[tuple[str, ...], ...]:
    names = attribute(node, "activations") or []
    names = [n.decode() if isinstance(n, bytes) else n for n in names]
    count = len(cell.activations)
    if not names:
        per_direction = [list(cell.activations)] * directions
    elif len(names) >= count * directions:
        per_direction = [names[d * count : (d + 1) * count] for d in range(directions)]
    else:
        raise WasmBuildError(
            f"{describe(node)} lists {len(names)} activation(s) {names}; it needs {count} per direction ({count * directions})",
            fix="re-export the model",
        )
    unsupported = sorted({name for chosen in per_direction for name in chosen if name.lower() not in ACTIVATIONS})
    if unsupported:
        raise WasmBuildError(
            f"{describe(node)} uses activation(s) {', '.join(unsupported)}; wasm-build unrolls "
            f"{node.op_type} with Sigmoid, Tanh and Relu only",
            fix="train and export the layer with the default activations (or Relu for RNN), "
            "or write the recurrence with standard operators (MatMul, Add and the activation's own ONNX operator)",
        )
    return tuple(tuple(ACTIVATIONS[name.lower()] for name in chosen) for chosen in per_direction)


def _check_joined_states(layer: Layer) -> None:
    """Refuse, before unrolling, an output Y no engine would load: its Concat's kernel takes
    every unrolled step's state (found here, not after minutes of compiling)."""
    y, joined = layer.output(0), len(layer.reverse) * layer.seq_length
    if y is None or joined < MAX_KERNEL_PARAMS:
        return
    raise WasmBuildError(
        f"{layer}: its output Y '{y}' joins the states of {joined} unrolled time steps in one kernel of more than "
        f"{joined} tensors, and WebAssembly engines (wasmtime, V8) load functions of at most {MAX_KERNEL_PARAMS} parameters",
        fix="export the layer over fewer steps and run a long input in chunks, passing the final states (Y_h, Y_c) "
        "of one run as the initial states of the next; a model that reads only the last step of Y can read Y_h instead",
    )


def _check_sequence_lens(layer: Layer, known: Mapping[str, np.ndarray]) -> None:
    name = layer.input(SEQUENCE_LENS)
    if name is None:
        return
    lengths = known.get(name)
    if lengths is not None and lengths.size and np.all(lengths == layer.seq_length):
        return  # every sequence runs the full length: the input changes nothing
    found = f"the constant {lengths.tolist()}" if lengths is not None else "computed at run time"
    raise WasmBuildError(
        f"{layer} has sequence_lens '{name}' ({found}); wasm-build unrolls every sequence over the full length "
        f"{layer.seq_length} and cannot stop sequences early",
        fix="export the layer without per-sequence lengths (no pack_padded_sequence): pad every sequence to the "
        "full length and mask the padded steps' outputs in the host, or run shorter inputs through a model built for their length",
    )


# -- pieces of an unrolled direction ----------------------------------------------------------


def stacked_gate_weights(em: Emitter, layer: Layer, index: int, direction: int, gates: range) -> str:
    """Input W or R of one direction with the blocks of `gates` side by side: one
    `[in, len(gates) * hidden]` matrix (transposed: X @ W^T), so that one MatMul computes all
    those gates (a step's kernels then work on a row of 4 * hidden, not four of hidden)."""
    h = layer.hidden_size
    label = f"{'WR'[index - W]}{direction}_{gates.start}-{gates.stop}"
    matrix = em.gather(layer.required(index), direction, 0, f"{'WR'[index - W]}{direction}")
    return em.transpose(em.slice(matrix, gates.start * h, gates.stop * h, 0, label), (1, 0), f"{label}T")


def stacked_vectors(em: Emitter, vectors: list[Value], label: str) -> Value:
    """Per-gate vectors (of `gate_vectors`) side by side, in the order of `stacked_gate_weights`;
    None when the node has none."""
    return None if any(v is None for v in vectors) else em.concat(vectors, 0, label)


def gate_block(em: Emitter, layer: Layer, stacked: str, gate: int, label: str) -> str:
    """Gate `gate`'s block of a stacked pre-activation (its last axis)."""
    h = layer.hidden_size
    return em.slice(stacked, gate * h, (gate + 1) * h, 2, label)


def block_of(em: Emitter, layer: Layer, stacked: Value, gate: int, label: str) -> Value:
    """`gate_block` of a pre-activation term that may be None (the terms of a zero state)."""
    return None if stacked is None else gate_block(em, layer, stacked, gate, label)


def gate_vectors(em: Emitter, layer: Layer, index: int, direction: int, count: int) -> list[Value]:
    """The `count` vectors of `hidden_size` stacked in input B or P for one direction (Nones
    when the node has no such input)."""
    name, label = layer.input(index), "B" if index == B else "P"
    if name is None:
        return [None] * count
    h = layer.hidden_size
    vector = em.gather(name, direction, 0, f"{label}{direction}")
    return [em.slice(vector, k * h, (k + 1) * h, 0, f"{label}{direction}_{k}") for k in range(count)]


def initial_state(em: Emitter, layer: Layer, index: int, direction: int) -> Value:
    """One direction's initial_h or initial_c (input `index`) as a state; None when zero."""
    name = layer.input(index)
    if name is None:
        return None
    state = em.slice(name, direction, direction + 1, layer.time_axis, f"{'HC'[index - INITIAL_H]}0_{direction}")
    value = em.value(state)
    return None if value is not None and not value.any() else state


def project(em: Emitter, layer: Layer, weight: str, bias: Value, label: str) -> str:
    """X @ weight + bias for every time step at once."""
    return em.add(em.matmul(layer.required(X), weight, label), bias, f"{label}_b")


def at(em: Emitter, layer: Layer, projected: str, step: int, label: str) -> str:
    """An input projection at one time step."""
    return em.slice(projected, step, step + 1, layer.time_axis, label)


def gate_input(em: Emitter, layer: Layer, projected: str, step: int, hidden: Value, weight: str, label: str) -> str:
    """A gate's pre-activation at `step`: its input projection plus `hidden @ weight`."""
    return em.add(at(em, layer, projected, step, f"{label}_x"), em.matmul(hidden, weight, f"{label}_r"), f"{label}_sum")


def activate(em: Emitter, layer: Layer, op_type: str, x: str, label: str) -> str:
    """`op_type(x)`, after clipping x when the node has `clip` (ONNX clips activation inputs)."""
    if layer.clip is not None:
        x = em.clip(x, layer.clip, f"{label}_clip")
    return em.unary(op_type, x, label)


def _outputs(em: Emitter, layer: Layer, unrolled: list[Unrolled]) -> None:
    """Y, Y_h, Y_c under the names the node gave them; unused (empty) ones are not built."""
    axis = layer.time_axis
    y = layer.output(0)
    if y is not None:
        # Per direction: the steps' states along the time axis, then a direction axis after it.
        per_direction = [
            em.unsqueeze(em.concat(run.hidden, axis, f"Y{d}_steps"), axis + 1, f"Y{d}") for d, run in enumerate(unrolled)
        ]
        em.identity(em.concat(per_direction, axis + 1, "Y"), y)
    for state in range(layer.cell.states):
        name = layer.output(1 + state)  # Y_h, Y_c
        if name is not None:
            em.identity(em.concat([run.final[state] for run in unrolled], axis, f"final{state}"), name)
