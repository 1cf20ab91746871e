"""Transposes that move the innermost axis run in 4 x 4 blocks of vectors
(`compiler.schedules.transpose_tiles`, issue 20): NCHW <-> NHWC at a conv's edges read every
lane from another row before (four scalar loads and three lane inserts a vector)."""

from __future__ import annotations

import pytest
from onnx import TensorProto

tvm = pytest.importorskip("tvm")

from tests.support.compiler import NATIVE, OBJDUMP, fused_module, innermost_loops, prim_funcs, wasm_disassembly  # noqa: E402
from tests.support.export import build_and_compare  # noqa: E402
from wasm_build.testing.models import GraphBuilder  # noqa: E402


def _transpose(shape, perm, elem_type=TensorProto.FLOAT):
    g = GraphBuilder("transpose", 0)
    x = g.input("x", list(shape), elem_type)
    g.output(g.op("Transpose", [x], perm=list(perm)), "y", [shape[p] for p in perm], elem_type)
    return g.build()


def _tiled(model) -> dict[str, bool]:
    """Per transpose kernel: whether its schedule reads input rows into a local block."""
    mod = fused_module(model, NATIVE)
    return {name: "local" in func.script() for name, func in prim_funcs(mod).items() if "transpose" in name}


@pytest.mark.parametrize(
    "shape, perm",
    [((1, 28, 28, 192), (0, 3, 1, 2)), ((1, 32, 10, 12), (0, 2, 3, 1)), ((8, 12), (1, 0)), ((4, 8, 12), (2, 1, 0))],
)
def test_transposes_moving_the_innermost_axis_take_blocks_and_match(tmp_path, shape, perm):
    model = _transpose(shape, perm)
    assert all(_tiled(model).values()) and _tiled(model)
    build_and_compare(model, "transpose", tmp_path)


@pytest.mark.parametrize(
    "shape, perm, why",
    [((1, 3, 16, 16), (0, 2, 3, 1), "3 channels: no whole vector"),
     ((2, 6, 8), (1, 0, 2), "innermost axis stays"),
     ((8, 12), (1, 0), "8-bit values")],
)
def test_other_transposes_keep_the_plain_schedule_and_match(tmp_path, shape, perm, why):
    model = _transpose(shape, perm, TensorProto.INT8 if "8-bit" in why else TensorProto.FLOAT)
    assert not any(_tiled(model).values()), why
    build_and_compare(model, "transpose", tmp_path)


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_blocks_are_transposed_by_lane_shuffles_not_lane_inserts(tmp_path):
    mod = fused_module(_transpose((1, 28, 28, 192), (0, 3, 1, 2)), NATIVE)
    code = wasm_disassembly(mod, "transpose", tmp_path)
    (loop,) = [body for body in innermost_loops(code) if any("v128.store" in i for i in body)]
    ops = [i.split()[0] for i in loop]
    assert ops.count("v128.load") == 4 and ops.count("v128.store") == 4, ops
    assert "i8x16.shuffle" in ops
    assert not any(op.endswith(("replace_lane", "load32_lane")) or op == "f32.load" for op in ops), ops
