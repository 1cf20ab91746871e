"""Reads of tensor sequences known at build time, as plain tensors.

A sequence built by `SequenceConstruct`/`SequenceEmpty`/`SequenceInsert`/`SequenceErase` at
constant positions holds known tensors, and `SplitToSequence` of a static shape has a known
length. `SequenceAt` at a constant position becomes an `Identity` of the tensor it reads and
`SequenceLength` a `Constant`; the sequence operations nobody reads then go. TVM gets these
wrong or cannot import them: its `SequenceInsert` at a negative position appends, and its
`SequenceLength` of a `SplitToSequence` fails ("object of type 'Call' has no len()").
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import Constants, remove_dead_nodes, static_shapes

# What is known of a sequence: its tensors' names, or only its length.
Known = Union[list[str], int]

SEQUENCE_OPS = {"SequenceEmpty", "SequenceConstruct", "SequenceInsert", "SequenceErase", "SplitToSequence"}


def _length(known: Known) -> int:
    return known if isinstance(known, int) else len(known)


class _Sequences:
    def __init__(self, model: onnx.ModelProto) -> None:
        self.known_values = Constants(model)
        self.shapes = static_shapes(model)
        self.sequences: dict[str, Known] = {}

    def position(self, node: onnx.NodeProto, index: int) -> int | None:
        """The constant scalar position input `index` of `node`; None when absent or unknown."""
        if len(node.input) <= index or not node.input[index]:
            return None
        value = self.known_values.get(node.input[index])
        return int(value.reshape(-1)[0]) if value is not None and value.size == 1 else None

    def track(self, node: onnx.NodeProto) -> None:
        """Record what `node` (a sequence builder) makes, when it is known."""
        kind = node.op_type
        if kind == "SequenceEmpty":
            self.sequences[node.output[0]] = []
        elif kind == "SequenceConstruct":
            self.sequences[node.output[0]] = list(node.input)
        elif kind == "SplitToSequence":
            length = self._split_length(node)
            if length is not None:
                self.sequences[node.output[0]] = length
        elif kind in ("SequenceInsert", "SequenceErase") and node.input[0] in self.sequences:
            known = self.sequences[node.input[0]]
            result = self._insert(node, known) if kind == "SequenceInsert" else self._erase(node, known)
            if result is not None:
                self.sequences[node.output[0]] = result

    def _insert(self, node: onnx.NodeProto, known: Known) -> Known | None:
        if isinstance(known, int):
            return known + 1
        position = self.position(node, 2)
        if position is None:
            if len(node.input) > 2 and node.input[2]:
                return None  # a position known only at run time
            position = len(known)
        position += len(known) if position < 0 else 0
        if not 0 <= position <= len(known):
            return None
        return [*known[:position], node.input[1], *known[position:]]

    def _erase(self, node: onnx.NodeProto, known: Known) -> Known | None:
        if isinstance(known, int):
            return known - 1 if known > 0 else None
        position = self.position(node, 1)
        if position is None:
            if len(node.input) > 1 and node.input[1]:
                return None
            position = -1
        position += len(known) if position < 0 else 0
        if not 0 <= position < len(known):
            return None
        return [*known[:position], *known[position + 1 :]]

    def _split_length(self, node: onnx.NodeProto) -> int | None:
        shape = self.shapes.get(node.input[0])
        if not shape:
            return None
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        extent = shape[axis % len(shape)]
        split = node.input[1] if len(node.input) > 1 and node.input[1] else None
        if split is None:
            return extent  # pieces of size 1
        value, split_shape = self.known_values.get(split), self.shapes.get(split)
        if value is not None and value.ndim == 0 and int(value) > 0:
            return math.ceil(extent / int(value))  # pieces of that size, the last one shorter
        if split_shape is not None and len(split_shape) == 1:
            return split_shape[0]  # one piece per entry, whatever the sizes
        return None

    def replacement(self, node: onnx.NodeProto) -> onnx.NodeProto | None:
        """A plain-tensor node computing what the sequence read `node` computes, if known."""
        known = self.sequences.get(node.input[0])
        if known is None:
            return None
        if node.op_type == "SequenceLength":
            value = numpy_helper.from_array(np.array(_length(known), dtype=np.int64))
            return helper.make_node("Constant", [], list(node.output), name=node.name, value=value)
        if node.op_type == "SequenceAt" and isinstance(known, list):
            position = self.position(node, 1)
            if position is None or not -len(known) <= position < len(known):
                return None
            return helper.make_node("Identity", [known[position]], list(node.output), name=node.name)
        return None


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    if not any(n.op_type in SEQUENCE_OPS for n in model.graph.node):
        return model
    sequences = _Sequences(model)
    changed = False
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type in SEQUENCE_OPS:
            sequences.track(node)
        elif node.op_type in ("SequenceAt", "SequenceLength"):
            replacement = sequences.replacement(node)
            if replacement is not None:
                node.CopyFrom(replacement)
                changed = True
    if changed:
        remove_dead_nodes(model, SEQUENCE_OPS)
    return model
