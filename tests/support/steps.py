"""Quantized models' outputs compared with onnxruntime in quantization steps."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import onnx

from wasm_build import WasmModel
from wasm_build.testing import models
from wasm_build.wasm.steps import output_steps


def worst_steps(model: onnx.ModelProto, wasm: WasmModel, seeds: Iterable[int]) -> dict[str, float]:
    """Per quantized output, the largest difference from onnxruntime over the seeded inputs, in
    that output's quantization steps."""
    steps = output_steps(model)
    worst = dict.fromkeys(steps, 0.0)
    for seed in seeds:
        inputs = models.random_inputs(model, seed=seed)
        for output, got, want in zip(model.graph.output, wasm.run(inputs), models.reference_outputs(model, inputs)):
            error = float(np.abs(got.astype(np.float64) - want).max())
            worst[output.name] = max(worst[output.name], error / steps[output.name])
    return worst
