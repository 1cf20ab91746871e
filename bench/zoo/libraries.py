"""The model libraries the zoo instantiates architectures from, imported the one way that works here.

PyPI's torchvision 0.28.0 (the release paired with torch 2.13.0) is built for CUDA torch: on CPU
torch its C extension does not load, so its C operators (nms, roi_align, ...) are never defined,
yet `torchvision/_meta_registrations.py` registers a fake kernel for `torchvision::nms` at import,
which raises `RuntimeError: operator torchvision::nms does not exist`. timm and transformers
import torchvision too. No zoo model uses those operators: `wasm_build.testing.torchvision` skips fake
registrations for torchvision operators that do not exist, for the duration of the import only.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from types import ModuleType

from wasm_build.testing.torchvision import (
    import_torchvision as torchvision_on_cpu_torch,
)

# Distributions whose versions key the export cache and head the results table.
VERSIONED = ("torch", "torchvision", "timm", "transformers", "onnx", "onnxscript", "onnxruntime", "apache-tvm")


def import_torchvision() -> ModuleType:
    """`torchvision`, imported even where its C operators are missing (see the module's doc)."""
    module = torchvision_on_cpu_torch()
    if module is None:
        raise ImportError("torchvision is not installed; fix: pip install -r bench/zoo/requirements.txt")
    return module


def import_library(name: str) -> ModuleType:
    """`torchvision`, `timm` or `transformers`; the latter two import torchvision first."""
    import_torchvision()
    return importlib.import_module(name)


def versions() -> dict[str, str]:
    """Installed versions of the libraries that shape an export ("-" when missing)."""
    found = {}
    for distribution in VERSIONED:
        try:
            found[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            found[distribution] = "-"
    return found
