"""ONNX LSTM, GRU and RNN unrolled by wasm_build.frontends.onnx_rewrites.

The rewrites alone, without TVM: each configuration's rewritten model, run in onnxruntime,
gives what the original model gives in onnxruntime. What cannot be unrolled is refused by
node, by the rewrites and through a build. PyTorch exports compiled to wasm are in
test_onnx_rewrites_rnn_e2e.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from wasm_build.errors import WasmBuildError
from wasm_build.frontends.onnx_rewrites import apply_rewrites

from tests.support import build
from tests.support.onnx_rewrites import assert_rewrite_matches, run

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
STATES = {"LSTM": ("Y", "Y_h", "Y_c"), "GRU": ("Y", "Y_h"), "RNN": ("Y", "Y_h")}


def recurrent_model(
    op: str,
    *,
    direction: str = "forward",
    layout: int = 0,
    seq: int = 4,
    batch: int = 2,
    input_size: int = 3,
    hidden: int = 5,
    bias: bool = True,
    initial: str | None = None,  # "input", "constant" or "zeros": how initial_h (and initial_c) are given
    initial_c: bool = True,  # LSTM: give initial_c along with initial_h
    peepholes: bool = False,
    outputs: Sequence[str] | None = None,
    weights: str = "initializer",  # or "input" (W, R, B, P are graph inputs) or "constant" (Constant nodes)
    sequence_lens: list[int] | None = None,
    opset: int = 17,
    seed: int = 0,
    **attributes: Any,
) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """One recurrent node with seeded weights, and inputs to feed it."""
    rng = np.random.default_rng(seed)
    dirs = 2 if direction == "bidirectional" else 1
    gates = GATES[op]
    outputs = list(outputs or STATES[op])

    def rand(*shape: int, scale: float = 0.5) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    x_shape = [seq, batch, input_size] if layout == 0 else [batch, seq, input_size]
    state_shape = [dirs, batch, hidden] if layout == 0 else [batch, dirs, hidden]
    feeds = {"X": rand(*x_shape, scale=1.0)}
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    initializers: list[TensorProto] = []
    nodes: list[onnx.NodeProto] = []

    def provide(name: str, value: np.ndarray, how: str) -> str:
        if how == "input":
            feeds[name] = value
            inputs.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(value.dtype), list(value.shape)))
        elif how == "constant":
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name)))
        else:
            initializers.append(numpy_helper.from_array(value, name))
        return name

    node_inputs = [
        "X",
        provide("W", rand(dirs, gates * hidden, input_size), weights),
        provide("R", rand(dirs, gates * hidden, hidden), weights),
        provide("B", rand(dirs, 2 * gates * hidden), weights) if bias else "",
        provide("seq_lens", np.asarray(sequence_lens, np.int32), "initializer") if sequence_lens is not None else "",
    ]
    if initial is not None:
        how = "input" if initial == "input" else "initializer"
        scale = 0.0 if initial == "zeros" else 1.0
        node_inputs.append(provide("initial_h", rand(*state_shape) * scale, how))
        if op == "LSTM":
            node_inputs.append(provide("initial_c", rand(*state_shape) * scale, how) if initial_c else "")
    if peepholes:
        node_inputs += [""] * (7 - len(node_inputs)) + [provide("P", rand(dirs, 3 * hidden), weights)]

    node_outputs = [name if name in outputs else "" for name in STATES[op]]
    while node_outputs and not node_outputs[-1]:
        node_outputs.pop()
    attributes = {"hidden_size": hidden, "direction": direction, **attributes}
    if layout:
        attributes["layout"] = layout
    node = helper.make_node(op, node_inputs, node_outputs, name=f"{op.lower()}_node", **attributes)
    y_shape = [seq, dirs, batch, hidden] if layout == 0 else [batch, seq, dirs, hidden]
    graph_outputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, y_shape if name == "Y" else state_shape) for name in node_outputs if name
    ]
    graph = helper.make_graph([*nodes, node], f"{op.lower()}_test", inputs, graph_outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7
    return model, feeds




def reference(op: str, config: dict[str, Any], model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The original node's outputs in onnxruntime. It runs only layout 0: a layout-1 node is
    compared with its layout-0 twin (same weights) on transposed inputs and outputs."""
    if config.get("layout", 0) == 0:
        return run(model, feeds)
    assert config.get("initial") in (None, "input"), "constant layout-1 states would differ from the twin's"
    twin, _ = recurrent_model(op, **{**config, "layout": 0})
    swap = {"X", "initial_h", "initial_c"}
    outputs = run(twin, {name: value.transpose(1, 0, 2) if name in swap else value for name, value in feeds.items()})
    return [value.transpose(2, 0, 1, 3) if value.ndim == 4 else value.transpose(1, 0, 2) for value in outputs]




