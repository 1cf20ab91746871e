"""Transposes that move the innermost axis run in 4 x 4 blocks of vectors
(`compiler.schedules.transpose_tiles`, issue 20): NCHW <-> NHWC at a conv's edges read every
lane from another row before (four scalar loads and three lane inserts a vector)."""

from __future__ import annotations

import pytest
from onnx import TensorProto

tvm = pytest.importorskip("tvm")
from tvm import s_tir  # noqa: E402

from tests.support.compiler import (
    INTERLEAVE_MASKS,
    NATIVE,
    OBJDUMP,
    fused_module,
    innermost_loops,
    prim_funcs,
    wasm_disassembly,
)
from tests.support.export import build_and_compare
from wasm_build.compiler.tiles import TRANSPOSED_BLOCKS_ATTR
from wasm_build.compiler.tir.pipeline import tir_pipeline
from wasm_build.testing.models import GraphBuilder


def _transpose(shape, perm, elem_type=TensorProto.FLOAT):
    g = GraphBuilder("transpose", 0)
    x = g.input("x", list(shape), elem_type)
    g.output(g.op("Transpose", [x], perm=list(perm)), "y", [shape[p] for p in perm], elem_type)
    return g.build()


def _tiled(model) -> dict[str, bool]:
    """Per transpose kernel: whether its schedule takes blocks (gathers marked for
    `tir.transpose_shuffle`, or narrow rows read into a block of input rows)."""
    mod = fused_module(model, NATIVE)
    return {
        name: TRANSPOSED_BLOCKS_ATTR in func.attrs or "sblock_alloc_buffer" in func.script()
        for name, func in prim_funcs(mod).items() if "transpose" in name
    }


@pytest.mark.parametrize(
    "shape, perm",
    [((1, 28, 28, 192), (0, 3, 1, 2)), ((1, 32, 10, 12), (0, 2, 3, 1)), ((8, 12), (1, 0)), ((4, 8, 12), (2, 1, 0)),
     ((1, 3, 16, 16), (0, 2, 3, 1)), ((1, 2, 6, 8), (0, 2, 3, 1)),
     ((1, 14, 14, 64), (0, 3, 1, 2)), ((1, 7, 4, 32), (0, 3, 1, 2)), ((2, 3, 4, 8), (0, 3, 1, 2)),
     # Output rows or input rows (the last four) that are not whole vectors: whole blocks, then
     # a partial one (49 = 12 x 4 + 1, 13 x 13 = 169, 5 = 4 + 1, 2 images of 3 x 3: a partial
     # block in every image; input rows of 7, 6 and 77).
     ((1, 7, 7, 32), (0, 3, 1, 2)), ((1, 13, 13, 24), (0, 3, 1, 2)), ((5, 8), (1, 0)), ((2, 3, 3, 8), (0, 3, 1, 2)),
     ((1, 5, 8, 8), (0, 2, 3, 1)), ((1, 8, 7, 7), (0, 2, 3, 1)), ((1, 6, 8, 6), (0, 3, 1, 2)), ((1, 24, 77), (0, 2, 1))],
)
def test_transposes_moving_the_innermost_axis_take_blocks_and_match(tmp_path, shape, perm):
    model = _transpose(shape, perm)
    tiled_kernels = _tiled(model)
    assert tiled_kernels and all(tiled_kernels.values())
    build_and_compare(model, "transpose", tmp_path)


@pytest.mark.parametrize("shape, perm", [((1, 7, 7, 32), (0, 3, 1, 2)), ((1, 32, 7, 7), (0, 2, 3, 1))])
def test_kernels_with_partial_blocks_can_be_scheduled_again(shape, perm):
    """`loop_partition` copies a block with its iterator variables; TVM refuses such a
    function when a schedule is made of it again (tuning does: "multiple definitions")."""
    from tvm import s_tir

    funcs = {name: f for name, f in prim_funcs(fused_module(_transpose(shape, perm), NATIVE)).items() if "transpose" in name}
    assert funcs
    for func in funcs.values():
        assert "_partition" in func.script()
        s_tir.Schedule(func)


@pytest.mark.parametrize(
    "shape, perm, why",
    [((1, 3, 10, 10), (0, 2, 3, 1), "rows of 10: no whole vector"),
     ((1, 3, 7, 3), (0, 3, 1, 2), "input rows of 3: less than a vector"),
     ((1, 3, 7, 7), (0, 2, 3, 1), "input rows of 7 into output rows of 3"),
     ((2, 6, 8), (1, 0, 2), "innermost axis stays"),
     ((8, 12), (1, 0), "8-bit values")],
)
def test_other_transposes_keep_the_plain_schedule_and_match(tmp_path, shape, perm, why):
    model = _transpose(shape, perm, TensorProto.INT8 if "8-bit" in why else TensorProto.FLOAT)
    assert not any(_tiled(model).values()), why
    build_and_compare(model, "transpose", tmp_path)


