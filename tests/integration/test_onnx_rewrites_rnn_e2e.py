"""Recurrent models exported from PyTorch (TorchScript exporter, opset 17), unrolled by
wasm_build.frontends.onnx_rewrites. The rewrites alone are compared with onnxruntime; a few
are compiled to wasm, where the build's smoke test compares with onnxruntime on the original
model and the test compares once more on its own inputs."""

from __future__ import annotations

import io
import json
import warnings
from typing import Any

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from wasm_build import WasmModel

from tests.support import build
from tests.support.onnx_rewrites import assert_rewrite_matches, run

torch = pytest.importorskip("torch")


class Recurrent(torch.nn.Module):
    """A torch.nn recurrent layer that returns its output and final states."""

    def __init__(self, kind: str, **options: Any) -> None:
        super().__init__()
        self.kind = kind
        self.layer = getattr(torch.nn, kind)(**options)

    def forward(self, x: Any, *initial: Any) -> tuple[Any, ...]:
        if not initial:
            y, final = self.layer(x)
        else:
            y, final = self.layer(x, tuple(initial) if self.kind == "LSTM" else initial[0])
        return (y, *final) if isinstance(final, tuple) else (y, final)


class KeywordSpotter(torch.nn.Module):
    """Streaming-KWS shape: a strided conv front end over MFCC frames, a recurrent layer,
    and a linear head on the last step."""

    def __init__(self, kind: str, features: int = 10, channels: int = 16, hidden: int = 12, classes: int = 4) -> None:
        super().__init__()
        self.front = torch.nn.Sequential(
            torch.nn.Conv1d(features, channels, 3, stride=2, padding=1), torch.nn.BatchNorm1d(channels), torch.nn.ReLU()
        )
        self.recurrent = getattr(torch.nn, kind)(channels, hidden, batch_first=True)
        self.head = torch.nn.Linear(hidden, classes)

    def forward(self, mfcc: Any) -> Any:  # [batch, features, frames]
        y, _ = self.recurrent(self.front(mfcc).transpose(1, 2))
        return self.head(y[:, -1])


def export(module: Any, inputs: dict[str, Any], outputs: list[str], **options: Any) -> onnx.ModelProto:
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and batch-size notes
        torch.onnx.export(
            module.eval(), tuple(inputs.values()), buffer, opset_version=17, dynamo=False,
            input_names=list(inputs), output_names=outputs, **options,
        )
    return onnx.load_from_string(buffer.getvalue())


def torch_case(kind: str, *, layers: int = 2, bidirectional: bool = True, batch_first: bool = True, initial: bool = True,
               seq: int = 5, batch: int = 1, input_size: int = 4, hidden: int = 6, dynamic_time: bool = False,
               **options: Any) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """A torch.nn `kind` layer (`options` go to its constructor) exported to ONNX, and its inputs."""
    torch.manual_seed(0)
    module = Recurrent(kind, input_size=input_size, hidden_size=hidden, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, **options)
    x = torch.randn(batch, seq, input_size) if batch_first else torch.randn(seq, batch, input_size)
    state = [torch.randn(layers * (2 if bidirectional else 1), batch, hidden) for _ in range(2 if kind == "LSTM" else 1)]
    inputs = {"x": x, **(dict(zip(("h0", "c0"), state)) if initial else {})}
    outputs = ["y", "h", "c"][: 3 if kind == "LSTM" else 2]
    dynamic = {"dynamic_axes": {"x": {1 if batch_first else 0: "time"}}} if dynamic_time else {}
    model = export(module, inputs, outputs, **dynamic)
    return model, {name: value.numpy() for name, value in inputs.items()}


TORCH_CASES = {
    "GRU-bidirectional-2-layers-batch-first-h0": ("GRU", {}),
    "LSTM-bidirectional-2-layers-h0-c0": ("LSTM", {"batch_first": False}),
    "RNN-relu-bidirectional-2-layers-h0": ("RNN", {"nonlinearity": "relu"}),
    "GRU-1-layer-no-state": ("GRU", {"layers": 1, "bidirectional": False, "initial": False, "batch": 2}),
    "LSTM-1-layer-no-state-batch-first": ("LSTM", {"layers": 1, "bidirectional": False, "initial": False, "batch": 2}),
    "RNN-tanh-2-layers-seq-first": ("RNN", {"bidirectional": False, "batch_first": False}),
}


@pytest.mark.parametrize("kind, options", TORCH_CASES.values(), ids=TORCH_CASES.keys())
def test_pytorch_exports_rewrite_to_what_onnxruntime_computes(kind: str, options: dict[str, Any]) -> None:
    model, feeds = torch_case(kind, **options)
    assert_rewrite_matches(model, feeds, run(model, feeds))


def assert_wasm_matches_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray], name: str, out_dir: Any, **options: Any) -> None:
    """Build with the smoke test on (wasmtime vs onnxruntime on the original model), then
    compare once more on these inputs."""
    result = build(model, name, out_dir, **options)
    got = WasmModel(result.directory / f"{name}.wasm").run(feeds)
    expected = run(model, feeds)
    assert len(got) == len(expected)
    for want, have in zip(expected, got):
        assert have.shape == want.shape
        np.testing.assert_allclose(have, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "kind, options",
    [TORCH_CASES[key] for key in ("GRU-bidirectional-2-layers-batch-first-h0", "LSTM-bidirectional-2-layers-h0-c0")],
    ids=["GRU", "LSTM"],
)
def test_pytorch_recurrent_layers_compile_to_wasm(kind: str, options: dict[str, Any], tmp_path) -> None:
    model, feeds = torch_case(kind, seq=24, hidden=16, **options)
    assert_wasm_matches_onnxruntime(model, feeds, kind.lower(), tmp_path)
    # Every unrolled step calls its direction's recurrent MatMul on the same weights, which
    # constant folding packs once per call: the artifact holds one copy (24 before), so the
    # steps read weights that stay in cache.
    manifest = json.loads((tmp_path / kind.lower() / f"{kind.lower()}.json").read_text())
    initializers = sum(numpy_helper.to_array(tensor).nbytes for tensor in model.graph.initializer)
    assert manifest["weights"]["nbytes"] <= 1.25 * initializers, (manifest["weights"], initializers)


def test_pytorch_rnn_with_open_time_axis_compiles_at_the_pinned_length(tmp_path) -> None:
    model, feeds = torch_case("RNN", nonlinearity="relu", dynamic_time=True)
    assert model.graph.input[0].type.tensor_type.shape.dim[1].dim_param == "time"
    assert_wasm_matches_onnxruntime(model, feeds, "rnn", tmp_path, inputs={"x": {"shape": list(feeds["x"].shape)}})


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_keyword_spotter_compiles_to_wasm(kind: str, tmp_path) -> None:
    torch.manual_seed(1)
    mfcc = torch.randn(1, 10, 16)
    model = export(KeywordSpotter(kind), {"mfcc": mfcc}, ["logits"])
    assert kind in {node.op_type for node in model.graph.node}
    assert_wasm_matches_onnxruntime(model, {"mfcc": mfcc.numpy()}, f"kws_{kind.lower()}", tmp_path)
