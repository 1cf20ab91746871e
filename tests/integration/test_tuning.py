"""Auto-tuning measured in wasmtime: the database, its reuse by builds, the CLI, relaxed SIMD."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.support import build
from wasm_build.compiler.kernels import build_kernels
from wasm_build.compiler.pipeline import lower
from wasm_build.compiler.target import TargetOptions
from wasm_build.errors import WasmBuildError
from wasm_build.frontends import load_model
from wasm_build.testing import models
from wasm_build.compiler.schedules import SCHEDULES_REVISION
from wasm_build.tuning import DATABASE_FORMAT, SCHEDULED_ATTR, WasmHarness, apply_database_pass, extract_tasks, read_database

from tests.support import REPO  # noqa: E402


def matmul_relu(n: int = 64, seed: int = 0) -> onnx.ModelProto:
    """y = relu(x @ W): one fused kernel, the smallest model worth tuning."""
    rng = np.random.default_rng(seed)
    weight = numpy_helper.from_array((rng.standard_normal((n, n)) / np.sqrt(n)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "matmul_relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [n, n])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [n, n])],
        [weight],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _kernel_functions(lowered) -> dict[str, object]:
    import tvm

    return {gv.name_hint: f for gv, f in lowered.module.functions_items() if isinstance(f, tvm.tirx.PrimFunc)}


def _force_records(database: Path, destination: Path) -> Path:
    """A copy whose records apply whatever the default schedule measured (`default-secs` unknown)."""
    data = json.loads(database.read_text())
    for workload in data["workloads"]:
        workload["default-secs"] = None
    destination.write_text(json.dumps(data))
    return destination


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Tune matmul_relu once through `build_model` (the `tune` stage), 8 trials."""
    root = tmp_path_factory.mktemp("tuned")
    lines: list[str] = []
    result = build(
        matmul_relu(), "mm", root, log=lines.append, tuning={"trials": 8, "database": "tuning/mm.json"}
    )
    return root, result, lines


def test_tuning_writes_a_database(tuned):
    root, result, _ = tuned
    database = root / "tuning" / "mm.json"
    data = json.loads(database.read_text())
    assert data["format"] == DATABASE_FORMAT
    [workload] = data["workloads"]
    assert workload["name"] == "fused_matmul_relu"
    # The default schedule and the best record, timed side by side in wasmtime.
    assert workload["default-secs"] > 0 and workload["tuned-secs"] > 0
    assert workload["default-schedules"] == SCHEDULES_REVISION
    assert 1 <= len(workload["records"]) <= 8
    assert all(sum(record[1]) > 0 for record in workload["records"])  # run_secs of each record
    assert "tune" in result.timings
    assert database.stat().st_mode & 0o044  # a normal file, to be committed


def test_next_build_reuses_database_without_tuning(tuned, tmp_path):
    root, _, _ = tuned
    lines: list[str] = []
    # The smoke test (on by default) checks the artifact against onnxruntime.
    result = build(matmul_relu(), "mm", tmp_path / "out", log=lines.append,
                   tuning={"database": str(root / "tuning" / "mm.json")})
    assert "tune" not in result.timings
    assert "smoke test" in result.timings
    assert not any(": tune " in line for line in lines)


def test_tuned_schedule_replaces_the_kernel(tuned, tmp_path):
    root, _, _ = tuned
    database = _force_records(root / "tuning" / "mm.json", tmp_path / "forced.json")
    loaded = load_model(str(root / "mm.onnx"), {}, root)
    options = TargetOptions()

    untuned = lower(loaded.module, "mm_", options, default_schedules=False)
    tuned_lowered = lower(loaded.module, "mm_", options, default_schedules=False, tuned=apply_database_pass(str(database), TargetOptions().tvm_target()))
    kernel = _kernel_functions(tuned_lowered)["mm_fused_matmul_relu"]
    assert kernel.attrs[SCHEDULED_ATTR]  # so the default schedules leave it alone
    assert SCHEDULED_ATTR not in _kernel_functions(untuned)["mm_fused_matmul_relu"].attrs

    build_kernels(untuned, options, tmp_path / "untuned.o")
    build_kernels(tuned_lowered, options, tmp_path / "tuned.o")
    assert (tmp_path / "untuned.o").read_bytes() != (tmp_path / "tuned.o").read_bytes()

    # The whole artifact with the tuned kernel still matches onnxruntime.
    result = build(matmul_relu(), "mm", tmp_path / "out", tuning={"database": str(database)})
    assert result.manifest["build_options"]["tuning_database"] == str(database)


