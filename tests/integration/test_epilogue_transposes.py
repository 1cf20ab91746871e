"""Transposes a float contraction writes itself (`compiler.passes.epilogue_transposes`, issue 20):
a conv or matmul whose output is only transposed, so that the contraction's tile rows become
the innermost axis, fuses with the transpose, and its register tiles are stored transposed,
each 4 x 4 block by eight interleaves (`tir.transpose_shuffle`). Before, the transpose was a
kernel of its own that read and wrote the whole output again (15% of a 1x1 conv's model)."""

from __future__ import annotations

import re
import subprocess

import pytest
from onnx import TensorProto

tvm = pytest.importorskip("tvm")

from tests.support import build  # noqa: E402
from tests.support.compiler import INTERLEAVE_MASKS, OBJDUMP, prim_funcs, scheduled_module  # noqa: E402
from tests.support.export import build_and_compare  # noqa: E402
from wasm_build.compiler.tiles import TRANSPOSED_BLOCKS_ATTR  # noqa: E402
from wasm_build.testing.models import GraphBuilder, conv  # noqa: E402



def _model(name, shape, body, out_shape):
    g = GraphBuilder(name, 3)
    x = g.input("x", list(shape))
    g.output(body(g, x), "y", list(out_shape))
    return g.build()


def _conv_relu(g, x):
    return g.op("Relu", [conv(g, x, 32, 48, 1, bias=True)])


def _residual(g, x):
    y = conv(g, g.op("Relu", [conv(g, x, 32, 32, 1, bias=True)]), 32, 32, 1, bias=True)
    return g.op("Add", [y, x])


def _matmul_bias_transposed(g, x):
    product = g.op("Add", [g.op("MatMul", [x, g.normal((48, 96), 0.1, "w")]), g.normal((96,), 0.1, "b")])
    return g.op("Transpose", [product], perm=[0, 2, 1])


def _batched_transposed(g, x):
    return g.op("Transpose", [g.op("MatMul", [x, g.op("Relu", [g.normal((2, 16, 40), 0.1, "w")])])], perm=[0, 2, 1])


def _ragged_lanes_transposed(g, x):
    return g.op("Transpose", [g.op("MatMul", [x, g.normal((24, 50), 0.1, "w")])], perm=[1, 0])


def _scaled_in_nchw(g, x):
    y = conv(g, x, 32, 32, 1, bias=True)
    scaled = g.op("Mul", [y, g.normal((32, 1, 1), 0.5, "scale")])
    return conv(g, scaled, 32, 32, 1, bias=True)


TAKEN = {
    # NCHW model around an NHWC 1x1 conv with bias and ReLU: the conv writes NCHW.
    "conv_relu": ((1, 32, 28, 28), _conv_relu, (1, 48, 28, 28)),
    "depthwise": ((1, 32, 16, 16), lambda g, x: conv(g, x, 32, 32, 3, groups=32, bias=True), (1, 32, 16, 16)),
    # Two convs, then a residual add of the input: the last conv and the add write NCHW.
    "residual": ((1, 32, 12, 12), _residual, (1, 32, 12, 12)),
    "matmul_bias": ((1, 64, 48), _matmul_bias_transposed, (1, 96, 64)),
    "batched": ((2, 32, 16), _batched_transposed, (2, 40, 32)),
    # 50 output columns: lanes padded to whole tiles, the crop stores transposed.
    "ragged_lanes": ((36, 24), _ragged_lanes_transposed, (50, 36)),
}

LEFT = {
    # 14-pixel rows: the tile's rows are 4 pixels across image rows, not a vector of the output.
    "conv_14_wide": ((1, 32, 14, 14), lambda g, x: conv(g, x, 32, 64, 1, bias=True), (1, 64, 14, 14)),
    # 10-pixel rows: no whole vectors of them.
    "depthwise_10_wide": ((1, 32, 10, 10), lambda g, x: conv(g, x, 32, 32, 3, groups=32, bias=True), (1, 32, 10, 10)),
    # Products over patches (`patch_rows`) write an image-wide matrix of pixel rows, reshaped
    # into the image: the transposed index of a tile row divides by the image width.
    "conv3x3": ((1, 16, 16, 16), lambda g, x: conv(g, x, 16, 32, 3, bias=True), (1, 32, 16, 16)),
}


def _kernels(model, tmp_path):
    return prim_funcs(scheduled_module(model, tmp_path))


@pytest.mark.parametrize("case", sorted(TAKEN))
def test_contractions_write_their_transposed_outputs_and_match(case, tmp_path):
    shape, body, out_shape = TAKEN[case]
    model = _model(case, shape, body, out_shape)
    kernels = _kernels(model, tmp_path)
    writers = {name: func for name, func in kernels.items() if "_epilogue" in name}
    assert writers, sorted(kernels)
    for name, func in writers.items():
        assert func.attrs is not None and TRANSPOSED_BLOCKS_ATTR in func.attrs, name
    # No transpose of the contraction's output is left as a kernel of its own.
    assert not [name for name in kernels if name.startswith("transpose") and "epilogue" in name]
    build_and_compare(model, case, tmp_path / "build")


