"""The peers wasm-build is measured against, each on one thread.

Every runner takes an ONNX file and the inputs in graph order and returns a
`PeerTiming`, or raises `PeerUnavailable` with the reason (and the fix) when
the peer is not installed here; the bench then leaves that column empty with
the reason as a note.
"""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

NODE_DIR = Path(__file__).resolve().parent / "node"


class PeerUnavailable(RuntimeError):
    """The peer cannot run here: the message says why and how to fix it."""


@dataclass
class PeerTiming:
    median_ms: float
    min_ms: float
    runs: int
    startup_ms: float | None  # load/compile the model + first run; None where meaningless
    outputs: list[np.ndarray] = field(repr=False)
    notes: list[str] = field(default_factory=list)
    times_ms: list[float] = field(default_factory=list, repr=False)  # every timed run


def timed_runs(run: Callable[[], object], repeat: int, max_seconds: float) -> list[float]:
    """Milliseconds of up to `repeat` calls; stops after `max_seconds` once 3 are done."""
    times: list[float] = []
    deadline = time.perf_counter() + max_seconds
    while len(times) < repeat and (len(times) < 3 or time.perf_counter() < deadline):
        start = time.perf_counter_ns()
        run()
        times.append((time.perf_counter_ns() - start) / 1e6)
    return times


# -- onnxruntime, native (PyPI) -------------------------------------------------------------


def onnxruntime_native(onnx_path: Path, inputs: dict[str, np.ndarray], repeat: int, max_seconds: float) -> PeerTiming:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    start = time.perf_counter_ns()
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, inputs)
    startup_ms = (time.perf_counter_ns() - start) / 1e6
    times = timed_runs(lambda: session.run(None, inputs), repeat, max_seconds)
    return PeerTiming(statistics.median(times), min(times), len(times), startup_ms, outputs, times_ms=times)


# -- tract (PyPI `tract`) --------------------------------------------------------------------


def tract_native(onnx_path: Path, inputs: dict[str, np.ndarray], repeat: int, max_seconds: float) -> PeerTiming:
    try:
        import tract
    except ImportError as exc:
        raise PeerUnavailable(f"tract is not installed ({exc}); fix: pip install tract") from exc

    arrays = list(inputs.values())
    start = time.perf_counter_ns()
    # into_model() types the graph; into_runnable() optimises it for this CPU.
    runnable = tract.onnx().load(str(onnx_path)).into_model().into_runnable()
    outputs = [t.to_numpy() for t in runnable.run(arrays)]
    startup_ms = (time.perf_counter_ns() - start) / 1e6
    times = timed_runs(lambda: runnable.run(arrays), repeat, max_seconds)
    return PeerTiming(statistics.median(times), min(times), len(times), startup_ms, outputs, times_ms=times)


def tract_version() -> str | None:
    try:
        import tract
    except ImportError:
        return None
    return tract.version()


# -- TVM native: the default pipeline, untuned ---------------------------------------------


def tvm_native(onnx_path: Path, inputs: dict[str, np.ndarray], repeat: int, max_seconds: float) -> PeerTiming:
    """What TVM gives on the host CPU without wasm-build's schedules or tuning.

    The TVM thread pool reads TVM_NUM_THREADS when it starts: run.py sets it to 1
    before importing tvm, and the target says num-cores 1 too.
    """
    import tvm
    from tvm import relax

    from wasm_build.frontends import load_model

    loaded = load_model(str(onnx_path), {}, onnx_path.parent)
    start = time.perf_counter_ns()
    executable = tvm.compile(loaded.module, tvm.target.Target({"kind": "llvm", "num-cores": 1}))
    compile_ms = (time.perf_counter_ns() - start) / 1e6
    vm = relax.VirtualMachine(executable, tvm.cpu())
    args = [tvm.runtime.tensor(np.ascontiguousarray(inputs[name])) for name in loaded.input_names]
    result = vm["main"](*args)
    outputs = [np.asarray(r.numpy()) for r in _flatten(result)]
    times = timed_runs(lambda: vm["main"](*args), repeat, max_seconds)
    return PeerTiming(statistics.median(times), min(times), len(times), None, outputs, [f"compile {compile_ms / 1e3:.1f} s"],
                      times_ms=times)


def _flatten(value):
    import tvm

    if isinstance(value, tvm.runtime.Tensor):
        yield value
    else:
        for item in value:
            yield from _flatten(item)


# -- onnxruntime-web, wasm backend, in Node -----------------------------------------------------


@dataclass
class NodeJob:
    name: str
    onnx_path: Path
    inputs: dict[str, np.ndarray]


def onnxruntime_web(jobs: list[NodeJob], work: Path, repeat: int, max_seconds: float) -> tuple[dict[str, PeerTiming | str], dict]:
    """Runs the jobs' models in one Node process (bench/node/bench.mjs).

    Returns per model a PeerTiming or an error string, and the versions and
    runtime load time reported by Node.
    """
    node = shutil.which("node")
    if node is None:
        raise PeerUnavailable("node is not on PATH; fix: install Node 20 (apt-get install nodejs)")
    if not (NODE_DIR / "node_modules" / "onnxruntime-web").is_dir():
        raise PeerUnavailable(f"onnxruntime-web is not installed; fix: cd {NODE_DIR} && npm install")

    work.mkdir(parents=True, exist_ok=True)
    models = []
    for job in jobs:
        specs = []
        for name, array in job.inputs.items():
            file = work / f"{job.name}.{name}.bin"
            np.ascontiguousarray(array).tofile(file)
            specs.append({"name": name, "file": str(file), "dtype": str(array.dtype), "shape": list(array.shape)})
        models.append({"name": job.name, "onnx": str(job.onnx_path), "inputs": specs, "outputs_dir": str(work / f"{job.name}.out")})
    job_file = work / "job.json"
    job_file.write_text(json.dumps({"repeat": repeat, "max_seconds": max_seconds, "models": models}, indent=1))

    # --no-liftoff: V8 compiles onnxruntime-web's wasm functions with its optimizing tier on their
    # first call, the code a long-running page reaches after tier-up. With V8's default dynamic
    # tiering the first 25-50 runs of a process ran baseline code, 2-5x slower (KWS CNN: 8 ms a
    # run, then 1.8), and those runs were in the medians.
    proc = subprocess.run([node, "--no-liftoff", str(NODE_DIR / "bench.mjs"), str(job_file)], capture_output=True,
                          text=True, cwd=NODE_DIR)
    if proc.returncode != 0:
        raise PeerUnavailable(f"bench.mjs failed (exit {proc.returncode}):\n{proc.stderr.strip()[-2000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    results: dict[str, PeerTiming | str] = {}
    for item in report["results"]:
        if "error" in item:
            results[item["name"]] = item["error"].splitlines()[0]
            continue
        outputs = [np.fromfile(o["file"], dtype=o["dtype"]).reshape(o["shape"]) for o in item["outputs"]]
        results[item["name"]] = PeerTiming(item["median_ms"], item["min_ms"], item["runs"], item["startup_ms"], outputs,
                                           times_ms=item["times"])
    info = {k: v for k, v in report.items() if k != "results"}
    return results, info
