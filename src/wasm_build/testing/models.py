"""Small, seeded ONNX models for tests, built with ``onnx.helper`` alone.

Every builder returns an :class:`onnx.ModelProto` (opset 17, IR version 8,
float32, static shapes unless stated) that has passed ``onnx.checker`` (full
check) and strict shape inference. Weights come from
``numpy.random.default_rng(seed)``, so one seed always gives the same bytes.

Initialisation keeps activations near unit scale, because outputs are compared
between implementations with tolerances of about 1e-4:

* weights feeding a ReLU use He scaling (std ``sqrt(2 / fan_in)``), other
  projections LeCun/Xavier scaling (std ``1 / sqrt(fan_in)``);
* batch-norm running statistics are near (0, 1), with variance bounded away
  from zero, and the last batch norm of a residual branch has a smaller scale
  so that sums of branches do not grow;
* attention scores are divided by ``sqrt(head_dim)`` after layer-normalised,
  unit-scale projections, so softmax is far from saturation.

The graph-building helpers (:class:`GraphBuilder` and the layer functions) are
public so that ``bench/models.py`` can assemble bigger models from them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from ..wasm.inputs import random_array
from ..wasm.onnxruntime_reference import node_by_node, reference_session

OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17; widely loadable
_INPUT_STREAM = 0x1A7E  # keeps random_inputs' stream apart from the weights'

Shape = Sequence[int | str]

__all__ = [
    "MODELS",
    "GraphBuilder",
    "cnn",
    "dynamic_batch_mlp",
    "kws_cnn",
    "mlp",
    "random_inputs",
    "reference_outputs",
    "save",
    "sequence_encoder",
    "transformer_block",
    "two_in_two_out",
    "unsupported_op_model",
]


# --------------------------------------------------------------------------
# Graph builder
# --------------------------------------------------------------------------


class GraphBuilder:
    """Collects the nodes, initializers and signature of one ONNX graph.

    Tensor names are generated (``<prefix>_<n>``) so layer functions can be
    composed freely; :meth:`output` renames the final tensor to its public name.
    """

    def __init__(self, name: str, seed: int = 0) -> None:
        self.name = name
        self.rng = np.random.default_rng(seed)
        self._nodes: list[onnx.NodeProto] = []
        self._initializers: list[onnx.TensorProto] = []
        self._inputs: list[onnx.ValueInfoProto] = []
        self._outputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    def fresh(self, prefix: str) -> str:
        """Return a new, unused tensor name."""
        self._count += 1
        return f"{prefix}_{self._count}"

    # -- signature ---------------------------------------------------------

    def input(self, name: str, shape: Shape, elem_type: int = TensorProto.FLOAT) -> str:
        """Declare a graph input and return its name."""
        self._inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def output(
        self, tensor: str, name: str, shape: Shape, elem_type: int = TensorProto.FLOAT
    ) -> str:
        """Rename ``tensor`` to ``name`` everywhere and declare it a graph output."""
        if tensor != name:
            for node in self._nodes:
                node.input[:] = [name if t == tensor else t for t in node.input]
                node.output[:] = [name if t == tensor else t for t in node.output]
        self._outputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    # -- constants ---------------------------------------------------------

    def constant(self, array: np.ndarray, prefix: str = "const") -> str:
        """Add ``array`` as an initializer and return its name."""
        name = self.fresh(prefix)
        self._initializers.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def scalar(self, value: float) -> str:
        """A float32 scalar constant."""
        return self.constant(np.array(value, dtype=np.float32), "scalar")

    def int64s(self, values: Sequence[int]) -> str:
        """A 1-D int64 constant (shapes, axes)."""
        return self.constant(np.array(values, dtype=np.int64), "ints")

    def normal(self, shape: Sequence[int], std: float, prefix: str = "w") -> str:
        """A float32 weight drawn from N(0, std^2)."""
        values = self.rng.standard_normal(tuple(shape)) * std
        return self.constant(values.astype(np.float32), prefix)

    def uniform(self, shape: Sequence[int], low: float, high: float, prefix: str) -> str:
        """A float32 weight drawn from U(low, high)."""
        values = self.rng.uniform(low, high, tuple(shape))
        return self.constant(values.astype(np.float32), prefix)

    # -- nodes -------------------------------------------------------------

    def op(self, op_type: str, inputs: Sequence[str], **attrs: object) -> str:
        """Append a single-output node and return the name of its output."""
        out = self.fresh(op_type.lower())
        self._nodes.append(
            helper.make_node(op_type, list(inputs), [out], name=f"{op_type}_{self._count}", **attrs)
        )
        return out

    # -- result ------------------------------------------------------------

    def build_unchecked(self, output: str) -> onnx.ModelProto:
        """The model so far with `output` as its (untyped) output, for shape inference."""
        graph = helper.make_graph(
            self._nodes, self.name, self._inputs, [helper.make_empty_tensor_value_info(output)],
            initializer=self._initializers,
        )
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)

    def build(self) -> onnx.ModelProto:
        """Assemble, check and return the model.

        Raises if ``onnx.checker`` rejects the model or if strict shape
        inference finds a shape that disagrees with a declared output.
        """
        graph = helper.make_graph(
            self._nodes, self.name, self._inputs, self._outputs, initializer=self._initializers
        )
        model = helper.make_model(
            graph,
            opset_imports=[helper.make_opsetid("", OPSET)],
            ir_version=IR_VERSION,
            producer_name="wasm_build.testing",
        )
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
        return model


class Chain(GraphBuilder):
    """A single-input, single-output graph built one node after the last: compiler tests
    write `Chain(rng, [1, 16, 28, 28]).conv(16, 32, 3, pad=1).add("Relu").build()`."""

    def __init__(self, rng: np.random.Generator, input_shape: Shape) -> None:
        super().__init__("chain")
        self.rng = rng
        self.last = self.input("x", input_shape)

    def add(self, op_type: str, *extra_inputs: str, **attrs: object) -> Chain:
        """Apply `op_type` to the last tensor (and `extra_inputs`)."""
        self.last = self.op(op_type, [self.last, *extra_inputs], **attrs)
        return self

    def const(self, shape: Sequence[int], scale: float = 0.1, positive: bool = False) -> str:
        """A float32 constant: N(0, scale^2), or U(0.5, 1.5) when it must be positive (variances)."""
        if positive:
            return self.uniform(shape, 0.5, 1.5, "c")
        return self.normal(shape, scale, "c")

    def conv(self, c_in: int, c_out: int, k: int, stride: int = 1, pad: int = 0, group: int = 1) -> Chain:
        weight, bias = self.const([c_out, c_in // group, k, k]), self.const([c_out])
        return self.add("Conv", weight, bias, kernel_shape=[k, k], strides=[stride] * 2, pads=[pad] * 4, group=group)

    def batch_norm(self, channels: int) -> Chain:
        params = [self.const([channels], 1.0), self.const([channels]), self.const([channels])]
        return self.add("BatchNormalization", *params, self.const([channels], positive=True))

    def pool(self, op_type: str, k: int = 3, stride: int = 2, pad: int = 1) -> Chain:
        return self.add(op_type, kernel_shape=[k, k], strides=[stride] * 2, pads=[pad] * 4)

    def build(self) -> onnx.ModelProto:
        """The model, its output `y` shaped by ONNX's shape inference."""
        inferred = onnx.shape_inference.infer_shapes(super().build_unchecked(self.last))
        (shape,) = [v for v in inferred.graph.value_info if v.name == self.last] or [None]
        dims = [d.dim_value for d in shape.type.tensor_type.shape.dim] if shape is not None else None
        self.output(self.last, "y", dims)
        return super().build()


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


