"""Winograd F(2x2, 3x3) and F(4x4, 3x3) convolutions: the algebra, which convs the pass picks
with which tile size, and builds that still match onnxruntime (natively and in wasmtime)."""

from __future__ import annotations

from wasm_build.testing.models import Chain

import numpy as np
import pytest

tvm = pytest.importorskip("tvm")
pytest.importorskip("onnxruntime")

from tvm import relax, te  # noqa: E402

from tests.support import build  # noqa: E402
from tests.support.compiler import (  # noqa: E402
    NATIVE,
    OBJDUMP,
    WASM,
    wasm_disassembly,
    fused_module,
    onnxruntime_output,
    prim_funcs,
    random_feeds,
    run_native,
    scheduled_names,
)
from wasm_build.compiler.tir.pipeline import tir_pipeline
from wasm_build.compiler.init_kernels import INIT_KERNEL_ATTR  # noqa: E402
from wasm_build.compiler.passes import winograd  # noqa: E402
from wasm_build.errors import ConfigError  # noqa: E402
from wasm_build.compiler.schedules import winograd_transforms  # noqa: E402
from wasm_build.compiler.tiles import CACHE_BYTES, PACKED_ROWS_ATTR  # noqa: E402


def _correlate_3x3(tile: np.ndarray, g: np.ndarray, m: int) -> np.ndarray:
    return np.array([[np.sum(tile[i:i + 3, j:j + 3] * g) for j in range(m)] for i in range(m)])


@pytest.mark.parametrize("m", [2, 4])
def test_transform_matrices_compute_a_3x3_correlation(m):
    transform = winograd.Transform(m)
    bt, g_matrix, at = transform.matrices()
    rng = np.random.default_rng(m)
    for _ in range(5):
        tile = rng.standard_normal((transform.alpha, transform.alpha))
        g = rng.standard_normal((3, 3))
        u = g_matrix @ g @ g_matrix.T
        v = bt @ tile @ bt.T
        y = at @ (u * v) @ at.T
        np.testing.assert_allclose(y, _correlate_3x3(tile, g, m), rtol=1e-12, atol=1e-12)


def _transformed(weight: np.ndarray, m: int) -> np.ndarray:
    """The init kernel `winograd.filter_transform` of ``weight``, built natively."""
    placeholder = te.placeholder(weight.shape, str(weight.dtype), name="w")
    kernel = tvm.compile(te.create_prim_func([placeholder, winograd.filter_transform(placeholder, m)]), target="llvm")
    alpha = m + 2
    out = tvm.runtime.tensor(np.zeros((alpha, alpha, *weight.shape[2:]), np.int16 if weight.dtype == np.int8 else np.float32))
    kernel(tvm.runtime.tensor(weight), out)
    return out.numpy()


@pytest.mark.parametrize("m", [2, 4])
def test_filter_transform_matches_the_matrices(m):
    """The kernel init runs: U = G g G^T in float32 arithmetic; 4U exactly for int8 weights."""
    _, g_matrix, _ = winograd.Transform(m).matrices()
    rng = np.random.default_rng(m)
    weight = rng.standard_normal((3, 3, 5, 7)).astype(np.float32)  # HWIO
    u = _transformed(weight, m)
    assert u.shape == (m + 2, m + 2, 5, 7) and u.dtype == np.float32
    np.testing.assert_allclose(u, np.einsum("ek,nl,klio->enio", g_matrix, g_matrix, weight.astype(np.float64)), rtol=1e-6, atol=1e-6)
    if m == 2:
        integer = rng.integers(-128, 128, (3, 3, 5, 7)).astype(np.int8)
        np.testing.assert_array_equal(_transformed(integer, m), winograd.Transform(m).integer_filter(integer))


def resnet_block(rng, channels=32, size=16):
    """conv-BN-ReLU, conv-BN, + residual, ReLU: the shape of ResNet's 3x3 convs."""
    g = Chain(rng, [1, channels, size, size])
    residual = g.last
    g.conv(channels, channels, 3, pad=1).batch_norm(channels).add("Relu")
    g.conv(channels, channels, 3, pad=1).batch_norm(channels)
    return g.add("Add", residual).add("Relu").build()