COMMON = {
    "forward": {},
    "reverse": {"direction": "reverse"},
    "bidirectional": {"direction": "bidirectional"},
    "layout1": {"layout": 1},
    "layout1-bidirectional-initial": {"layout": 1, "direction": "bidirectional", "initial": "input"},
    "no-bias": {"bias": False},
    "initial-input": {"initial": "input"},
    "initial-constant-reverse": {"initial": "constant", "direction": "reverse"},
    "initial-zeros": {"initial": "zeros"},
    "bidirectional-initial": {"direction": "bidirectional", "initial": "input"},
    "clip": {"clip": 0.4, "initial": "input"},
    "clip-bidirectional": {"clip": 0.7, "direction": "bidirectional"},
    "one-step": {"seq": 1, "direction": "bidirectional", "initial": "input"},
    "only-Y": {"outputs": ["Y"]},
    "only-Y_h": {"outputs": ["Y_h"], "direction": "bidirectional"},
    "sequence-lens-full": {"sequence_lens": [4, 4]},
    "weights-as-inputs": {"weights": "input", "direction": "bidirectional", "initial": "input"},
    "weights-as-constant-nodes": {"weights": "constant", "direction": "reverse"},
    "opset9-weights-as-inputs": {"weights": "input", "opset": 9, "clip": 0.5, "direction": "bidirectional"},
    "opset12": {"opset": 12, "clip": 0.5, "initial": "input"},
    "opset7": {"opset": 7, "clip": 0.5, "direction": "bidirectional", "initial": "input"},
    "batch1-hidden1": {"batch": 1, "hidden": 1, "direction": "bidirectional"},
}
LSTM_ONLY = {
    "peepholes": {"peepholes": True},
    "peepholes-bidirectional-initial": {"peepholes": True, "direction": "bidirectional", "initial": "input"},
    "peepholes-no-initial-c": {"peepholes": True, "initial": "input", "initial_c": False},
    "input-forget": {"input_forget": 1, "initial": "input"},
    "input-forget-peepholes-clip": {"input_forget": 1, "peepholes": True, "clip": 0.5, "direction": "bidirectional"},
    "only-Y_c": {"outputs": ["Y_c"]},
    "Y-and-Y_c": {"outputs": ["Y", "Y_c"], "direction": "reverse"},
    "activations": {"activations": ["Relu", "Sigmoid", "Tanh"], "initial": "input"},
    "activations-bidirectional": {"direction": "bidirectional", "activations": ["Sigmoid", "Relu", "Tanh", "Tanh", "Tanh", "Relu"]},
    "activations-lowercase": {"activations": ["sigmoid", "tanh", "relu"]},
    "clip-peepholes-layout1": {"clip": 0.3, "peepholes": True, "layout": 1, "initial": "input"},
}
GRU_ONLY = {
    "linear-before-reset": {"linear_before_reset": 1},
    "linear-before-reset-no-bias": {"linear_before_reset": 1, "bias": False, "initial": "input"},
    "linear-before-reset-bidirectional-initial": {"linear_before_reset": 1, "direction": "bidirectional", "initial": "input"},
    "linear-before-reset-layout1-clip": {"linear_before_reset": 1, "layout": 1, "clip": 0.5},
    "linear-before-reset-weights-as-inputs": {"linear_before_reset": 1, "weights": "input", "opset": 11},
    "activations": {"activations": ["Relu", "Sigmoid"], "initial": "input"},
    "activations-bidirectional": {"direction": "bidirectional", "activations": ["Sigmoid", "Tanh", "Tanh", "Relu"], "linear_before_reset": 1},
}
RNN_ONLY = {
    "relu": {"activations": ["Relu"], "initial": "input"},
    "sigmoid-bidirectional": {"activations": ["Sigmoid", "Relu"], "direction": "bidirectional"},
    "default-activation-list": {"activations": ["Tanh", "Tanh"]},  # the schema's default, written out
}
CONFIGS = [
    pytest.param(op, config, id=f"{op}-{name}")
    for op, only in (("LSTM", LSTM_ONLY), ("GRU", GRU_ONLY), ("RNN", RNN_ONLY))
    for name, config in {**COMMON, **only}.items()
]


