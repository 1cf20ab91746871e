"""What a frontend hands the compiler."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class LoadedModel:
    kind: str  # "onnx", "pt2", "relax"
    module: Any  # tvm.IRModule
    input_names: list[str]
    output_names: list[str] | None
    digest: str  # sha256 of the source bytes (or of the printed IRModule)
    onnx_model: Any = None  # for the onnxruntime reference
    torch_program: Any = None  # for the PyTorch reference (.pt2)
