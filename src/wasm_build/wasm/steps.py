"""Quantization steps of a quantized model's outputs: the unit the smoke test compares them in.

A quantized output (``DequantizeLinear`` of an int8 tensor, maybe reshaped) takes values
``(q - zero_point) * scale``: two correct implementations of the model may round one value
to neighbouring integers (a product exactly halfway between two steps, float sums in another
order), never further. Such outputs are compared in steps of ``scale``, not by tolerances.
An integer output a model quantizes itself (``QuantizeLinear``, a ``QLinear*`` operator) is
the same case in its integers: its step is one.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from onnx import numpy_helper

# Operators that pass quantized values through unchanged.
_VALUE_PRESERVING = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity"}
# The largest difference, in steps, between two correct integer implementations.
MAX_STEPS = 1.0


def output_steps(onnx_model: Any) -> dict[str, float]:
    """``{output name: step}`` for each graph output that is a per-tensor dequantized tensor
    (its scale) or a quantized integer tensor (1)."""
    if onnx_model is None:
        return {}
    graph = onnx_model.graph
    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            constants[node.output[0]] = node.attribute[0].t
    producers = {output: node for node in graph.node for output in node.output}
    steps = {}
    for output in graph.output:
        node = producers.get(output.name)
        while node is not None and node.op_type in _VALUE_PRESERVING and node.domain in ("", "ai.onnx"):
            node = producers.get(node.input[0])
        if node is not None and node.domain in ("", "ai.onnx", "com.microsoft") and (
            node.op_type == "QuantizeLinear" or node.op_type.startswith("QLinear")
        ):
            steps[output.name] = 1.0
            continue
        if node is None or node.op_type != "DequantizeLinear" or node.input[1] not in constants:
            continue
        scale = numpy_helper.to_array(constants[node.input[1]])
        if scale.size == 1:
            steps[output.name] = float(np.float32(scale.reshape(-1)[0]))
    return steps


def is_quantized(onnx_model: Any) -> bool:
    """Whether the model quantizes or dequantizes anywhere (QDQ or QOperator form)."""
    if onnx_model is None:
        return False
    return any(node.op_type in _QUANTIZING or node.op_type.startswith("QLinear") for node in onnx_model.graph.node)


_QUANTIZING = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger"}


def quantizes_at_run_time(onnx_model: Any) -> bool:
    """Whether the model quantizes activations with scales computed at run time
    (`quantize_dynamic`'s DynamicQuantizeLinear)."""
    return onnx_model is not None and any(node.op_type == "DynamicQuantizeLinear" for node in onnx_model.graph.node)


# How far, in steps of a float output's range over 255, two correct runs of a dynamically
# quantized model may put a value (see `run_time_steps`); a 2-layer encoder measured 2.
MAX_RUN_TIME_STEPS = 4.0


def run_time_steps(output: Any) -> float:
    """`MAX_RUN_TIME_STEPS` steps of a float output's range over 255 (an 8-bit quantization of
    it). A float kernel an ulp apart from another (an exp or erf polynomial, a layer norm) moves
    a value before a DynamicQuantizeLinear across a rounding boundary, or the minimum or maximum
    its scale comes from; the integer products after it carry that step on, and each later
    layer may add its own."""
    values = np.asarray(output, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return MAX_RUN_TIME_STEPS * float(finite.max() - finite.min()) / 255.0 if finite.size else 0.0

