"""Small hand-written nets, one operator family each, so a failure names its family."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..spec import Tensor, ZooModel

X = (Tensor.floats("x", 1, 8, 16, 16),)


class Convolutions(nn.Module):
    """Conv2d: strided, dilated, grouped, depthwise, 1x1 without bias; Conv1d; Conv3d."""

    def __init__(self) -> None:
        super().__init__()
        self.strided = nn.Conv2d(8, 16, 3, stride=2, padding=1)
        self.dilated = nn.Conv2d(16, 16, 3, padding=2, dilation=2)
        self.grouped = nn.Conv2d(16, 16, 3, padding=1, groups=4)
        self.depthwise = nn.Conv2d(16, 16, 5, padding=2, groups=16)
        self.pointwise = nn.Conv2d(16, 8, 1, bias=False)
        self.conv1d = nn.Conv1d(8, 8, 3, padding=1)
        self.conv3d = nn.Conv3d(1, 2, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.depthwise(self.grouped(self.dilated(self.strided(x)))))  # [1, 8, 8, 8]
        y = self.conv1d(y.flatten(2)).reshape(1, 8, 8, 8)
        return self.conv3d(y.unsqueeze(1)).flatten(1, 2)


class TransposedConvolutions(nn.Module):
    """ConvTranspose2d (stride 2, output padding, groups) and ConvTranspose1d."""

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(8, 8, 3, stride=2, padding=1, output_padding=1)
        self.grouped = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2)
        self.up1d = nn.ConvTranspose1d(4, 2, 4, stride=4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.grouped(self.up(x))  # [1, 4, 64, 64]
        return self.up1d(y[:, :, 0, :])


class Pooling(nn.Module):
    """MaxPool (padding, ceil mode), AvgPool (count_include_pad off), adaptive average, global max."""

    def forward(self, x: torch.Tensor):
        a = F.max_pool2d(x, 3, stride=2, padding=1)
        b = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        c = F.max_pool2d(x, 2, stride=2, ceil_mode=True)[..., :8, :8]
        d = F.adaptive_avg_pool2d(x, 4)
        return a + b + c, d, F.adaptive_max_pool2d(x, 1)


class Normalizations(nn.Module):
    """BatchNorm, InstanceNorm (affine), GroupNorm, LayerNorm over the last axis and over [C, H, W]."""

    def __init__(self) -> None:
        super().__init__()
        self.batch = nn.BatchNorm2d(8)
        self.instance = nn.InstanceNorm2d(8, affine=True)
        self.group = nn.GroupNorm(2, 8)
        self.layer = nn.LayerNorm(16)
        self.layer_chw = nn.LayerNorm([8, 16, 16])
        with torch.no_grad():  # running statistics that are not the identity
            self.batch.running_mean.uniform_(-1, 1)
            self.batch.running_var.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer_chw(self.layer(self.group(self.instance(self.batch(x)))))


class Activations(nn.Module):
    """One of each common activation, summed so each one reaches the output."""

    def __init__(self) -> None:
        super().__init__()
        self.prelu = nn.PReLU(8)
        self.fns = [F.relu, F.relu6, torch.sigmoid, torch.tanh, F.silu, F.hardswish, F.hardsigmoid, F.softplus,
                    F.elu, F.selu, lambda t: F.leaky_relu(t, 0.1), F.gelu, lambda t: F.gelu(t, approximate="tanh"),
                    F.softsign, F.mish]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return sum((fn(x) for fn in self.fns), self.prelu(x))


class RareActivations(nn.Module):
    """CELU, kept apart from `Activations` so that its missing converter does not hide the rest."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.celu(x, alpha=0.5)


