"""Integer stems as products along the window's rows (`compiler.passes.window_rows`): the
rewritten conv equals the direct integer conv exactly (native builds, every stride and padding
case), and quantized stems made by onnxruntime's quantizer take it in a wasm build and match
onnxruntime."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
from tvm import relax

from wasm_build import WasmModel
from wasm_build.compiler.passes.window_rows import window_rows_pass
from wasm_build.testing import models, quantized

from tests.support import build
from tests.support.compiler import OBJDUMP, kernel_instructions, run_native
from tests.support.steps import worst_steps


def integer_conv(shape, window, out_channels, strides, padding, dtype, dead_channel, seed=0):
    """A Relax function: one NHWC/HWIO conv of ``dtype`` activations by int8 weights into int32
    (what `integer_contractions` leaves), its weights random, a channel's all zero when asked."""
    rng = np.random.default_rng(seed)
    kernel = rng.integers(-128, 128, (*window, shape[3], out_channels)).astype("int8")
    if dead_channel:
        kernel[:, :, -1, :] = 0  # the zero-weight channel an RGB stem is paired with
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(shape, dtype))
    with bb.function("main", [x]):
        out = bb.emit(relax.op.nn.conv2d(x, relax.const(kernel), strides, padding, data_layout="NHWC",
                                         kernel_layout="HWIO", out_dtype="int32"))
        bb.emit_func_output(out)
    return bb.get()


CONVS = {
    # name: (input shape, window, output channels, strides, padding (top, left, bottom, right), dtype, dead channel)
    "resnet-stem": ((1, 20, 18, 4), (7, 7), 16, (2, 2), (3, 3, 3, 3), "int16", True),
    "mobilenet-stem": ((1, 9, 11, 4), (3, 3), 8, (2, 2), (1, 1, 1, 1), "uint8", True),
    "kws-stem": ((1, 13, 10, 1), (10, 4), 12, (2, 1), (5, 1, 4, 2), "int8", False),
    "two-channels-asymmetric": ((2, 7, 9, 2), (2, 5), 4, (1, 3), (0, 2, 1, 0), "int16", False),
}


@pytest.mark.parametrize("case", list(CONVS))
def test_window_rows_equal_the_direct_conv(case):
    shape, window, out_channels, strides, padding, dtype, dead_channel = CONVS[case]
    mod = integer_conv(shape, window, out_channels, strides, padding, dtype, dead_channel)
    rewritten = window_rows_pass()(mod)
    assert "window_rows" in str(rewritten) and "R.nn.conv2d" not in str(rewritten["main"]), rewritten
    info = np.iinfo(dtype)
    low, high = max(info.min, -300), min(info.max, 300)  # int16 activations: 8-bit values minus a zero point
    for seed in range(2):
        x = np.random.default_rng(seed).integers(low, high + 1, shape).astype(dtype)
        np.testing.assert_array_equal(run_native(rewritten, {"x": x}), run_native(mod, {"x": x}))


def test_wide_inputs_and_grouped_convs_stay_direct():
    assert "window_rows" not in str(window_rows_pass()(integer_conv((1, 8, 8, 8), (3, 3), 8, (1, 1), (1, 1, 1, 1), "int8", False)))
    assert "window_rows" not in str(window_rows_pass()(integer_conv((1, 8, 8, 4), (1, 1), 8, (2, 2), (0, 0, 0, 0), "int8", False)))


def stem(kernel: int, stride: int, channels: int = 3, size: int = 24, seed: int = 0):
    """A stem conv, a ReLU and a 1x1 conv, quantized by onnxruntime (QDQ, uint8 activations)."""
    g = models.Chain(np.random.default_rng(seed), [1, channels, size, size])
    g.conv(channels, 16, kernel, stride=stride, pad=kernel // 2).add("Relu").conv(16, 8, 1)
    return quantized.qdq(g.build())


@pytest.mark.parametrize("kernel,stride,channels", [(7, 2, 3), (3, 2, 3), (5, 1, 1)])
def test_quantized_stems_take_window_rows_and_match_onnxruntime(tmp_path, kernel, stride, channels):
    model = stem(kernel, stride, channels)
    name = f"stem{kernel}"
    directory = build(model, name, tmp_path).directory  # its smoke test compares with onnxruntime
    kernels = list(json.loads((directory / f"{name}.json").read_text())["kernel_work"])
    assert any("conv2d_window_rows" in k for k in kernels), kernels
    assert max(worst_steps(model, WasmModel(directory / f"{name}.wasm"), range(3)).values()) <= 1.001


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_window_rows_products_are_int16_dot_products(tmp_path):
    model = stem(7, 2)
    directory = build(model, "stemdot", tmp_path).directory
    counts = kernel_instructions(directory / "stemdot.wasm")
    conv = sum((c for name, c in counts.items() if "conv2d_window_rows" in name), Counter())
    assert conv["i32x4.dot_i16x8_s"] >= 4, conv  # (float only in the requantize epilogue)
