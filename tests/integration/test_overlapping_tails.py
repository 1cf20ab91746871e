"""Vector loops over axes that are not whole vectors (49 keys of a Swin window, 197 tokens, a
crop of a padded tile) end in a vector overlapping the one before it, and loops over register
tiles of ragged lanes (a depthwise conv over 18 channels) in a tile overlapping the one before
it (`compiler.tir.overlapping_tails`), instead of a predicate, which TVM's vectorizer turns into
scalar code for the whole loop; blocks where a recomputed output could differ keep the
predicate."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import build
from tests.support.compiler import NATIVE, WASM, fused_module, onnxruntime_output, prim_funcs, random_feeds, scheduled_module

tvm = pytest.importorskip("tvm")
pytest.importorskip("onnxruntime")

from tvm import s_tir, te, tirx  # noqa: E402

from wasm_build.compiler.tir import walk  # noqa: E402
from wasm_build.compiler.tir.overlapping_tails import may_overlap, overlapping_tails  # noqa: E402
from wasm_build.compiler.tir.pipeline import tir_pipeline  # noqa: E402
from wasm_build.testing.models import GraphBuilder  # noqa: E402


def _split_kernel(extent: int, accumulate: bool = False) -> tirx.PrimFunc:
    """``b = a * 2 + 1`` over [3, extent] (or ``b += a`` when ``accumulate``), its inner axis
    split in vectors of 4 under the split's predicate."""
    a = te.placeholder((3, extent), "float32", name="a")
    if accumulate:
        k = te.reduce_axis((0, 3), name="k")
        b = te.compute((extent,), lambda j: te.sum(a[k, j], axis=k), name="b")
    else:
        b = te.compute((3, extent), lambda i, j: a[i, j] * 2.0 + 1.0, name="b")
    sch = s_tir.Schedule(te.create_prim_func([a, b]))
    block = sch.get_sblock("b")
    loops = sch.get_loops(block)
    outer, inner = sch.split(loops[0 if accumulate else 1], [None, 4])
    if accumulate:
        sch.reorder(outer, loops[1], inner)  # the lanes innermost, around the block
    sch.vectorize(inner)
    return sch.mod["main"].with_attr("global_symbol", "kernel")


def _predicated_vector_blocks(func: tirx.PrimFunc) -> list[str]:
    """Names of blocks right under a vectorized loop whose predicate reads that loop's lane."""
    found = []

    def look(node) -> None:
        if isinstance(node, tirx.For) and node.kind == tirx.ForKind.VECTORIZED and isinstance(node.body, tvm.s_tir.SBlockRealize):
            used = tvm.s_tir.dlight.analysis.collect_vars_used_in_prim_expr(node.body.predicate)
            if any(v.same_as(node.loop_var) for v in used):
                found.append(node.body.block.name_hint)

    walk.visit(func.body, look)
    return found


def _after_step(func: tirx.PrimFunc) -> tirx.PrimFunc:
    mod = overlapping_tails()(tvm.IRModule({"kernel": func}))
    return mod["kernel"]


@pytest.mark.parametrize("extent", [5, 13, 49, 197])
def test_a_ragged_elementwise_loop_loses_its_predicate_and_computes_every_value(extent):
    """The last vector starts at ``extent - 4``: no predicate is left, and the kernel built
    natively through the whole TIR pipeline writes every value right, the overlapped ones too."""
    func = _split_kernel(extent)
    assert _predicated_vector_blocks(func) == ["b"]
    assert _predicated_vector_blocks(_after_step(func)) == []

    with tvm.transform.PassContext(opt_level=3):
        kernel = tvm.tirx.build(tvm.IRModule({"kernel": func}), target=NATIVE, pipeline=tir_pipeline())
    a = np.random.default_rng(extent).standard_normal((3, extent)).astype("float32")
    b = tvm.runtime.tensor(np.full((3, extent), np.nan, "float32"))
    kernel["kernel"](tvm.runtime.tensor(a), b)
    np.testing.assert_array_equal(b.numpy(), a * np.float32(2) + np.float32(1))


def test_an_accumulation_keeps_its_predicate():
    """A reduction adds into its output: computed twice, an output would be added twice."""
    func = _split_kernel(49, accumulate=True)
    before = _predicated_vector_blocks(func)
    assert before and _predicated_vector_blocks(_after_step(func)) == before


def _assert_matches_onnxruntime_in_wasmtime(model, tmp_path, seed, atol=1e-4):
    """``model`` built for wasm32 and run in wasmtime agrees with onnxruntime on seeded inputs."""
    from wasm_build import WasmModel

    name = model.graph.name
    result = build(model, name, tmp_path, smoke_test=False)
    feeds = random_feeds(model, np.random.default_rng(seed))
    (got,) = WasmModel(result.directory / f"{name}.wasm").run(feeds)
    np.testing.assert_allclose(got, onnxruntime_output(model, feeds), rtol=1e-4, atol=atol)


