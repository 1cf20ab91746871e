"""Concatenations of many inputs as one vectorized copy loop per input
(`compiler.schedules.concat_segments`, issue 20): an unrolled RNN concatenates its steps'
states, and TVM's concatenate evaluated a chain of one `if_then_else` per input for every
element (a bidirectional LSTM over 49 frames: two such kernels, 35% of its time)."""

from __future__ import annotations

import pytest

tvm = pytest.importorskip("tvm")
torch = pytest.importorskip("torch")

from tests.support.compiler import NATIVE, fused_module, prim_funcs  # noqa: E402
from tests.support.export import build_and_compare, export_onnx  # noqa: E402
from wasm_build.compiler.schedules.analysis import all_blocks  # noqa: E402
from wasm_build.compiler.schedules.concat_segments import MIN_SEGMENTS, concatenation_bounds  # noqa: E402


class Steps(torch.nn.Module):
    """``parts`` per-step results concatenated along the step axis, then transposed (the
    transpose is what the chain would otherwise be inlined into)."""

    def __init__(self, parts: int, axis: int):
        super().__init__()
        self.parts, self.axis = parts, axis

    def forward(self, x):
        steps = [torch.tanh(x * (i + 1)) for i in range(self.parts)]
        return torch.cat(steps, dim=self.axis).transpose(1, 2) + 1.0


def _model(parts: int, axis: int):
    return export_onnx(Steps(parts, axis), (torch.randn(1, 3, 16),), ["x"])


def _concat_blocks(mod):
    found = {}
    for name, func in prim_funcs(mod).items():
        sch = tvm.s_tir.Schedule(func)
        for block in all_blocks(sch):
            stmt = sch.get(block)
            found.setdefault(name, []).append((stmt.name_hint, concatenation_bounds(stmt)))
    return found


@pytest.mark.parametrize("parts, axis", [(12, 1), (MIN_SEGMENTS, 2), (3, 1)])
def test_concatenations_build_and_match_onnxruntime(tmp_path, parts, axis):
    build_and_compare(_model(parts, axis), "steps", tmp_path)


def test_long_concatenations_become_one_copy_per_input():
    mod = fused_module(_model(12, 1), NATIVE)
    blocks = [b for kernel in _concat_blocks(mod).values() for b in kernel]
    names = [name for name, _ in blocks]
    # 12 partitions of the concatenation, none left with the whole chain over the output
    assert sum(name.endswith("_partition") for name in names) == 12, names
    copies = [bounds for name, bounds in blocks if name.startswith("T_concat") and not name.endswith(("_partition", "_common", "_global"))]
    assert len(copies) == 12
    # each copy vectorized: its innermost loop runs over vector lanes
    text = "\n".join(f.script() for f in prim_funcs(mod).values())
    assert text.count("T.vectorized") >= 12


def test_short_concatenations_are_left_to_their_consumer():
    mod = fused_module(_model(MIN_SEGMENTS - 1, 1), NATIVE)
    names = [name for kernel in _concat_blocks(mod).values() for name, _ in kernel]
    assert not any(name.endswith("_partition") for name in names)
    assert not any(name.startswith("T_concat") for name in names), "inlined into the transpose"


class LaneJoin(torch.nn.Module):
    """Two inputs concatenated along the innermost axis inside elementwise arithmetic: one
    kernel, the chain nested under the multiply and the add."""

    def forward(self, x):
        return torch.cat([torch.tanh(x), x[..., :8] * 2.0], dim=-1) * 3.0 + 1.0


def _lane_join():
    return export_onnx(LaneJoin(), (torch.randn(1, 6, 24),), ["x"])


def test_concatenations_along_the_lanes_are_partitioned_at_every_input():
    """Along the innermost axis each vector lane would take its own branch of the chain, and
    TVM's vectorizer makes scalar code of a lane-dependent ``if_then_else``: the loop is split
    into vectors no boundary cuts and partitioned at the inputs, whatever their number."""
    mod = fused_module(_lane_join(), NATIVE)
    names = [name for kernel in _concat_blocks(mod).values() for name, _ in kernel]
    assert sum(name.endswith("_partition") for name in names) == 2, names
    assert "T.vectorized" in "\n".join(f.script() for f in prim_funcs(mod).values())


def test_concatenations_along_the_lanes_match_onnxruntime(tmp_path):
    build_and_compare(_lane_join(), "lanes", tmp_path)
