"""What rewrites read from a model (opset, constants, inferred shapes, names in use) and how
their nodes replace the ones they handle."""

from __future__ import annotations

from typing import Any

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

DEFAULT_DOMAINS = ("", "ai.onnx")

Dim = int | str | None  # a size, a symbolic dimension's name, or unknown


def is_standard(node: onnx.NodeProto, op_types: Iterable[str]) -> bool:
    """Whether `node` is one of ONNX's own `op_types` (a custom domain's LSTM is not)."""
    return node.domain in DEFAULT_DOMAINS and node.op_type in op_types


def graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """`graph` and every subgraph (If branches, Loop and Scan bodies) inside it."""
    yield graph
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.type == onnx.AttributeProto.GRAPH:
                yield from graphs(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                for subgraph in attribute.graphs:
                    yield from graphs(subgraph)


def default_opset(model: onnx.ModelProto) -> int:
    return next((o.version for o in model.opset_import if o.domain in DEFAULT_DOMAINS), 0)


def constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    """Tensors whose values are known before the model runs: initializers (those that are
    not also graph inputs, which a caller could override) and `Constant` nodes."""
    overridable = {value.name for value in graph.input}
    values = {init.name: numpy_helper.to_array(init) for init in graph.initializer if init.name not in overridable}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS and len(node.attribute) == 1:
            attribute = node.attribute[0]
            if attribute.name == "value":
                values[node.output[0]] = numpy_helper.to_array(attribute.t)
            elif attribute.name in ("value_float", "value_floats", "value_int", "value_ints"):
                value = onnx.helper.get_attribute_value(attribute)
                values[node.output[0]] = np.asarray(value, dtype=np.float32 if "float" in attribute.name else np.int64)
    return values


@dataclass(frozen=True)
class TensorFacts:
    """Shapes and element types ONNX shape inference found for the main graph's tensors."""

    shapes: Mapping[str, tuple[Dim, ...]]
    elem_types: Mapping[str, int]

    def shape(self, name: str) -> tuple[Dim, ...] | None:
        return self.shapes.get(name)


def infer_facts(model: onnx.ModelProto) -> TensorFacts:
    """Shape inference with data propagation, so shapes computed by Shape/Gather/Concat chains
    (as exporters write them) become static where the inputs are."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, ValueError):  # rewrites then see what the model declares
        inferred = model
    graph = inferred.graph
    shapes: dict[str, tuple[Dim, ...]] = {}
    elem_types: dict[str, int] = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        tensor_type = value.type.tensor_type
        if tensor_type.elem_type:
            elem_types[value.name] = tensor_type.elem_type
        if tensor_type.HasField("shape"):
            shapes[value.name] = tuple(_dim(d) for d in tensor_type.shape.dim)
    for init in graph.initializer:
        shapes[init.name] = tuple(init.dims)
        elem_types[init.name] = init.data_type
    return TensorFacts(shapes, elem_types)


def _dim(dim: onnx.TensorShapeProto.Dimension) -> Dim:
    if dim.HasField("dim_value"):
        return dim.dim_value
    return dim.dim_param or None


def pin_inputs(model: onnx.ModelProto, shapes: Mapping[str, Sequence[int | str]]) -> onnx.ModelProto:
    """A copy of `model` whose graph inputs have the given shapes (what the user pinned and the
    model declared; a name is a bounded symbolic dimension), so shape inference sees them."""
    pinned = onnx.ModelProto()
    pinned.CopyFrom(model)
    for value in pinned.graph.input:
        if value.name in shapes and value.type.HasField("tensor_type"):
            shape = value.type.tensor_type.shape
            shape.ClearField("dim")
            for size in shapes[value.name]:
                if isinstance(size, str):
                    shape.dim.add().dim_param = size
                else:
                    shape.dim.add().dim_value = int(size)
    return pinned


class Names:
    """Fresh tensor and node names: never one the model already uses, anywhere in it."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self._taken: set[str] = set()
        for graph in graphs(model.graph):
            self._taken.update(value.name for value in [*graph.input, *graph.output, *graph.value_info])
            self._taken.update(init.name for init in graph.initializer)
            for node in graph.node:
                self._taken.update([node.name, *node.input, *node.output])

    def fresh(self, base: str) -> str:
        name, count = base, 1
        while name in self._taken:
            count += 1
            name = f"{base}_{count}"
        self._taken.add(name)
        return name


@dataclass
class Replacement:
    """The nodes (in order) and new initializers that stand for one node of the main graph."""

    nodes: list[onnx.NodeProto]
    initializers: list[onnx.TensorProto]


def replace_nodes(model: onnx.ModelProto, replacements: Mapping[int, Replacement]) -> onnx.ModelProto:
    """A copy of `model` with main-graph node `i` replaced by `replacements[i]`, in place, so
    the graph stays topologically sorted. Constants (initializers, Constant nodes) that only
    the replaced nodes read are dropped: the replacements hold what they need of them, often
    re-laid-out, in their own initializers."""
    result = onnx.ModelProto()
    result.CopyFrom(model)
    graph = result.graph
    nodes: list[onnx.NodeProto] = []
    for index, node in enumerate(model.graph.node):
        nodes.extend(replacements[index].nodes if index in replacements else [node])
    graph.ClearField("node")
    graph.node.extend(nodes)
    for replacement in replacements.values():
        graph.initializer.extend(replacement.initializers)

    orphans = {name for index in replacements for name in model.graph.node[index].input} - _read_names(result)
    orphans -= {value.name for value in graph.input}  # still part of the model's signature
    kept_nodes = [node for node in graph.node if not (node.op_type == "Constant" and node.output[0] in orphans)]
    kept_initializers = [init for init in graph.initializer if init.name not in orphans]
    kept_value_info = [value for value in graph.value_info if value.name not in orphans]
    for field, kept in (("node", kept_nodes), ("initializer", kept_initializers), ("value_info", kept_value_info)):
        graph.ClearField(field)
        getattr(graph, field).extend(kept)
    return result


def _read_names(model: onnx.ModelProto) -> set[str]:
    """Every name some node or graph output reads, subgraphs included (they may read the main
    graph's initializers)."""
    names: set[str] = set()
    for graph in graphs(model.graph):
        names.update(value.name for value in graph.output)
        for node in graph.node:
            names.update(node.input)
    return names


# -- constants, static shapes and edits of the rewrites that remove single nodes --------------

Shape = tuple[int, ...]


class Constants(Mapping[str, np.ndarray]):
    """Values known at build time: initializers (graph inputs with a default value included:
    wasm-build does not expose those as inputs) and outputs of `Constant` nodes. Read lazily:
    a model's weights are not copied to find one small shape tensor."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self._sources: dict[str, Any] = {init.name: init for init in model.graph.initializer}
        for node in model.graph.node:
            if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS and len(node.attribute) == 1:
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
