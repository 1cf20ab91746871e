"""Benchmark wasm-build against its peers on the benchmark models, one thread each.

    python bench/run.py [--models mlp_784 kws_cnn] [--repeat 50] [--tuned] [--tune-trials 64]

For each model of bench/models.py (seeded weights and inputs) it builds the
wasm artifact with default settings (default schedules, SIMD; and with
--tuned, a build applying bench/tuning/NAME.json, tuned further first with
--tune-trials), times it in wasmtime, runs onnxruntime native,
onnxruntime-web's wasm backend in Node, tract and TVM native on the same
model and inputs, then the contraction shape sweep of bench/sweep.py (GMAC/s
against the machine's measured SIMD128 peak; --skip-sweep leaves it out), and
writes bench/RESULTS.md and bench/results.png. Work files (models, artifacts,
raw results.json) go to bench/out/.
"""

from __future__ import annotations

import os

# Before anything imports TVM or onnxruntime: their thread pools read these once.
os.environ["TVM_NUM_THREADS"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import importlib.util
import json
import statistics
import sys
import time
import traceback
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# `python bench/run.py` from anywhere, timing this checkout's wasm_build (src/), not an installed copy.
for _path in (HERE.parent, HERE.parent / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402

from bench import peers, readme, report, sweep  # noqa: E402
from bench.exported import ModelUnavailable  # noqa: E402
from bench.models import BENCH_MODELS  # noqa: E402
from bench.wasm_timing import SteadyTimer, link_timing_harness, time_artifact  # noqa: E402

PEERS = ["onnxruntime", "onnxruntime-web", "tract", "tvm"]


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=list(BENCH_MODELS), choices=list(BENCH_MODELS), metavar="MODEL",
                        help=f"models to run (default: all of {', '.join(BENCH_MODELS)})")
    parser.add_argument("--repeat", type=int, default=50, help="timed runs per backend and model; the median is reported (default 50)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="time every backend in this many rounds over the models, --repeat runs split between them (default 3)")
    parser.add_argument("--max-seconds", type=float, default=20.0,
                        help="stop timing a backend on a model after this long, once 3 runs are done (default 20)")
    parser.add_argument("--tuned", action="store_true",
                        help="also build a tuned artifact, applying the tuning databases of --tuning-dir")
    parser.add_argument("--tuning-dir", type=Path, default=HERE / "tuning",
                        help="tuning databases NAME.json, kept in the repository like a user's (default bench/tuning)")
    parser.add_argument("--tune-trials", type=int, default=0,
                        help="tune this many more meta-schedule trials into the databases first (implies --tuned)")
    parser.add_argument("--tune-time-budget", type=float, default=None, help="seconds of tuning per model (tuned build only)")
    parser.add_argument("--skip", nargs="+", default=[], choices=PEERS, metavar="PEER", help=f"peers not to run ({', '.join(PEERS)})")
    parser.add_argument("--skip-sweep", action="store_true", help="leave out the contraction shape sweep (bench/sweep.py)")
    parser.add_argument("--sweep-rounds", type=int, default=None,
                        help="rounds of the shape sweep, the peak measured in each (default: --rounds)")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="work directory (default bench/out)")
    parser.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="report to write (default bench/RESULTS.md)")
    parser.add_argument("--chart", type=Path, default=HERE / "results.png", help="bar chart to write (default bench/results.png)")
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.rounds < 1:
        parser.error("--repeat and --rounds must be at least 1")
    args.tuned = args.tuned or args.tune_trials > 0
    return args


# -- per model ------------------------------------------------------------------------------


def prepare_model(name: str, out: Path) -> tuple[Path, dict[str, np.ndarray]]:
    from wasm_build.testing.models import random_inputs, save

    model = BENCH_MODELS[name]()
    path = save(model, out / "models" / f"{name}.onnx")
    return path, random_inputs(model, seed=0)


