"""What a zoo entry is: a seeded PyTorch module, its inputs, and the formats it is exported to."""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

# Every model, its weights and its inputs come from this seed.
SEED = 0

# "onnx": torch.onnx.export(dynamo=False), opset 17, every model. "onnx-dynamo": the dynamo
# exporter (opset 18: it cannot convert its graphs down to 17). "pt2": torch.export, saved.
# "int8": the "onnx" export quantized by onnxruntime (quantize.py), every model: not listed in
# `formats`, the point is int8 on models nobody tuned it for.
Format = Literal["onnx", "onnx-dynamo", "pt2", "int8"]
FORMATS: tuple[Format, ...] = ("onnx", "onnx-dynamo", "pt2")  # what an entry's `formats` may list
_FORMAT_SUFFIX = {"onnx": "", "onnx-dynamo": "@dynamo", "pt2": "@pt2", "int8": "@int8"}

Task = Literal["vision", "dense", "nlp", "audio", "multi-io", "ops"]


@dataclass(frozen=True)
class Tensor:
    """One model input, drawn from `SEED`: float32 normal values, integers in [low, high), or an
    attention mask (int64 ones with the last `padding` positions zero)."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    low: int = 0
    high: int = 0
    padding: int = -1  # >= 0 makes this an attention mask

    @classmethod
    def floats(cls, name: str, *shape: int) -> Tensor:
        return cls(name, tuple(shape))

    @classmethod
    def ints(cls, name: str, *shape: int, high: int, low: int = 0, dtype: str = "int64") -> Tensor:
        return cls(name, tuple(shape), dtype, low, high)

    @classmethod
    def mask(cls, name: str, *shape: int, padding: int) -> Tensor:
        return cls(name, tuple(shape), "int64", padding=padding)

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        if self.padding >= 0:
            mask = np.ones(self.shape, np.int64)
            if self.padding:
                mask[..., -self.padding :] = 0
            return mask
        if np.dtype(self.dtype).kind == "f":
            return rng.standard_normal(self.shape).astype(self.dtype)
        return rng.integers(self.low, self.high, self.shape).astype(self.dtype)


@dataclass(frozen=True)
class ZooModel:
    """An architecture of the zoo.

    `make` returns the module in eval mode (the caller seeds torch first); its forward takes the
    `inputs` in order and returns one tensor or a tuple of tensors named by `outputs`.
    """

    name: str
    library: str  # torchvision | timm | transformers | torch (hand-written)
    task: Task
    make: Callable[[], torch.nn.Module]
    inputs: tuple[Tensor, ...]
    outputs: tuple[str, ...] = ("output",)
    fast: bool = False  # in the CI tier (tests/integration/test_zoo.py)
    formats: tuple[Format, ...] = ("onnx",)
    note: str = ""
    fast_int8: bool = False  # its @int8 case is in the CI tier too

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name):
            raise ValueError(f"zoo model names are lowercase C identifiers: {self.name!r}")
        if self.formats[0] != "onnx" or not set(self.formats) <= set(FORMATS):
            raise ValueError(f"{self.name}: formats start with 'onnx' (the reference) and are among {FORMATS}")

    def sample_inputs(self, seed: int = SEED) -> dict[str, np.ndarray]:
        """The inputs every case is compared on (`SEED`); other seeds calibrate the int8 format."""
        rng = np.random.default_rng(seed)
        return {tensor.name: tensor.sample(rng) for tensor in self.inputs}

    def cases(self) -> list[Case]:
        return [*(Case(self, fmt) for fmt in self.formats), Case(self, "int8")]

    def definition(self) -> str:
        """The text that defines this entry: its fields and the source of its factory (the tiers
        and the note shape no export)."""
        fields = {k: v for k, v in self.__dict__.items() if k not in ("make", "fast", "note", "fast_int8")}
        return f"{fields!r}\n{_callable_source(self.make)}"


@dataclass(frozen=True)
class Case:
    """One model in one format: a row of the results table."""

    model: ZooModel
    format: Format = "onnx"
    id: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", self.model.name + _FORMAT_SUFFIX[self.format])

    @property
    def fast(self) -> bool:
        """In the CI tier: an int8 case by its own flag; the others, as before, by the model's."""
        return self.model.fast_int8 if self.format == "int8" else self.model.fast

    @property
    def c_name(self) -> str:
        """The build's name: a C identifier."""
        return self.id.replace("@", "_")


def _callable_source(fn: Callable[..., object]) -> str:
    if isinstance(fn, functools.partial):
        return f"{_callable_source(fn.func)}(*{fn.args!r}, **{fn.keywords!r})"
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # builtins and C extensions have no source: their name is stable
        return f"{getattr(fn, '__module__', '')}.{getattr(fn, '__qualname__', repr(fn))}"
