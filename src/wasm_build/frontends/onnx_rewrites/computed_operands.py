"""Operands TVM needs as constants (a Slice's bounds, TopK's k, Range's limits ...) computed in
the graph from static shapes, with that arithmetic evaluated into constants (as
`computed_pads` does for pads).

PyTorch's TorchScript exporter writes `tensor.chunk(n, dim)` as Slices whose bounds are
`Shape`/`Gather`/`Add`/`Div` arithmetic on the chunked tensor's shape (timm's EfficientViT-M),
`torch.sort` as a TopK whose k is the axis' size read with `Shape`, and `F.unfold` as Gathers
of `Range`s up to a size read so. TVM's converter then loses the shape after the Slice ("Reshape
expects the input tensor to have known shape"), refuses the TopK ("k must be a constant"), or
makes the Range a tensor of data-dependent shape, which the executor cannot plan. Every input
shape of a wasm-build model is static, so these operands have one value.
"""

from __future__ import annotations

import onnx

from .computed_pads import fold_static_arithmetic
from .graph import DEFAULT_DOMAINS, Constants

# For each operator, the positions of the inputs TVM's converter needs to be constants.
OPERANDS: dict[str, tuple[int, ...]] = {
    "Slice": (1, 2, 3, 4),  # starts, ends, axes, steps (opset 10 on)
    "TopK": (1,),  # k
    "Tile": (1,),  # repeats
    "Range": (0, 1, 2),  # start, limit, delta
    "ConstantOfShape": (0,),  # shape
    "Split": (1,),  # split sizes (opset 13 on)
    "OneHot": (1,),  # depth
}


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    if not _computed_operands(model):
        return model  # constant operands: TVM imports them, the model is left as it is
    return fold_static_arithmetic(model)


def _computed_operands(model: onnx.ModelProto) -> list[str]:
    """Names of the operands of `OPERANDS` that the graph computes."""
    known = Constants(model)
    return [
        name
        for node in model.graph.node
        if node.domain in DEFAULT_DOMAINS and node.op_type in OPERANDS
        for position in OPERANDS[node.op_type]
        if position < len(node.input) and (name := node.input[position]) and name not in known
    ]
