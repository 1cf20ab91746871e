"""Benchmark-sized ONNX models, built like the test models in
:mod:`wasm_build.testing.models` (seeded, opset 17, static shapes, checked).

They reproduce the structure (layer types, shapes, FLOPs) of well-known
networks with random but well-scaled weights; the outputs are logits or hidden
states with no final Softmax, so comparisons between backends stay
informative. ViT-Tiny and DeiT-Tiny are exported from timm (`bench.exported`).

A row of the bench is a name and a factory returning an `onnx.ModelProto` (seeded: every call
the same model); a factory raising `exported.ModelUnavailable` leaves its row out with a note.
Models of the zoo (`bench/zoo`) join as such factories.
"""

from __future__ import annotations

from collections.abc import Callable

import onnx

from bench.exported import deit_tiny, vit_tiny
from wasm_build.testing.models import (
    GraphBuilder,
    classifier_head,
    conv_bn,
    kws_cnn,
    layer_norm,
    mlp,
    relu,
    relu6,
    transformer_layer,
)

__all__ = [
    "BENCH_MODELS",
    "deit_tiny",
    "kws_cnn",
    "mlp_784",
    "mobilenet_v2",
    "resnet18",
    "transformer_encoder",
    "vit_tiny",
]

IMAGE = [1, 3, 224, 224]
CLASSES = 1000

# (expansion t, output channels c, repeats n, first stride s), MobileNetV2 Table 2.
MOBILENET_V2_STAGES = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


def mlp_784(seed: int = 0) -> onnx.ModelProto:
    """MNIST-sized MLP 784-512-256-10: "x" [1, 784] -> "probs" [1, 10]."""
    return mlp(seed, sizes=(784, 512, 256, 10))


def _inverted_residual(
    g: GraphBuilder, x: str, in_channels: int, out_channels: int, stride: int, expansion: int
) -> str:
    """MobileNetV2 block: 1x1 expand + ReLU6 (if t > 1), 3x3 depthwise + ReLU6,
    linear 1x1 projection; identity shortcut when shape is unchanged."""
    hidden = in_channels * expansion
    y = x
    if expansion != 1:
        y = conv_bn(g, y, in_channels, hidden, 1, activation=relu6)
    y = conv_bn(g, y, hidden, hidden, 3, stride=stride, groups=hidden, activation=relu6)
    shortcut = stride == 1 and in_channels == out_channels
    y = conv_bn(g, y, hidden, out_channels, 1, activation=None, bn_scale=0.5 if shortcut else 1.0)
    return g.op("Add", [x, y]) if shortcut else y


def mobilenet_v2(seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2, width 1.0: "image" [1, 3, 224, 224] -> "logits" [1, 1000].

    Stem Conv 3x3/2 (32 ch), the 17 inverted-residual blocks of the paper
    (expansion 6, channels 16-24-32-64-96-160-320), 1x1 Conv to 1280,
    GlobalAveragePool and a Gemm. BN after every Conv, ReLU6 as Clip(0, 6).
    About 300 M multiply-adds, 3.5 M parameters.
    """
    g = GraphBuilder("mobilenet_v2", seed)
    x = g.input("image", IMAGE)
    y = conv_bn(g, x, 3, 32, 3, stride=2, activation=relu6)
    channels = 32
    for expansion, out_channels, repeats, first_stride in MOBILENET_V2_STAGES:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            y = _inverted_residual(g, y, channels, out_channels, stride, expansion)
            channels = out_channels
    y = conv_bn(g, y, channels, 1280, 1, activation=relu6)
    g.output(classifier_head(g, y, 1280, CLASSES), "logits", [1, CLASSES])
    return g.build()


def _basic_block(g: GraphBuilder, x: str, in_channels: int, out_channels: int, stride: int) -> str:
    """ResNet BasicBlock: two 3x3 Conv+BN, shortcut (1x1 Conv/2 + BN when the
    shape changes), Add, ReLU."""
    y = conv_bn(g, x, in_channels, out_channels, 3, stride=stride)
    y = conv_bn(g, y, out_channels, out_channels, 3, activation=None, bn_scale=0.5)
    shortcut = x
    if stride != 1 or in_channels != out_channels:
        shortcut = conv_bn(g, x, in_channels, out_channels, 1, stride=stride, activation=None)
    return relu(g, g.op("Add", [shortcut, y]))


def resnet18(seed: int = 0) -> onnx.ModelProto:
    """ResNet-18: "image" [1, 3, 224, 224] -> "logits" [1, 1000].

    Conv 7x7/2 (64 ch) + BN + ReLU, MaxPool 3x3/2, four stages of two
    BasicBlocks (64, 128, 256, 512 channels; stride 2 from the second stage),
    GlobalAveragePool, Gemm. About 1.8 G multiply-adds, 11.7 M parameters.
    """
    g = GraphBuilder("resnet18", seed)
    x = g.input("image", IMAGE)
    y = conv_bn(g, x, 3, 64, 7, stride=2)
    y = g.op("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    channels = 64
    for stage, out_channels in enumerate([64, 128, 256, 512]):
        for i in range(2):
            stride = 2 if stage > 0 and i == 0 else 1
            y = _basic_block(g, y, channels, out_channels, stride)
            channels = out_channels
    g.output(classifier_head(g, y, channels, CLASSES), "logits", [1, CLASSES])
    return g.build()


def transformer_encoder(
    seed: int = 0, layers: int = 2, d: int = 128, seq: int = 64, heads: int = 4, ffn: int = 512
) -> onnx.ModelProto:
    """Pre-norm transformer encoder: "tokens" [1, seq, d] -> "hidden" [1, seq, d].

    ``layers`` copies of :func:`wasm_build.testing.models.transformer_layer`
    (multi-head attention, GELU MLP of width ``ffn``) and a final
    LayerNormalization.
    """
    if d % heads:
        raise ValueError(f"d={d} is not divisible by heads={heads}")
    g = GraphBuilder("transformer_encoder", seed)
    y = g.input("tokens", [1, seq, d])
    for _ in range(layers):
        y = transformer_layer(g, y, seq, d, heads, ffn)
    g.output(layer_norm(g, y, d), "hidden", [1, seq, d])
    return g.build()


BENCH_MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mlp_784": mlp_784,
    "mobilenet_v2": mobilenet_v2,
    "resnet18": resnet18,
    "transformer_encoder": transformer_encoder,
    "kws_cnn": kws_cnn,
    "vit_tiny": vit_tiny,
    "deit_tiny": deit_tiny,
}
