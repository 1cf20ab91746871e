"""PyTorch programs saved with `torch.export.save` (`.pt2`), through TVM's exported-program
frontend. torch is an optional dependency: it is imported when such a model is loaded."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Mapping

from ..config.settings import DimSpec, InputSpec
from ..errors import WasmBuildError
from .loaded import LoadedModel
from .shapes import pin_relax_inputs
from .torch_rewrites import to_relax


def load_pt2(path: Path, pinned: dict[str, InputSpec], dims: Mapping[str, DimSpec] | None = None) -> LoadedModel:
    try:
        import torch
    except ImportError:
        raise WasmBuildError(
            f"'{path.name}' is a PyTorch program but torch is not installed", fix="pip install 'wasm-build[torch]'"
        ) from None
    try:
        program = torch.export.load(str(path))
    except Exception as exc:
        raise WasmBuildError(
            f"'{path}' could not be loaded with torch.export.load ({type(exc).__name__}: {exc})",
            fix="save the program with torch.export.save(torch.export.export(model, example_inputs), 'model.pt2')",
        ) from None
    # Edits keep the program's meaning: it stays the smoke test's reference.
    module = to_relax(program)
    loaded = pin_relax_inputs("pt2", module, pinned, hashlib.sha256(path.read_bytes()).hexdigest(), dims)
    loaded.torch_program = program
    return loaded
