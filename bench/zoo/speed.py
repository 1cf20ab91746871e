"""The zoo's speed columns (`run.py --speed`): each passing case timed inside its wasm module, and
onnxruntime-web on the model's TorchScript ONNX export, one thread each, in steady state.

- wasm-build: in the case's worker, right after the comparison, the artifact's `libNAME.a` linked
  with bench's timing loop (`bench.wasm_timing`: the WASI monotonic clock around each `NAME_run`),
  so no Python-to-wasm call cost is in the times.
- onnxruntime-web: once every case has run, one Node process for all models (`bench.peers`:
  `node --no-liftoff`, wasm backend, one thread), on the same seeded inputs.

Both sides: `WARMUP_RUNS` untimed runs, then up to `TIMED_RUNS` runs, fewer once `MAX_SECONDS` have
passed (never fewer than 3); the median is the model's time.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

WARMUP_RUNS = 3
TIMED_RUNS = 30
MAX_SECONDS = 3.0


# -- inside the module (in the worker) ------------------------------------------------------------


@dataclass
class ModuleTiming:
    median_ms: float
    min_ms: float
    runs: int


def time_in_module(artifact_dir: Path, inputs: list[np.ndarray], outputs: list[np.ndarray], work: Path) -> ModuleTiming:
    """Median of `NAME_run` timed inside wasm; `outputs` are the shipped module's, which the timed
    module must reproduce (it is the same `libNAME.a`, linked with a loop instead of the host API)."""
    from bench.wasm_timing import SteadyTimer, link_timing_harness
    from wasm_build.artifact.assemble import read_manifest

    # The harness copies the inputs' bytes as they are: in the module's dtypes (WasmModel.run
    # converted them the same way, where no value changes).
    specs = read_manifest(artifact_dir)["inputs"]
    inputs = [np.ascontiguousarray(x, dtype=spec["dtype"]) for x, spec in zip(inputs, specs, strict=True)]
    harness = link_timing_harness(artifact_dir, Path(work) / "harness" / f"{artifact_dir.name}.wasm")
    timer = SteadyTimer(artifact_dir, inputs, harness)  # one warm run
    timer.times(WARMUP_RUNS)
    if not all(np.array_equal(a, b) for a, b in zip(timer.outputs(), outputs, strict=True)):
        raise RuntimeError("the timing harness computed other outputs than the shipped module")
    times: list[float] = []
    deadline = time.perf_counter() + MAX_SECONDS
    while len(times) < TIMED_RUNS and (len(times) < 3 or time.perf_counter() < deadline):
        times += timer.times(1)
    return ModuleTiming(statistics.median(times), min(times), len(times))


# -- onnxruntime-web (in run.py, after every case) ----------------------------------------------------


@dataclass(frozen=True)
class WebJob:
    """A model for the Node job: its TorchScript ONNX export and the inputs that graph declares."""

    model: str
    onnx_path: Path
    inputs: dict[str, np.ndarray]


def graph_inputs(onnx_path: Path, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs the graph declares, in its order: exporters drop inputs the model does not use."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    initializers = {i.name for i in graph.initializer}
    return {i.name: inputs[i.name] for i in graph.input if i.name not in initializers}


@dataclass
class WebTiming:
    median_ms: float | None = None
    runs: int = 0
    error: str = ""  # why there is no time: onnxruntime-web's error, or Node's


def time_onnxruntime_web(jobs: list[WebJob], work: Path) -> tuple[dict[str, WebTiming], dict]:
    """onnxruntime-web's time per model, in one Node process; and Node's and its versions.

    A model onnxruntime-web cannot run gets its error; Node or onnxruntime-web missing gives every
    model that reason."""
    from bench import peers

    node_jobs = [peers.NodeJob(job.model, job.onnx_path, job.inputs) for job in jobs]
    try:
        results, info = peers.onnxruntime_web(node_jobs, work, TIMED_RUNS + WARMUP_RUNS, MAX_SECONDS)
    except peers.PeerUnavailable as exc:
        reason = _first_line(str(exc))
        return {job.model: WebTiming(error=reason) for job in jobs}, {}
    timings = {}
    for job in jobs:
        result = results.get(job.model, "no result from bench.mjs")
        if isinstance(result, str):
            timings[job.model] = WebTiming(error=_first_line(result))
        else:
            # bench.mjs times every run after the first: drop the warm-ups here, as in the module.
            times = result.times_ms[WARMUP_RUNS:] if len(result.times_ms) >= WARMUP_RUNS + 3 else result.times_ms
            timings[job.model] = WebTiming(statistics.median(times), len(times))
    return timings, info


def ratio(web_ms: float | None, wasm_ms: float | None) -> float | None:
    """onnxruntime-web ms / wasm-build ms: above 1, wasm-build is faster."""
    if not web_ms or not wasm_ms:
        return None
    return web_ms / wasm_ms


def geometric_mean(values: Iterable[float]) -> float:
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values))


# -- the session the times come from ----------------------------------------------------------------


@dataclass
class Session:
    """Where and when a --speed run measured: the table says which sessions its times come from."""

    started: str  # UTC; the key rows refer to (`CaseResult.speed_session`)
    command: str
    cpu: str
    cores: int
    load_start: list[float]  # 1, 5 and 15 minute load averages
    load_web: list[float] = field(default_factory=list)  # when the Node job started
    load_end: list[float] = field(default_factory=list)
    node: str = ""
    onnxruntime_web: str = ""
    warmup_runs: int = WARMUP_RUNS
    timed_runs: int = TIMED_RUNS
    max_seconds: float = MAX_SECONDS

    @classmethod
    def begin(cls, command: str) -> Session:
        started = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
        return cls(started, command, cpu_model(), os.cpu_count() or 0, load_average())


def load_average() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def cpu_model() -> str:
    """lscpu's model name (the CPU, not just the architecture)."""
    try:
        text = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "Model name":
            return value.strip()
    return platform.processor() or platform.machine()


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0][:300] if lines else "failed"