def relu(g: GraphBuilder, x: str) -> str:
    return g.op("Relu", [x])


def relu6(g: GraphBuilder, x: str) -> str:
    """ReLU6 as ``Clip(x, 0, 6)`` with the opset-11+ tensor bounds."""
    return g.op("Clip", [x, g.scalar(0.0), g.scalar(6.0)])


def gelu(g: GraphBuilder, x: str) -> str:
    """Exact GELU spelled out with Erf: ``0.5 * x * (1 + erf(x / sqrt(2)))``.

    (The ``Gelu`` op only exists from opset 20.)
    """
    erf = g.op("Erf", [g.op("Mul", [x, g.scalar(1.0 / math.sqrt(2.0))])])
    return g.op("Mul", [g.op("Mul", [x, g.op("Add", [erf, g.scalar(1.0)])]), g.scalar(0.5)])


def dense(g: GraphBuilder, x: str, in_features: int, out_features: int, gain: float = 1.0) -> str:
    """``Gemm(x, W, b, transB=1)`` on a 2-D input; W has std ``gain / sqrt(in)``."""
    w = g.normal((out_features, in_features), gain / math.sqrt(in_features), "gemm_w")
    b = g.normal((out_features,), 0.05, "gemm_b")
    return g.op("Gemm", [x, w, b], transB=1)