def test_records_slower_than_the_default_schedule_are_not_applied(tuned, tmp_path):
    root, _, _ = tuned
    data = json.loads((root / "tuning" / "mm.json").read_text())
    for workload in data["workloads"]:
        workload["default-secs"] = workload["tuned-secs"] / 2  # the default schedule won
    database = tmp_path / "slow.json"
    database.write_text(json.dumps(data))
    loaded = load_model(str(root / "mm.onnx"), {}, root)
    plain = lower(loaded.module, "mm_", TargetOptions())
    with_db = lower(loaded.module, "mm_", TargetOptions(), tuned=apply_database_pass(str(database), TargetOptions().tvm_target()))
    # The default schedule stores the constant weights packed, hence the suffix.
    kernel = "mm_fused_matmul_relu_prepacked"
    assert _kernel_functions(plain)[kernel].script() == _kernel_functions(with_db)[kernel].script()


def test_records_compared_with_older_default_schedules_are_not_applied(tuned, tmp_path, caplog):
    """A record that beat the default schedules of another wasm-build revision may lose to
    this one's: builds keep the default schedule and say to re-run `wasm-build tune`."""
    root, _, _ = tuned
    data = json.loads((root / "tuning" / "mm.json").read_text())
    loaded = load_model(str(root / "mm.onnx"), {}, root)
    kernels = {}
    for revision in (SCHEDULES_REVISION - 1, SCHEDULES_REVISION):
        for workload in data["workloads"]:
            workload["default-secs"] = workload["tuned-secs"] * 2  # the record won...
            workload["default-schedules"] = revision  # ...against this revision's default
        database = tmp_path / f"revision{revision}.json"
        database.write_text(json.dumps(data))
        lowered = lower(loaded.module, "mm_", TargetOptions(), tuned=apply_database_pass(str(database), TargetOptions().tvm_target()))
        kernels[revision] = {name: f.script() for name, f in _kernel_functions(lowered).items() if "matmul" in name}
    plain = lower(loaded.module, "mm_", TargetOptions())
    assert kernels[SCHEDULES_REVISION - 1] == {n: f.script() for n, f in _kernel_functions(plain).items() if "matmul" in n}
    assert kernels[SCHEDULES_REVISION] != kernels[SCHEDULES_REVISION - 1]
    assert "re-run `wasm-build tune`" in caplog.text and "fused_matmul_relu" in caplog.text


def test_cli_tune_continues_from_the_database(tuned, tmp_path):
    root, _, _ = tuned
    database = tmp_path / "mm.json"
    database.write_text((root / "tuning" / "mm.json").read_text())
    before = read_database(database)
    [key] = before
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_build", "tune", str(root / "mm.onnx"), "--name", "mm",
         "--database", str(database), "--trials", "4"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    assert f"{len(before[key].records)} records already in" in proc.stderr
    assert "4/4 trials" in proc.stderr
    after = read_database(database)
    assert len(after[key].records) >= len(before[key].records)
    assert after[key].best_secs() <= before[key].best_secs()  # earlier records are kept


def test_time_budget_stops_tuning(tmp_path):
    from wasm_build.config.settings import TuningSettings
    from wasm_build.tuning import tune_model

    loaded = load_model(str(models.save(matmul_relu(32), tmp_path / "mm.onnx")), {}, tmp_path)
    lines: list[str] = []
    database = tmp_path / "mm.json"
    tune_model(loaded.module, TargetOptions(), str(database), TuningSettings(1000, str(database), 0.5), log=lines.append)
    [entry] = read_database(database).values()
    assert len(entry.records) < 1000
    assert any("time budget 0.5 s" in line for line in lines)


def test_harness_times_a_kernel_in_wasmtime(tmp_path):
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    loaded = load_model(str(models.save(matmul_relu(16), tmp_path / "mm.onnx")), {}, tmp_path)
    [task] = extract_tasks(loaded.module, TargetOptions())
    harness = WasmHarness(TargetOptions(), tmp_path, min_repeat_secs=0.001, repeats=2)
    wasm = harness.build(task.dispatched[0])
    assert wasm.read_bytes()[:4] == b"\0asm"
    secs = harness.time(wasm, list(ArgInfo.from_prim_func(task.dispatched[0]["main"])))
    assert len(secs) == 2 and all(s > 0 for s in secs)
    # Arguments that do not match the kernel's signature are reported, not a crash.
    with pytest.raises(RuntimeError, match="the kernel failed"):
        harness.time(wasm, list(ArgInfo.from_prim_func(task.dispatched[0]["main"]))[:2])


