"""Contractions whose rows or lanes do not come in whole register tiles (odd token counts, prime
sequence lengths, 50 classes) are padded to whole tiles inside the kernel
(compiler.schedules.edge_padding): they match onnxruntime, pack their rows, and write only their
real outputs."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support import build
from wasm_build.testing.models import Chain, GraphBuilder

tvm = pytest.importorskip("tvm")
pytest.importorskip("onnxruntime")

from tests.support.compiler import (  # noqa: E402
    NATIVE,
    blocks_writing,
    fused_module,
    onnxruntime_output,
    prim_funcs,
    random_feeds,
    run_native,
)
from wasm_build.compiler.tiles import PACKED_ROWS_ATTR  # noqa: E402


def dense(m, k, n, seed=0, epilogue=("Add",)):
    """x [m, k] @ W [k, n] (+ bias, and GELU for a costly epilogue)."""
    g = Chain(np.random.default_rng(seed), [m, k])
    g.add("MatMul", g.const([k, n], scale=1 / np.sqrt(k)))
    if "Add" in epilogue:
        g.add("Add", g.const([n]))
    if "Gelu" in epilogue:
        pre = g.last
        g.add("Mul", g.scalar(1 / np.sqrt(2))).add("Erf").add("Add", g.scalar(1.0)).add("Mul", pre)
    return g.build()


def attention(heads, seq, dim, seed=0):
    """softmax(Q Kᵀ) V over activations: q, k and v are all inputs (no constant operand)."""
    g = GraphBuilder("attention", seed)
    q, k, v = (g.input(name, [1, heads, seq, dim]) for name in "qkv")
    scores = g.op("MatMul", [q, g.op("Transpose", [k], perm=[0, 1, 3, 2])])
    context = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), v])
    g.output(context, "y", [1, heads, seq, dim])
    return g.build()


def matmul_kernels(mod):
    return {name: f for name, f in prim_funcs(mod).items() if "matmul" in name}


def check(model, mod, seed=0, rtol=1e-4, atol=1e-4):
    feeds = random_feeds(model, np.random.default_rng(seed))
    np.testing.assert_allclose(run_native(mod, feeds), onnxruntime_output(model, feeds), rtol=rtol, atol=atol)


@pytest.mark.parametrize("m, k, n", [(197, 63, 48), (49, 64, 32), (50, 17, 24), (77, 96, 197), (197, 192, 196)])
def test_ragged_matmuls_pack_padded_rows_and_match_onnxruntime(m, k, n):
    """Rows not a multiple of 4 (a prime 197, 49, 50, 77) and lanes not a multiple of 8 (197,
    196: constant weights padded at compile time) get whole 4 x 8 tiles with packed rows."""
    model = dense(m, k, n)
    mod = fused_module(model, NATIVE, graph_passes=True)
    ((name, func),) = matmul_kernels(mod).items()
    assert len(func.attrs[PACKED_ROWS_ATTR]) == 1, name
    padded_rows = -(-m // 4) * 4
    padded_lanes = -(-n // 8) * 8 if n % 8 and n >= 24 else n
    assert f"T.sblock_alloc_buffer((T.int64({padded_rows}), T.int64({padded_lanes})))" in func.script(), name
    check(model, mod)


def test_a_costly_epilogue_over_padded_rows_matches_onnxruntime():
    """GELU runs over whole rows after their tiles (a predicated write-back per row)."""
    model = dense(197, 64, 256, epilogue=("Add", "Gelu"))
    mod = fused_module(model, NATIVE, graph_passes=True)
    assert all(PACKED_ROWS_ATTR in f.attrs for f in matmul_kernels(mod).values())
    check(model, mod, atol=1e-3)


@pytest.mark.parametrize("heads, seq, dim", [(3, 197, 64), (2, 50, 32), (4, 77, 48), (2, 1, 32)])
def test_attention_products_are_padded_per_head_and_match_onnxruntime(heads, seq, dim):
    """Q Kᵀ and attention V per head: queries padded to whole row tiles, keys (Q Kᵀ's lanes)
    to whole lane tiles, both operands activations (the lanes' one copied with zero columns)."""
    model = attention(heads, seq, dim)
    mod = fused_module(model, NATIVE, graph_passes=True)
    kernels = matmul_kernels(mod)
    assert len(kernels) == 2, sorted(prim_funcs(mod))
    if seq >= 8:
        assert all(PACKED_ROWS_ATTR in f.attrs for f in kernels.values()), sorted(kernels)
    check(model, mod)


def test_keys_are_padded_to_whole_vectors_where_whole_tiles_cost_too_much():
    """49 keys (Swin's 7 x 7 windows): whole 8-lane tiles would add 14% of work, so the keys are
    padded to 52, whole vectors, and no vector loop of the scores' product is predicated (TVM
    computed every vector of a predicated loop value by value: a quarter of the speed)."""
    from wasm_build.compiler.tir import walk

    model = attention(3, 49, 16)
    mod = fused_module(model, NATIVE, graph_passes=True)
    (scores,) = [f for f in matmul_kernels(mod).values() if int(f.params[-1].ty.shape[-1]) == 49]
    assert "T.int64(52)" in scores.script()
    predicated = []

    def look(node):
        if isinstance(node, tvm.s_tir.SBlockRealize) and node.block.name_hint.startswith("matmul"):
            if not (isinstance(node.predicate, tvm.tirx.IntImm) and int(node.predicate) == 1):
                predicated.append(node.block.name_hint)

    walk.visit(scores.body, look)
    assert all(name.endswith("_pad") for name in predicated), predicated  # only the crop of the padding
    check(model, mod)


def test_padded_kernels_write_only_their_outputs():
    """Every block writing a padded kernel's output covers the output and no more: the padding
    rows and lanes are never stored (the write-back is predicated, not folded over the padding)."""
    mod = fused_module(dense(77, 96, 197), NATIVE, graph_passes=True)
    for name, func in matmul_kernels(mod).items():
        output = func.params[-1]
        for block in blocks_writing(func, output):
            assert [int(iv.dom.extent) for iv in block.iter_vars] == [int(d) for d in output.shape], name


def test_shapes_of_whole_tiles_are_left_as_they_were():
    """64 x 128 @ 128 x 512 needs no padding: no padded buffer in the kernel."""
    mod = fused_module(dense(64, 128, 512), NATIVE, graph_passes=True)
    for name, func in matmul_kernels(mod).items():
        assert "_pad" not in func.script(), name


def test_ragged_shapes_built_for_wasm_match_onnxruntime_in_wasmtime(tmp_path):
    """The whole build (padded rows and lanes, presplat packed rows, the attention products)
    linked and run in wasmtime agrees with onnxruntime."""
    from wasm_build import WasmModel

    g = GraphBuilder("ragged", 3)
    x = g.input("x", [1, 77, 40])
    h = g.op("MatMul", [x, g.normal((40, 50), 0.2)])
    q = g.op("Reshape", [h, g.int64s([1, 77, 2, 25])])
    q = g.op("Transpose", [q], perm=[0, 2, 1, 3])
    scores = g.op("MatMul", [q, g.op("Transpose", [q], perm=[0, 1, 3, 2])])
    y = g.op("MatMul", [g.op("Softmax", [scores], axis=-1), q])
    g.output(y, "y", [1, 2, 77, 25])
    model = g.build()
    result = build(model, "ragged", tmp_path / "out", smoke_test=False)
    feeds = random_feeds(model, np.random.default_rng(4))
    (got,) = WasmModel(result.directory / "ragged.wasm").run(feeds)
    np.testing.assert_allclose(got, onnxruntime_output(model, feeds), rtol=1e-4, atol=1e-4)