def linear(g: GraphBuilder, x: str, in_features: int, out_features: int, gain: float = 1.0) -> str:
    """``MatMul(x, W) + b`` for inputs of any rank; W has std ``gain / sqrt(in)``."""
    w = g.normal((in_features, out_features), gain / math.sqrt(in_features), "matmul_w")
    b = g.normal((out_features,), 0.05, "bias")
    return g.op("Add", [g.op("MatMul", [x, w]), b])


def conv(
    g: GraphBuilder,
    x: str,
    in_channels: int,
    out_channels: int,
    kernel: int | tuple[int, ...],
    stride: int = 1,
    groups: int = 1,
    pads: Sequence[int] | None = None,
    bias: bool = False,
    gain: float = math.sqrt(2.0),
    dilation: int = 1,
) -> str:
    """Convolution with He-scaled weights: 2-D for an ``int`` kernel, else of the kernel
    tuple's rank (``(3,)``: 1-D); ``pads`` default to ``k // 2``."""
    shape = (kernel, kernel) if isinstance(kernel, int) else tuple(kernel)
    fan_in = in_channels // groups * math.prod(shape)
    w = g.normal((out_channels, in_channels // groups, *shape), gain / math.sqrt(fan_in), "conv_w")
    inputs = [x, w]
    if bias:
        inputs.append(g.normal((out_channels,), 0.05, "conv_b"))
    if pads is None:
        pads = [k // 2 for k in shape] * 2
    dilations = {"dilations": [dilation] * len(shape)} if dilation != 1 else {}
    return g.op(
        "Conv",
        inputs,
        kernel_shape=list(shape),
        strides=[stride] * len(shape),
        pads=list(pads),
        group=groups,
        **dilations,
    )


def batch_norm(g: GraphBuilder, x: str, channels: int, scale: float = 1.0) -> str:
    """Inference-mode BatchNormalization with near-identity statistics.

    gamma ~ scale * U(0.8, 1.2), beta ~ N(0, 0.05^2), mean ~ N(0, 0.05^2),
    var ~ U(0.8, 1.2) (positive, so the op never divides by ~0).
    """
    gamma = g.uniform((channels,), 0.8 * scale, 1.2 * scale, "bn_scale")
    beta = g.normal((channels,), 0.05, "bn_bias")
    mean = g.normal((channels,), 0.05, "bn_mean")
    var = g.uniform((channels,), 0.8, 1.2, "bn_var")
    return g.op("BatchNormalization", [x, gamma, beta, mean, var], epsilon=1e-5)


def conv_bn(
    g: GraphBuilder,
    x: str,
    in_channels: int,
    out_channels: int,
    kernel: int | tuple[int, int],
    stride: int = 1,
    groups: int = 1,
    activation: Callable[[GraphBuilder, str], str] | None = relu,
    pads: Sequence[int] | None = None,
    bn_scale: float = 1.0,
) -> str:
    """Conv (no bias) + BatchNormalization + optional activation."""
    gain = math.sqrt(2.0) if activation is not None else 1.0
    y = conv(g, x, in_channels, out_channels, kernel, stride, groups, pads, gain=gain)
    y = batch_norm(g, y, out_channels, bn_scale)
    return activation(g, y) if activation is not None else y


def classifier_head(g: GraphBuilder, x: str, channels: int, classes: int) -> str:
    """GlobalAveragePool + Flatten + Gemm: [1, C, H, W] -> [1, classes] logits.

    The pooled features are post-ReLU (positive, not centred), so the Gemm
    uses half the LeCun scale to keep the logits of order 1.
    """
    pooled = g.op("Flatten", [g.op("GlobalAveragePool", [x])], axis=1)
    return dense(g, pooled, channels, classes, gain=0.5)


def layer_norm(g: GraphBuilder, x: str, d: int) -> str:
    """LayerNormalization over the last axis, gamma ~ U(0.9, 1.1), small beta."""
    gamma = g.uniform((d,), 0.9, 1.1, "ln_scale")
    beta = g.normal((d,), 0.02, "ln_bias")
    return g.op("LayerNormalization", [x, gamma, beta], axis=-1, epsilon=1e-5)


def self_attention(g: GraphBuilder, x: str, seq: int | str, d: int, heads: int) -> str:
    """Multi-head scaled dot-product self-attention on ``x`` [1, seq, d].

    Q/K/V MatMul projections, Reshape/Transpose into [1, heads, seq, d/heads],
    ``Softmax(Q K^T / sqrt(d/heads)) V`` with MatMul, merge heads, output
    projection. A symbolic ``seq`` (a dim_param) reshapes with -1.
    """
    head_dim = d // heads
    seq = -1 if isinstance(seq, str) else seq
    split = g.int64s([1, seq, heads, head_dim])
    q, k, v = (g.op("Reshape", [linear(g, x, d, d), split]) for _ in range(3))
    q = g.op("Transpose", [q], perm=[0, 2, 1, 3])  # [1, h, s, dh]
    k = g.op("Transpose", [k], perm=[0, 2, 3, 1])  # [1, h, dh, s]
    v = g.op("Transpose", [v], perm=[0, 2, 1, 3])  # [1, h, s, dh]
    scores = g.op("Mul", [g.op("MatMul", [q, k]), g.scalar(1.0 / math.sqrt(head_dim))])
    context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
    merged = g.op("Transpose", [context], perm=[0, 2, 1, 3])  # [1, s, h, dh]
    merged = g.op("Reshape", [merged, g.int64s([1, seq, d])])
    return linear(g, merged, d, d)


def transformer_layer(g: GraphBuilder, x: str, seq: int | str, d: int, heads: int, ffn: int) -> str:
    """Pre-norm encoder layer: x + Attn(LN(x)), then y + MLP(LN(y)) with GELU."""
    y = g.op("Add", [x, self_attention(g, layer_norm(g, x, d), seq, d, heads)])
    hidden = gelu(g, linear(g, layer_norm(g, y, d), d, ffn))
    return g.op("Add", [y, linear(g, hidden, ffn, d)])


def separable_block(g: GraphBuilder, x: str, channels: int) -> str:
    """Depthwise 3x3 conv + BN + ReLU, then pointwise 1x1 conv + BN + ReLU."""
    y = conv_bn(g, x, channels, channels, 3, groups=channels)
    return conv_bn(g, y, channels, channels, 1)


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------


def _build_mlp(g: GraphBuilder, x: str, batch: int | str, sizes: Sequence[int]) -> onnx.ModelProto:
    """Hidden layers alternate MatMul+Add and Gemm (both followed by Relu);
    the last layer is a Gemm followed by Softmax."""
    for i, (n_in, n_out) in enumerate(zip(sizes[:-2], sizes[1:-1])):
        layer = linear if i % 2 == 0 else dense
        x = relu(g, layer(g, x, n_in, n_out, gain=math.sqrt(2.0)))
    logits = dense(g, x, sizes[-2], sizes[-1])
    g.output(g.op("Softmax", [logits], axis=-1), "probs", [batch, sizes[-1]])
    return g.build()


def mlp(seed: int = 0, sizes: Sequence[int] = (64, 128, 10)) -> onnx.ModelProto:
    """Multi-layer perceptron: "x" [1, sizes[0]] -> "probs" [1, sizes[-1]].

    Exercises MatMul + Add + Relu (first hidden layer), Gemm with transB=1
    (further hidden layers, then the output layer) and a final Softmax.
    """
    g = GraphBuilder("mlp", seed)
    return _build_mlp(g, g.input("x", [1, sizes[0]]), 1, sizes)


def dynamic_batch_mlp(seed: int = 0, sizes: Sequence[int] = (64, 128, 10)) -> onnx.ModelProto:
    """:func:`mlp` whose batch dimension is symbolic: "x" ["batch", 64] -> "probs" ["batch", 10].

    Exercises a ``dim_param`` on a graph input and output.
    """
    g = GraphBuilder("dynamic_batch_mlp", seed)
    return _build_mlp(g, g.input("x", ["batch", sizes[0]]), "batch", sizes)


def cnn(seed: int = 0) -> onnx.ModelProto:
    """Small CNN: "image" [1, 3, 32, 32] -> "probs" [1, 10].

    Exercises Conv 3x3 stride 2 + BatchNormalization + Relu, a depthwise
    Conv (group = channels) + BN + Relu, a 1x1 Conv with bias, a residual Add,
    MaxPool 2x2, GlobalAveragePool, Flatten, Gemm and Softmax.
    """
    channels = 16
    g = GraphBuilder("cnn", seed)
    x = g.input("image", [1, 3, 32, 32])
    stem = conv_bn(g, x, 3, channels, 3, stride=2)  # [1, 16, 16, 16]
    y = conv_bn(g, stem, channels, channels, 3, groups=channels)
    y = conv(g, y, channels, channels, 1, bias=True, gain=0.5)
    y = g.op("Add", [stem, y])
    y = g.op("MaxPool", [y], kernel_shape=[2, 2], strides=[2, 2])  # [1, 16, 8, 8]
    logits = classifier_head(g, y, channels, 10)
    g.output(g.op("Softmax", [logits], axis=-1), "probs", [1, 10])
    return g.build()


def concat_cnn(seed: int = 0) -> onnx.ModelProto:
    """CNN whose blocks concatenate channels: "image" [1, 3, 32, 32] -> "probs" [1, 10].

    Exercises a GhostNet-style block (a 1x1 conv and a depthwise conv of its output,
    concatenated) and a ShuffleNet-style one (the channels sliced in halves, one half
    convolved, the halves concatenated and shuffled by Reshape, Transpose and Reshape).
    Quantized, each Concat's inputs come with scales of their own.
    """
    channels, half = 16, 8
    g = GraphBuilder("concat_cnn", seed)
    x = g.input("image", [1, 3, 32, 32])
    stem = conv_bn(g, x, 3, channels, 3, stride=2)  # [1, 16, 16, 16]
    primary = conv_bn(g, stem, channels, half, 1)
    cheap = conv_bn(g, primary, half, half, 3, groups=half)
    y = g.op("Add", [stem, g.op("Concat", [primary, cheap], axis=1)])
    left = g.op("Slice", [y, g.int64s([0]), g.int64s([half]), g.int64s([1])])
    right = g.op("Slice", [y, g.int64s([half]), g.int64s([channels]), g.int64s([1])])
    joined = g.op("Concat", [left, conv_bn(g, right, half, half, 1)], axis=1)
    grouped = g.op("Reshape", [joined, g.int64s([1, 2, half, 16, 16])])
    shuffled = g.op("Reshape", [g.op("Transpose", [grouped], perm=[0, 2, 1, 3, 4]), g.int64s([1, channels, 16, 16])])
    logits = classifier_head(g, shuffled, channels, 10)
    g.output(g.op("Softmax", [logits], axis=-1), "probs", [1, 10])
    return g.build()


def transformer_block(seed: int = 0, seq: int = 16, d: int = 32, heads: int = 2) -> onnx.ModelProto:
    """One pre-norm transformer encoder layer: "tokens" [1, seq, d] -> "hidden" [1, seq, d].

    Exercises LayerNormalization, MatMul + Add projections, Reshape and
    Transpose into heads, scaled dot-product attention (MatMul, Mul, Softmax),
    residual Adds and an MLP (width 4 d) with GELU written with Erf.
    """
    if d % heads:
        raise ValueError(f"d={d} is not divisible by heads={heads}")
    g = GraphBuilder("transformer_block", seed)
    x = g.input("tokens", [1, seq, d])
    g.output(transformer_layer(g, x, seq, d, heads, 4 * d), "hidden", [1, seq, d])
    return g.build()


def sequence_encoder(seed: int = 0, d: int = 32, heads: int = 2, layers: int = 1) -> onnx.ModelProto:
    """:func:`transformer_block` over any number of tokens: "tokens" [1, "seq", d] -> "hidden"
    [1, "seq", d], ``seq`` a ``dim_param`` (Reshapes into heads use -1).

    Exercises symbolic dimensions: row-wise kernels (projections, layer norms, GELU) and
    the attention products over ``seq x seq``.
    """
    g = GraphBuilder("sequence_encoder", seed)
    x = g.input("tokens", [1, "seq", d])
    for _ in range(layers):
        x = transformer_layer(g, x, "seq", d, heads, 4 * d)
    g.output(x, "hidden", [1, "seq", d])
    return g.build()


def two_in_two_out(seed: int = 0) -> onnx.ModelProto:
    """Two inputs, two outputs: "a", "b" [2, 8] -> "sum_relu" [2, 8], "prod_proj" [2, 4].

    ``sum_relu = Relu(a + b)`` and ``prod_proj = (a * b) @ W`` with W [8, 4];
    exercises multiple graph inputs and a tuple of outputs.
    """
    g = GraphBuilder("two_in_two_out", seed)
    a, b = g.input("a", [2, 8]), g.input("b", [2, 8])
    g.output(relu(g, g.op("Add", [a, b])), "sum_relu", [2, 8])
    w = g.normal((8, 4), 1.0 / math.sqrt(8), "proj_w")
    g.output(g.op("MatMul", [g.op("Mul", [a, b]), w]), "prod_proj", [2, 4])
    return g.build()


def kws_cnn(seed: int = 0, blocks: int = 4) -> onnx.ModelProto:
    """Keyword-spotting DS-CNN: "x" [1, 1, 49, 40] (MFCC frames) -> "logits" [1, 12].

    After "Hello Edge" (DS-CNN-S): Conv 10x4 stride 2 with asymmetric "same"
    padding (pads [4, 1, 5, 1], 64 channels) + BN + Relu -> [1, 64, 25, 20],
    ``blocks`` depthwise-separable blocks (depthwise 3x3 + BN + Relu,
    pointwise 1x1 + BN + Relu), GlobalAveragePool, Flatten, Gemm to 12
    classes. About 10 M multiply-adds.
    """
    channels = 64
    g = GraphBuilder("kws_cnn", seed)
    x = g.input("x", [1, 1, 49, 40])
    y = conv_bn(g, x, 1, channels, (10, 4), stride=2, pads=[4, 1, 5, 1])
    for _ in range(blocks):
        y = separable_block(g, y, channels)
    g.output(classifier_head(g, y, channels, 12), "logits", [1, 12])
    return g.build()


def tcn(seed: int = 0, channels: int = 32) -> onnx.ModelProto:
    """Temporal conv net over 13 MFCCs: "frames" [1, 13, 49] -> "logits" [1, 12].

    1-D convs only: a k=3 stem over an odd number of input channels + Relu, a depthwise k=3
    dilation 2 + Relu, a pointwise conv with bias and a residual Add, a k=3 stride 2 conv +
    Relu, ReduceMean over time and a Gemm to 12 classes.
    """
    g = GraphBuilder("tcn", seed)
    x = g.input("frames", [1, 13, 49])
    stem = relu(g, conv(g, x, 13, channels, (3,)))
    y = relu(g, conv(g, stem, channels, channels, (3,), groups=channels, pads=[2, 2], dilation=2))
    y = g.op("Add", [stem, conv(g, y, channels, channels, (1,), bias=True)])
    y = relu(g, conv(g, y, channels, channels, (3,), stride=2))  # [1, channels, 25]
    pooled = g.op("ReduceMean", [y], axes=[2], keepdims=0)
    g.output(dense(g, pooled, channels, 12), "logits", [1, 12])
    return g.build()


def unsupported_op_model() -> onnx.ModelProto:
    """A model TVM's Relax ONNX frontend cannot import: one ``DFT`` node.

    "signal" [1, 16, 1] (real) -> "spectrum" [1, 9, 2] (one-sided DFT along
    axis 1). onnxruntime runs it. ``DFT`` (standard domain, opset 17) is absent
    from the frontend's convert map in TVM 0.27, so
    ``tvm.relax.frontend.onnx.from_onnx`` raises, before converting any node::

        tvm.error.OpNotImplemented: The following operators are not supported
        for frontend ONNX: DFT
    """
    g = GraphBuilder("unsupported_op", seed=0)
    x = g.input("signal", [1, 16, 1])
    g.output(g.op("DFT", [x], axis=1, onesided=1), "spectrum", [1, 9, 2])
    return g.build()


MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mlp": mlp,
    "cnn": cnn,
    "transformer_block": transformer_block,
    "two_in_two_out": two_in_two_out,
    "kws_cnn": kws_cnn,
}
"""The small models with static shapes that every backend should support."""


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def save(model: onnx.ModelProto, path: str | PathLike[str]) -> Path:
    """Write ``model`` to ``path`` (creating parent directories) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, path)
    return path


def random_inputs(
    model: onnx.ModelProto, seed: int = 0, dims: Mapping[str, int] | None = None
) -> dict[str, np.ndarray]:
    """One random array per graph input, in graph order.

    Drawn like every made-up input of wasm-build (`wasm.inputs.random_array`). Symbolic dimensions take their value from ``dims`` (default 1).

    The generator is seeded with ``(seed, _INPUT_STREAM)``, not ``seed``
    alone: with the same plain seed as the builder, the inputs would repeat
    the first weight matrix's draws, and ``x @ W`` would be a sum of squares
    (about 40 instead of 1.4 for the 784-wide MLP).
    """
    rng = np.random.default_rng((seed, _INPUT_STREAM))
    dims = dims or {}
    inputs = {}
    for value in model.graph.input:
        tensor_type = value.type.tensor_type
        shape = tuple(
            dim.dim_value if dim.HasField("dim_value") else dims.get(dim.dim_param, 1)
            for dim in tensor_type.shape.dim
        )
        inputs[value.name] = random_array(shape, helper.tensor_dtype_to_np_dtype(tensor_type.elem_type), rng)
    return inputs


def reference_outputs(model: onnx.ModelProto, inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """Run ``model`` in onnxruntime and return its outputs in graph order.

    Uses the CPU execution provider on one thread with graph optimisations
    off, so each node runs as written (no fusions changing the arithmetic), except
    for models written with integer products (QOperator, ``quantize_dynamic``'s), which
    only the optimizer moves onto exact kernels (`wasm.onnxruntime_reference`).
    """
    return reference_session(model, optimized=not node_by_node(model)).run(None, dict(inputs))