def build_wasm(name: str, onnx_path: Path, out: Path, tuning_dir: Path | None = None, tune_trials: int = 0,
               time_budget: float | None = None) -> tuple[Path, float]:
    """Build with default settings, or tuned (``tuning_dir`` given): the database
    ``tuning_dir/NAME.json`` applied, after ``tune_trials`` more trials into it.
    No cache, so the current schedules are measured.

    The build's own smoke test is off: the bench compares every backend's
    outputs with onnxruntime itself (the max-error column)."""
    from wasm_build.build import build_model
    from wasm_build.config.settings import ModelSettings, TuningSettings

    tuning = TuningSettings()
    directory = out / "wasm"
    if tuning_dir is not None:
        directory = out / "wasm-tuned"
        database = tuning_dir / f"{name}.json"
        database.parent.mkdir(parents=True, exist_ok=True)
        tuning = TuningSettings(trials=tune_trials, database=str(database.resolve()), time_budget=time_budget)
    settings = ModelSettings(name=name, source=str(onnx_path), smoke_test=False, tuning=tuning)
    start = time.perf_counter()
    result = build_model(settings, directory, project_dir=out, cache_dir=None, log=lambda m: log(m.removeprefix("wasm-build: ")))
    return result.directory, time.perf_counter() - start


def max_error(outputs: list[np.ndarray], reference: list[np.ndarray] | None) -> float | None:
    """Largest |a - b| over all outputs, relative to the reference's largest |b|."""
    if reference is None:
        return None
    worst = 0.0
    for got, expected in zip(outputs, reference):
        got = np.asarray(got, dtype=np.float64).reshape(np.shape(expected))
        expected = np.asarray(expected, dtype=np.float64)
        worst = max(worst, float(np.max(np.abs(got - expected)) / max(float(np.max(np.abs(expected))), 1e-30)))
    return worst


@dataclass
class WasmBuild:
    """A built artifact and its timing harness, made once and timed in every round."""

    name: str
    directory: Path
    harness: Path | None
    build_s: float
    notes: list[str]


def build_entry(name: str, onnx_path: Path, args: argparse.Namespace, tuned: bool) -> WasmBuild:
    directory, build_s = build_wasm(name, onnx_path, args.out, args.tuning_dir if tuned else None, args.tune_trials,
                                    args.tune_time_budget)
    harness = None
    notes = []
    try:
        harness = link_timing_harness(directory, args.out / ("harness-tuned" if tuned else "harness") / f"{name}.wasm")
    except Exception as exc:  # still measurable per Python call, with the overhead noted
        log(f"{name}: timing harness failed to link, timing per Python call instead:\n{exc}")
        notes.append(f"timing harness failed to link ({str(exc).splitlines()[0]}); timed per Python call")
    return WasmBuild(name, directory, harness, build_s, notes)


def wasm_entry(build: WasmBuild, inputs: dict[str, np.ndarray], repeat: int, max_seconds: float) -> dict[str, Any]:
    manifest = json.loads((build.directory / f"{build.name}.json").read_text())
    ordered = [inputs[i["name"]] for i in manifest["inputs"]]
    timing = time_artifact(build.directory, ordered, repeat, max_seconds, build.harness)
    wasm_bytes = (build.directory / f"{build.name}.wasm").stat().st_size
    weights = manifest["weights"]["nbytes"]
    return {
        "median_ms": timing.median_ms,
        "min_ms": timing.min_ms,
        "runs": timing.runs,
        "times_ms": timing.times_ms,
        "startup_ms": timing.startup_ms,
        "startup_phases_ms": timing.phases_ms,
        "compile_ms": timing.compile_ms,
        "timed_in": timing.timed_in,
        "call_overhead_us": timing.call_overhead_us,
        "build_s": build.build_s,
        "wasm_bytes": wasm_bytes,
        "weights_bytes": weights,
        "code_bytes": wasm_bytes - weights,
        "kernels": manifest.get("kernels"),
        "outputs": timing.outputs,
        "notes": list(build.notes),
    }


