"""Models exported from torch and compared with onnxruntime, for the coverage tests."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from wasm_build import WasmModel
from wasm_build.testing import models

from . import build


def export_onnx(
    module: Any, example: tuple[Any, ...], input_names: Sequence[str], opset: int = 17, dynamic_axes: Any = None
) -> onnx.ModelProto:
    """`module` exported by torch's TorchScript exporter, as users do: with fixed shapes, or with
    `dynamic_axes` (torch's own argument)."""
    import torch

    buffer = io.BytesIO()
    with torch.no_grad():
        torch.onnx.export(module.eval(), example, buffer, opset_version=opset, dynamo=False, input_names=list(input_names),
                          dynamic_axes=dynamic_axes)
    return onnx.load_from_string(buffer.getvalue())


def last_hidden_state(model: Any, input_names: Sequence[str]) -> Any:
    """A module whose forward takes `input_names` in order, hands them to a transformers `model`
    by keyword and returns its `last_hidden_state`: what an export of the encoder needs."""
    import torch

    class LastHidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> Any:
            return self.model(**dict(zip(input_names, inputs))).last_hidden_state

    return LastHidden()


def build_and_compare(
    model: onnx.ModelProto, name: str, out_dir: Path, inputs: Sequence[np.ndarray] | None = None, **options: Any
) -> None:
    """Build (smoke test on: wasm vs TVM native and onnxruntime on seeded inputs), then run the
    wasm module on `inputs` (seeded random ones by default) and compare with onnxruntime
    within 1e-3 of each output's scale."""
    result = build(model, name, out_dir, **options)
    wasm = WasmModel(result.directory / f"{name}.wasm")
    feeds = list(inputs) if inputs is not None else list(models.random_inputs(model, seed=11).values())
    names = [i.name for i in wasm.inputs]
    expected = models.reference_outputs(model, dict(zip(names, feeds)))
    got = wasm.run(feeds)
    assert len(got) == len(expected)
    for have, want in zip(got, expected):
        assert have.shape == want.shape and have.dtype == want.dtype
        scale = float(np.max(np.abs(want))) if want.size and want.dtype.kind == "f" else 0.0
        np.testing.assert_allclose(have, want, rtol=1e-3, atol=1e-3 * scale + 1e-6)
