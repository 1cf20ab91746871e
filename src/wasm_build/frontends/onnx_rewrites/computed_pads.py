"""`Pad` whose pads are computed in the graph from values known at build time, with the
shape arithmetic around it evaluated into constants.

PyTorch's exporter writes `F.pad` as a chain (ConstantOfShape, Concat, Reshape, Slice,
Transpose, Cast) that ends in the pads input, and "same" padding (timm's TF-style
EfficientNet, Swin's window padding) as `Shape`/`Gather`/`Mod`/`Ceil` arithmetic on the
padded tensor's shape. TVM's converter refuses pads that are not a constant ("Dynamic pads
are not supported yet"), and the Reshapes after such a Pad have an unknown input shape.
Every input shape is static in a wasm-build model, so these chains have one value: each
small tensor computed only from constants and static shapes becomes a `Constant`, until
nothing more folds (a folded Pad makes the shapes after it static, and so on).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from .graph import DEFAULT_DOMAINS, Constants, remove_dead_nodes, static_shapes

# Operators of shape arithmetic: deterministic, no subgraphs, cheap on small tensors.
FOLDABLE = frozenset({
    "Abs", "Add", "And", "Cast", "Ceil", "Clip", "Concat", "ConstantOfShape", "Div", "Equal", "Expand",
    "Floor", "Gather", "Greater", "GreaterOrEqual", "Identity", "Less", "LessOrEqual", "Max",
    "Min", "Mod", "Mul", "Neg", "Not", "Or", "Pow", "Range", "Round", "ReduceProd", "ReduceSum", "Reshape",
    "Shape", "Size", "Slice", "Sqrt", "Squeeze", "Sub", "Tile", "Transpose", "Unsqueeze", "Where",
})
MAX_ELEMENTS = 4096  # a shape computation's tensors are small; weights are never folded
_MAX_PASSES = 64


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    known = Constants(model)
    pads = [n for n in model.graph.node if _is_pad(n) and len(n.input) > 1 and n.input[1] and n.input[1] not in known]
    if not pads:
        return model  # constant pads: TVM imports them, the model is left as it is
    return fold_static_arithmetic(model)


def fold_static_arithmetic(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` (edited in place) with every small tensor computed from constants and static
    shapes made a `Constant`, until nothing more folds."""
    _drop_symbolic_value_info(model)
    for _ in range(_MAX_PASSES):
        if not _fold_pass(model):
            break
    remove_dead_nodes(model, FOLDABLE | {"Constant"})
    return model


def _drop_symbolic_value_info(model: onnx.ModelProto) -> None:
    """Forget intermediate shapes the exporter recorded with symbolic dimensions ("unk__0"):
    ONNX's inference keeps them instead of the static sizes it now finds."""
    kept = [v for v in model.graph.value_info if _is_static(v)]
    del model.graph.value_info[:]
    model.graph.value_info.extend(kept)


def _is_static(value: onnx.ValueInfoProto) -> bool:
    tensor_type = value.type.tensor_type
    return tensor_type.HasField("shape") and all(d.HasField("dim_value") for d in tensor_type.shape.dim)


def _is_pad(node: onnx.NodeProto) -> bool:
    return node.op_type == "Pad" and node.domain in DEFAULT_DOMAINS


def _fold_pass(model: onnx.ModelProto) -> bool:
    """Fold every node whose inputs are known (in graph order, so chains fold in one pass);
    whether any was folded. Shapes are inferred again by the next pass."""
    shapes = static_shapes(model)
    values = _SmallConstants(model)
    opset = [o for o in model.opset_import]
    folded = False
    for node in model.graph.node:
        if node.domain not in DEFAULT_DOMAINS or node.op_type not in FOLDABLE:
            continue
        outputs = _evaluate(node, values, shapes, opset)
        if outputs is None:
            continue
        for name, value in zip(node.output, outputs):
            values.add(name, value)
        if len(node.output) == 1:
            tensor = numpy_helper.from_array(outputs[0])
            node.CopyFrom(helper.make_node("Constant", [], [node.output[0]], name=node.name, value=tensor))
            folded = True
    return folded


def _evaluate(node: onnx.NodeProto, values: _SmallConstants, shapes: Mapping[str, tuple[int, ...]],
              opset: list[onnx.OperatorSetIdProto]) -> list[np.ndarray] | None:
    if node.op_type == "Shape":
        shape = shapes.get(node.input[0])
        if shape is None:
            return None
        attributes = {a.name: a.i for a in node.attribute}
        start, end = attributes.get("start", 0), attributes.get("end", len(shape))
        return [np.array(shape[slice(start, end)], dtype=np.int64)]
    if node.op_type == "Size":
        shape = shapes.get(node.input[0])
        return None if shape is None else [np.array(int(np.prod(shape)), dtype=np.int64)]
    inputs = [name for name in node.input if name]
    if not inputs or any(values.get(name) is None for name in inputs):
        return None
    try:
        outputs = _run(node, {name: values.get(name) for name in inputs}, opset)
    except Exception:  # noqa: BLE001 - the reference evaluator's gaps (Tile of some dtypes): TVM imports it
        return None
    if any(np.asarray(o).size > MAX_ELEMENTS for o in outputs):
        return None
    return [np.asarray(o) for o in outputs]


def _run(node: onnx.NodeProto, feeds: dict[str, np.ndarray], opset: list[onnx.OperatorSetIdProto]) -> list[np.ndarray]:
    """`node` alone, in ONNX's reference evaluator, at the model's opset (Squeeze, Slice,
    ReduceSum ... read attributes or inputs depending on it)."""
    graph = helper.make_graph(
        [node], "fold",
        [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape) for n, v in feeds.items()],
        [helper.make_empty_tensor_value_info(o) for o in node.output],
    )
    model = helper.make_model(graph, opset_imports=opset)
    return ReferenceEvaluator(model).run(None, feeds)


class _SmallConstants:
    """Known values of at most MAX_ELEMENTS elements: constants of the model (read when asked,
    weights never loaded) and what this pass folded."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self._constants = Constants(model)
        self._sizes = {init.name: int(np.prod(init.dims)) for init in model.graph.initializer}
        self._folded: dict[str, np.ndarray] = {}

    def add(self, name: str, value: np.ndarray) -> None:
        self._folded[name] = value

    def get(self, name: str) -> np.ndarray | None:
        if name in self._folded:
            return self._folded[name]
        if name not in self._constants or self._sizes.get(name, 0) > MAX_ELEMENTS:
            return None
        value = self._constants[name]
        return value if value.size <= MAX_ELEMENTS else None
