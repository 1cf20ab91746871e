"""The static executor plan: memory planning and the builtins it refuses."""

from __future__ import annotations

import subprocess

from tests.support import build
from tests.support.compiler import OBJDUMP

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from wasm_build.codegen.plan import TensorArg, UnsupportedProgram, plan_executor
from wasm_build.compiler.pipeline import lower
from wasm_build.compiler.target import TargetOptions
from wasm_build.frontends.onnx import load_onnx
from wasm_build.testing import models


def _plan(onnx_model, tmp_path, name="m"):
    path = tmp_path / f"{name}.onnx"
    models.save(onnx_model, path)
    loaded = load_onnx(path, {})
    lowered = lower(loaded.module, f"{name}_", TargetOptions())
    return plan_executor(lowered.module, f"{name}_", loaded.input_names, loaded.output_names)


def _byte_range(plan, index):
    tensor = plan.tensors[index]
    return tensor.place.offset, tensor.place.offset + tensor.nbytes


def _live_ranges(plan):
    """For each tensor: (first call, last call) in which it or the bytes it shares are used."""
    ranges = {}
    for step, call in enumerate(plan.calls):
        for arg in call.args:
            if isinstance(arg, TensorArg):
                first, _ = ranges.get(arg.tensor, (step, step))
                ranges[arg.tensor] = (first, step)
    for _sig, index in plan.outputs:
        first, _ = ranges.get(index, (len(plan.calls), len(plan.calls)))
        ranges[index] = (first, len(plan.calls))
    for _sig, index in plan.inputs:
        _, last = ranges.get(index, (0, 0))
        ranges[index] = (-1, last)
    return ranges


def test_live_tensors_never_share_arena_bytes(tmp_path):
    plan = _plan(models.cnn(), tmp_path, "cnn")
    ranges = _live_ranges(plan)
    arena = [i for i in ranges if plan.tensors[i].place.region == "arena"]
    for a in arena:
        for b in arena:
            if a >= b:
                continue
            (a_start, a_end), (b_start, b_end) = _byte_range(plan, a), _byte_range(plan, b)
            same_bytes = (a_start, a_end) == (b_start, b_end)  # a reshape alias
            overlap_bytes = a_start < b_end and b_start < a_end
            overlap_time = ranges[a][0] <= ranges[b][1] and ranges[b][0] <= ranges[a][1]
            assert not (overlap_bytes and overlap_time and not same_bytes), (plan.tensors[a], plan.tensors[b])
    assert plan.arena_size % 64 == 0
    assert all(t.place.offset % 64 == 0 for t in plan.tensors)


def test_arena_reuses_dead_storage(tmp_path):
    plan = _plan(models.cnn(), tmp_path, "cnn")
    total = sum(t.nbytes for t in plan.tensors if t.place.region == "arena")
    assert plan.arena_size < total


def _inverted_residual_chain():
    """Three MobileNetV2 blocks at 32x32: each 1x1 expansion makes the largest tensor, which
    Relax's own storage plan would keep reserved while later, smaller tensors reuse it."""
    g = models.GraphBuilder("chain", 0)
    y = g.input("x", [1, 16, 32, 32])
    for c_in, c_out, stride in [(16, 24, 2), (24, 24, 1), (24, 32, 2)]:
        hidden = 6 * c_in
        z = models.conv_bn(g, y, c_in, hidden, 1, activation=models.relu6)
        z = models.conv_bn(g, z, hidden, hidden, 3, stride=stride, groups=hidden, activation=models.relu6)
        z = models.conv_bn(g, z, hidden, c_out, 1, activation=None)
        y = g.op("Add", [y, z]) if stride == 1 else z
    g.output(y, "y", [1, 32, 8, 8])
    return g.build()


def test_arena_is_the_peak_of_live_tensors(tmp_path):
    """Tensors are planned one by one, so the arena is no larger than the most bytes live at
    once (here: the first expansion's 96 x 32 x 32 output and its depthwise conv's output)."""
    plan = _plan(_inverted_residual_chain(), tmp_path, "chain")
    ranges = _live_ranges(plan)
    peak = 0
    for step in range(-1, len(plan.calls) + 1):
        live = {_byte_range(plan, i) for i, (first, last) in ranges.items()
                if first <= step <= last and plan.tensors[i].place.region == "arena"}
        peak = max(peak, sum(end - start for start, end in live))
    assert peak == (96 * 32 * 32 + 96 * 16 * 16) * 4
    assert plan.arena_size == peak


def test_weights_are_embedded_once(tmp_path):
    plan = _plan(models.mlp(), tmp_path, "mlp")
    weights = [t for t in plan.tensors if t.place.region == "weights"]
    assert len({t.place.offset for t in weights}) == len(weights)
    assert len(plan.weights) >= sum(t.nbytes for t in weights)
    assert len(plan.weights) < 2 * sum(t.nbytes for t in weights) + 64 * len(weights)


def test_data_dependent_shapes_are_refused_by_name(tmp_path):
    """Expand to a shape read from an input: the frontend cannot tell; the planner names it."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    shape = helper.make_tensor_value_info("shape", TensorProto.INT64, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    graph = helper.make_graph([helper.make_node("Expand", ["x", "shape"], ["y"])], "ex", [x, shape], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(UnsupportedProgram) as info:
        _plan(model, tmp_path, "ex")
    message = str(info.value)
    assert "shape depends on input values" in message and "Expand" in message
    assert info.value.fix and "constant" in info.value.fix


def test_reshape_only_model_runs(tmp_path):
    """A model whose output is only a view of its input still gets its bytes copied out."""
    from wasm_build import WasmModel

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 2])
    shape = onnx.numpy_helper.from_array(np.array([3, 2], dtype=np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "r", [x], [y], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = build(model, "reshape", tmp_path)
    data = np.arange(6, dtype="float32").reshape(2, 3)
    (got,) = WasmModel(result.directory / "reshape.wasm").run({"x": data})
    np.testing.assert_array_equal(got, data.reshape(3, 2))


@pytest.mark.skipif(OBJDUMP is None, reason="llvm-objdump(-19) not installed")
def test_the_executor_copies_inputs_and_outputs_with_memory_copy(tmp_path):
    """`NAME_run` copies each input into the arena and each output out of it: with bulk memory
    these are `memory.copy` (the engine's memmove), not calls of wasi-libc's memcpy, a C loop
    of 4-byte moves (a tenth of a 32 x 32 matmul model's run)."""
    result = build(models.mlp(), "copies", tmp_path)
    text = subprocess.run([OBJDUMP, "-dr", str(result.directory / "libcopies.a")], capture_output=True, text=True,
                          check=True).stdout
    executor = text[text.index("(copies_executor.o)"):]
    executor = executor[:executor.index("(wasm_build_runtime.o)")] if "(wasm_build_runtime.o)" in executor else executor
    assert executor.count("memory.copy") >= 2, "the input's and the output's copy"
    assert "R_WASM_FUNCTION_INDEX_LEB\tmemcpy" not in executor, "a call of memcpy"
