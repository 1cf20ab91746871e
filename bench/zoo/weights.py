"""Random weights that keep a network's activations at a useful scale.

Libraries initialise for training: zero-initialised heads (torchvision's ViT) give all-zero
outputs, and BatchNorm's default statistics (mean 0, variance 1) let activations shrink layer
after layer (EfficientNet-B0's logits come out near 1e-13). Compared with onnxruntime, such
outputs say nothing. So, deterministically: all-zero weight matrices are drawn anew, and
BatchNorm statistics are measured on a batch of seeded inputs, as after training.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from .spec import SEED, ZooModel

CALIBRATION_BATCH = 4


def make_informative(module: nn.Module, model: ZooModel) -> nn.Module:
    _redraw_zero_weights(module)
    _calibrate_batch_norm(module, model)
    return module.eval()


def _redraw_zero_weights(module: nn.Module) -> None:
    generator = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.endswith("weight") and parameter.dim() >= 2 and not parameter.any():
                fan_in = math.prod(parameter.shape[1:])
                parameter.copy_(torch.randn(parameter.shape, generator=generator) / math.sqrt(fan_in))


def _calibrate_batch_norm(module: nn.Module, model: ZooModel) -> None:
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    rng = np.random.default_rng(SEED + 1)
    samples = [[tensor.sample(rng) for tensor in model.inputs] for _ in range(CALIBRATION_BATCH)]
    batch = tuple(torch.from_numpy(np.concatenate(arrays, axis=0)) for arrays in zip(*samples))
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the calibration pass
    module.train()
    with torch.no_grad():
        module(*batch)
    module.eval()