def mixed_convs(rng):
    """Convs Winograd must leave alone: stride 2, depthwise, 1x1, few channels, a 2x2 plane."""
    g = Chain(rng, [1, 8, 32, 32])
    g.conv(8, 16, 3, pad=1).add("Relu")                 # 8 input channels
    g.conv(16, 32, 3, stride=2, pad=1)                   # stride 2 -> 16x16
    g.conv(32, 32, 3, pad=1, group=32)                   # depthwise
    g.conv(32, 32, 1)                                    # 1x1
    g.add("MaxPool", kernel_shape=[2, 2], strides=[8, 8])  # -> 2x2
    return g.conv(32, 32, 3, pad=1).build()              # one 4x4 output tile


def winograd_module(model, budget):
    """The model through the graph passes (with ``budget``) and the schedule pass."""
    return fused_module(model, NATIVE, graph_passes=True, winograd_budget=budget)


def winograd_kernels(mod):
    return sorted(name for name, func in prim_funcs(mod).items() if winograd_transforms.has_transforms(func))


def test_resnet_block_matches_onnxruntime_with_fused_epilogues():
    rng = np.random.default_rng(1)
    model = resnet_block(rng)
    mod = winograd_module(model, budget=10.0)
    kernels = winograd_kernels(mod)
    assert len(kernels) == 2, sorted(prim_funcs(mod))
    # Bias (the folded batch norm), the residual add and the ReLU run in the same kernel.
    assert any("add" in k and "relu" in k for k in kernels), kernels
    assert all(k in scheduled_names(mod) for k in kernels)
    feeds = random_feeds(model, rng)
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)


def test_transformed_weights_are_packed_at_init():
    mod = winograd_module(resnet_block(np.random.default_rng(2), channels=32), budget=10.0)
    constants = []
    relax.analysis.post_order_visit(
        mod["main"],
        lambda e: constants.append(tuple(e.value.shape)) if isinstance(e, tvm.ir.expr.Constant) and isinstance(e.value, tvm.runtime.Tensor) and e.value.ndim == 5 else None,
    )
    assert constants == []  # U is no constant: the init kernels make it
    made = [tuple(int(d) for d in f.params[-1].ty.shape) for f in prim_funcs(mod).values()
            if f.attrs is not None and INIT_KERNEL_ATTR in f.attrs]
    # U[6, 6, 32, 32] stored per tile position, then per 8-lane tile of output channels:
    # [6, 6, 32 // 8, 32, 8] (8: the product's tile rows, 4 of the 16 output tiles, are packed
    # and splat by lane shuffles). Positions first: the product loops over them outside the
    # lane tiles, so one position's lane tiles are one stream of weights.
    assert sorted(made) == [(6, 6, 4, 32, 8)] * 2


def test_budget_zero_keeps_direct_convolutions():
    mod = winograd_module(resnet_block(np.random.default_rng(3)), budget=0.0)
    assert winograd_kernels(mod) == []


def tile_sizes(mod) -> dict[int, int]:
    """{output plane height: m} of the module's Winograd kernels (U is packed per lane tile:
    ``[CO / lanes, m + 2, m + 2, CI, lanes]``)."""
    sizes = {}
    for name in winograd_kernels(mod):
        shapes = [[int(d) for d in p.shape] for p in prim_funcs(mod)[name].params]
        alpha = next(shape[1] for shape in shapes if len(shape) == 5)
        sizes[shapes[-1][1]] = alpha - 2
    return sizes


def two_planes(rng):
    g = Chain(rng, [1, 16, 32, 32])
    g.conv(16, 16, 3, pad=1).add("Relu")                         # 32x32
    g.add("MaxPool", kernel_shape=[2, 2], strides=[2, 2])
    g.conv(16, 16, 3, pad=1).add("Relu")                         # 16x16
    return g.build()


