"""The model libraries the zoo instantiates architectures from, imported the one way that works here.

PyPI's torchvision 0.28.0 (the release paired with torch 2.13.0) is built for CUDA torch: on CPU
torch its C extension does not load, so its C operators (nms, roi_align, ...) are never defined,
yet `torchvision/_meta_registrations.py` registers a fake kernel for `torchvision::nms` at import,
which raises `RuntimeError: operator torchvision::nms does not exist`. timm and transformers
import torchvision too. No zoo model uses those operators, so `import_torchvision` skips fake
registrations for torchvision operators that do not exist, for the duration of the import only.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
from collections.abc import Iterator
from types import ModuleType
from typing import Any

# Distributions whose versions key the export cache and head the results table.
VERSIONED = ("torch", "torchvision", "timm", "transformers", "onnx", "onnxscript", "onnxruntime", "apache-tvm")


def _operator_exists(qualname: str) -> bool:
    import torch

    namespace, _, name = qualname.partition("::")
    return hasattr(getattr(torch.ops, namespace), name)


@contextlib.contextmanager
def _skip_fake_kernels_of_missing_torchvision_ops() -> Iterator[None]:
    import torch.library

    register_fake = torch.library.register_fake

    def tolerant(op: Any, func: Any = None, /, **kwargs: Any) -> Any:
        if isinstance(op, str) and op.startswith("torchvision::") and not _operator_exists(op):
            # Nothing to attach a fake kernel to: the operator's C implementation did not load.
            return func if func is not None else (lambda fn: fn)
        return register_fake(op, func, **kwargs)

    torch.library.register_fake = tolerant
    try:
        yield
    finally:
        torch.library.register_fake = register_fake


def import_torchvision() -> ModuleType:
    """`torchvision`, imported even where its C operators are missing (see the module's doc)."""
    with _skip_fake_kernels_of_missing_torchvision_ops():
        return importlib.import_module("torchvision")


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
