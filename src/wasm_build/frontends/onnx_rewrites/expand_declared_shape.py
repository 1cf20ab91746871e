"""`Expand` to a shape only known at run time, when the model states its result's shape.

The output shape of such an Expand depends on input values: TVM imports it as a
data-dependent shape (or refuses it when the shape has fewer dimensions than the input),
and a static executor cannot plan it. When the result's shape is fixed in the model
(declared on the output, or inferred by ONNX) and the input broadcasts to it, the Expand
to that shape gives the same values: wasm-build trusts declared output shapes as it trusts
declared input shapes.
"""

from __future__ import annotations

import numpy as np
import onnx

from .graph import Constants, Shape, add_initializer, static_shapes


def _broadcasts(source: Shape, target: Shape) -> bool:
    if len(source) > len(target):
        return False
    return all(s in (1, t) for s, t in zip(source[::-1], target[::-1]))


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    known = Constants(model)
    nodes = [
        n for n in model.graph.node if n.op_type == "Expand" and n.domain in ("", "ai.onnx") and n.input[1] not in known
    ]
    if not nodes:
        return model
    shapes = static_shapes(model)
    for node in nodes:
        source, target, requested = shapes.get(node.input[0]), shapes.get(node.output[0]), shapes.get(node.input[1])
        if source is None or target is None or requested is None or len(requested) != 1:
            continue
        if requested[0] > len(target) or not _broadcasts(source, target):
            continue
        node.input[1] = add_initializer(model, f"{node.output[0]}_shape", np.array(target, dtype=np.int64))
    return model
