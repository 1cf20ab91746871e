"""torchvision, imported the one way that works on a CPU build of torch.

PyPI's torchvision 0.28 (paired with torch 2.13) is built for CUDA torch: on CPU torch its C
extension does not load, so its C operators (nms, roi_align, ...) are never defined, yet
`torchvision/_meta_registrations.py` registers a fake kernel for `torchvision::nms` at import,
which raises `RuntimeError: operator torchvision::nms does not exist`. timm and transformers
import torchvision too. The models built from these libraries use none of those operators, so
fake registrations for torchvision operators that do not exist are skipped, during the import only.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from collections.abc import Iterator
from types import ModuleType
from typing import Any


def import_torchvision() -> ModuleType | None:
    """`torchvision` (None when it is not installed), imported even where its C operators are
    missing; import it this way before timm or transformers."""
    if importlib.util.find_spec("torchvision") is None:
        return None
    with _skip_fake_kernels_of_missing_operators():
        return importlib.import_module("torchvision")


@contextlib.contextmanager
def _skip_fake_kernels_of_missing_operators() -> Iterator[None]:
    import torch  # optional, heavy: only models exported from torch need it

    register_fake = torch.library.register_fake

    def tolerant(op: Any, func: Any = None, /, **kwargs: Any) -> Any:
        namespace, _, name = op.partition("::") if isinstance(op, str) else ("", "", "")
        if namespace == "torchvision" and not hasattr(torch.ops.torchvision, name):
            # Nothing to attach a fake kernel to: the operator's C implementation did not load.
            return func if func is not None else (lambda fn: fn)
        return register_fake(op, func, **kwargs)

    torch.library.register_fake = tolerant
    try:
        yield
    finally:
        torch.library.register_fake = register_fake
