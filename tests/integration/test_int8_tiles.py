"""The register tiles of integer products (compiler.schedules.integer_contraction) on shapes
that do not come in whole tiles: row counts with no tile size dividing them (ViT's 197 tokens)
and lane tiles that are not a power of two (12 or 24 channels)."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest

from tests.support import build
from tests.support.quantized_layers import qdq_dense
from wasm_build import WasmModel
from wasm_build.testing import quantized
from wasm_build.testing.models import Chain, random_inputs, reference_outputs
from wasm_build.wasm.steps import output_steps

tvm = pytest.importorskip("tvm")
pytest.importorskip("onnxruntime")

from tests.support.compiler import (  # noqa: E402
    OBJDUMP,
    innermost_loops,
    prim_funcs,
    scheduled_module,
)


def integer_kernel(mod):
    ((name, func),) = [(n, f) for n, f in prim_funcs(mod).items() if "matmul" in n]
    return name, func


def row_tile(func) -> int:
    """The rows of the dot-product tile: the extent of the unrolled loop over rows, the one
    around the unrolled loop over lane vectors that holds the intrinsic's block."""
    script = func.script()
    assert "llvm.wasm.dot" in script, "not tensorized"
    lines = script.splitlines()
    at = next(i for i, line in enumerate(lines) if 'T.sblock("matmul_update_o")' in line)
    unrolled = [line for line in lines[:at] if "T.unroll(" in line and "_init" not in line][-2:]
    if len(unrolled) < 2:  # one row: only the loop over lane vectors is unrolled
        return 1
    return int(unrolled[0].split("T.int64(")[-1].split(")")[0])


def dot_product_loops(wasm_path) -> list[list[str]]:
    """The innermost loops of the built dense layer's matmul kernel that hold dot products."""
    text = subprocess.run([OBJDUMP, "-d", str(wasm_path)], capture_output=True, text=True, check=True).stdout
    start = text.index("_compute_>:", text.index("dense_fused_matmul"))
    kernel = text[start : text.index("\n\n", start)]
    return [body for body in innermost_loops(kernel) if any("dot_i16x8_s" in i for i in body)]


@pytest.mark.parametrize("m", [197, 101, 13])
def test_rows_no_tile_divides_are_padded_to_whole_tiles(tmp_path, m):
    """A prime row count gets a multi-row tile over rows padded with zeros (copied once per
    call), instead of a 1-row tile that reloads every weight vector per row (7.8 ms against
    1.3 for ViT's 197 x 768 @ 768 x 192)."""
    mod = scheduled_module(qdq_dense(m, 96, 48), tmp_path)
    name, func = integer_kernel(mod)
    rows = row_tile(func)
    assert rows > 1, name
    assert m % rows, (name, rows)  # no divisor of m: the rows really are padded
    assert "_pad" in func.script(), name


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """``(m, k, n) -> (model, wasm path)``: each quantized dense layer built once."""
    cache = {}

    def _get(m, k, n):
        if (m, k, n) not in cache:
            model = qdq_dense(m, k, n)
            directory = build(model, "dense", tmp_path_factory.mktemp(f"dense_{m}_{k}_{n}")).directory
            cache[m, k, n] = model, directory / "dense.wasm"
        return cache[m, k, n]

    return _get


@pytest.mark.parametrize("m, k, n", [(197, 96, 48), (9, 64, 36)])
def test_padded_rows_and_12_lane_tiles_match_onnxruntime_in_wasmtime(built, m, k, n):
    """Built and run in wasmtime, within one output quantization step of onnxruntime: the
    padding rows never reach the output, a 12-lane tile writes back every lane."""
    model, wasm_path = built(m, k, n)
    steps = output_steps(model)
    assert steps, "the quantizer left the output unquantized: nothing to compare in steps"
    wasm = WasmModel(wasm_path)
    for seed in range(3):
        inputs = random_inputs(model, seed=seed)
        ((got,), (want,)) = wasm.run(inputs), reference_outputs(model, inputs)
        assert np.abs(got.astype(np.float64) - want).max() <= steps["y"] * (1 + 1e-3)


def test_dynamically_quantized_ragged_rows_match_onnxruntime(tmp_path):
    """quantize_dynamic's form (DynamicQuantizeLinear + MatMulInteger, the activation's zero
    point a run-time value) over 197 rows: widened, padded to whole tiles, corrected for the
    zero point; its float output matches onnxruntime's (the integer products are exact)."""
    g = Chain(np.random.default_rng(3), [197, 64])
    g.add("MatMul", g.const([64, 40], scale=1 / 8))
    model = quantized.dynamic(g.build())
    assert "MatMulInteger" in {node.op_type for node in model.graph.node}
    mod = scheduled_module(model, tmp_path)
    assert row_tile(integer_kernel(mod)[1]) > 1
    wasm = WasmModel(build(model, "dynamic", tmp_path / "out").directory / "dynamic.wasm")
    for seed in range(3):
        inputs = random_inputs(model, seed=seed)
        ((got,), (want,)) = wasm.run(inputs), reference_outputs(model, inputs)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_accumulators_of_a_12_lane_tile_stay_vectors(built, tmp_path):
    """9 rows x 36 channels take a 3-row x 12-lane tile (three lane vectors). Written back as
    one 12-lane vector, LLVM split the accumulators into scalars and rebuilt them lane by lane
    at every reduction step (27 lane inserts a step, 6x slower); written back in vectors of 4,
    the reduction loop holds no lane insert or extract."""
    assert row_tile(integer_kernel(scheduled_module(qdq_dense(9, 64, 36), tmp_path))[1]) == 3
    loops = dot_product_loops(built(9, 64, 36)[1])
    assert loops
    for body in loops:
        assert not [i for i in body if "replace_lane" in i or "extract_lane" in i], body


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_activations_are_widened_once_and_never_splat_by_scalar_loads(built):
    """The 8-bit activations of a dense product are widened to int16 where they are made (the
    quantize kernel writes int16): the reduction loop widens nothing but the weights (before: a
    widening per row and step), and broadcasts no pair by `v128.load32_splat` (a scalar load, a
    move and a broadcast in Cranelift's code): its rows' pairs are stored pre-splat
    (tests/integration/test_presplat_pairs.py)."""
    (body,) = dot_product_loops(built(197, 96, 48)[1])
    assert not any("extend_low_i8x16" in i or "load16_splat" in i for i in body), body
    assert not any("load32_splat" in i for i in body), body


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_rows_swept_per_lane_tile_load_pairs_copied_once_per_call(built):
    """Weights past `tiles.CACHE_BYTES` put lane tiles outermost, each sweeping every row: the
    pairs are copied pre-splat once per call (a copy per row tile would be made again for every
    lane tile), so the reduction loop loads each row's broadcast pair as one vector, neither
    `v128.load32_splat` nor the lane shuffles of `tir.pair_shuffle` (15% faster for 128 rows x
    768 @ 768 x 3072 in the journal's round 36)."""
    (body,) = dot_product_loops(built(8, 1024, 1152)[1])
    assert not any("load32_splat" in i or "i8x16.shuffle" in i for i in body), body
    assert sum(i.startswith("v128.load ") for i in body) >= 2, body
