"""`wasm-build profile`: each kernel's time per run, measured inside the module in wasmtime."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.support import build
from wasm_build.compiler.target import TargetOptions
from wasm_build.errors import WasmBuildError
from wasm_build.frontends import load_model
from wasm_build.wasm.peak import Peak
from wasm_build.wasm.profile import profile_artifact
from wasm_build.testing import models
from wasm_build.tuning import extract_tasks

from tests.support import REPO  # noqa: E402


def _tuning_names(model, tmp_path) -> set[str]:
    loaded = load_model(str(models.save(model, tmp_path / "tasks.onnx")), {}, tmp_path)
    return {task.task_name for task in extract_tasks(loaded.module, TargetOptions())}


def test_every_kernel_call_is_timed_and_named_as_tuning_names_it(tmp_path):
    model = models.cnn()
    result = build(model, "pcnn", tmp_path / "out", smoke_test=False)
    profile = profile_artifact(result.directory, runs=3)
    names = [k.kernel for k in profile.kernels]
    assert len(names) == len(set(names)), names
    # What `tune --kernels` matches: every kernel the model calls is a tuning task.
    assert set(names) <= _tuning_names(model, tmp_path), names
    assert {"transpose", "softmax", "max_pool2d"} <= set(names), names
    assert sum("conv2d" in name for name in names) == 3, names
    assert all(k.calls == 1 and k.ms >= 0 for k in profile.kernels)
    assert profile.total_ms > 0
    assert [k.ms for k in profile.kernels] == sorted((k.ms for k in profile.kernels), reverse=True)


def test_weights_in_a_file_are_loaded_for_profiling(tmp_path):
    result = build(models.mlp(), "pmlp", tmp_path / "out", weights="file", smoke_test=False)
    profile = profile_artifact(result.directory, runs=2)
    assert profile.name == "pmlp" and profile.total_ms > 0


def test_cli_prints_the_table(tmp_path):
    result = build(models.mlp(), "cmlp", tmp_path / "out", smoke_test=False)
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_build", "profile", str(result.directory), "--runs", "2"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "cmlp: fastest of 2 runs in wasmtime, per kernel"
    assert lines[1].split() == ["kernel", "calls", "ms/run", "share", "rate", "roof"]
    assert lines[-2].startswith("all kernels")
    assert lines[-1].startswith("SIMD128 peak measured in wasmtime: "), proc.stdout
    # At batch 1 a matmul reads each weight once: bound by memory, its rate in GB/s.
    assert any(line.startswith("fused_matmul") and line.split()[-2] in ("GB/s", "GMAC/s") for line in lines[3:-2])


def test_the_build_records_each_kernels_work_as_fused(tmp_path):
    """The manifest's kernel_work: multiply-adds of the contractions (64x128 and 128x10 for
    the MLP, at batch 1) and the bytes of each kernel's arguments."""
    result = build(models.mlp(), "wmlp", tmp_path / "out", smoke_test=False)
    work = result.manifest["kernel_work"]
    assert sum(w["macs"] for w in work.values()) == 64 * 128 + 128 * 10
    (matmul,) = [w for name, w in work.items() if "relu" in name]
    # Input, weights, bias and output of the first layer (MatMul, Add, Relu), float32.
    assert matmul["bytes"] == 4 * (64 + 64 * 128 + 128 + 128)


def test_the_roofline_holds_each_kernel_against_the_peak(tmp_path):
    """With a peak given, each kernel's bound is its work at that peak (multiply-adds or bytes,
    whichever takes longer) and the table reports how close its time comes."""
    result = build(models.mlp(sizes=(256, 512, 10)), "rmlp", tmp_path / "out", smoke_test=False)
    peak = Peak(gmacs=20.0, gbytes=80.0)
    profile = profile_artifact(result.directory, runs=2, peak=peak)
    matmul = next(k for k in profile.kernels if "matmul" in k.kernel)
    assert matmul.macs == 256 * 512
    assert matmul.bound_ms(peak) == pytest.approx(max(256 * 512 / 20e6, matmul.nbytes / 80e6))
    assert not matmul.memory_bound(peak) or matmul.nbytes / 80 > matmul.macs / 20
    assert f"{100 * matmul.bound_ms(peak) / matmul.ms:4.0f}%" in profile.table()


def test_an_activation_is_rated_by_its_float_operations(tmp_path):
    """GELU over a tensor does about 30 float operations an element (its erf polynomial) for
    8 bytes: bound by arithmetic, not memory. The build counts them, and the profile rates the
    kernel in GFLOP/s at twice the multiply-add peak (one vector multiply and one vector add a
    step), where it had been a memory-bound kernel at a small fraction of the in-cache rate."""
    g = models.GraphBuilder("gelu", 0)
    x = g.input("x", [1, 4096])
    g.output(models.gelu(g, x), "y", [1, 4096])
    result = build(g.build(), "pgelu", tmp_path / "out", smoke_test=False)
    (work,) = result.manifest["kernel_work"].values()
    assert work["macs"] == 0 and work["bytes"] == 2 * 4 * 4096
    assert 10 * 4096 <= work["flops"] <= 100 * 4096, work
    peak = Peak(gmacs=20.0, gbytes=80.0)
    profile = profile_artifact(result.directory, runs=2, peak=peak)
    (kernel,) = profile.kernels
    assert kernel.flops == work["flops"] and kernel.bound_by(peak) == "GFLOP/s"
    assert kernel.bound_ms(peak) == pytest.approx(work["flops"] / 40e6)
    assert "GFLOP/s" in profile.table().splitlines()[2]


def test_a_directory_without_an_artifact_names_the_fix(tmp_path):
    with pytest.raises(WasmBuildError, match="holds no wasm-build artifact") as info:
        profile_artifact(tmp_path)
    assert "wasm-build compile" in info.value.fix


def test_a_kernel_called_several_times_a_run_adds_its_calls(tmp_path):
    result = build(models.kws_cnn(blocks=2), "pkws", tmp_path / "out", smoke_test=False)
    profile = profile_artifact(result.directory, runs=2)
    repeated = [k for k in profile.kernels if k.calls == 2]
    # The two separable blocks share their depthwise and their pointwise kernel.
    assert len(repeated) == 2, profile.table()


def test_scalar_parameters_count_no_bytes():
    # A kernel may take a size or an offset beside its buffers (what a Range up to a computed
    # limit lowers to): its work counts the buffers' bytes only.
    from tvm.script import tirx as T

    from wasm_build.compiler.work import kernel_work

    @T.prim_func(s_tir=True)
    def shifted(a: T.Buffer((8,), "float32"), b: T.Buffer((8,), "float32"), offset: T.int64):
        for i in range(8):
            with T.sblock("b"):
                v = T.axis.spatial(8, i)
                b[v] = a[v] + T.Cast("float32", offset)

    # Its one float add an element counts as work too.
    assert kernel_work(shifted) == (0, 64, 8)
