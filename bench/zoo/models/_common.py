"""Adapters shared by the zoo's definitions: library constructors and output selection."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from ..libraries import import_library, import_torchvision
from ..spec import Tensor

CLASSES = 10


def image(size: int = 64, channels: int = 3, name: str = "image") -> tuple[Tensor, ...]:
    return (Tensor.floats(name, 1, channels, size, size),)


class Outputs(nn.Module):
    """Calls `model` with the inputs as keyword arguments and returns the named outputs (keys of a
    dict or attributes of a transformers ModelOutput) as a tuple, so every exporter sees tensors."""

    def __init__(self, model: nn.Module, input_names: Sequence[str] | None, output_names: Sequence[str]) -> None:
        super().__init__()
        self.model = model
        self.input_names = tuple(input_names) if input_names is not None else None  # None: positional
        self.output_names = tuple(output_names)

    def forward(self, *tensors: torch.Tensor) -> Any:
        if self.input_names is None:
            result = self.model(*tensors)
        else:
            result = self.model(**dict(zip(self.input_names, tensors)))
        picked = tuple(result[name] for name in self.output_names)
        return picked[0] if len(picked) == 1 else picked


def torchvision_model(path: str, *args: Any, **kwargs: Any) -> nn.Module:
    """`torchvision.models.PATH(...)`: a builder ("resnet18", "segmentation.lraspp_...") without
    weights or backbone weights, or a class ("densenet.DenseNet") built from a small configuration."""
    target: Any = import_torchvision().models
    for part in path.split("."):
        target = getattr(target, part)
    if path.rpartition(".")[2][0].islower():  # builders download weights unless told not to
        kwargs["weights"] = None
        if "weights_backbone" in inspect.signature(target).parameters:
            kwargs["weights_backbone"] = None
    return target(*args, **kwargs).eval()


def timm_model(name: str, **kwargs: Any) -> nn.Module:
    timm = import_library("timm")
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def timm_class(path: str, **kwargs: Any) -> nn.Module:
    """A timm model class from an explicit configuration, for architectures whose registered
    variants fix the arguments we shrink (MLP-Mixer's embed_dim)."""
    target: Any = import_library("timm")
    for part in path.split("."):
        target = getattr(target, part)
    return target(**kwargs).eval()


def transformers_model(
    model_class: str, config_class: str, inputs: Sequence[str], outputs: Sequence[str], **config: Any
) -> nn.Module:
    """A transformers architecture from a (tiny) config, random weights, wrapped by `Outputs`."""
    transformers = import_library("transformers")
    model = getattr(transformers, model_class)(getattr(transformers, config_class)(**config)).eval()
    return Outputs(model, inputs, outputs).eval()