class Mish(nn.Module):
    """x * tanh(softplus(x)) alone: one fused kernel of tanh of log of exp, each a polynomial
    with a dozen bound values (it did not build until `compiler.tir.registers`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.mish(x)


class Elementwise(nn.Module):
    """Binary and unary arithmetic with broadcasting: pow, sqrt, exp, log, reciprocal, min/max,
    floor/ceil, abs, neg, clamp."""

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        positive = x.abs() + 0.5
        a = torch.pow(positive, 1.5) + torch.sqrt(positive) - torch.log(positive) + torch.exp(-positive)
        b = torch.maximum(x, y) * torch.minimum(x, y) / (y.abs() + 1.0) + torch.reciprocal(positive)
        c = torch.floor(x * 4) - torch.ceil(y * 4) + torch.clamp(x, -0.5, 0.5) - (-y)
        return a + b + c + x.mean(dim=1, keepdim=True) * y[:, :1]


class Reductions(nn.Module):
    """ReduceMean/Sum/Max/Min/Prod/L2/LogSumExp over various axes, CumSum, and int64 ArgMax/ArgMin."""

    def forward(self, x: torch.Tensor):
        values = (
            x.mean(dim=(2, 3)) + x.sum(dim=2).amax(dim=2) - x.amin(dim=(2, 3))
            + torch.logsumexp(x, dim=3).mean(dim=2) + x.norm(dim=(2, 3)) + (x * 0.1 + 1).prod(dim=3).mean(dim=2)
        )
        return values, torch.cumsum(x, dim=3), x.argmax(dim=1), x.flatten(2).argmin(dim=2)


class Softmaxes(nn.Module):
    """Softmax and LogSoftmax over the last and an inner axis; TopK (values and int64 indices)."""

    def forward(self, x: torch.Tensor):
        top = torch.topk(x.flatten(2), 5, dim=2)
        return torch.softmax(x, dim=-1) + torch.log_softmax(x, dim=1), top.values, top.indices


class Indexing(nn.Module):
    """Embedding (Gather on int64 ids), gather by index, index_select, scatter-free one-hot compare."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(32, 16)
        self.register_buffer("order", torch.tensor([3, 1, 2, 0, 7, 5, 6, 4]))

    def forward(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        embedded = self.embedding(ids)  # [1, 8, 16]
        picked = torch.gather(x, 2, ids.unsqueeze(-1).remainder(16).expand(1, 8, 4))  # [1, 8, 4]
        reordered = embedded.index_select(1, self.order)
        one_hot = (ids.unsqueeze(-1) == torch.arange(32)).to(x.dtype)
        return torch.cat([reordered, picked, one_hot], dim=2)


class Padding(nn.Module):
    """Pad: constant, reflect and edge (replicate) modes, uneven on each side."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = (1, 2, 0, 1)
        return F.pad(x, pads) + F.pad(x, pads, mode="reflect") + F.pad(x, pads, mode="replicate")


class Layout(nn.Module):
    """Strided and negative slicing, Concat, Split, Transpose, PixelShuffle (DepthToSpace),
    PixelUnshuffle (SpaceToDepth), Tile, Expand, Flatten."""

    def forward(self, x: torch.Tensor):
        head, tail = torch.split(x, [3, 5], dim=1)
        a = torch.cat([tail.flip(2), head[:, :, ::2].repeat(1, 1, 2, 1)], dim=1).permute(0, 2, 3, 1)
        b = F.pixel_unshuffle(F.pixel_shuffle(x, 2), 2) + x[:, :1].expand(1, 8, 16, 16)
        return a, b.flatten(2).transpose(1, 2)


class Resizing(nn.Module):
    """Resize: nearest (integer and fractional scale), bilinear with and without align_corners, bicubic, to a size."""

    def forward(self, x: torch.Tensor):
        a = F.interpolate(x, scale_factor=2.0, mode="nearest")
        b = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        c = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=True)
        d = F.interpolate(x, size=(24, 20), mode="bicubic", align_corners=False)
        e = F.interpolate(x, size=(12, 12), mode="nearest")
        return a + b + c, d, e


class MatrixProducts(nn.Module):
    """Batched MatMul, Gemm (Linear with and without bias), Einsum, broadcast MatMul."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(16, 24)
        self.no_bias = nn.Linear(24, 16, bias=False)
        self.weight = nn.Parameter(torch.randn(16, 16) * 0.25)

    def forward(self, a: torch.Tensor, b: torch.Tensor):
        attention = torch.softmax(a @ b.transpose(-1, -2) / 4.0, dim=-1) @ b  # [1, 2, 12, 16]
        mixed = torch.einsum("bhqd,de->bhqe", attention, self.weight)
        return self.no_bias(torch.relu(self.linear(mixed))), torch.einsum("bhqd,bhkd->bhqk", a, b)


class Logic(nn.Module):
    """Comparisons, Where, And/Or/Not, masked_fill, IsNaN, bool outputs."""

    def forward(self, x: torch.Tensor, y: torch.Tensor):
        greater = x > y
        either = greater | (x < -1.0)
        chosen = torch.where(either & ~(y > 1.0), x, y * 2.0)
        filled = chosen.masked_fill(torch.isnan(x) | (x == 0.0), -1.0)
        return filled, greater, torch.eq(x.sign(), y.sign())


class ShapeComputed(nn.Module):
    """What the exporter writes with operands computed from static shapes: chunk (Slice bounds),
    sort (a TopK of the axis' size), unfold (Gathers of Ranges), and interpolate by a scale that
    gives no whole size (7 x 2.5 rows: ONNX maps coordinates through the scale)."""

    def forward(self, x: torch.Tensor):
        parts = x.chunk(4, dim=1)  # 4 x [1, 2, 16, 16]
        patches = F.unfold(parts[0] * parts[3] + parts[1], 3, padding=1, stride=2)  # [1, 18, 64]
        ordered = torch.sort(x.mean(1)[:, 0], dim=-1).values  # [1, 16]: TopK of k = 16 (up to 64 are rounds of arg-max)
        resized = F.interpolate(x[:, :, :7, :9], scale_factor=2.5, mode="bicubic", align_corners=False)  # [1, 8, 17, 22]
        return patches, ordered, resized


_XY = (Tensor.floats("x", 1, 8, 16), Tensor.floats("y", 1, 8, 16))

MODELS = [
    ZooModel("ops_conv", "torch", "ops", Convolutions, X, fast=True, formats=("onnx", "onnx-dynamo", "pt2"), fast_int8=True),
    ZooModel("ops_conv_transpose", "torch", "ops", TransposedConvolutions, X, fast=True),
    ZooModel("ops_pool", "torch", "ops", Pooling, X, ("pooled", "adaptive", "global"), fast=True, formats=("onnx", "pt2")),
    ZooModel("ops_norm", "torch", "ops", Normalizations, X),
    ZooModel("ops_activation", "torch", "ops", Activations, X, fast=True, formats=("onnx", "onnx-dynamo", "pt2")),
    ZooModel("ops_activation_rare", "torch", "ops", RareActivations, X),
    ZooModel("ops_mish", "torch", "ops", Mish, X),
    ZooModel("ops_elementwise", "torch", "ops", Elementwise, _XY),
    ZooModel("ops_reduce", "torch", "ops", Reductions, X, ("values", "cumsum", "argmax", "argmin"), fast=True),
    ZooModel("ops_softmax_topk", "torch", "ops", Softmaxes, X, ("probs", "top_values", "top_indices")),
    ZooModel("ops_gather", "torch", "ops", Indexing, (Tensor.ints("ids", 1, 8, high=32), Tensor.floats("x", 1, 8, 16)), fast=True),
    ZooModel("ops_pad", "torch", "ops", Padding, X, ("padded",), fast=True),
    ZooModel("ops_layout", "torch", "ops", Layout, X, ("shuffled", "pixels"), fast=True, formats=("onnx", "pt2")),
    ZooModel("ops_resize", "torch", "ops", Resizing, X, ("bilinear", "bicubic", "nearest"), fast=True, formats=("onnx", "onnx-dynamo", "pt2")),
    ZooModel("ops_matmul", "torch", "ops", MatrixProducts, (Tensor.floats("a", 1, 2, 12, 16), Tensor.floats("b", 1, 2, 12, 16)),
             ("mixed", "scores")),
    ZooModel("ops_logic", "torch", "ops", Logic, _XY, ("filled", "greater", "same_sign")),
    ZooModel("ops_shape_computed", "torch", "ops", ShapeComputed, X, ("patches", "sorted", "resized")),
]
