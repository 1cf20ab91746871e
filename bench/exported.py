"""Benchmark models exported from PyTorch model libraries: ViT-Tiny and DeiT-Tiny from timm.

Each is instantiated from timm's config with seeded random weights (nothing is downloaded) and
exported with the TorchScript exporter (`torch.onnx.export(..., dynamo=False)`, opset 17), like
the zoo's models (`bench/zoo`, which adds more of them as rows the same way: a factory that
returns the `onnx.ModelProto`). Without torch and timm the factories raise `ModelUnavailable`
and the bench leaves those rows out with a note.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import tempfile
from pathlib import Path

import onnx

from wasm_build.testing.torchvision import import_torchvision

IMAGE = (1, 3, 224, 224)


class ModelUnavailable(RuntimeError):
    """The libraries a model needs are missing here: the message says which, and the fix."""


def vit_tiny(seed: int = 0) -> onnx.ModelProto:
    """timm ``vit_tiny_patch16_224``: "image" [1, 3, 224, 224] -> "logits" [1, 1000] (197 tokens
    of width 192, 12 layers of 3 heads; 5.7 M parameters, 1.25 G multiply-adds)."""
    return _timm_model("vit_tiny_patch16_224", seed)


def deit_tiny(seed: int = 0) -> onnx.ModelProto:
    """timm ``deit_tiny_patch16_224``: ViT-Tiny's architecture under DeiT's training recipe (the
    same graph, other weights)."""
    return _timm_model("deit_tiny_patch16_224", seed)


def _timm_model(name: str, seed: int) -> onnx.ModelProto:
    torch, timm = _import("torch"), _import_timm()
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False).eval()
    with tempfile.TemporaryDirectory(prefix="wasm-build-bench-export-") as tmp:
        path = Path(tmp) / f"{name}.onnx"
        with torch.no_grad(), contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(model, (torch.randn(*IMAGE),), str(path), opset_version=17, input_names=["image"],
                              output_names=["logits"], dynamo=False)
        return onnx.load(str(path))


def _import(module: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ModelUnavailable(f"{module} is not installed ({exc}); fix: pip install torch timm") from exc


def _import_timm():
    """timm, importing torchvision first even where its C operators did not load (PyPI's
    torchvision is built for CUDA torch; on CPU torch its fake-kernel registrations raise at
    import, and no model here uses those operators)."""
    import_torchvision()
    return _import("timm")
