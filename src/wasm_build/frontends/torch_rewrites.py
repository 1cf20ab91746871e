"""Mends of TVM's exported-program frontend: edits of a `torch.export` program's graph, and
converters of our own for operators TVM translates wrongly or not at all.

Each edit keeps the program's meaning (it stays the smoke test's reference) and changes only
what TVM's translator reads wrongly. Converters (`CONVERTERS`, TVM's `custom_convert_map`)
take the FX node and TVM's importer and return the Relax value.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class GraphEdit:
    name: str
    apply: Callable[[Any], int]  # torch.fx.Graph -> how many nodes it changed


def negative_select_index(graph: Any) -> int:
    """`x.select(dim, -k)` (as in `sequence[:, -1]`) with the index counted from the front.

    TVM's `_select` emits `take(x, const(-k))` in its default "fast" mode, which does not wrap
    negative indices: the kernel reads out of bounds (a recurrent keyword spotter's last frame
    came out as garbage). With the static size of `dim`, `-k` is `size - k`.
    """
    import torch

    changed = 0
    for node in graph.nodes:
        if node.op != "call_function" or node.target is not torch.ops.aten.select.int:
            continue
        source, dim, index = node.args[:3]
        value = getattr(source, "meta", {}).get("val")
        if not isinstance(index, int) or index >= 0 or value is None:
            continue
        size = value.shape[dim]
        if not isinstance(size, int):
            continue  # a symbolic size: left to TVM
        node.args = (source, dim, index + size, *node.args[3:])
        changed += 1
    return changed


EDITS: tuple[GraphEdit, ...] = (GraphEdit("negative_select_index", negative_select_index),)


def apply_edits(program: Any) -> Any:
    """`program` (a `torch.export.ExportedProgram`) with every edit applied in place."""
    module = program.graph_module
    if sum(edit.apply(module.graph) for edit in EDITS):
        module.recompile()
    return program


# Operators kept whole through torch's decomposition to core ATen, for a converter below: their
# decompositions reach TVM as operators it converts wrongly (`im2col`'s advanced indexing).
KEPT_WHOLE = ("im2col",)


def to_relax(program: Any) -> Any:
    """The Relax module of `program` (edited, see `apply_edits`): decomposed to core ATen as TVM's
    frontend does, but for `KEPT_WHOLE`, then translated with our `CONVERTERS`."""
    import torch
    from tvm.relax.frontend.torch import from_exported_program

    table = torch.export.default_decompositions()
    for name in KEPT_WHOLE:
        table.pop(getattr(torch.ops.aten, name).default, None)
    decomposed = apply_edits(program).run_decompositions(table)
    return from_exported_program(decomposed, custom_convert_map=CONVERTERS, run_ep_decomposition=False)


# -- converters ---------------------------------------------------------------------------------


def upsample_nearest2d(node: Any, importer: Any) -> Any:
    """`F.interpolate(mode="nearest")`: PyTorch reads source pixel floor(dst * in / out).

    TVM's converter resizes with half-pixel centres and rounding, which agrees only for integer
    scales (a 16 -> 12 resize picked other pixels). `asymmetric` + `floor` is PyTorch's rule.
    """
    from tvm import relax

    x = importer.env[node.args[0]]
    size = node.args[1] if len(node.args) > 1 else node.kwargs.get("output_size")
    scales = node.args[2] if len(node.args) > 2 else node.kwargs.get("scale_factors")
    spatial = [int(d) for d in list(importer.shape_of(x))[2:]]
    if size:
        out = [int(d) for d in size]
    else:
        out = [int(d * f) for d, f in zip(spatial, scales)]
        if any(o != d * f for o, d, f in zip(out, spatial, scales)):
            # PyTorch then steps by 1 / scale, not in / out: TVM's own converter, as before.
            return importer._upsample_nearest2d(node)
    return importer.block_builder.emit(relax.op.image.resize2d(
        x, out, layout="NCHW", method="nearest_neighbor", coordinate_transformation_mode="asymmetric",
        rounding_method="floor"))


def adaptive_max_pool2d(node: Any, importer: Any) -> Any:
    """`F.adaptive_max_pool2d` to a size that divides the input: a max pool with kernel = stride
    = input / output (TVM has no converter). Only its values: a program reading the indices is
    refused by name."""
    from tvm import relax

    from ..errors import WasmBuildError

    x = importer.env[node.args[0]]
    spatial = [int(d) for d in list(importer.shape_of(x))[2:]]
    out = [int(d) for d in node.args[1]]
    out = out * 2 if len(out) == 1 else out
    if any(user.target.__name__ != "getitem" or user.args[1] != 0 for user in node.users):
        raise WasmBuildError(f"'{node.name}': adaptive_max_pool2d's indices are not supported",
                             fix="use only the pooled values (F.adaptive_max_pool2d(x, size) without return_indices)")
    if any(d % o for d, o in zip(spatial, out)):
        raise WasmBuildError(f"'{node.name}': adaptive_max_pool2d from {spatial} to {out} (sizes that do not divide)",
                             fix="pool to a size that divides the input, or use F.max_pool2d")
    kernel = [d // o for d, o in zip(spatial, out)]
    pooled = importer.block_builder.emit(relax.op.nn.max_pool2d(x, kernel, kernel, layout="NCHW"))
    return (pooled, None)  # TVM's getitem indexes a Python tuple; [1] is refused above


def elu(node: Any, importer: Any) -> Any:
    """`aten.elu(x, alpha, scale, input_scale)`: scale * (x if x > 0 else alpha * (exp(x *
    input_scale) - 1)). SELU reaches TVM as an `elu` with scale and input_scale set, which
    TVM's converter drops (the zoo's SELU was off by 0.5)."""
    from tvm import relax

    x = importer.env[node.args[0]]
    alpha, scale, input_scale = (
        float(node.args[i]) if len(node.args) > i else float(node.kwargs.get(key, 1.0))
        for i, key in ((1, "alpha"), (2, "scale"), (3, "input_scale"))
    )
    dtype = x.ty.dtype

    def const(value: float) -> Any:
        return relax.const(value, dtype)

    op = relax.op
    negative = op.minimum(x, const(0.0))
    expm1 = op.subtract(op.exp(op.multiply(negative, const(input_scale))), const(1.0))
    body = op.add(op.nn.relu(x), op.multiply(const(alpha), expm1))
    return importer.block_builder.emit(op.multiply(const(scale), body) if scale != 1.0 else body)


def div_mode(node: Any, importer: Any) -> Any:
    """`torch.div(x, y, rounding_mode=...)` (`x // 2` of a float tensor) with a Python number on
    one side: TVM makes the number an int32 constant whatever the tensor's type, and the
    division of a float tensor by it fails to type-check (EdgeNeXt's positional encoding). The
    number takes the tensor's type, as in PyTorch."""
    from tvm import relax

    x, y = importer.retrieve_args(node)[:2]
    mode = node.args[2] if len(node.args) > 2 else node.kwargs.get("rounding_mode")
    if not isinstance(x, relax.Expr):
        x = relax.const(x, y.ty.dtype)
    if not isinstance(y, relax.Expr):
        y = relax.const(y, x.ty.dtype)
    emit = importer.block_builder.emit
    if mode == "floor":
        return emit(relax.op.floor_divide(x, y))
    quotient = emit(relax.op.divide(x, y))
    return emit(relax.op.trunc(quotient)) if mode == "trunc" else quotient


def grid_sampler_2d(node: Any, importer: Any) -> Any:
    """`F.grid_sample(x, grid)`: PyTorch's grid is (N, H, W, 2), TVM's `image.grid_sample` reads
    (N, 2, H, W); TVM's ONNX converter transposes it, its exported-program converter does not
    (every sample read the wrong coordinates)."""
    from tvm import relax

    args = importer.retrieve_args(node)
    data, grid = args[0], args[1]
    mode, padding, align_corners = (args[i] if len(args) > i else default for i, default in ((2, 0), (3, 0), (4, False)))
    methods, paddings = {0: "bilinear", 1: "nearest", 2: "bicubic"}, {0: "zeros", 1: "border", 2: "reflection"}
    channels_first = importer.block_builder.emit(relax.op.permute_dims(grid, [0, 3, 1, 2]))
    return importer.block_builder.emit(
        relax.op.image.grid_sample(data, channels_first, method=methods[mode], layout="NCHW",
                                   padding_mode=paddings[padding], align_corners=bool(align_corners))
    )


def im2col(node: Any, importer: Any) -> Any:
    """`F.unfold(x, kernel_size, dilation, padding, stride)`: every sliding window's values,
    ``[N, C * kh * kw, L]`` (channel-major, then the window's rows), as one strided slice of the
    padded input per window tap, stacked. Data movement only, so exact for every value (a conv
    with one-hot weights would turn an inf beside the tap into NaN). TVM's converter fails on
    it."""
    from tvm import relax

    from ..errors import WasmBuildError

    x = importer.env[node.args[0]]
    (kh, kw), (dh, dw), (ph, pw), (sh, sw) = ([int(v) for v in node.args[i]] for i in range(1, 5))
    shape = list(importer.shape_of(x))
    if not all(isinstance(d, int) or hasattr(d, "value") for d in shape):
        raise WasmBuildError(f"'{node.name}': F.unfold of an input with symbolic sizes {shape}",
                             fix="export with static input sizes for F.unfold")
    shape = [int(d) for d in shape]
    op = relax.op
    unbatched = len(shape) == 3
    if unbatched:
        x, shape = op.expand_dims(x, 0), [1, *shape]
    batch, channels, height, width = shape
    out_h = (height + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    out_w = (width + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    if ph or pw:
        x = op.nn.pad(x, [0, 0, 0, 0, ph, ph, pw, pw])
    taps = [
        op.strided_slice(x, axes=[2, 3], begin=[i * dh, j * dw],
                         end=[i * dh + sh * (out_h - 1) + 1, j * dw + sw * (out_w - 1) + 1], strides=[sh, sw])
        for i in range(kh) for j in range(kw)
    ]
    columns = op.reshape(op.stack(taps, axis=2), [batch, channels * kh * kw, out_h * out_w])
    return importer.block_builder.emit(op.squeeze(columns, [0]) if unbatched else columns)


CONVERTERS: dict[str, Callable[[Any, Any], Any]] = {
    "grid_sampler_2d.default": grid_sampler_2d,
    "div.Tensor_mode": div_mode,
    "elu.default": elu,
    "upsample_nearest2d.vec": upsample_nearest2d,
    "adaptive_max_pool2d.default": adaptive_max_pool2d,
    "im2col.default": im2col,
}