def merge_rounds(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """One entry from every round's: median and fastest over all runs of all rounds, the
    median of the rounds' start-ups (every round starts a new session or instance: for
    wasm-build from a new `.cwasm` file, so its memory is touched for the first time again)
    with the phases of the round at the median (the slower of the middle two for an even
    number of rounds), outputs and notes from the first round."""
    merged = dict(rounds[0])
    if "times_ms" not in merged:
        return merged  # skipped or failed
    times = [t for entry in rounds for t in entry.get("times_ms", [])]
    merged.update(median_ms=statistics.median(times), min_ms=min(times), runs=len(times), times_ms=times)
    started = sorted((e for e in rounds if e.get("startup_ms") is not None), key=lambda e: e["startup_ms"])
    if started:
        middle = started[len(started) // 2]
        merged["startup_ms"] = statistics.median(e["startup_ms"] for e in started)
        merged["startup_rounds_ms"] = [e["startup_ms"] for e in started]
        if "startup_phases_ms" in middle:
            merged["startup_phases_ms"] = middle["startup_phases_ms"]
    return merged


def guarded(what: str, function, *a, **kw) -> dict[str, Any]:
    """Run one measurement; a failure becomes an entry with the reason, not a crash."""
    try:
        return function(*a, **kw)
    except peers.PeerUnavailable as exc:
        log(f"{what}: skipped: {exc}")
        return {"skipped": str(exc)}
    except Exception as exc:
        log(f"{what}: FAILED:\n{traceback.format_exc()}")
        return {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}


def peer_entry(timing: peers.PeerTiming) -> dict[str, Any]:
    return {"median_ms": timing.median_ms, "min_ms": timing.min_ms, "runs": timing.runs, "times_ms": timing.times_ms,
            "startup_ms": timing.startup_ms, "outputs": timing.outputs, "notes": timing.notes}


# -- the whole run ------------------------------------------------------------------------------


def _tuning_records(tuning_dir: Path, names: list[str]) -> dict[str, int]:
    """Measured schedules per model in its database: how much search the tuned build rests on."""
    from wasm_build.tuning import read_database

    counts = {}
    for name in names:
        path = tuning_dir / f"{name}.json"
        counts[name] = sum(len(e.records) for e in read_database(path).values()) if path.is_file() else 0
    return counts


def tuning_available() -> bool:
    return importlib.util.find_spec("wasm_build.tuning") is not None


def run(args: argparse.Namespace) -> dict[str, Any]:
    args.out.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    tuned = args.tuned
    if tuned and not tuning_available():
        notes.append("--tuned was given but wasm_build/tuning.py does not exist yet: no tuned build.")
        tuned = False

    machine = report.machine_info()  # the load average before the run
    models: dict[str, dict[str, Any]] = {}
    prepared: dict[str, tuple[Path, dict[str, np.ndarray], dict[str, Any]]] = {}
    for name in list(args.models):
        log(f"== {name}: build")
        try:
            onnx_path, inputs = prepare_model(name, args.out)
        except ModelUnavailable as exc:
            log(f"{name}: skipped: {exc}")
            notes.append(f"{name} left out: {exc}")
            args.models.remove(name)
            continue
        builds = {"wasm-build": guarded(f"{name}/wasm-build", build_entry, name, onnx_path, args, False)}
        if tuned:
            builds["wasm-build tuned"] = guarded(f"{name}/wasm-build tuned", build_entry, name, onnx_path, args, True)
        prepared[name] = (onnx_path, inputs, builds)
        models[name] = {"onnx_bytes": onnx_path.stat().st_size, "backends": {}}

    # Timing in rounds: each backend's runs are spread over the whole session, so a burst
    # of load from elsewhere on the machine does not land on one backend only.
    per_round = -(-args.repeat // args.rounds)
    seconds = args.max_seconds / args.rounds
    rounds: dict[str, dict[str, list[dict[str, Any]]]] = {name: {} for name in args.models}
    node_info: dict[str, Any] = {}
    for index in range(args.rounds):
        first = index == 0
        for name in args.models:
            log(f"== {name}: round {index + 1} of {args.rounds}")
            onnx_path, inputs, builds = prepared[name]
            measured = rounds[name]

            def measure(backend: str, function, *a) -> None:
                previous = measured.get(backend)
                if previous is not None and "times_ms" not in previous[0]:
                    return  # skipped or failed in the first round
                measured.setdefault(backend, []).append(guarded(f"{name}/{backend}", function, *a))

            if "onnxruntime" not in args.skip:
                measure("onnxruntime", lambda: peer_entry(peers.onnxruntime_native(onnx_path, inputs, per_round, seconds)))
            for backend, build in builds.items():
                if isinstance(build, WasmBuild):
                    measure(backend, wasm_entry, build, inputs, per_round, seconds)
                elif first:
                    measured[backend] = [build]  # the build's error
            if "tract" not in args.skip:
                measure("tract", lambda: peer_entry(peers.tract_native(onnx_path, inputs, per_round, seconds)))
            if "tvm" not in args.skip and first:  # compiling it takes minutes; a reference column only
                measure("tvm", lambda: peer_entry(peers.tvm_native(onnx_path, inputs, args.repeat, args.max_seconds)))
            if "onnxruntime-web" not in args.skip:
                # A Node process per model and round, right after the model's other backends: its
                # runs then meet the same load as theirs (one process for all models at the end of a
                # round ran a model's onnxruntime-web runs up to a minute after its wasm runs).
                try:
                    web, info = peers.onnxruntime_web([peers.NodeJob(name, onnx_path, inputs)], args.out / "node",
                                                      per_round, seconds)
                    node_info = node_info or info
                    result = web[name]
                    measured.setdefault("onnxruntime-web", []).append(
                        peer_entry(result) if isinstance(result, peers.PeerTiming) else {"error": result})
                except peers.PeerUnavailable as exc:
                    log(f"onnxruntime-web: skipped: {exc}")
                    for skipped in args.models:
                        rounds[skipped]["onnxruntime-web"] = [{"skipped": str(exc)}]
                    args.skip.append("onnxruntime-web")

    for name, measured in rounds.items():
        for backend, entries in measured.items():
            result = models[name]["backends"][backend] = merge_rounds(entries)
            if "median_ms" in result:
                log(f"{name}/{backend}: median {result['median_ms']:.3f} ms over {result['runs']} runs")

    shapes = None
    if not args.skip_sweep:
        log("== contraction shape sweep")
        shapes = sweep.run_sweep(
            args.out, args.sweep_rounds or args.rounds,
            build=lambda name, path: build_wasm(name, path, args.out / "sweep")[0],
            timer=lambda directory, inputs: SteadyTimer(
                directory, inputs, link_timing_harness(directory, args.out / "sweep" / "harness" / f"{directory.name}.wasm")),
            peers=peers, log=log, skip_web="onnxruntime-web" in args.skip,
        )

    # Every backend's outputs against onnxruntime's: the same computation was timed.
    for entry in models.values():
        reference = entry["backends"].get("onnxruntime", {}).get("outputs")
        for result in entry["backends"].values():
            if "outputs" in result:
                result["max_rel_error"] = max_error(result.pop("outputs"), reference)

    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python bench/run.py", *sys.argv[1:]]),
        "settings": {"repeat": args.repeat, "rounds": args.rounds, "max_seconds": args.max_seconds, "tuned": tuned,
                     "tune_trials": args.tune_trials if tuned else 0,
                     "tuning_records": _tuning_records(args.tuning_dir, args.models) if tuned else {}},
        "machine": {**machine, "load_average_end": [round(x, 2) for x in os.getloadavg()]},
        "versions": report.versions(node_info),
        "node": node_info,
        "notes": notes,
        "models": models,
        "sweep": shapes,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    results = run(args)
    raw = args.out / "results.json"
    raw.write_text(json.dumps(results, indent=1, default=float) + "\n")
    chart_note = report.write_chart(results, args.chart)
    if chart_note:
        results["notes"].append(chart_note)
    report.write_markdown(results, args.results, chart=args.chart if not chart_note else None)
    log(f"wrote {args.results}" + ("" if chart_note else f", {args.chart}") + f" and {raw}")
    if args.results.resolve() == (HERE / "RESULTS.md").resolve():
        readme.main([])  # the README's speed section is a copy of RESULTS.md
        log("updated README.md's speed section")
    return 0


if __name__ == "__main__":
    sys.exit(main())