def _layer_norm(shape):
    g = GraphBuilder("layer_norm", 0)
    x = g.input("x", list(shape))
    channels = shape[-1]
    y = g.op("LayerNormalization", [x, g.normal((channels,), 1.0), g.normal((channels,), 1.0)], axis=-1)
    g.output(y, "y", list(shape))
    return g.build()


def test_an_update_tvm_may_make_in_place_is_not_overlapped():
    """A layer norm over 7 x 7 pixels computes ``mean = sum / n`` from one buffer of its own to
    another of the same size, which TVM's StorageRewrite turns into an update in place: an
    overlapping vector would then divide some sums twice. That block is refused; others of the
    kernel are not."""
    mod = fused_module(_layer_norm((1, 7, 7, 16)), WASM, graph_passes=True)
    (func,) = [f for name, f in prim_funcs(mod).items() if "layer_norm" in name]
    verdicts = {}

    def look(node) -> None:
        if isinstance(node, tvm.s_tir.SBlock) and node.name_hint.endswith("_mean"):
            verdicts[node.name_hint] = may_overlap(node, func)

    walk.visit(func.body, look)
    assert verdicts and not any(verdicts.values())


@pytest.mark.parametrize("shape", [(1, 7, 7, 16), (1, 14, 14, 24), (2, 3, 49, 49)])
def test_ragged_layer_norms_match_onnxruntime_in_wasmtime(tmp_path, shape):
    _assert_matches_onnxruntime_in_wasmtime(_layer_norm(shape), tmp_path, seed=1)


def _window_attention(windows=4, heads=3, tokens=49, dim=16, seed=0):
    """Swin's shifted-window attention: Q Kᵀ over 7 x 7 windows, a relative position bias, the
    shift mask added through a reshape to [batch, windows, heads, tokens, tokens], softmax,
    attention · V."""
    g = GraphBuilder("window_attention", seed)
    q, k, v = (g.input(name, [windows, heads, tokens, dim]) for name in "qkv")
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
    scores = g.op("Add", [scores, g.normal((1, heads, tokens, tokens), 1.0)])
    masked = g.op("Reshape", [scores, g.int64s([1, windows, heads, tokens, tokens])])
    mask = np.where(np.random.default_rng(seed).random((1, windows, 1, tokens, tokens)) < 0.3, -100.0, 0.0)
    masked = g.op("Add", [masked, g.constant(mask.astype("float32"))])
    scores = g.op("Reshape", [masked, g.int64s([windows, heads, tokens, tokens])])
    context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
    g.output(context, "y", [windows, heads, tokens, dim])
    return g.build()


def test_window_attention_kernels_lose_their_lane_predicates_where_overlap_is_safe():
    """Over 49 keys, softmax's exponentials and scaling and the mask's add through reshapes get
    predicate-free vector loops. The scores' crop of its tiles padded to 52 keys keeps its
    predicate: it reads the register tile of the accumulator, which holds the current vector's
    lanes only, and its epilogue (the bias add) costs less value by value than a second pass over
    whole rows (the requantized crop below takes that pass)."""
    mod = fused_module(_window_attention(), WASM, graph_passes=True)
    kept = {}
    for name, func in prim_funcs(mod).items():
        before = _predicated_vector_blocks(func)
        after = _predicated_vector_blocks(_after_step(func))
        if "softmax" in name or "reshape" in name:
            assert before and after == [], name
        kept[name] = after
    (crop,) = [blocks for name, blocks in kept.items() if name.startswith("fused_matmul")]
    assert crop == ["matmul_intermediate_pad"]


def _quantized_scores(heads=2, tokens=79, dim=16, seed=0):
    """Q Kᵀ over 79 tokens quantized by onnxruntime (wav2vec2's attention at its test length):
    the product of two activations, requantized in its epilogue (a division, a rounding, a clamp)."""
    from wasm_build.testing import quantized

    g = GraphBuilder("quantized_scores", seed)
    q, k = (g.input(name, [1, heads, tokens, dim]) for name in "qk")
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
    g.output(g.op("Softmax", [scores], axis=-1), "y", [1, heads, tokens, tokens])
    return quantized.qdq(g.build())


def test_a_requantized_crop_of_padded_keys_loses_its_lane_predicate(tmp_path):
    """Keys padded to 80: the crop of the scores' tiles, which requantizes, runs over whole rows
    and its last vector overlaps (it had run value by value: 3.6 G multiply-adds a second)."""
    mod = scheduled_module(_quantized_scores(), tmp_path)
    (scores,) = [f for name, f in prim_funcs(mod).items() if name.startswith("fused_matmul")]
    assert "T.int64(80)" in scores.script()
    assert _predicated_vector_blocks(scores)
    assert _predicated_vector_blocks(_after_step(scores)) == []


