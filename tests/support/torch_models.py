"""Small PyTorch models over a variable length, exported with `torch.export` and a `Dim`.

Built from torch.nn ops by hand (no downloads), seeded, small enough to compile in seconds:

- `Encoder`: a BERT-style encoder, `input_ids` and `attention_mask` of [1, seq] -> hidden
  states [1, seq, d] and a classifier's logits [1, 3] (from the first token);
- `Decoder`: a causal decoder, `ids` [1, seq] -> next-token logits [1, seq, vocab];
- `Speech`: 1-D convolutions over a variable number of frames, [1, 8, frames] ->
  [1, (frames - 1) // 2 - 3, classes].
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn


class _Layer(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int, causal: bool = False) -> None:
        super().__init__()
        self.heads, self.head_dim, self.causal = heads, d // heads, causal
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.up, self.down = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, s, d = x.shape
        q, k, v = (t.reshape(b, s, self.heads, self.head_dim).transpose(1, 2) for t in self.qkv(x).split(d, dim=-1))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim) + bias
        context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(b, s, d)
        x = self.norm1(x + self.out(context))
        return self.norm2(x + self.down(nn.functional.gelu(self.up(x))))


class Encoder(nn.Module):
    def __init__(self, vocab: int = 100, d: int = 32, heads: int = 2, ffn: int = 64, layers: int = 2, max_len: int = 128):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.norm = nn.LayerNorm(d)
        self.layers = nn.ModuleList(_Layer(d, heads, ffn) for _ in range(layers))
        self.classifier = nn.Linear(d, 3)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        positions = torch.arange(input_ids.shape[1]).unsqueeze(0)
        x = self.norm(self.tokens(input_ids) + self.positions(positions))
        bias = (1.0 - attention_mask[:, None, None, :].to(torch.float32)) * -10000.0
        for layer in self.layers:
            x = layer(x, bias)
        return x, self.classifier(x[:, 0])


class Decoder(nn.Module):
    def __init__(self, vocab: int = 50, d: int = 32, heads: int = 2, max_len: int = 128):
        super().__init__()
        self.tokens, self.positions = nn.Embedding(vocab, d), nn.Embedding(max_len, d)
        self.layer = _Layer(d, heads, 2 * d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        s = ids.shape[1]
        x = self.tokens(ids) + self.positions(torch.arange(s).unsqueeze(0))
        future = torch.triu(torch.ones(s, s, dtype=torch.bool), diagonal=1)
        bias = torch.zeros(s, s).masked_fill(future, float("-inf"))
        return self.head(self.layer(x, bias))


class Speech(nn.Module):
    def __init__(self, features: int = 8, channels: int = 16, classes: int = 4):
        super().__init__()
        self.conv1 = nn.Conv1d(features, channels, 3, stride=2, padding=1)
        self.conv2 = nn.Conv1d(channels, channels, 5)
        self.classify = nn.Linear(channels, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.classify(y.transpose(1, 2))


def seeded_encoder(max_len: int = 64) -> Encoder:
    """The encoder `export_encoder` exports: the same weights for the same `max_len`."""
    torch.manual_seed(0)
    return Encoder(max_len=max_len).eval()


def seeded_decoder(max_len: int = 64) -> Decoder:
    """The decoder `export_decoder` exports."""
    torch.manual_seed(1)
    return Decoder(max_len=max_len).eval()


def export_encoder(path: Path, max_len: int = 64) -> Path:
    module = seeded_encoder(max_len)
    seq = torch.export.Dim("seq", min=1, max=max_len)
    example = (torch.randint(0, 100, (1, 8)), torch.ones(1, 8, dtype=torch.int64))
    program = torch.export.export(
        module, example, dynamic_shapes={"input_ids": {1: seq}, "attention_mask": {1: seq}}
    )
    torch.export.save(program, str(path))
    return path


def export_decoder(path: Path, max_len: int = 64) -> Path:
    module = seeded_decoder(max_len)
    seq = torch.export.Dim("seq", min=1, max=max_len)
    program = torch.export.export(module, (torch.randint(0, 50, (1, 8)),), dynamic_shapes={"ids": {1: seq}})
    torch.export.save(program, str(path))
    return path


def export_speech(path: Path, min_frames: int = 16, max_frames: int = 200) -> Path:
    torch.manual_seed(2)
    frames = torch.export.Dim("frames", min=min_frames, max=max_frames)
    program = torch.export.export(Speech().eval(), (torch.randn(1, 8, 40),), dynamic_shapes={"x": {2: frames}})
    torch.export.save(program, str(path))
    return path
