"""What the rewrites ask of an ONNX graph: constants, static shapes, fresh names, dead nodes."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

Shape = tuple[int, ...]

_DEFAULT_DOMAINS = ("", "ai.onnx")


def opset(model: onnx.ModelProto) -> int:
    """The version of the default ONNX domain the model is written for."""
    return next((o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), 0)


class Constants(Mapping[str, np.ndarray]):
    """Values known at build time: initializers (graph inputs with a default value included:
    wasm-build does not expose those as inputs) and outputs of `Constant` nodes. Read lazily:
    a model's weights are not copied to find one small shape tensor."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self._sources: dict[str, Any] = {init.name: init for init in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type == "Constant" and node.domain in _DEFAULT_DOMAINS and len(node.attribute) == 1:
                self._sources[node.output[0]] = node.attribute[0]
        self._values: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        if name not in self._values:
            self._values[name] = _to_array(self._sources[name])
        return self._values[name]

    def __contains__(self, name: object) -> bool:
        return name in self._sources

    def __iter__(self) -> Iterator[str]:
        return iter(self._sources)

    def __len__(self) -> int:
        return len(self._sources)


def _to_array(source: Any) -> np.ndarray:
    """A TensorProto, or a `Constant` node's value attribute (`value`, `value_int(s)`, ...)."""
    if isinstance(source, onnx.TensorProto):
        return numpy_helper.to_array(source)
    value = onnx.helper.get_attribute_value(source)
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    if source.name in ("value_int", "value_ints"):
        return np.array(value, dtype=np.int64)
    if source.name in ("value_float", "value_floats"):
        return np.array(value, dtype=np.float32)
    return np.array(value)  # strings; the rewrites look at numbers only


def static_shapes(model: onnx.ModelProto) -> dict[str, Shape]:
    """Shapes with every dimension known: declared by the model or inferred by ONNX."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # a model ONNX cannot infer still has its declared shapes
        inferred = model
    graph = inferred.graph
    shapes: dict[str, Shape] = {init.name: tuple(int(d) for d in init.dims) for init in graph.initializer}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        if value.type.WhichOneof("value") != "tensor_type" or not value.type.tensor_type.HasField("shape"):
            continue
        dims = value.type.tensor_type.shape.dim
        if all(d.HasField("dim_value") for d in dims):
            shapes[value.name] = tuple(int(d.dim_value) for d in dims)
    return shapes


def fresh_name(model: onnx.ModelProto, base: str) -> str:
    """A tensor name no node, input, output or initializer of the graph uses."""
    graph = model.graph
    taken = {name for node in graph.node for name in [*node.input, *node.output]}
    taken |= {v.name for v in [*graph.input, *graph.output, *graph.initializer]}
    name, index = base, 0
    while name in taken:
        index += 1
        name = f"{base}_{index}"
    return name


def add_initializer(model: onnx.ModelProto, base: str, array: np.ndarray) -> str:
    """Store `array` as a new initializer; its name."""
    name = fresh_name(model, base)
    model.graph.initializer.append(numpy_helper.from_array(np.asarray(array), name))
    return name


def consumers(model: onnx.ModelProto) -> dict[str, int]:
    """How many times each tensor is read (by nodes or as a graph output)."""
    counts: dict[str, int] = {}
    for name in [*(i for node in model.graph.node for i in node.input), *(o.name for o in model.graph.output)]:
        counts[name] = counts.get(name, 0) + 1
    return counts


def remove_dead_nodes(model: onnx.ModelProto, candidates: Iterable[str] = ()) -> None:
    """Remove nodes of type in `candidates` (every type if empty) whose outputs nobody reads,
    until none is left."""
    kinds = set(candidates)
    while True:
        used = consumers(model)
        dead = [
            index
            for index, node in enumerate(model.graph.node)
            if (not kinds or node.op_type in kinds) and not any(used.get(o, 0) for o in node.output if o)
        ]
        if not dead:
            return
        for index in reversed(dead):
            del model.graph.node[index]