def test_default_schedule_is_timed_with_weights_packed_as_builds_store_them(tmp_path):
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    from wasm_build.tuning.tasks import default_schedule_module, extract_tasks_and_constants

    loaded = load_model(str(models.save(matmul_relu(64), tmp_path / "mm.onnx")), {}, tmp_path)
    options = TargetOptions()
    [task], constants = extract_tasks_and_constants(loaded.module, options)
    assert constants[task.task_name] == [1]  # x @ W: W is the model's constant
    default = default_schedule_module(task.dispatched[0], options.tvm_target(), constants[task.task_name])
    shapes = [tuple(arg.shape) for arg in ArgInfo.from_prim_func(default["main"])]
    assert shapes[0] == (64, 64) and len(shapes[1]) == 3  # the kernel takes W packed ...
    assert "param_0[" not in default["main"].script()  # ... and the packing copy is not timed
    harness = WasmHarness(options, tmp_path, min_repeat_secs=0.001, repeats=1)
    assert harness.time(harness.build(default), list(ArgInfo.from_prim_func(default["main"])))[0] > 0


def test_tuning_a_model_with_vectorized_softmax_completes(tmp_path):
    """wasm-build's softmax kernel (polynomial exp with `Let` bindings) is one meta-schedule's
    FLOP estimate rejects: it stays with the default schedule instead of aborting the run."""
    from wasm_build.config.settings import TuningSettings
    from wasm_build.tuning import tune_model

    loaded = load_model(str(models.save(models.mlp(), tmp_path / "mlp.onnx")), {}, tmp_path)
    lines: list[str] = []
    database = tmp_path / "mlp.json"
    tune_model(loaded.module, TargetOptions(), str(database), TuningSettings(4, str(database), None), log=lines.append)
    assert any("left to the default schedules" in line and "softmax" in line for line in lines), lines
    entries = read_database(database)
    assert entries and all("softmax" not in entry.name for entry in entries.values())


def test_time_budget_ends_a_run_of_several_kernels_cleanly(tmp_path):
    """The budget runs out while meta-schedule goes over several kernels: the run ends there,
    keeping what it measured (ending its tasks from a callback broke the scheduler)."""
    from wasm_build.config.settings import TuningSettings
    from wasm_build.tuning import tune_model

    loaded = load_model(str(models.save(models.mlp(), tmp_path / "mlp.onnx")), {}, tmp_path)
    lines: list[str] = []
    database = tmp_path / "mlp.json"
    tune_model(loaded.module, TargetOptions(), str(database), TuningSettings(1000, str(database), 30.0), log=lines.append)
    entries = read_database(database)
    assert len(entries) == 2 and any(entry.records for entry in entries.values())
    assert sum(len(entry.records) for entry in entries.values()) < 1000
    assert any("time budget of 30 s reached" in line for line in lines), lines


def test_database_errors_name_the_fix(tmp_path):
    bad = tmp_path / "db.json"
    bad.write_text('{"something": "else"}')
    with pytest.raises(WasmBuildError, match="not a wasm-build tuning database") as info:
        read_database(bad)
    assert info.value.fix
    bad.write_text("{ not json")
    with pytest.raises(WasmBuildError, match="cannot read tuning database"):
        read_database(bad)
    assert read_database(tmp_path / "missing.json") == {}


def test_cli_tune_rejects_zero_trials(tmp_path):
    path = models.save(models.mlp(), tmp_path / "mlp.onnx")
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_build", "tune", str(path), "--database", "t.json", "--trials", "0"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 1
    assert "at least one trial" in proc.stderr and "fix:" in proc.stderr


def test_relaxed_simd_build_runs_in_wasmtime(tmp_path):
    from wasm_build.wasm.host import WasmModel

    result = build(models.mlp(), "rmlp", tmp_path, relaxed_simd=True)  # smoke test included
    assert result.manifest["target"]["features"] == ["+bulk-memory", "+simd128", "+relaxed-simd"]
    wasm = result.directory / "rmlp.wasm"
    model = WasmModel(wasm)  # enables relaxed SIMD
    x = models.random_inputs(models.mlp(), seed=3)
    [probs] = model.run(x)
    np.testing.assert_allclose(probs, models.reference_outputs(models.mlp(), x)[0], rtol=1e-3, atol=1e-4)


def test_tuning_harness_with_relaxed_simd(tmp_path):
    from tvm.s_tir.meta_schedule.arg_info import ArgInfo

    options = TargetOptions(relaxed_simd=True)
    loaded = load_model(str(models.save(matmul_relu(16), tmp_path / "mm.onnx")), {}, tmp_path)
    [task] = extract_tasks(loaded.module, options)
    harness = WasmHarness(options, tmp_path, min_repeat_secs=0.001, repeats=1)
    secs = harness.time(harness.build(task.dispatched[0]), list(ArgInfo.from_prim_func(task.dispatched[0]["main"])))
    assert secs[0] > 0