def test_a_requantized_crop_of_padded_keys_matches_onnxruntime_in_wasmtime(tmp_path):
    from wasm_build import WasmModel
    from tests.support.steps import worst_steps

    model = _quantized_scores()
    directory = build(model, "scores", tmp_path).directory  # smoke test included
    assert max(worst_steps(model, WasmModel(directory / "scores.wasm"), range(3)).values()) <= 1.0


def test_window_attention_matches_onnxruntime_in_wasmtime(tmp_path):
    _assert_matches_onnxruntime_in_wasmtime(_window_attention(), tmp_path, seed=2)


def _depthwise(channels=18, size=16, seed=0):
    """A depthwise 3 x 3 conv + bias + ReLU over a channel count that is not a whole number of
    vectors (GhostNet at width 0.5: 18, 36, 54 ...)."""
    g = GraphBuilder("depthwise", seed)
    x = g.input("x", [1, channels, size, size])
    y = g.op("Conv", [x, g.normal((channels, 1, 3, 3), 0.3), g.normal((channels,), 0.1)], group=channels, pads=[1, 1, 1, 1])
    g.output(g.op("Relu", [y]), "y", [1, channels, size, size])
    return g.build()


def test_register_tiles_over_ragged_channels_lose_their_predicates():
    """The depthwise conv's tiles of 4 channels over 18: init, update and write-back of the last
    tile move to channels 14..17 together, and none of them is predicated any more. (The
    write-back stores the tile transposed into the NCHW output, vectors along pixels, so its
    predicate is on the unrolled channel: moved with the others, its channel is a `T.min` too.)"""
    mod = fused_module(_depthwise(), WASM, graph_passes=True)
    (conv,) = [f for name, f in prim_funcs(mod).items() if "conv2d" in name]
    before = _predicated_vector_blocks(conv)
    assert sorted(before) == ["group_conv2d_nhwc_init", "group_conv2d_nhwc_update"], before
    after = _after_step(conv)
    assert _predicated_vector_blocks(after) == []
    assert after.script().count("T.min(") >= 3


@pytest.mark.parametrize("channels", [18, 6, 27])
def test_ragged_depthwise_convs_match_onnxruntime_in_wasmtime(tmp_path, channels):
    _assert_matches_onnxruntime_in_wasmtime(_depthwise(channels), tmp_path, seed=3, atol=1e-5)


def test_a_loop_over_vectors_of_a_reduction_axis_keeps_its_predicates():
    """Row sums over 49 values, 4 at a time (the vector loop outside the block, its tiles along
    the reduced axis): a tile recomputed over lanes already summed would add them twice."""
    a = te.placeholder((3, 49), "float32", name="a")
    k = te.reduce_axis((0, 49), name="k")
    b = te.compute((3, 4), lambda i, lane: te.sum(tvm.tirx.Select(k % 4 == lane, a[i, k], 0.0), axis=k), name="b")
    sch = s_tir.Schedule(te.create_prim_func([a, b]))
    block = sch.get_sblock("b")
    i, lane, red = sch.get_loops(block)
    outer, inner = sch.split(red, [None, 4])
    sch.reorder(i, outer, inner, lane)
    func = sch.mod["main"].with_attr("global_symbol", "kernel")
    assert "T.where" in func.script()
    assert _after_step(func).script() == func.script()


@pytest.mark.parametrize("gather", [False, True])
def test_the_spatial_rule_overlaps_contiguous_rows_only(gather):
    """Ten values a row: read contiguously, they take two vectors, the second overlapping the
    first; gathered (an int8 stem's window rows read ``x[w * 2 + j // 3]``), a vector would be
    built lane by lane, slower than the scalar loop, so the rule leaves the row unsplit."""
    from wasm_build.compiler.schedules.spatial import VectorizeSpatial

    a = te.placeholder((5, 10), "float32", name="a")
    if gather:
        b = te.compute((5, 10), lambda i, j: a[i, (j * 7) % 10] * 2.0, name="b")
    else:
        b = te.compute((5, 10), lambda i, j: a[i, j] * 2.0, name="b")
    sch = s_tir.Schedule(te.create_prim_func([a, b]))
    applied = VectorizeSpatial().apply(sch, sch.get_sblock("b"))
    stepped = _after_step(sch.mod["main"]).script()
    if gather:
        assert "T.min(" not in stepped
    else:
        assert applied and "T.min(" in stepped and "T.vectorized(4)" in stepped
