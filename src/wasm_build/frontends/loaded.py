"""What a frontend hands the compiler."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BoundDim:
    """A symbolic dimension of the model's inputs and the sizes it may take."""

    name: str
    min: int
    max: int


@dataclass
class LoadedModel:
    kind: str  # "onnx", "pt2", "relax"
    module: Any  # tvm.IRModule
    input_names: list[str]
    output_names: list[str] | None
    digest: str  # sha256 of the source bytes (or of the printed IRModule)
    onnx_model: Any = None  # for the onnxruntime reference
    torch_program: Any = None  # for the PyTorch reference (.pt2)
    dims: list[BoundDim] = field(default_factory=list)  # bounded symbolic dimensions of the inputs