def test_kernels_with_a_negligible_share_of_the_work_are_not_searched(tmp_path):
    """A 256 -> 10 classifier after 784 -> 512 -> 256 layers: under 1% of the FLOPs, so
    the search's set-up (seconds per kernel) is not spent on it; the big layers are searched."""
    from wasm_build.tuning.tasks import estimate_flops, left_to_default

    model = models.mlp(sizes=(784, 512, 256, 10))
    loaded = load_model(str(models.save(model, tmp_path / "mlp.onnx")), {}, tmp_path)
    tasks = extract_tasks(loaded.module, TargetOptions())
    flops = {t.task_name: estimate_flops(t) for t in tasks}
    total = sum(f for f in flops.values() if f is not None)
    reasons = {t.task_name: left_to_default(t, flops[t.task_name], total) for t in tasks}
    searched = sorted(name for name, reason in reasons.items() if reason is None)
    small = sorted(name for name, reason in reasons.items() if reason and "under 1%" in reason)
    assert searched and small, reasons
    assert max(flops[n] for n in small) < 0.01 * total <= min(flops[n] for n in searched)


def test_tuning_kernels_chooses_the_kernels_searched(tmp_path):
    """`tuning.kernels` gives the trials to the kernels it names: the others get no entry."""
    from wasm_build.config.settings import TuningSettings
    from wasm_build.tuning import tune_model

    loaded = load_model(str(models.save(models.mlp(), tmp_path / "mlp.onnx")), {}, tmp_path)
    names = sorted(task.task_name for task in extract_tasks(loaded.module, TargetOptions()))
    matmuls = [name for name in names if name.startswith("fused_matmul")]
    assert len(matmuls) == 2, names
    chosen = matmuls[-1]
    lines: list[str] = []
    database = tmp_path / "mlp.json"
    settings = TuningSettings(4, str(database), None, kernels=(chosen[:-1] + "*", "no_such_kernel"))
    tune_model(loaded.module, TargetOptions(), str(database), settings, log=lines.append)
    assert [entry.name for entry in read_database(database).values()] == [chosen]
    assert any(f"1 of {len(names)} kernels chosen" in line for line in lines), lines
    assert any("'no_such_kernel' matches no kernel" in line for line in lines), lines


def test_tuning_kernels_matching_nothing_lists_the_names(tmp_path):
    path = models.save(models.mlp(), tmp_path / "mlp.onnx")
    proc = subprocess.run(
        [sys.executable, "-m", "wasm_build", "tune", str(path), "--database", "t.json", "--trials", "4",
         "--kernels", "conv*", "--kernels", "pool*"],
        capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 1, proc.stderr
    assert "tuning.kernels ['conv*', 'pool*'] matches none of the model's kernels" in proc.stderr
    assert "fix: use glob patterns over these names: fused_matmul" in proc.stderr
    assert not (tmp_path / "t.json").exists()


def test_tuning_kernels_setting_is_a_list_of_patterns():
    from wasm_build.errors import ConfigError
    from wasm_build.config.settings import ModelSettings, from_dict

    table = {"name": "m", "source": "m.onnx", "tuning": {"database": "t.json", "kernels": ["fused_conv2d7_*"]}}
    assert from_dict(ModelSettings, table).tuning.kernels == ("fused_conv2d7_*",)
    table["tuning"]["kernels"] = "fused_conv2d7_*"
    with pytest.raises(ConfigError, match=r"tuning.kernels must be a list"):
        from_dict(ModelSettings, table)


def test_tuning_again_and_again_in_one_process_with_unnamed_log_handlers(tmp_path):
    """meta-schedule copies its logger's handlers by name: an unnamed one (pytest's log
    capture, a notebook's set-up) broke every tuning run after the first."""
    import logging

    from wasm_build.config.settings import TuningSettings
    from wasm_build.tuning import tune_model

    top = logging.getLogger("tvm.s_tir.meta_schedule")
    unnamed = logging.StreamHandler()
    assert unnamed.get_name() is None
    top.addHandler(unnamed)
    try:
        loaded = load_model(str(models.save(matmul_relu(16), tmp_path / "mm.onnx")), {}, tmp_path)
        for run in range(3):
            database = tmp_path / f"mm{run}.json"
            tune_model(loaded.module, TargetOptions(), str(database), TuningSettings(2, str(database)), log=lambda _: None)
            [entry] = read_database(database).values()
            assert entry.records, run
        # The caller's logging is as it was: its handler is back, meta-schedule's are gone.
        assert top.handlers == [unnamed]
    finally:
        top.removeHandler(unnamed)