def test_budget_buys_the_most_multiply_adds_per_byte():
    """F(2x2) adds 7 * 16 * 16 * 4 bytes to a conv's weights, F(4x4) 27 * 16 * 16 * 4; the
    weights and biases total 2 * (9 * 256 + 16) * 4 bytes."""
    model = two_planes(np.random.default_rng(4))
    # 0.5x: one F(2x2), on the plane where it saves the most.
    assert tile_sizes(winograd_module(model, budget=0.5)) == {32: 2}
    # 1.6x would pay for one F(4x4); two F(2x2) save more multiply-adds.
    assert tile_sizes(winograd_module(model, budget=1.6)) == {32: 2, 16: 2}
    # 2.6x: the rest goes to the larger plane's upgrade to F(4x4) (the smaller's does not fit).
    assert tile_sizes(winograd_module(model, budget=2.6)) == {32: 4, 16: 2}
    assert tile_sizes(winograd_module(model, budget=10.0)) == {32: 4, 16: 4}


def test_7x7_planes_take_2x2_tiles_and_match_onnxruntime():
    """4x4 tiles would be 4 for a 7x7 plane, too few to pay; 2x2 tiles are 16."""
    rng = np.random.default_rng(9)
    model = resnet_block(rng, channels=16, size=7)
    mod = winograd_module(model, budget=10.0)
    assert tile_sizes(mod) == {7: 2}
    assert len(winograd_kernels(mod)) == 2
    feeds = random_feeds(model, rng)
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)


def _packs_its_tile_rows(mod, name) -> bool:
    func = prim_funcs(mod)[name]
    return bool(func.attrs and PACKED_ROWS_ATTR in func.attrs)


def test_49_tile_positions_are_padded_to_whole_register_tiles():
    """A 14x14 plane has 7 x 7 tiles of 2x2 outputs: the product gets 52 rows (13 tiles of 4,
    the last 3 repeating the 49th position), so it packs them; the extra rows never reach the
    output."""
    rng = np.random.default_rng(11)
    model = resnet_block(rng, channels=16, size=14)
    mod = winograd_module(model, budget=1.0)
    assert tile_sizes(mod) == {14: 2}
    for name in winograd_kernels(mod):
        assert _packs_its_tile_rows(mod, name), name
        assert "T.sblock_alloc_buffer((T.int64(4), T.int64(4), T.int64(52), T.int64(16)))" in prim_funcs(mod)[name].script()
    feeds = random_feeds(model, rng)
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)


def test_products_go_by_tile_position_when_all_the_weights_exceed_the_cache():
    """F(4x4) weights of a 128-channel conv are 36 x 64 KB, over the cache size, but one tile
    position's product sweeps only its 64 KB: its tile rows are packed per row tile (lane tiles
    inside), as for the smaller convs."""
    rng = np.random.default_rng(12)
    g = Chain(rng, [1, 128, 16, 16])
    model = g.conv(128, 128, 3, pad=1).add("Relu").build()
    assert 36 * 128 * 128 * 4 > CACHE_BYTES
    mod = winograd_module(model, budget=10.0)
    assert tile_sizes(mod) == {16: 4}
    (name,) = winograd_kernels(mod)
    assert _packs_its_tile_rows(mod, name)
    feeds = random_feeds(model, rng)
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-3)


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_packed_tile_rows_are_splat_by_lane_shuffles_in_reused_storage(tmp_path):
    """TVM's StorageRewrite gives the product's packed tile rows the storage of the input
    transform's rows (dead by then), and the loads name that buffer: the lane-shuffle step
    follows them there, so no value is splat from memory."""
    mod = fused_module(resnet_block(np.random.default_rng(13)), WASM, graph_passes=True, winograd_budget=10.0)
    assert all(_packs_its_tile_rows(mod, name) for name in winograd_kernels(mod))
    text = wasm_disassembly(mod, "winograd", tmp_path, pipeline=tir_pipeline())
    assert text.count("i8x16.shuffle") >= 4
    assert "v128.load32_splat" not in text


