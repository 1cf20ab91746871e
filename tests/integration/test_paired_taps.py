"""Integer depthwise convs over pairs of window taps (`compiler.passes.paired_taps`, issue 19):
one `i32x4.dot_i16x8_s` takes two taps of 4 channels. Each case is a QDQ model made by
onnxruntime's quantizer, built (the smoke test compares with onnxruntime) and matched against
onnxruntime here in quantization steps."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from wasm_build import WasmModel
from wasm_build.testing import models, quantized

from tests.support import build
from tests.support.steps import worst_steps

# name -> (channels, window, stride, padding, dilation, map size, ReLU before the conv,
# quantizer options). Without the ReLU the conv's activations have a zero point inside their
# range: padding must add that value, so they are widened to int16 minus it.
CASES = {
    "3x3": (16, 3, 1, 1, 1, 12, True, {}),
    "3x3-stride-2": (24, 3, 2, 1, 1, 13, True, {}),
    "5x5-dilation-2": (8, 5, 1, 4, 2, 11, True, {}),
    "2x2-even": (8, 2, 1, 0, 1, 9, True, {}),
    "3x3-int16-activations": (16, 3, 1, 1, 1, 10, False, {}),
    "3x3-int8-symmetric": (16, 3, 1, 1, 1, 10, True, {"activations": "int8", "symmetric_activations": True}),
    # Channels that are no multiple of 8: half vectors, 4 channels at a time (GhostNet's 12-60).
    "3x3-12-channels": (12, 3, 1, 1, 1, 10, True, {}),
    "5x5-stride-2-20-channels": (20, 5, 2, 2, 1, 11, False, {}),
    # No multiple of 4 (GhostNet's 6, 18, 30): padded with zero channels, cropped after the conv.
    "3x3-6-channels": (6, 3, 1, 1, 1, 10, True, {}),
    "5x5-stride-2-18-channels": (18, 5, 2, 2, 1, 11, False, {}),
    "3x3-dilation-2-7-channels": (7, 3, 1, 2, 2, 9, True, {}),
    "2x2-5-channels-int8-symmetric": (5, 2, 1, 0, 1, 9, True, {"activations": "int8", "symmetric_activations": True}),
}
PAIRED = "depthwise_conv2d_paired"


def depthwise_model(channels, window, stride, pad, dilation, size, relu, seed=0) -> onnx.ModelProto:
    """A 1x1 stem (3 -> ``channels``), then the depthwise conv and a ReLU."""
    g = models.Chain(np.random.default_rng(seed), [1, 3, size, size])
    g.conv(3, channels, 1)
    if relu:
        g.add("Relu")
    weight, bias = g.const([channels, 1, window, window], 0.3), g.const([channels])
    g.add("Conv", weight, bias, kernel_shape=[window, window], strides=[stride] * 2, pads=[pad] * 4,
          dilations=[dilation] * 2, group=channels)
    g.add("Relu")
    return g.build()


def _kernels(directory, name) -> list[str]:
    return list(json.loads((directory / f"{name}.json").read_text())["kernel_work"])


@pytest.mark.parametrize("case", list(CASES))
def test_depthwise_convs_over_tap_pairs_match_onnxruntime(tmp_path, case):
    """Strides, dilations, odd and even windows, uint8 / int8 / int16 activations: the paired
    kernel runs, and its outputs are onnxruntime's (a step apart at most: rounding ties)."""
    *geometry, options = CASES[case]
    model = quantized.qdq(depthwise_model(*geometry), **options)
    directory = build(model, "dw", tmp_path).directory
    assert any(PAIRED in kernel for kernel in _kernels(directory, "dw")), _kernels(directory, "dw")
    assert max(worst_steps(model, WasmModel(directory / "dw.wasm"), range(3)).values()) <= 1.0


def test_fewer_than_4_channels_keep_the_tap_by_tap_kernel(tmp_path):
    """3 channels: the pairs kernel's loads take 4 at a time from within a pixel, so the conv keeps
    its plain depthwise kernel, and still matches."""
    model = quantized.qdq(depthwise_model(3, 3, 1, 1, 1, 10, True))
    directory = build(model, "dw3", tmp_path).directory
    assert not any(PAIRED in kernel for kernel in _kernels(directory, "dw3"))
    assert max(worst_steps(model, WasmModel(directory / "dw3.wasm"), range(3)).values()) <= 1.0


def test_several_depthwise_convs_get_pairs_kernels_of_their_own(tmp_path):
    """Two convs of one geometry (one kernel, called twice) and a strided one: each pairs
    kernel joins the module under a name of its own (the first MobileNetV2 build failed on a
    duplicate symbol)."""
    g = models.Chain(np.random.default_rng(1), [1, 3, 12, 12])
    g.conv(3, 16, 1).add("Relu")
    for stride in (1, 1, 2):
        g.conv(16, 16, 3, stride=stride, pad=1, group=16).add("Relu")
    model = quantized.qdq(g.build())
    directory = build(model, "dws", tmp_path).directory
    assert sum(PAIRED in kernel for kernel in _kernels(directory, "dws")) == 2, _kernels(directory, "dws")
    assert max(worst_steps(model, WasmModel(directory / "dws.wasm"), range(3)).values()) <= 1.0


def test_paired_weights_put_two_taps_side_by_side():
    from wasm_build.compiler.passes.paired_taps import paired_weights

    weights = np.arange(2 * 3 * 1 * 4, dtype=np.int8).reshape(2, 3, 1, 4)  # [KH, KW, 1, C]
    paired = paired_weights(weights)
    assert paired.shape == (2, 2, 2, 4)
    np.testing.assert_array_equal(paired[1, 0, 1], weights[1, 1, 0])  # row 1, taps 0 and 1: the second
    np.testing.assert_array_equal(paired[0, 1, 0], weights[0, 2, 0])  # tap 2 opens the second pair
    assert not paired[:, 1, 1].any()  # ... whose other tap is zero: the window is 3 wide


def test_paired_weights_pad_the_channels_to_whole_groups_of_4():
    from wasm_build.compiler.passes.paired_taps import paired_weights

    weights = np.arange(1, 3 * 3 * 1 * 6 + 1, dtype=np.int8).reshape(3, 3, 1, 6)
    paired = paired_weights(weights)
    assert paired.shape == (3, 2, 2, 8)
    np.testing.assert_array_equal(paired[2, 0, 1, :6], weights[2, 1, 0])
    assert not paired[..., 6:].any()  # the padding's weights are zeros