@pytest.mark.parametrize("op, config", CONFIGS)
def test_rewrite_matches_onnxruntime(op: str, config: dict[str, Any]) -> None:
    model, feeds = recurrent_model(op, **config)
    assert_rewrite_matches(model, feeds, reference(op, config, model, feeds))


def open_output(name: str, rank: int) -> onnx.ValueInfoProto:
    """A float graph output of known rank and unstated sizes."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"{name}_{axis}" for axis in range(rank)])


def test_several_layers_and_kinds_in_one_graph() -> None:
    """A stack: LSTM -> GRU -> RNN, each reading the previous Y (direction axis squeezed)."""
    first, feeds = recurrent_model("LSTM", direction="bidirectional", outputs=["Y"], hidden=4)
    nodes, initializers = list(first.graph.node), list(first.graph.initializer)
    source = "Y"
    for index, (op, hidden) in enumerate((("GRU", 3), ("RNN", 2))):
        extra = {"linear_before_reset": 1} if op == "GRU" else {}
        layer, _ = recurrent_model(op, input_size=8 if index == 0 else 3, hidden=hidden, seed=index + 1, **extra)
        rename = {name: f"{op}_{name}" for name in ("W", "R", "B", "Y", "Y_h")}
        rename["X"] = f"{op}_X"
        # [seq, dirs, batch, hidden] -> [seq, batch, dirs * hidden]
        nodes.append(helper.make_node("Transpose", [source], [f"{op}_T"], perm=[0, 2, 1, 3]))
        nodes.append(helper.make_node("Reshape", [f"{op}_T", f"{op}_shape"], [f"{op}_X"]))
        initializers.append(numpy_helper.from_array(np.array([4, 2, -1], np.int64), f"{op}_shape"))
        node = layer.graph.node[0]
        nodes.append(helper.make_node(op, [rename.get(n, n) for n in node.input], [rename.get(n, n) for n in node.output], name=f"{op}_layer"))
        nodes[-1].attribute.extend(node.attribute)
        initializers += [numpy_helper.from_array(numpy_helper.to_array(i), rename[i.name]) for i in layer.graph.initializer]
        source = rename["Y"]
    outputs = [open_output(name, rank) for name, rank in (("Y", 4), ("GRU_Y_h", 3), ("RNN_Y", 4), ("RNN_Y_h", 3))]
    graph = helper.make_graph(nodes, "stack", list(first.graph.input), outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 7
    rewritten = assert_rewrite_matches(model, feeds, run(model, feeds))
    # The weights the recurrent nodes read are gone, in their re-laid-out form instead.
    assert not {"W", "R", "B", "GRU_W", "RNN_R"} & {i.name for i in rewritten.graph.initializer}


def test_new_names_never_collide_with_the_models() -> None:
    """Rewrite once, then give the model every name that rewrite invented: the second rewrite
    must invent others (the checker enforces single assignment)."""
    model, feeds = recurrent_model("LSTM", direction="bidirectional", initial="input", peepholes=True)
    invented = {name for node in apply_rewrites(model).graph.node for name in [*node.output, node.name]}
    invented -= {"Y", "Y_h", "Y_c"}
    taken = onnx.ModelProto()
    taken.CopyFrom(model)
    for name in sorted(invented):  # each name becomes a graph output computed from X
        taken.graph.node.append(helper.make_node("Identity", ["X"], [name], name=name))
        taken.graph.output.append(open_output(name, 3))
    rewritten = assert_rewrite_matches(taken, feeds, run(taken, feeds))
    names = [name for node in rewritten.graph.node for name in node.output]
    assert len(names) == len(set(names))


def test_models_without_recurrent_nodes_are_returned_unchanged() -> None:
    from wasm_build.testing import models

    model = models.mlp()
    assert apply_rewrites(model, {"input": [1, 64]}) is model


def test_pinned_input_shapes_set_the_sequence_length() -> None:
    model, feeds = recurrent_model("GRU", seq=3)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "time"
    model.graph.output[0].type.tensor_type.shape.dim[0].dim_param = "time"
    with pytest.raises(WasmBuildError, match="symbolic dimension 'time'") as caught:
        apply_rewrites(model)
    assert "gru_node" in str(caught.value) and "--input X=1x2x3" in caught.value.fix
    rewritten = apply_rewrites(model, {"X": [3, 2, 3]})
    for want, have in zip(run(model, feeds), run(rewritten, feeds)):
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5)


# -- what stays unsupported: refused by node, with the reason and a fix ----------------------


@pytest.mark.parametrize(
    "op, config, message",
    [
        pytest.param("LSTM", {"sequence_lens": [4, 2]}, r"sequence_lens 'seq_lens' \(the constant \[4, 2\]\)", id="sequence-lens-short"),
        pytest.param("GRU", {"activations": ["LeakyRelu", "Tanh"]}, "activation.s. LeakyRelu; .*Sigmoid, Tanh and Relu only", id="leaky-relu"),
        pytest.param("RNN", {"activations": ["Affine", "ScaledTanh"], "direction": "bidirectional"}, "Affine, ScaledTanh", id="affine"),
        pytest.param("LSTM", {"direction": "bidirectional", "activations": ["Sigmoid", "Tanh", "Tanh"]}, "needs 3 per direction", id="activation-count"),
        pytest.param("RNN", {"opset": 6}, "opset 6", id="old-opset"),
    ],
)
def test_unsupported_configurations_are_refused_by_node(op: str, config: dict[str, Any], message: str) -> None:
    model, _ = recurrent_model(op, **config)
    with pytest.raises(WasmBuildError, match=message) as caught:
        apply_rewrites(model)
    assert f"{op} node '{op.lower()}_node'" in str(caught.value)
    assert caught.value.fix


def test_sequence_lens_computed_at_run_time_is_refused() -> None:
    model, _ = recurrent_model("LSTM")
    model.graph.input.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, [2]))
    model.graph.node[0].input[4] = "lengths"
    with pytest.raises(WasmBuildError, match="sequence_lens 'lengths' .computed at run time.") as caught:
        apply_rewrites(model)
    assert "pad every sequence" in caught.value.fix


def test_recurrent_node_inside_a_subgraph_is_refused() -> None:
    body, _ = recurrent_model("RNN")
    branch = helper.make_graph(list(body.graph.node), "then", [], list(body.graph.output))
    other = helper.make_graph([helper.make_node("Identity", ["Y_fallback"], ["Y"]), helper.make_node("Identity", ["Y_fallback"], ["Y_h"])], "else", [], list(body.graph.output))
    node = helper.make_node("If", ["condition"], ["Y", "Y_h"], then_branch=branch, else_branch=other)
    graph = helper.make_graph([node], "g", [*body.graph.input, helper.make_tensor_value_info("condition", TensorProto.BOOL, [])], list(body.graph.output), list(body.graph.initializer))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(WasmBuildError, match="inside a subgraph .graph 'then'"):
        apply_rewrites(model)


def test_a_sequence_output_past_the_engines_parameter_limit_is_refused_before_unrolling() -> None:
    """Y concatenates every unrolled step's state in one kernel, which takes each as a parameter:
    past 1000, no engine loads the module. Refused by node before unrolling (a 1000-frame LSTM
    once failed only in wasmtime, after 8 minutes of compiling); without Y the layer unrolls."""
    model, _ = recurrent_model("GRU", direction="bidirectional", seq=500, batch=1, input_size=1, hidden=2, outputs=["Y", "Y_h"])
    with pytest.raises(WasmBuildError) as caught:
        apply_rewrites(model)
    message = str(caught.value)
    assert "GRU node" in message and "joins the states of 1000 unrolled time steps" in message
    assert "at most 1000 parameters" in message and "initial states of the next" in message

    model, _ = recurrent_model("GRU", direction="bidirectional", seq=500, batch=1, input_size=1, hidden=2, outputs=["Y_h"])
    assert "GRU" not in {node.op_type for node in apply_rewrites(model).graph.node}
    model, _ = recurrent_model("GRU", direction="bidirectional", seq=499, batch=1, input_size=1, hidden=2, outputs=["Y", "Y_h"])
    assert "GRU" not in {node.op_type for node in apply_rewrites(model).graph.node}


def test_build_refuses_what_it_cannot_unroll(tmp_path) -> None:
    """Through wasm-build's frontend, with the build's context: an open time axis is pinned
    first; a length only known at run time, or sequence_lens, are refused by node."""
    model, _ = recurrent_model("LSTM", seq=3)
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "frames"
    with pytest.raises(WasmBuildError, match=r"input 'X' dimension 0 is dynamic \('frames'\)") as caught:
        build(model, "unpinned", tmp_path)
    assert "--input X=1x2x3" in caught.value.fix

    reshaped, _ = recurrent_model("GRU")
    reshaped.graph.input[0].CopyFrom(helper.make_tensor_value_info("flat", TensorProto.FLOAT, [24]))
    reshaped.graph.input.append(helper.make_tensor_value_info("shape", TensorProto.INT64, [3]))
    reshaped.graph.node.insert(0, helper.make_node("Reshape", ["flat", "shape"], ["X"]))
    with pytest.raises(WasmBuildError, match="GRU node 'gru_node': the sequence length of its input X 'X' .dimension 0. is not known"):
        build(reshaped, "runtime_shape", tmp_path)

    model, _ = recurrent_model("LSTM", seq=3)
    model.graph.input.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, [2]))
    model.graph.node[0].input[4] = "lengths"
    with pytest.raises(WasmBuildError, match="LSTM node 'lstm_node' has sequence_lens 'lengths'") as caught:
        build(model, "lengths", tmp_path)
    assert str(caught.value).startswith("model 'lengths' [frontend]")


@pytest.mark.parametrize("op, config, per_step", [
    ("LSTM", {"initial": "input"}, 1),                                # i, o, f, c in one product
    ("LSTM", {"direction": "bidirectional", "peepholes": True, "initial": "input"}, 1),
    ("GRU", {"linear_before_reset": 1, "initial": "input"}, 1),       # z, r and h's H R_h
    ("GRU", {"initial": "input"}, 2),                                 # z and r; then (r H) R_h
    ("RNN", {"initial": "input"}, 1),
])
def test_each_step_multiplies_the_state_once_for_all_its_gates(op: str, config: dict[str, Any], per_step: int) -> None:
    """One input projection per direction, and per step one MatMul for every gate of the
    recurrent term (GRU without linear_before_reset: a second for (r H) R_h): an LSTM step
    is one kernel on a row of 4 x hidden, not four on rows of hidden."""
    model, _ = recurrent_model(op, seq=5, **config)
    directions = 2 if config.get("direction") == "bidirectional" else 1
    matmuls = [n for n in apply_rewrites(model, {}).graph.node if n.op_type == "MatMul"]
    assert len(matmuls) == directions * (1 + 5 * per_step)