@pytest.mark.parametrize("case", sorted(LEFT))
def test_transposes_a_tile_cannot_store_whole_stay_kernels_and_match(case, tmp_path):
    shape, body, out_shape = LEFT[case]
    model = _model(case, shape, body, out_shape)
    assert not [name for name in _kernels(model, tmp_path) if "_epilogue" in name]
    build_and_compare(model, case, tmp_path / "build")


def _tokens_to_image(g, x):
    """PVT-v2's feed-forward: tokens through a linear layer, transposed and reshaped into an
    image for a conv (which `nhwc_conv` then transposes back)."""
    tokens = g.op("MatMul", [x, g.normal((32, 48), 0.1, "w")])
    image = g.op("Reshape", [g.op("Transpose", [tokens], perm=[0, 2, 1]), g.int64s([1, 48, 8, 8])])
    return conv(g, image, 48, 16, 1, bias=True)


@pytest.mark.parametrize(
    "case, shape, body, out_shape",
    [("scaled", (1, 32, 12, 12), _scaled_in_nchw, (1, 32, 12, 12)),
     ("tokens_to_image", (1, 64, 32), _tokens_to_image, (1, 16, 8, 8))],
)
def test_transposes_undone_later_stay_in_their_kernels(case, shape, body, out_shape, tmp_path):
    """A transpose its result meets again (through elementwise kernels and reshapes) is not the
    contraction's to write: FuseOps already makes the chain one kernel that moves little (a
    [C, 1, 1] scale that ConvertLayout leaves NCHW between NHWC convs, FastViT's layer scales;
    tokens into an image, PVT-v2). Taken, the contraction wrote the transposed layout and a
    transpose read it back. The last conv's transpose into the NCHW output is taken."""
    model = _model(case, shape, body, out_shape)
    kernels = _kernels(model, tmp_path)
    writers = [name for name in kernels if "_epilogue" in name]
    assert len(writers) == 1 and "conv2d" in writers[0] and "matmul" not in writers[0], sorted(kernels)
    assert any(re.match(r"fused_(transpose|reshape)\d*_", name) for name in kernels), sorted(kernels)
    build_and_compare(model, case, tmp_path / "build")


def test_integer_products_leave_their_transposes(tmp_path):
    """A quantized conv is an integer product (`integer_contractions`): its tile holds int32
    lanes and its epilogue writes 8-bit values, 16 a vector, which 4 tile rows cannot fill; the
    pass takes float32 sums of products only, and the quantized model still matches."""
    pytest.importorskip("onnxruntime")
    from wasm_build.testing import quantized

    shape, body, out_shape = TAKEN["conv_relu"]
    model = quantized.qdq(_model("qconv", shape, body, out_shape))
    kernels = _kernels(model, tmp_path)
    assert any("conv2d" in name for name in kernels), sorted(kernels)
    assert not [name for name in kernels if "_epilogue" in name], sorted(kernels)
    build(model, "qconv", tmp_path / "build")  # its smoke test: against onnxruntime, in steps


def test_layer_norms_do_not_take_their_transposes(tmp_path):
    """A reduction that is no sum of products (a layer norm, a softmax) is not a contraction
    the rule tiles: its transpose stays a kernel (EdgeNeXt, EfficientViT)."""
    g = GraphBuilder("norm", 3)
    x = g.input("x", [1, 16, 32])
    y = g.op("LayerNormalization", [x, g.normal((32,), 0.1, "scale"), g.normal((32,), 0.1, "bias")], axis=-1)
    g.output(g.op("Transpose", [y], perm=[0, 2, 1]), "y", [1, 32, 16])
    assert not [name for name in _kernels(g.build(), tmp_path) if "_epilogue" in name]


@pytest.mark.skipif(OBJDUMP is None, reason="needs llvm-objdump")
def test_transposed_tiles_are_stored_by_interleaves(tmp_path):
    """Every lane shuffle of the fused conv is one of the eight interleaves' two masks a round
    (LLVM alone made three shuffles a column, with masks wasmtime has no one instruction for),
    and no value moves lane by lane."""
    shape, body, out_shape = TAKEN["conv_relu"]
    wasm = build(_model("conv_relu", shape, body, out_shape), "conv_relu", tmp_path).directory / "conv_relu.wasm"
    text = subprocess.run([OBJDUMP, "-d", str(wasm)], capture_output=True, text=True, check=True).stdout
    kernel = re.search(r"<conv_relu_fused_conv2d\w*_epilogue\w*_compute_>:\n(.*?)\n\n", text, re.S)
    assert kernel is not None
    masks = {m.replace(",", "").strip() for m in re.findall(r"i8x16\.shuffle\s+([\d, ]+)", kernel.group(1))}
    assert masks and masks <= INTERLEAVE_MASKS, masks - INTERLEAVE_MASKS
    assert "extract_lane" not in kernel.group(1) and "replace_lane" not in kernel.group(1)