def test_ineligible_convs_are_left_direct():
    rng = np.random.default_rng(5)
    model = mixed_convs(rng)
    mod = winograd_module(model, budget=100.0)
    assert winograd_kernels(mod) == []
    feeds = random_feeds(model, rng)
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-5)


def test_odd_plane_sizes_match_onnxruntime():
    """Planes that are not a multiple of the 4x4 output tile (the last tiles are cropped),
    asymmetric padding and different input/output channel counts."""
    rng = np.random.default_rng(6)
    g = Chain(rng, [1, 16, 18, 23])
    w, b = g.const([24, 16, 3, 3]), g.const([24])
    g.add("Conv", w, b, kernel_shape=[3, 3], pads=[1, 0, 2, 1]).add("Relu")
    model = g.build()
    mod = winograd_module(model, budget=100.0)
    assert len(winograd_kernels(mod)) == 1
    feeds = random_feeds(model, rng)
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)


def test_wasm_build_matches_onnxruntime_and_records_the_budget(tmp_path):
    """Built for wasm32 and smoke-tested in wasmtime against onnxruntime (build fails on a mismatch)."""
    model = resnet_block(np.random.default_rng(7), channels=16, size=16)
    direct = build(model, "wdirect", tmp_path / "direct", winograd_budget=0)
    fast = build(model, "wfast", tmp_path / "fast", winograd_budget=10)
    assert fast.manifest["build_options"]["winograd_budget"] == 10
    # Two convs' weights (16 x 16 x 3 x 3) became 6 x 6 tiles, made at init (`init_kernels`):
    # the artifact keeps the 3 x 3 ones, the memory holds 36 / 9 as many bytes besides.
    assert fast.manifest["weights"]["nbytes"] == direct.manifest["weights"]["nbytes"]
    assert fast.manifest["derived_nbytes"] == 2 * 36 * 16 * 16 * 4


def test_2x2_tiles_build_for_wasm_and_match_in_wasmtime(tmp_path):
    """F(2x2, 3x3) kernels through the whole build, smoke-tested in wasmtime (fails on a mismatch)."""
    model = resnet_block(np.random.default_rng(10), channels=16, size=7)
    direct = build(model, "w2direct", tmp_path / "direct", winograd_budget=0)
    fast = build(model, "w2fast", tmp_path / "fast", winograd_budget=10)
    # Two convs' weights became 4 x 4 tiles at init: 16 / 9 as many bytes, beside the artifact's.
    assert fast.manifest["weights"]["nbytes"] == direct.manifest["weights"]["nbytes"]
    assert fast.manifest["derived_nbytes"] == 2 * 16 * 16 * 16 * 4


def test_negative_budget_is_a_config_error(tmp_path):
    model = resnet_block(np.random.default_rng(8), channels=16, size=8)
    with pytest.raises(ConfigError, match="winograd-budget"):
        build(model, "wneg", tmp_path, winograd_budget=-1)


def test_tuning_leaves_winograd_kernels_to_their_schedule(tmp_path):
    """Meta-schedule's search spaces do not unroll the transform tiles (the coefficients would
    stay selections at run time): a Winograd kernel keeps its default schedule, named in the log."""
    import onnx

    from wasm_build.compiler.target import TargetOptions
    from wasm_build.frontends import load_model
    from wasm_build.config.settings import TuningSettings
    from wasm_build.tuning import read_database, tune_model

    path = tmp_path / "block.onnx"
    onnx.save(resnet_block(np.random.default_rng(9), channels=16, size=16), path)
    loaded = load_model(str(path), {}, tmp_path)
    lines: list[str] = []
    database = tmp_path / "block.json"
    options = TargetOptions(winograd_budget=10.0)
    tune_model(loaded.module, options, str(database), TuningSettings(2, str(database), None), log=lines.append)
    assert any("left to the default schedules (Winograd convolutions)" in line for line in lines), lines
    assert all("winograd" not in entry.name for entry in read_database(database).values())
