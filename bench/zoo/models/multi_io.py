"""Graphs with several inputs and/or outputs, of mixed dtypes."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..spec import Tensor, ZooModel
from .audio import KEYWORDS, MFCC


class SiameseEmbedder(nn.Module):
    """Two images through one shared CNN: both embeddings (L2-normalised) and their cosine similarity."""

    def __init__(self, width: int = 16, dim: int = 32) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, dim),
        )

    def forward(self, left: torch.Tensor, right: torch.Tensor):
        a, b = F.normalize(self.net(left), dim=1), F.normalize(self.net(right), dim=1)
        return a, b, (a * b).sum(dim=1)


class DetectionHeads(nn.Module):
    """One backbone, three heads: class logits, box regression (sigmoid), the arg-max class (int64)."""

    def __init__(self, width: int = 16, classes: int = 5) -> None:
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
        )
        self.classes = nn.Conv2d(width, classes, 1)
        self.boxes = nn.Conv2d(width, 4, 1)

    def forward(self, image: torch.Tensor):
        features = self.backbone(image)
        logits = self.classes(features)
        return logits, torch.sigmoid(self.boxes(features)), logits.argmax(dim=1)


class StatefulGRU(nn.Module):
    """Streaming GRU: a chunk of frames and the previous state in, scores and the next state out."""

    def __init__(self, hidden: int = 32, layers: int = 2) -> None:
        super().__init__()
        self.gru = nn.GRU(MFCC, hidden, layers, batch_first=True)
        self.head = nn.Linear(hidden, KEYWORDS)

    def forward(self, mfcc: torch.Tensor, state: torch.Tensor):
        sequence, next_state = self.gru(mfcc, state)
        return self.head(sequence), next_state


class MaskedPooling(nn.Module):
    """Float features, an int64 class index and a bool mask in: a masked mean and an embedding lookup."""

    def __init__(self, classes: int = 8, dim: int = 16) -> None:
        super().__init__()
        self.embedding = nn.Embedding(classes, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, features: torch.Tensor, label: torch.Tensor, mask: torch.Tensor):
        weights = mask.to(features.dtype).unsqueeze(-1)
        pooled = (features * weights).sum(1) / weights.sum(1).clamp(min=1.0)
        return self.proj(pooled) + self.embedding(label)


MODELS = [
    ZooModel("siamese", "torch", "multi-io", SiameseEmbedder,
             (Tensor.floats("left", 1, 3, 32, 32), Tensor.floats("right", 1, 3, 32, 32)), ("left_embedding", "right_embedding", "similarity")),
    ZooModel("detection_heads", "torch", "multi-io", DetectionHeads, (Tensor.floats("image", 1, 3, 32, 32),),
             ("logits", "boxes", "classes"), fast=True),
    ZooModel("gru_stateful", "torch", "multi-io", StatefulGRU,
             (Tensor.floats("mfcc", 1, 8, MFCC), Tensor.floats("state", 2, 1, 32)), ("scores", "next_state")),
    ZooModel("masked_pooling", "torch", "multi-io", MaskedPooling,
             (Tensor.floats("features", 1, 12, 16), Tensor.ints("label", 1, high=8), Tensor.ints("mask", 1, 12, high=2, dtype="bool")),
             ("embedding",)),
]
