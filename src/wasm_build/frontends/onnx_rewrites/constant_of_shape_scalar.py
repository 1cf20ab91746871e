"""`ConstantOfShape` of an empty shape (a scalar), as a `Constant`.

Transformers' attention-mask code makes scalars this way (BERT, DistilBERT, RoBERTa, ALBERT,
ELECTRA, GPT-2 exported by torch). TVM's converter broadcasts the one-element `value`
tensor to the shape, and `broadcast_to` refuses a target of lower rank than its input
("broadcast_to expects the input shape to have the number of ndim at least as the input
tensor's"): the import fails.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .graph import Constants, Shape, static_shapes


def _value(node: onnx.NodeProto) -> np.ndarray:
    """The fill value (ONNX's default is a float32 zero)."""
    for attribute in node.attribute:
        if attribute.name == "value":
            return numpy_helper.to_array(attribute.t).reshape(())
    return np.array(0, dtype=np.float32)


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    nodes = [n for n in model.graph.node if n.op_type == "ConstantOfShape" and n.domain in ("", "ai.onnx")]
    if not nodes:
        return model
    known = Constants(model)
    shapes: dict[str, Shape] | None = None  # inferred only for shapes computed in the graph
    for node in nodes:
        name = node.input[0]
        if name in known:
            empty = known[name].size == 0
        else:
            shapes = static_shapes(model) if shapes is None else shapes
            empty = shapes.get(name) == (0,)
        if empty:
            value = numpy_helper.from_array(_value(node))
            node.CopyFrom(helper.make_node("Constant", [], list(node.output), name=node.name, value=value))
    return model
