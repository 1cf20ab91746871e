"""Integer 3x3 convs as Winograd F(2x2, 3x3) (`compiler.passes.winograd`, issue 19): int16
input tiles, weights as (2G) g (2G)^T in int16, int32 products on `i32x4.dot_i16x8_s`, and the
output transform's 4x shifted back. Exact: each case is a QDQ (or QOperator) model made by
onnxruntime's quantizer, built (the smoke test compares with onnxruntime) and matched against
onnxruntime here in quantization steps."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tvm
from tvm import relax

from wasm_build import WasmModel
from wasm_build.compiler.passes import winograd
from wasm_build.compiler.passes.qdq import magnitude
from wasm_build.testing import models, quantized

from tests.support import build
from tests.support.compiler import OBJDUMP, kernel_instructions, prim_funcs, scheduled_module
from tests.support.steps import worst_steps

WINOGRAD = "conv2d_winograd"


def conv_stack(channels=16, size=12, relu=True, seed=0):
    """A 1x1 stem (3 -> ``channels``), then two 3x3 convs (padding 1), ReLUs between. Without
    the ReLU before them, the convs' activations have a zero point inside their range and are
    read as int16 minus it."""
    g = models.Chain(np.random.default_rng(seed), [1, 3, size, size])
    g.conv(3, channels, 1)
    if relu:
        g.add("Relu")
    g.conv(channels, channels, 3, pad=1).add("Relu")
    g.conv(channels, 24, 3, pad=1).add("Relu")
    return g.build()


# name -> (model, quantizer)
CASES = {
    "uint8": (lambda: conv_stack(), quantized.qdq),
    "int16-activations": (lambda: conv_stack(relu=False), quantized.qdq),
    "int8-symmetric": (lambda: conv_stack(), lambda m: quantized.qdq(m, activations="int8", symmetric_activations=True)),
    "odd-plane": (lambda: conv_stack(channels=32, size=13), quantized.qdq),
    "qoperator": (lambda: conv_stack(), quantized.qoperator),
}


def _kernels(directory, name) -> list[str]:
    return list(json.loads((directory / f"{name}.json").read_text())["kernel_work"])


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("integer_winograd")
    cache = {}

    def _get(name: str, **options):
        # Small convs: the transformed weights (32/9 the bytes) need more than the default budget.
        options = {"winograd-budget": 4.0, **options}
        key = (name, tuple(sorted(options.items())))
        if key not in cache:
            factory, quantize = CASES[name]
            model = quantize(factory())
            artifact = f"{name.replace('-', '_')}{len(cache)}"
            cache[key] = (model, artifact, build(model, artifact, root, **options).directory)
        return cache[key]

    return _get


@pytest.mark.parametrize("case", list(CASES))
def test_integer_3x3_convs_run_as_winograd_exactly(built, case):
    """The Winograd build's outputs are the direct build's (``winograd-budget = 0``), bit for
    bit, and onnxruntime's within a step (rounding ties elsewhere in the model: the direct
    build has them too)."""
    model, name, directory = built(case)
    _, direct_name, direct = built(case, **{"winograd-budget": 0})
    assert sum(WINOGRAD in kernel for kernel in _kernels(directory, name)) == 2, _kernels(directory, name)
    assert not any(WINOGRAD in kernel for kernel in _kernels(direct, direct_name))
    winograd_model, direct_model = WasmModel(directory / f"{name}.wasm"), WasmModel(direct / f"{direct_name}.wasm")
    for seed in range(3):
        inputs = models.random_inputs(model, seed=seed)
        np.testing.assert_array_equal(winograd_model.run(inputs)[0], direct_model.run(inputs)[0])
    assert max(worst_steps(model, winograd_model, range(3)).values()) <= 1.001  # float error of the step


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_winograd_products_are_integer_dot_products(built):
    _, name, directory = built("uint8")
    kernels = {k: c for k, c in kernel_instructions(directory / f"{name}.wasm").items()
               if WINOGRAD in k and not k.startswith("__tvm_ffi")}
    assert kernels
    assert all(c["i32x4.dot_i16x8_s"] > 0 for c in kernels.values()), kernels


def test_integer_filter_is_four_times_the_float_filter():
    weights = np.random.default_rng(0).integers(-128, 128, (3, 3, 5, 7)).astype(np.int8)
    transform = winograd.Transform(2)
    integer = transform.integer_filter(weights)
    _, g, _ = transform.matrices()
    exact = np.einsum("ek,nl,klio->enio", g, g, weights.astype(np.float64))
    np.testing.assert_array_equal(integer, 4 * exact)
    assert np.abs(integer).max() <= 9 * 128
    with pytest.raises(ValueError, match="no integer form"):
        winograd.Transform(4).integer_filter(weights)


def test_integer_tiles_compute_four_times_the_correlation_exactly():
    """Y = A^T [(4U) . (B^T d B)] A, in int64, is 4x the 3x3 correlation, at the extremes of
    8-bit inputs and int8 weights too."""
    rng = np.random.default_rng(1)
    bt, _, at = (m.astype(np.int64) for m in winograd.Transform(2).matrices())
    for tile, weight in [
        (rng.integers(-255, 256, (4, 4)), rng.integers(-128, 128, (3, 3))),
        (np.full((4, 4), 255), np.full((3, 3), -128)),
    ]:
        u4 = winograd.Transform(2).integer_filter(weight.reshape(3, 3, 1, 1).astype(np.int8))[:, :, 0, 0]
        result = at @ (u4 * (bt @ tile @ bt.T)) @ at.T
        want = np.array([[np.sum(tile[i:i + 3, j:j + 3] * weight) for j in range(2)] for i in range(2)])
        np.testing.assert_array_equal(result, 4 * want)


def test_sums_that_could_overflow_keep_the_conv_direct():
    transform = winograd.Transform(2)
    typical = transform.integer_filter(np.random.default_rng(2).integers(-128, 128, (3, 3, 256, 8)).astype(np.int8))
    assert transform.integer_sums_fit(typical, 255)
    assert not transform.integer_sums_fit(typical, 2**13)  # input tiles past int16
    extreme = transform.integer_filter(np.full((3, 3, 2048, 4), -128, np.int8))
    assert not transform.integer_sums_fit(extreme, 255)  # products past int32


def test_activation_magnitude_follows_widening_and_zero_points():
    x = relax.Var("x", relax.TensorType((1, 8, 8, 16), "uint8"))
    widened = relax.Var("w", relax.TensorType((1, 8, 8, 16), "int16"))
    shifted = relax.Var("s", relax.TensorType((1, 8, 8, 16), "int16"))
    moved = relax.Var("t", relax.TensorType((1, 16, 8, 8), "int16"))
    table = {
        widened: relax.op.astype(x, "int16"),
        shifted: relax.op.subtract(widened, relax.const(np.int16(-100))),
        moved: relax.op.permute_dims(shifted, [0, 3, 1, 2]),
    }
    assert magnitude(x, table.get) == 255
    assert magnitude(moved, table.get) == 355
    unknown = relax.Var("u", relax.TensorType((1, 8, 8, 16), "int16"))
    assert magnitude(unknown, table.get) is None  # a real int16 tensor: anything


def test_transformed_weights_stream_position_by_position(tmp_path):
    """The product loops over the 4x4 tile positions outside its lane tiles: the int16 weights
    it reads are stored position first, ``U[e, n, channel // lanes, k // 2, channel % lanes, k % 2]``,
    so one position's lane tiles are one stream. Stored lane tile first, each lane tile's
    weights lay a position's worth apart (16 x 32 KB for 512 channels: ResNet-18's Winograd
    products slowed as their weights grew, 30 G int16 multiply-adds a second at 64 channels,
    22 at 512)."""
    model = quantized.qdq(conv_stack(channels=32))
    mod = scheduled_module(model, tmp_path, winograd_budget=4.0)
    kernels = [f for n, f in prim_funcs(mod).items() if WINOGRAD in n]
    assert kernels
    for func in kernels:
        (weights,) = [p for p in func.params if str(p.dtype) == "int16" and len(p.shape) == 6]
        shape = [int(d) for d in weights.shape]
        assert shape[:2] == [4, 4] and shape[-1] == 2, shape
