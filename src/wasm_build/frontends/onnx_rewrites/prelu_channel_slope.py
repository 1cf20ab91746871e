"""Per-channel `PRelu` slopes of opsets 1-6, on the channel axis.

Before opset 7, a slope of one value per channel applies along axis 1 (PyTorch's
`PReLU(num_parameters=C)` exported that way). TVM's converter follows the numpy broadcasting
of opset 7+ and puts a 1-D slope on the last axis, where `topi.nn.prelu` asserts that the
sizes match. An `Unsqueeze` to shape (C, 1, ..., 1) states the channel axis in either reading.
"""

from __future__ import annotations

import onnx
from onnx import helper

from .graph import default_opset, fresh_name, static_shapes

_BROADCASTING_OPSET = 7


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    if default_opset(model) >= _BROADCASTING_OPSET:
        return model
    nodes = [n for n in model.graph.node if n.op_type == "PRelu" and n.domain in ("", "ai.onnx")]
    if not nodes:
        return model
    shapes = static_shapes(model)
    for node in nodes:
        x, slope = (shapes.get(name) for name in node.input[:2])
        if x is None or slope is None or len(x) < 3 or len(slope) != 1 or slope[0] == 1 or slope[0] != x[1]:
            continue  # a shared slope, or one TVM already puts on the channels (rank 2)
        column = fresh_name(model, f"{node.input[1]}_channels")
        # Unsqueeze keeps `axes` as an attribute in every opset this rewrite applies to.
        unsqueeze = helper.make_node("Unsqueeze", [node.input[1]], [column], axes=list(range(1, len(x) - 1)))
        model.graph.node.insert(list(model.graph.node).index(node), unsqueeze)
        node.input[1] = column
    return model
