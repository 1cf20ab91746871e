"""Operators that only move values, run on the quantized tensor instead of its float copy.

onnxruntime's quantizer wraps a Pad (or a DepthToSpace, SpaceToDepth, Tile, Expand, Gather)
in ``DequantizeLinear -> op -> QuantizeLinear`` with the same scale and zero point on both
sides. TVM imports these as TE kernels (or operators) that the Relax pass
`requant_identities` does not see through, so they ran in float32 between a dequantize and a
requantize, four times the bytes (a quantized Pad ran slower than onnxruntime-web's float32
one). Every output value of such an operator is one of its input values, or a Pad's constant,
and ``QuantizeLinear(DequantizeLinear(q))`` is ``q`` exactly (``(q - z) * s / s`` rounds back
to ``q - z``): the chain is the operator on ``q``, its constant quantized the way
QuantizeLinear would quantize it (``saturate(round_half_even(value / scale) + zero_point)``).

The operator then writes the QuantizeLinear's output. Only per-tensor parameters that are
constants and equal on both sides qualify, and only an operator nothing else reads.
"""

from __future__ import annotations

import numpy as np
import onnx

from .graph import Constants, add_initializer, consumers, is_standard, remove_dead_nodes

# Operators whose outputs are values of their first input (a Pad's constant aside).
MOVES = frozenset({"Pad", "DepthToSpace", "SpaceToDepth", "Tile", "Expand", "Gather"})


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    known = Constants(model)
    producers = {output: node for node in model.graph.node for output in node.output}
    reads = consumers(model)
    rewritten = []
    for quantize in model.graph.node:
        if not is_standard(quantize, {"QuantizeLinear"}):
            continue
        op = producers.get(quantize.input[0])
        if op is None or not is_standard(op, MOVES) or reads.get(op.output[0]) != 1:
            continue
        dequantize = producers.get(op.input[0])
        if dequantize is None or not is_standard(dequantize, {"DequantizeLinear"}):
            continue
        parameters = _same_parameters(dequantize, quantize, known)
        if parameters is None:
            continue
        if op.op_type == "Pad" and not _quantize_pad_value(model, op, known, *parameters):
            continue
        op.input[0] = dequantize.input[0]
        op.output[0] = quantize.output[0]
        rewritten.append(quantize)
    if not rewritten:
        return model
    for quantize in rewritten:
        model.graph.node.remove(quantize)
    remove_dead_nodes(model, {"DequantizeLinear"})
    return model


def _parameters(node: onnx.NodeProto, known: Constants) -> tuple[np.float32, np.ndarray] | None:
    """A per-tensor (De)QuantizeLinear's constant scale and zero point (an array of its dtype)."""
    if len(node.input) < 3 or not node.input[2] or node.input[1] not in known or node.input[2] not in known:
        return None
    if any(attribute.name not in ("axis", "saturate") for attribute in node.attribute):
        return None  # block sizes, output dtypes: not the per-tensor case
    scale, zero_point = known[node.input[1]], known[node.input[2]]
    if scale.size != 1 or zero_point.size != 1:
        return None
    return np.float32(scale.reshape(-1)[0]), zero_point.reshape(-1)[:1]


def _same_parameters(dequantize, quantize, known) -> tuple[np.float32, np.ndarray] | None:
    before, after = _parameters(dequantize, known), _parameters(quantize, known)
    if before is None or after is None:
        return None
    (scale, zero_point), (scale_after, zero_point_after) = before, after
    if scale != scale_after or zero_point.dtype != zero_point_after.dtype or zero_point[0] != zero_point_after[0]:
        return None
    return scale, zero_point


def _quantize_pad_value(model: onnx.ModelProto, pad: onnx.NodeProto, known: Constants, scale: np.float32,
                        zero_point: np.ndarray) -> bool:
    """Give a constant-mode Pad its value quantized; False when the value is not a constant."""
    mode = next((a.s.decode() for a in pad.attribute if a.name == "mode"), "constant")
    if any(a.name == "pads" for a in pad.attribute):
        return mode != "constant"  # opset 1-10: the value is an attribute; left as it is
    if mode != "constant":
        return True  # edge, reflect, wrap: input values only
    has_value = len(pad.input) > 2 and pad.input[2]
    if has_value and pad.input[2] not in known:
        return False
    value = np.float32(known[pad.input[2]].reshape(-1)[0]) if has_value else np.float32(0.0)
    limits = np.iinfo(zero_point.dtype)
    quantized = np.clip(np.rint(value / scale) + np.float32(zero_point[0]), limits.min, limits.max)
    name = add_initializer(model, f"{pad.output[0]}_quantized_value", np.asarray(quantized, dtype=zero_point.dtype))
    while len(pad.input) < 3:
        pad.input.append("")
    pad.input[2] = name
    return True