@pytest.mark.parametrize("scale, tiled", [("scalar", True), ("tensor", False)])
def test_squeezed_and_scaled_transposes_take_blocks(tmp_path, scale, tiled):
    """Attention's ``K^T * 1/sqrt(d)`` as timm's exports have it: a squeeze, the transpose and
    a scalar Mul, one kernel reading the input at a constant index too; 197 tokens leave a
    partial block (ViT-Tiny's ran at 6 GB/s as a vectorized gather). A factor per value is a
    second tensor the blocks would have to transpose as well: the plain schedule."""
    g = GraphBuilder("scaled_transpose", 0)
    x = g.input("x", [1, 1, 3, 197, 8])
    y = g.op("Transpose", [g.op("Squeeze", [x, g.int64s([0])])], perm=[0, 1, 3, 2])
    factor = g.scalar(0.125) if scale == "scalar" else g.uniform([1, 3, 8, 197], 0.5, 1.5, "scale")
    g.output(g.op("Mul", [y, factor]), "y", [1, 3, 8, 197])
    model = g.build()
    tiled_kernels = _tiled(model)
    assert tiled_kernels and all(tiled_kernels.values()) == tiled
    build_and_compare(model, "scaled_transpose", tmp_path)


@pytest.mark.parametrize("axis, tiled", [(0, True), (2, False)])
def test_transposes_of_a_slice(tmp_path, axis, tiled):
    """One value of an outer axis (a slice and a squeeze, fused with the transpose: timm's
    ``qkv[1]``) leaves the rows contiguous: blocks. One of an axis between the moving ones
    does not."""
    g = GraphBuilder("sliced_transpose", 0)
    shape = [2, 3, 16, 20] if axis == 0 else [3, 16, 2, 20]
    x = g.input("x", shape)
    one = g.op("Slice", [x, g.int64s([1]), g.int64s([2]), g.int64s([axis])])
    sliced = g.op("Squeeze", [one, g.int64s([axis])])
    g.output(g.op("Transpose", [sliced], perm=[0, 2, 1]), "y", [3, 20, 16])
    model = g.build()
    tiled_kernels = _tiled(model)
    assert tiled_kernels and all(tiled_kernels.values()) == tiled
    build_and_compare(model, "sliced_transpose", tmp_path)


def test_broadcasts_fused_with_a_transpose_keep_the_plain_schedule(tmp_path):
    """A row broadcast to every output row, then transposed: the output moves along an axis
    the input does not have, so there are no input blocks to transpose."""
    g = GraphBuilder("broadcast_transpose", 0)
    x = g.input("x", [1, 12])
    y = g.op("Transpose", [g.op("Expand", [x, g.int64s([8, 12])])], perm=[1, 0])
    g.output(g.op("Mul", [y, g.scalar(0.5)]), "y", [12, 8])
    model = g.build()
    tiled_kernels = _tiled(model)
    assert tiled_kernels and not any(tiled_kernels.values())
    build_and_compare(model, "broadcast_transpose", tmp_path)




@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
@pytest.mark.parametrize("shape, perm", [((1, 28, 28, 192), (0, 3, 1, 2)), ((1, 7, 7, 96), (0, 3, 1, 2)), ((1, 96, 7, 7), (0, 2, 3, 1))])
def test_blocks_are_transposed_by_two_rounds_of_interleaves(tmp_path, shape, perm):
    """Four vector loads, eight interleaving shuffles and four stores a block: no lane inserts
    (the plain schedule's gather), no shuffles LLVM narrowed to one column's lanes (before
    `tir.transpose_shuffle`: twelve, of masks Cranelift lowers to two byte shuffles each).
    A 7x7 plane's whole blocks too, either way (its 49th pixel is copied apart, without vectors)."""
    mod = fused_module(_transpose(shape, perm), NATIVE)
    code = wasm_disassembly(mod, "transpose", tmp_path, pipeline=tir_pipeline())
    (loop,) = [body for body in innermost_loops(code) if any("v128.store" in i for i in body)]
    ops = [i.split()[0] for i in loop]
    stores = ops.count("v128.store")
    assert stores and ops.count("v128.load") == stores and ops.count("i8x16.shuffle") == 2 * stores, ops
    masks = {" ".join(i.split()[1:]).replace(",", "") for i in loop if i.startswith("i8x16.shuffle")}
    assert masks <= INTERLEAVE_MASKS, masks
    assert not any(op.endswith(("replace_lane", "load32_lane")) or op == "f32.load" for op in ops), ops


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
@pytest.mark.parametrize(
    "shape, perm, loads",
    [((1, 28, 28, 192), (0, 3, 1, 2), 4), ((1, 3, 16, 16), (0, 2, 3, 1), 3), ((1, 14, 14, 64), (0, 3, 1, 2), 4)],
)
def test_blocks_stay_in_registers(tmp_path, shape, perm, loads):
    """The block of input rows is a stack array LLVM promotes to registers: no workspace
    allocated per call, no stores but the output's."""
    code = wasm_disassembly(fused_module(_transpose(shape, perm), NATIVE), "transpose", tmp_path, pipeline=tir_pipeline())
    compute = code[code.index("_compute_>:"):]
    assert "call" not in compute.split("\n\n")[0], "a workspace allocation"
    (loop,) = [body for body in innermost_loops(compute) if any("v128.store" in i for i in body)]
    ops = [i.split()[0] for i in loop]
    assert ops.count("v128.load") == loads and ops.count("v128.store") == loads, ops
