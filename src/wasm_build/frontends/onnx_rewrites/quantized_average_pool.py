"""A quantized AveragePool rounded the way onnxruntime rounds it.

onnxruntime runs ``DequantizeLinear -> AveragePool -> QuantizeLinear`` as one QLinearAveragePool
(fused in its optimized run; the contrib operator of QOperator models, which
`quantized_operators` turns into that very chain): the float average of the dequantized window,
then ``nearbyint(y / y_scale + y_zero_point)``, the zero point added *before* rounding.
QuantizeLinear rounds ``y / y_scale`` first and adds the zero point after. The average of a
2 x 2 window lies halfway between two steps whenever its integer sum is 2 mod 4; the two
formulas then round apart by one step for an odd zero point, and a deep net carries the step
on (quantized DenseNet's transitions: 13 steps at the logits, 0 with this rewrite).

Such a QuantizeLinear becomes ``Cast(Clip(Round(y / scale + zero_point), low, high))``: Round
rounds halves to even as nearbyint does, and the float32 operations are the same ones.
Only a per-tensor QuantizeLinear of an AveragePool read by nothing else, over a
DequantizeLinear, is rewritten: the chain onnxruntime fuses.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .emitter import Emitter
from .graph import (
    Constants,
    Names,
    Replacement,
    consumers,
    default_opset,
    is_standard,
    replace_nodes,
)


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    known = Constants(model)
    producers = {output: node for node in model.graph.node for output in node.output}
    reads = consumers(model)
    names = Names(model)
    opset = default_opset(model)
    replacements = {}
    for index, node in enumerate(model.graph.node):
        if not is_standard(node, {"QuantizeLinear"}) or not all(i in known for i in node.input[1:] if i):
            continue
        pool = producers.get(node.input[0])
        if pool is None or not is_standard(pool, {"AveragePool"}) or reads.get(pool.output[0]) != 1:
            continue
        dequantize = producers.get(pool.input[0])
        if dequantize is None or not is_standard(dequantize, {"DequantizeLinear"}):
            continue
        scale = known[node.input[1]]
        zero_point = known[node.input[2]] if len(node.input) > 2 and node.input[2] else np.uint8(0)
        if scale.size != 1 or np.size(zero_point) != 1:
            continue
        emitter = Emitter(names, node.name or node.output[0], opset, {}, np.dtype(np.float32))
        replacements[index] = _rounded_after_zero_point(emitter, node, np.asarray(zero_point))
    return replace_nodes(model, replacements) if replacements else model


def _rounded_after_zero_point(emit: Emitter, node: onnx.NodeProto, zero_point: np.ndarray) -> Replacement:
    """``Cast(Clip(Round(x / scale + zero_point), low, high))`` writing ``node``'s output."""
    limits = np.iinfo(zero_point.dtype)
    scaled = emit.node("Div", [node.input[0], node.input[1]], "scaled")
    shifted = emit.node("Add", [scaled, emit.scalar(float(zero_point.item()), "zero_point")], "shifted")
    rounded = emit.node("Round", [shifted], "rounded")
    clipped = emit.node("Clip", [rounded, emit.scalar(float(limits.min), "low"), emit.scalar(float(limits.max), "high")], "clipped")
    emit.node("Cast", [clipped], "quantized", output=node.output[0], to=helper.np_dtype_to_tensor_dtype(zero_point.dtype))
    return emit.replacement()
