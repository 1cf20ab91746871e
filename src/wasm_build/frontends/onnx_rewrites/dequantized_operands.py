"""Operands TVM's converters need as constants, written by a quantizer as dequantized constants.

onnxruntime's quantizer quantizes every float initializer a node reads, so a `Pad`'s value
(``constant_value``, input 2) reaches the graph as ``DequantizeLinear(int8 constant, scale,
zero point)``. TVM's `Pad` converter reads that input as a constant and fails on the call
("'Call' object has no attribute 'value'": MobileBERT quantized). Such an operand is folded
into the float constant it always is, ``(q - zero_point) * scale`` as the operator defines it.
Inputs an operator takes as tensors are left alone: the graph passes want a conv's or matmul's
weights dequantized, to keep them int8.
"""

from __future__ import annotations

import numpy as np
import onnx

from .graph import DEFAULT_DOMAINS, Constants, add_initializer, remove_dead_nodes

# Per operator, the input positions its TVM converter reads as constants.
CONSTANT_OPERANDS: dict[str, tuple[int, ...]] = {"Pad": (1, 2, 3), "Clip": (1, 2)}


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    known = Constants(model)
    dequantized = {
        node.output[0]: node for node in model.graph.node
        if node.op_type == "DequantizeLinear" and node.domain in DEFAULT_DOMAINS and all(i in known for i in node.input if i)
    }
    folded: dict[str, str] = {}
    for node in model.graph.node:
        if node.domain not in DEFAULT_DOMAINS:
            continue
        for position in CONSTANT_OPERANDS.get(node.op_type, ()):
            if position >= len(node.input) or node.input[position] not in dequantized:
                continue
            name = node.input[position]
            if name not in folded:
                folded[name] = add_initializer(model, f"{name}_value", _dequantize(dequantized[name], known))
            node.input[position] = folded[name]
    if folded:
        remove_dead_nodes(model, {"DequantizeLinear"})
    return model


def _dequantize(node: onnx.NodeProto, known: Constants) -> np.ndarray:
    """``(x - zero_point) * scale`` of a per-tensor DequantizeLinear, in float32 like the operator."""
    x = known[node.input[0]].astype(np.int32)
    scale = known[node.input[1]].astype(np.float32)
    zero_point = known[node.input[2]].astype(np.int32) if len(node.input) > 2 and node.input[2] else np.int32(0)
    if scale.size != 1:
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * x.ndim
        shape[axis] = -1
        scale, zero_point = scale.reshape(shape), np.reshape(zero_point, shape) if np.ndim(zero_point) else zero_point
    return ((x - zero_point).astype(np.float32) * scale).astype(np.float32)
