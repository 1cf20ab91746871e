"""`passes.relaxed_products.offset_weights`: int8 weights as the relaxed dot product's operand
(uint8 in [0, 127]) and the terms that make its products exact, checked on the numbers alone
(the built kernels: tests/integration/test_relaxed_products.py)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tvm")

from wasm_build.compiler.passes.relaxed_products import offset_weights, pays  # noqa: E402


def _seven_bit(rng, shape, channel_axis):
    """Symmetric 7-bit weights as onnxruntime's ``reduce_range`` makes them: [-64, 64] per
    channel, some channels holding both ends (a span of 129 values)."""
    weights = rng.integers(-63, 64, size=shape).astype(np.int8)
    moved = np.moveaxis(weights, channel_axis, 0)
    for channel in range(0, moved.shape[0], 3):
        flat = moved[channel].reshape(-1)
        flat[rng.integers(flat.size)] = 64
        flat[(rng.integers(flat.size - 1) + 1) % flat.size] = -64
    return weights


def _relaxed_matmul(x, offsets):
    """What the rewritten matmul computes from uint8 activations ``x`` [M, K]."""
    signed = x.astype(np.int32) - 128
    reads = np.concatenate([signed, signed[:, offsets.repeated]], axis=1)
    assert offsets.weights.dtype == np.uint8 and offsets.weights.max() <= 127  # the dot's operand
    product = reads @ offsets.weights.astype(np.int32)
    return product + signed.sum(axis=1, keepdims=True) * offsets.low + 128 * offsets.sums


@pytest.mark.parametrize("k, n", [(64, 24), (8, 4), (256, 100)])
def test_matmul_weights_offset_to_seven_bits_give_the_same_products(k, n):
    rng = np.random.default_rng(k + n)
    weights = _seven_bit(rng, (k, n), channel_axis=1)
    span = weights.astype(int).max(axis=0) - weights.astype(int).min(axis=0)
    assert span.max() == 128  # both ends in some channel: their top weights are read twice
    offsets = offset_weights(weights, channel_axis=1, depth_axis=0)
    assert offsets is not None and offsets.repeated.size % 4 == 0 and offsets.repeated.size > 0
    x = rng.integers(0, 256, size=(7, k), dtype=np.uint8)
    np.testing.assert_array_equal(_relaxed_matmul(x, offsets), x.astype(np.int32) @ weights.astype(np.int32))


def test_conv_weights_offset_per_output_channel():
    """HWIO weights: the offsets are per output channel (axis 3) and the channels read twice are
    input channels (axis 2), for every tap of the window."""
    rng = np.random.default_rng(3)
    weights = _seven_bit(rng, (3, 3, 16, 8), channel_axis=3)
    offsets = offset_weights(weights, channel_axis=3, depth_axis=2)
    assert offsets is not None
    repeated = np.take(offsets.weights, np.arange(16, offsets.weights.shape[2]), axis=2)
    rebuilt = offsets.weights[:, :, :16].astype(np.int32) + offsets.low
    for extra, channel in enumerate(offsets.repeated):
        rebuilt[:, :, channel] += repeated[:, :, extra]
    np.testing.assert_array_equal(rebuilt, weights)


def test_eight_bit_weights_are_left_to_dot_i16x8():
    """Full-range int8 weights (onnxruntime's default) span 255 values: no offset brings them
    into [0, 127], and the product keeps `dot_i16x8`."""
    weights = np.random.default_rng(0).integers(-127, 128, size=(32, 8)).astype(np.int8)
    assert offset_weights(weights, channel_axis=1, depth_axis=0) is None


def test_products_repeating_most_of_their_channels_keep_dot_i16x8():
    """Every input channel of a narrow 1x1 conv holds some output channel's top weight: reading
    them all again would double its reduction, more than the relaxed dot saves."""
    weights = np.zeros((8, 16), np.int8)  # [K, N]
    weights[:, 0::2], weights[:, 1::2] = -64, 64
    weights[np.arange(8), np.arange(8) * 2] = 64  # each row holds both ends for some column
    offsets = offset_weights(weights, channel_axis=1, depth_axis=0)
    assert offsets is not None and offsets.repeated.size == 8
    assert not pays(offsets, 8)
    assert pays(offset_weights(weights[:, 1::2], channel_axis=1, depth_axis=0), 8)  # nothing repeated
