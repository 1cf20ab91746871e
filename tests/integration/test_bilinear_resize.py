"""Linear resizes summed in onnxruntime's order (`compiler.passes.bilinear_sums`): quantized
models round their interpolation's ties to the same step as onnxruntime (TVM's own kernel put
about 1% of a 2x upsampling's values a step away), and float ones match it to float rounding."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from wasm_build import WasmModel
from wasm_build.compiler.passes.bilinear_sums import axis_taps
from wasm_build.testing import models, quantized

from tests.support import build
from tests.support.compiler import prim_funcs, scheduled_module
from tests.support.steps import worst_steps

SHAPE = [1, 4, 8, 8]
# (coordinate mode, scales or None, sizes or None): whole and fractional scales, a downscale,
# an axis resized to one position.
RESIZES = [
    ("half_pixel", [1, 1, 2, 2], None),
    ("pytorch_half_pixel", [1, 1, 2, 2], None),
    ("asymmetric", [1, 1, 2, 2], None),
    ("align_corners", [1, 1, 2, 2], None),
    ("half_pixel", [1, 1, 3, 3], None),
    ("half_pixel", None, [1, 4, 13, 11]),
    ("align_corners", None, [1, 4, 5, 12]),
    ("pytorch_half_pixel", None, [1, 4, 1, 6]),
]


def _out_shape(scales, sizes) -> list[int]:
    return list(sizes) if sizes else [int(d * s) for d, s in zip(SHAPE, scales)]


def resizes(quantized_input: bool) -> onnx.ModelProto:
    """One input, one output per entry of RESIZES. Quantized: uint8 in, each resize between a
    DequantizeLinear and a QuantizeLinear of the same parameters (a QDQ model's form), uint8 out."""
    g = models.GraphBuilder("resizes")
    elem_type = TensorProto.UINT8 if quantized_input else TensorProto.FLOAT
    x = g.input("x", SHAPE, elem_type)
    if quantized_input:
        scale, zero_point = g.constant(np.array(0.0371, np.float32)), g.constant(np.array(128, np.uint8))
        x = g.op("DequantizeLinear", [x, scale, zero_point])
    for index, (mode, scales, sizes) in enumerate(RESIZES):
        inputs = [x, "", g.constant(np.array(scales, np.float32))] if scales else [x, "", "", g.int64s(sizes)]
        y = g.op("Resize", inputs, mode="linear", coordinate_transformation_mode=mode)
        if quantized_input:
            y = g.op("QuantizeLinear", [y, scale, zero_point])
        g.output(y, f"y{index}", _out_shape(scales, sizes), elem_type)
    return g.build()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bilinear")
    artifacts = {}
    for quantized_input in (True, False):
        model = resizes(quantized_input)
        name = "resizes_q" if quantized_input else "resizes_f"
        artifacts[quantized_input] = (model, WasmModel(build(model, name, root).directory / f"{name}.wasm"))
    return artifacts


def test_quantized_resizes_round_like_onnxruntime(built):
    """Bit for bit, every mode and size: with TVM's interpolation, 224 of the 2x upsamplings'
    20480 values over these seeds were a step off."""
    model, wasm = built[True]
    for seed in range(10):
        inputs = models.random_inputs(model, seed=seed)
        for output, got, want in zip(model.graph.output, wasm.run(inputs), models.reference_outputs(model, inputs)):
            assert got.shape == want.shape, output.name
            np.testing.assert_array_equal(got, want, err_msg=output.name)


def test_float_resizes_match_onnxruntime(built):
    model, wasm = built[False]
    for seed in range(3):
        inputs = models.random_inputs(model, seed=seed)
        for output, got, want in zip(model.graph.output, wasm.run(inputs), models.reference_outputs(model, inputs)):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-6, err_msg=output.name)


def test_resizes_are_one_kernel_each_fused_with_their_quantize(tmp_path):
    """No TVM resize kernel is left, and each resize is one kernel with the quantize after it
    (the dequantize before them all is one more)."""
    kernels = list(prim_funcs(scheduled_module(resizes(True), tmp_path)))
    assert not [k for k in kernels if "resize" in k], kernels
    fused = [k for k in kernels if "bilinear" in k]
    assert len(fused) == len(RESIZES) and all("round" in k or "maximum" in k for k in fused), kernels
    assert len(kernels) == len(RESIZES) + 1, kernels


def test_quantized_conv_resize_conv_matches_onnxruntime(tmp_path):
    """A quantized U-Net's decoder step (conv, 2x bilinear upsampling, conv; NHWC between the
    convs), made by onnxruntime's quantizer: within a step of onnxruntime (the zoo's U-Net was
    two steps off), and the smoke test passes at its default allowance."""
    g = models.Chain(np.random.default_rng(3), [1, 3, 8, 8]).conv(3, 8, 3, pad=1).add("Relu")
    g.add("Resize", "", g.constant(np.array([1, 1, 2, 2], np.float32)), mode="linear",
          coordinate_transformation_mode="half_pixel")
    model = quantized.qdq(g.conv(8, 8, 3, pad=1).build())
    wasm = WasmModel(build(model, "decoder", tmp_path).directory / "decoder.wasm")
    assert max(worst_steps(model, wasm, range(5)).values()) <= 1.001


@pytest.mark.parametrize("mode", ["half_pixel", "pytorch_half_pixel", "asymmetric", "align_corners"])
@pytest.mark.parametrize("sizes", [(8, 16), (8, 13), (8, 5), (5, 1), (1, 4)])
def test_axis_taps_interpolate_between_neighbours(mode, sizes):
    """Each output reads two neighbouring inputs (or one twice) with weights summing to one, and
    their weighted position is the mode's coordinate, clamped to the input."""
    size_in, size_out = sizes
    taps = axis_taps(mode, size_in, size_out)
    assert ((0 <= taps.first) & (taps.second - taps.first <= 1) & (taps.second < size_in)).all()
    np.testing.assert_allclose(taps.near + taps.far, 1.0, rtol=0, atol=1e-6)
    for position in range(size_out):
        if taps.first[position] != taps.second[position]:
            coordinate = taps.first[position] * taps.near[position] + taps.second[position] * taps.far[position]
            expected = {"half_pixel": (position + 0.5) * size_in / size_out - 0.5,
                        "pytorch_half_pixel": (position + 0.5) * size_in / size_out - 0.5 if size_out > 1 else 0.0,
                        "asymmetric": position * size_in / size_out,
                        "align_corners": position * (size_in - 1) / (size_out - 1) if size_out > 1 else 0.0}[mode]
            assert coordinate == pytest.approx(min(max(expected, 0.0), size_in - 1), abs=1e-5)
