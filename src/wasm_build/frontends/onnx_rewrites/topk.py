"""`TopK` with a small constant k, as k rounds of arg-max and masking.

TVM lowers `topk` on CPU to a call of `tvm.contrib.sort.topk`, a function of TVM's C++
runtime, which a wasm-build module does not have: the static executor refuses it. For a
constant k, round r takes the arg-max of what is left (`ArgMax` keeps the first of equal
values, as onnxruntime orders ties), reads its value with `ReduceMax`, and masks that
position with -inf (+inf for the smallest) for the next round; the rounds' results are
concatenated in order, which is the sorted output.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper

from ...errors import WasmBuildError
from .graph import DEFAULT_DOMAINS, Constants, add_initializer, default_opset, fresh_name, infer_facts

MAX_K = 64  # each round is a pass over the input: larger k is left to TVM (and refused there)
_AXES_INPUT_OPSET = 18  # ReduceMax's axes: an attribute before, an input from opset 18


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    nodes = [n for n in model.graph.node if n.op_type == "TopK" and n.domain in DEFAULT_DOMAINS]
    if not nodes:
        return model
    # With data propagation: exporters compute a flatten's shape with Shape/Slice/Concat.
    known, facts = Constants(model), infer_facts(model)
    for node in nodes:
        shape = facts.shape(node.input[0])
        if shape is None or not all(isinstance(d, int) for d in shape):
            continue
        if len(node.input) < 2 or node.input[1] not in known:
            continue
        if facts.elem_types.get(node.input[0]) != onnx.TensorProto.FLOAT:
            continue  # the mask is -inf of float32
        k = int(np.asarray(known[node.input[1]]).reshape(-1)[0])
        attributes = {a.name: a.i for a in node.attribute}
        axis = attributes.get("axis", -1) % len(shape)
        if k > MAX_K and k <= shape[axis]:
            # TVM's own TopK calls its C++ runtime's sort, which fails to compile for wasm with a
            # message about its internals: say what is wrong here.
            raise WasmBuildError(
                f"TopK '{node.name or node.output[0]}' takes the top {k} of {shape[axis]} values (a sort, as torch.sort "
                f"exports); wasm-build computes TopK as k rounds of arg-max, for k up to {MAX_K}",
                fix=f"take at most the top {MAX_K} (torch.topk(x, k)), or sort in the host",
            )
        if not 0 < k <= min(MAX_K, shape[axis]):
            continue
        replacement = _rounds(model, node, shape, axis, k, largest=bool(attributes.get("largest", 1)))
        position = list(model.graph.node).index(node)
        del model.graph.node[position]
        for offset, new in enumerate(replacement):
            model.graph.node.insert(position + offset, new)
    return model


def _rounds(model: onnx.ModelProto, node: onnx.NodeProto, shape: tuple[int, ...], axis: int, k: int,
            largest: bool) -> list[onnx.NodeProto]:
    base = node.output[0] or node.name or "topk"
    positions_shape = [1] * len(shape)
    positions_shape[axis] = shape[axis]
    positions = add_initializer(model, f"{base}_positions", np.arange(shape[axis], dtype=np.int64).reshape(positions_shape))
    fill = add_initializer(model, f"{base}_fill", np.array(-np.inf if largest else np.inf, dtype=np.float32))
    nodes: list[onnx.NodeProto] = []
    pick, reduce = ("ArgMax", "ReduceMax") if largest else ("ArgMin", "ReduceMin")
    if default_opset(model) >= _AXES_INPUT_OPSET:
        axes_input, axes_attribute = [add_initializer(model, f"{base}_axes", np.array([axis], dtype=np.int64))], {}
    else:
        axes_input, axes_attribute = [], {"axes": [axis]}
    left, values, indices = node.input[0], [], []
    for r in range(k):
        index, value = fresh_name(model, f"{base}_index{r}"), fresh_name(model, f"{base}_value{r}")
        nodes.append(helper.make_node(pick, [left], [index], axis=axis, keepdims=1))
        nodes.append(helper.make_node(reduce, [left, *axes_input], [value], keepdims=1, **axes_attribute))
        values.append(value)
        indices.append(index)
        if r + 1 < k:
            taken, rest = fresh_name(model, f"{base}_taken{r}"), fresh_name(model, f"{base}_left{r}")
            nodes.append(helper.make_node("Equal", [positions, index], [taken]))
            nodes.append(helper.make_node("Where", [taken, fill, left], [rest]))
            left = rest
    outputs = list(node.output) + [""] * (2 - len(node.output))
    for parts, target in ((values, outputs[0]), (indices, outputs[1])):
        if target:
            nodes.append(helper.make_node("Concat", parts, [target], axis=axis))
    return nodes

