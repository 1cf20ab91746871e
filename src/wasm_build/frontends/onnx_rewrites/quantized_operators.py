"""QOperator models (``QLinearConv``, ``QLinearMatMul``, onnxruntime's ``QLinear*`` and
``QGemm``, ``ConvInteger``) in QDQ form: each operator between the dequantize and quantize
nodes that define it.

TVM 0.27 imports none of them. By their definitions each one is its float operator applied to
dequantized inputs, its result quantized: ``QLinearConv(x, sx, zx, W, sw, zw, sy, zy, B) =
Q(Conv(DQ(x, sx, zx), DQ(W, sw, zw), DQ(B, sx * sw)), sy, zy)``. That is exactly the QDQ form
`compiler.passes.integer_contractions` turns back into int8 x int8 -> int32 kernels with a
fused requantize, so QOperator and QDQ models share one integer path. ``ConvInteger`` (what
``quantize_dynamic`` writes for convs) is ``Conv`` of inputs dequantized with scale 1, cast to
int32 (exact: a float32 sum of integer products is exact below 2**24, and the graph casts the
result back to float at once).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import onnx
from onnx import helper

from ...errors import WasmBuildError
import numpy as np

from .graph import DEFAULT_DOMAINS, add_initializer, constants, fresh_name

MICROSOFT = "com.microsoft"


@dataclass(frozen=True)
class QuantizedOperator:
    """Where a quantized operator keeps its inputs: (value, scale, zero point) index triples,
    the output's (scale, zero point), and a bias quantized at the product of two scales."""

    float_op: str
    inputs: tuple[tuple[int, int, int], ...]
    output: tuple[int, int] | None  # None: the result is float (QGemm without y_scale)
    bias: tuple[int, int, int] | None = None  # (bias, scale of A, scale of B)
    attributes: tuple[str, ...] = ()  # copied to the float operator
    weight_axis: int | None = None  # axis of the second input's per-channel scales


_CONV_ATTRIBUTES = ("auto_pad", "dilations", "group", "kernel_shape", "pads", "strides")
_POOL_ATTRIBUTES = ("auto_pad", "ceil_mode", "count_include_pad", "kernel_shape", "pads", "strides")
_UNARY = ((0, 1, 2),)

