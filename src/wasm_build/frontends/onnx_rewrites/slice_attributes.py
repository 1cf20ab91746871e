"""`Slice` of opsets 1-9 (starts, ends and axes as attributes), as `Gather`s.

TVM has one `Slice` converter, for the inputs form of opset 10+, and uses it for every
opset: on an attributes-form node it reads inputs that are not there ("Cannot cast NoneType
to list of Expr"). With the input's shape known, each sliced axis is a `Gather` of the
indices the slice keeps, which every opset has and TVM imports as a `take`.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from .graph import add_initializer, default_opset, fresh_name, static_shapes

_INPUTS_OPSET = 10


def _kept(start: int, end: int, extent: int) -> np.ndarray:
    """The indices Slice-1 keeps along one axis (negative bounds count from the end; clamped)."""
    start, end = (min(max(v + extent if v < 0 else v, 0), extent) for v in (start, end))
    return np.arange(start, end, dtype=np.int64)


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    if default_opset(model) >= _INPUTS_OPSET:
        return model
    nodes = [n for n in model.graph.node if n.op_type == "Slice" and n.domain in ("", "ai.onnx") and len(n.input) == 1]
    if not nodes:
        return model
    shapes = static_shapes(model)
    for node in nodes:
        attributes = {a.name: list(a.ints) for a in node.attribute}
        shape = shapes.get(node.input[0])
        if shape is None or "starts" not in attributes or "ends" not in attributes:
            continue
        axes = [a % len(shape) for a in attributes.get("axes", range(len(attributes["starts"])))]
        kept = [_kept(s, e, shape[a]) for s, e, a in zip(attributes["starts"], attributes["ends"], axes)]
        if any(indices.size == 0 for indices in kept):
            continue  # an empty result: the executor refuses zero-size tensors anyway
        gathers, source = [], node.input[0]
        for step, (axis, indices) in enumerate(zip(axes, kept)):
            last = step == len(axes) - 1
            target = node.output[0] if last else fresh_name(model, f"{node.output[0]}_axis{axis}")
            index_name = add_initializer(model, f"{node.output[0]}_indices{axis}", indices)
            gathers.append(helper.make_node("Gather", [source, index_name], [target], axis=axis))
            source = target
        position = list(model.graph.node).index(node)
        del model.graph.node[position]
        for offset, gather in enumerate(gathers):
            model.graph.node.insert(position + offset, gather)
    return model
