"""Frontends: load a model into a Relax IRModule whose input shapes are static or bounded.

- `onnx`: `.onnx` files, through TVM's ONNX frontend;
- `torch`: `.pt2` programs saved with `torch.export.save` (torch is an optional extra);
- `relax`: `"package.module:function"` callables returning a Relax `IRModule`.

Input shapes and dtypes come from the model where it has them and from the user's
`inputs` where it does not; symbolic dimensions are bounded by the user's `dims` or the
model's own bounds (`shapes`). A dimension left open is an error naming the input, the
dimension and how to pin or bound it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from ..config.settings import DimSpec, InputSpec
from ..config.sources import ModelSource
from ..errors import WasmBuildError
from .loaded import LoadedModel
from .onnx import load_onnx
from .relax import load_callable
from .runtime_ops import check_runtime_ops
from .torch import load_pt2


def load_model(
    source: str | ModelSource,
    pinned: dict[str, InputSpec],
    project_dir: Path,
    dims: Mapping[str, DimSpec] | None = None,
) -> LoadedModel:
    """Load `source` (relative paths start at `project_dir`); `dims` bounds symbolic dimensions."""
    if isinstance(source, str):
        source = ModelSource.parse(source, project_dir)
    if source.kind == "callable":
        loaded = load_callable(source.text, pinned, project_dir, dims)
    else:
        assert source.path is not None
        if not source.path.is_file():
            raise WasmBuildError(
                f"model file '{source.text}' does not exist (looked in {source.path.parent})",
                fix="check the path (relative to the project directory), or use 'package.module:function' for Python sources",
            )
        loaded = load_onnx(source.path, pinned, dims) if source.kind == "onnx" else load_pt2(source.path, pinned, dims)
    check_runtime_ops(loaded.module, source.text, source.kind)
    return loaded


__all__ = ["LoadedModel", "load_model"]