STANDARD_OPERATORS: dict[str, QuantizedOperator] = {
    "QLinearConv": QuantizedOperator("Conv", ((0, 1, 2), (3, 4, 5)), (6, 7), bias=(8, 1, 4),
                                     attributes=_CONV_ATTRIBUTES, weight_axis=0),
    "QLinearMatMul": QuantizedOperator("MatMul", ((0, 1, 2), (3, 4, 5)), (6, 7), weight_axis=-1),
}
MICROSOFT_OPERATORS: dict[str, QuantizedOperator] = {
    "QLinearAdd": QuantizedOperator("Add", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    "QLinearMul": QuantizedOperator("Mul", ((0, 1, 2), (3, 4, 5)), (6, 7)),
    "QLinearGlobalAveragePool": QuantizedOperator("GlobalAveragePool", _UNARY, (3, 4)),
    "QLinearAveragePool": QuantizedOperator("AveragePool", _UNARY, (3, 4), attributes=_POOL_ATTRIBUTES),
    "QLinearSigmoid": QuantizedOperator("Sigmoid", _UNARY, (3, 4)),
    "QLinearLeakyRelu": QuantizedOperator("LeakyRelu", _UNARY, (3, 4), attributes=("alpha",)),
    "QLinearSoftmax": QuantizedOperator("Softmax", _UNARY, (3, 4), attributes=("axis",)),
    # Per-column scales of B are on its axis 1, or 0 when transB (set per node).
    "QGemm": QuantizedOperator("Gemm", ((0, 1, 2), (3, 4, 5)), (7, 8), bias=(6, 1, 4),
                               attributes=("alpha", "transA", "transB"), weight_axis=1),
}
# QLinearConcat keeps its inputs after the output's scale and zero point, any number of them.
_CONCAT = "QLinearConcat"
INTEGER_OPERATORS = ("ConvInteger",)

STANDARD_OP_TYPES = frozenset({*STANDARD_OPERATORS, *INTEGER_OPERATORS})
MICROSOFT_OP_TYPES = frozenset({*MICROSOFT_OPERATORS, _CONCAT})


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    for node in list(graph.node):
        replacement = _replacement(model, node)
        if replacement is None:
            continue
        position = list(graph.node).index(node)
        del graph.node[position]
        for offset, new in enumerate(replacement):
            graph.node.insert(position + offset, new)
    return model


def _replacement(model: onnx.ModelProto, node: onnx.NodeProto) -> list[onnx.NodeProto] | None:
    if node.domain in DEFAULT_DOMAINS:
        if node.op_type in STANDARD_OPERATORS:
            return _as_qdq(model, node, STANDARD_OPERATORS[node.op_type])
        if node.op_type == "ConvInteger":
            return _conv_integer(model, node)
    elif node.domain == MICROSOFT:
        if node.op_type in MICROSOFT_OPERATORS:
            return _as_qdq(model, node, MICROSOFT_OPERATORS[node.op_type])
        if node.op_type == _CONCAT:
            return _concat(model, node)
    return None


class _Nodes:
    """The nodes replacing one quantized operator, named after its output."""

    def __init__(self, model: onnx.ModelProto, node: onnx.NodeProto) -> None:
        self.model, self.node, self.nodes = model, node, []

    def add(self, op_type: str, inputs: Sequence[str], label: str, output: str | None = None, **attributes) -> str:
        output = output or fresh_name(self.model, f"{self.node.output[0]}_{label}")
        self.nodes.append(helper.make_node(op_type, list(inputs), [output], **attributes))
        return output

    def dequantize(self, value: str, scale: str, zero_point: str, label: str, axis: int | None = None) -> str:
        inputs = [value, scale] + ([zero_point] if zero_point else [])
        return self.add("DequantizeLinear", inputs, label, **({"axis": axis} if axis is not None else {}))


def _input(node: onnx.NodeProto, index: int) -> str:
    return node.input[index] if index < len(node.input) else ""


def _copied_attributes(node: onnx.NodeProto, names: Sequence[str]) -> list[onnx.AttributeProto]:
    return [attribute for attribute in node.attribute if attribute.name in names]


def _refuse_channels_last(node: onnx.NodeProto) -> None:
    if any(a.name == "channels_last" and a.i for a in node.attribute):
        raise WasmBuildError(
            f"node '{node.name or node.output[0]}' ({node.domain}:{node.op_type}) pools channels-last tensors, "
            "which wasm-build does not import",
            fix="quantize the model in the NCHW layout (onnxruntime's quantizer does by default)",
        )


def _attribute(node: onnx.NodeProto, name: str, default: int) -> int:
    return next((a.i for a in node.attribute if a.name == name), default)


def _refuse_old_softmax(node: onnx.NodeProto) -> None:
    # Before opset 13, Softmax normalized over every axis from `axis` on; the Softmax this
    # rewrite writes (the model's opset) normalizes over one: the same only for the last axis.
    if _attribute(node, "opset", 13) < 13 and _attribute(node, "axis", 1) != -1:
        raise WasmBuildError(
            f"node '{node.name or node.output[0]}' (com.microsoft:QLinearSoftmax) has opset-{_attribute(node, 'opset', 13)} "
            "semantics over more than the last axis, which wasm-build does not import",
            fix="quantize the model at opset 13 or later (onnx.version_converter), or in QDQ format",
        )


def _as_qdq(model: onnx.ModelProto, node: onnx.NodeProto, spec: QuantizedOperator) -> list[onnx.NodeProto]:
    _refuse_channels_last(node)
    if node.op_type == "QLinearSoftmax":
        _refuse_old_softmax(node)
    if node.op_type == "QGemm" and _attribute(node, "transB", 0):
        spec = replace(spec, weight_axis=0)
    nodes = _Nodes(model, node)
    operands = []
    for position, (value, scale, zero_point) in enumerate(spec.inputs):
        axis = spec.weight_axis if position == 1 else None
        operands.append(nodes.dequantize(_input(node, value), _input(node, scale), _input(node, zero_point),
                                         f"dequantized{position}", axis))
    if spec.bias is not None and _input(node, spec.bias[0]):
        bias, scale_a, scale_b = (_input(node, i) for i in spec.bias)
        bias_scale = nodes.add("Mul", [scale_a, scale_b], "bias_scale")
        operands.append(nodes.dequantize(bias, bias_scale, "", "bias", axis=0))
    has_output_scale = spec.output is not None and bool(_input(node, spec.output[0]))
    result = node.output[0] if not has_output_scale else None
    result = nodes.add(spec.float_op, operands, "float", output=result)
    nodes.nodes[-1].attribute.extend(_copied_attributes(node, spec.attributes))
    if has_output_scale:
        scale, zero_point = (_input(node, i) for i in spec.output)
        nodes.add("QuantizeLinear", [result, scale] + ([zero_point] if zero_point else []), "quantized",
                  output=node.output[0])
    return nodes.nodes


def _concat(model: onnx.ModelProto, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    nodes = _Nodes(model, node)
    parts = [nodes.dequantize(node.input[i], node.input[i + 1], node.input[i + 2], f"dequantized{(i - 2) // 3}")
             for i in range(2, len(node.input), 3)]
    result = nodes.add("Concat", parts, "float")
    nodes.nodes[-1].attribute.extend(_copied_attributes(node, ("axis",)))
    nodes.add("QuantizeLinear", [result, node.input[0]] + ([node.input[1]] if node.input[1] else []), "quantized",
              output=node.output[0])
    return nodes.nodes


def _conv_integer(model: onnx.ModelProto, node: onnx.NodeProto) -> list[onnx.NodeProto]:
    nodes = _Nodes(model, node)
    one = add_initializer(model, f"{node.output[0]}_unit_scale", np.float32(1.0))
    x = nodes.dequantize(node.input[0], one, _input(node, 2), "widened_input")
    weight_zero_point = _input(node, 3)
    # DequantizeLinear takes a scale of its zero point's shape (per output channel or one).
    channels = np.shape(constants(model.graph).get(weight_zero_point, 0.0))
    unit = add_initializer(model, f"{node.output[0]}_unit_scales", np.ones(channels, np.float32)) if channels else one
    w = nodes.dequantize(node.input[1], unit, weight_zero_point, "widened_weight", axis=0 if channels else None)
    product = nodes.add("Conv", [x, w], "float")
    nodes.nodes[-1].attribute.extend(_copied_attributes(node, _CONV_ATTRIBUTES))
    nodes.add("Cast", [product], "int32", output=node.output[0], to=onnx.TensorProto.INT32)
    return nodes.nodes

