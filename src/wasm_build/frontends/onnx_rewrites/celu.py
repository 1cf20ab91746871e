"""`Celu` as `Elu` on a rescaled input.

TVM's Relax frontend has no `Celu` converter (PyTorch's `nn.CELU` exports to it). By its
definition, Celu(x, alpha) = max(0, x) + min(0, alpha * (exp(x / alpha) - 1)), which is
alpha * Elu(x / alpha) with Elu's own alpha at 1: three operators TVM imports.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .graph import DEFAULT_DOMAINS, add_initializer, fresh_name

_DEFAULT_ALPHA = 1.0


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    for node in [n for n in graph.node if n.op_type == "Celu" and n.domain in DEFAULT_DOMAINS]:
        alpha = next((a.f for a in node.attribute if a.name == "alpha"), _DEFAULT_ALPHA)
        scale = add_initializer(model, f"{node.output[0]}_alpha", np.array(alpha, dtype=np.float32))
        scaled, elu = fresh_name(model, f"{node.output[0]}_scaled"), fresh_name(model, f"{node.output[0]}_elu")
        replacement = [
            helper.make_node("Div", [node.input[0], scale], [scaled]),
            helper.make_node("Elu", [scaled], [elu], alpha=1.0),
            helper.make_node("Mul", [elu, scale], [node.output[0]]),
        ]
        position = list(graph.node).index(node)
        del graph.node[position]
        for offset, new in enumerate(replacement):
            graph.node.insert(position + offset, new)
    return model
