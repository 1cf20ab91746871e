"""The zoo's `int8` format: a model's TorchScript ONNX export quantized by onnxruntime's
`quantize_static`, as a user would quantize it, and the steps its outputs are compared in.

QDQ format, uint8 activations, int8 weights, per channel where onnxruntime supports it
(`wasm_build.testing.quantized.qdq`, the recipe of tests/integration/test_int8.py), calibrated on
the entry's own seeded inputs drawn with the next `CALIBRATION_BATCHES` seeds: token ids stay in
their vocabulary, and the compared inputs (seed `SEED`) are not among the calibration batches.
Only float tensors are quantized; integer inputs (token ids, masks) pass through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .spec import SEED, ZooModel

CALIBRATION_BATCHES = 4
_QDQ = ("QuantizeLinear", "DequantizeLinear")


def calibration_inputs(model: ZooModel, graph_inputs: list[str]) -> list[dict[str, np.ndarray]]:
    """The entry's seeded inputs for seeds SEED+1 .. SEED+CALIBRATION_BATCHES, restricted to the
    graph's inputs (exporters drop the inputs a model does not use)."""
    batches = [model.sample_inputs(SEED + 1 + i) for i in range(CALIBRATION_BATCHES)]
    return [{name: batch[name] for name in graph_inputs} for batch in batches]


class QuantizationError(Exception):
    """onnxruntime's quantizer failed, or gave a model that is not a quantized version of the float one."""


def quantize(model: ZooModel, source: Path, target: Path) -> None:
    """`source` (the entry's TorchScript ONNX export) quantized into `target`: weights per channel,
    or per tensor where onnxruntime's per-channel quantizer fails on the model.

    A tensor that calibrates to an infinite range (masked attention scores: -inf where the mask is
    0) gets an infinite scale, and onnxruntime then computes NaN: such tensors stay float, the
    nodes around them excluded from quantization, as a user would do."""
    import onnx

    from wasm_build.testing import quantized

    float_model = onnx.load(str(source))
    batches = calibration_inputs(model, [value.name for value in float_model.graph.input])

    def qdq(excluded: list[str], per_channel: bool) -> onnx.ModelProto:
        # An infinite range warns in the quantizer's arithmetic; unbounded_nodes deals with it.
        with np.errstate(divide="ignore", invalid="ignore"):
            return quantized.qdq(float_model, activations="uint8", weights="int8", per_channel=per_channel,
                                 calibration_inputs=batches, nodes_to_exclude=excluded)

    per_channel = True
    try:
        quantized_model = qdq([], per_channel)
    except Exception:  # onnxruntime's per-channel path fails on some weights (grouped ConvTranspose, norms)
        per_channel = False
        quantized_model = qdq([], per_channel)  # per tensor; its failure is the case's
    unbounded = unbounded_nodes(quantized_model)
    if unbounded.tensors:
        quantized_model = qdq(unbounded.nodes, per_channel)
        left = unbounded_nodes(quantized_model).tensors
        if left:
            raise QuantizationError(f"quantize_static gave {len(left)} tensors infinite scales, e.g. {left[0]!r}")
    onnx.save_model(quantized_model, str(target))


@dataclass(frozen=True)
class Unbounded:
    tensors: list[str]  # quantized with a non-finite scale
    nodes: list[str]  # the float nodes that produce or consume them


def unbounded_nodes(model) -> Unbounded:
    """The tensors a QDQ model quantizes with a non-finite scale, and the nodes around them."""
    from onnx import numpy_helper

    graph = model.graph
    scales = {init.name: numpy_helper.to_array(init) for init in graph.initializer}
    producers = {output: node for node in graph.node for output in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    tensors, nodes = [], []
    for q in (node for node in graph.node if node.op_type == "QuantizeLinear"):
        scale = scales.get(q.input[1])
        if scale is None or np.isfinite(scale).all():
            continue
        tensors.append(q.input[0])
        around = [producers.get(q.input[0])]
        around += [user for dq in consumers.get(q.output[0], []) for user in consumers.get(dq.output[0], [])]
        nodes += [n.name for n in around if n is not None and n.op_type not in _QDQ and n.name and n.name not in nodes]
    return Unbounded(tensors, nodes)


def output_steps(onnx_path: Path) -> list[float | None]:
    """Each graph output's quantization step, in output order; None for an output that is not a
    per-tensor dequantized tensor (compared by relative error, or exactly for integers)."""
    import onnx

    from wasm_build.wasm.steps import output_steps as steps_by_name

    model = onnx.load(str(onnx_path), load_external_data=False)
    steps = steps_by_name(model)
    return [steps.get(output.name) for output in model.graph.output]
