"""Segmentation and dense prediction: torchvision's DeepLabV3 / LR-ASPP and a small U-Net."""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F

from ..spec import ZooModel
from ._common import Outputs, image, torchvision_model


def _segmentation(name: str, **kwargs) -> nn.Module:
    """A torchvision segmentation model; its dict output reduced to the "out" map."""
    return Outputs(torchvision_model(f"segmentation.{name}", **kwargs), None, ("out",)).eval()


def _double_conv(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class UNet(nn.Module):
    """Three-level U-Net: max-pool down, one ConvTranspose (stride 2) up, one bilinear Resize up,
    skip connections by Concat, a 1x1 head."""

    def __init__(self, channels: int = 3, classes: int = 2, width: int = 8) -> None:
        super().__init__()
        w = width
        self.down1, self.down2, self.bottom = _double_conv(channels, w), _double_conv(w, 2 * w), _double_conv(2 * w, 4 * w)
        self.up_transpose = nn.ConvTranspose2d(4 * w, 2 * w, 2, stride=2)
        self.dec2 = _double_conv(4 * w, 2 * w)
        self.reduce = nn.Conv2d(2 * w, w, 1)
        self.dec1 = _double_conv(2 * w, w)
        self.head = nn.Conv2d(w, classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d1 = self.down1(x)
        d2 = self.down2(F.max_pool2d(d1, 2))
        bottom = self.bottom(F.max_pool2d(d2, 2))
        u2 = self.dec2(torch.cat([self.up_transpose(bottom), d2], 1))
        up = F.interpolate(self.reduce(u2), scale_factor=2.0, mode="bilinear", align_corners=False)
        return self.head(self.dec1(torch.cat([up, d1], 1)))


MODELS = [
    ZooModel("lraspp_mobilenet_v3", "torchvision", "dense", partial(_segmentation, "lraspp_mobilenet_v3_large", num_classes=4), image(64), ("out",)),
    ZooModel("deeplabv3_mobilenet_v3", "torchvision", "dense", partial(_segmentation, "deeplabv3_mobilenet_v3_large", num_classes=4, aux_loss=False), image(64), ("out",)),
    ZooModel("unet", "torch", "dense", UNet, image(32), ("mask",), fast=True, formats=("onnx", "onnx-dynamo", "pt2")),
]
