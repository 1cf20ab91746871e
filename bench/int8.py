"""Quantized models against their float32 originals (issue 19): the same model built twice by
wasm-build, float32 and quantized by onnxruntime's own quantizer, timed inside wasm, and the
quantized model timed in onnxruntime-web.

    python bench/int8.py [--rounds 3] [--models mobilenet_v2 ...]

Writes bench/int8.json and the "Quantized models" section of bench/RESULTS.md (`bench/run.py`
keeps that section when it rewrites the file). Float and int8 builds are timed in alternating
rounds (the C driver around NAME_run, `wasm_timing.time_artifact`), so load from elsewhere on
the machine falls on both; onnxruntime-web runs the float and the quantized ONNX files in one
Node process, one thread, after the wasm rounds.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "src")]

from bench import peers, report  # noqa: E402
from bench.models import BENCH_MODELS  # noqa: E402
from bench.wasm_timing import link_timing_harness, time_artifact  # noqa: E402
from wasm_build.testing import quantized  # noqa: E402
from wasm_build.testing.models import random_inputs, reference_outputs, save  # noqa: E402
from wasm_build.wasm.steps import output_steps  # noqa: E402

RESULTS_JSON = ROOT / "bench" / "int8.json"
RESULTS_MD = ROOT / "bench" / "RESULTS.md"


@dataclass(frozen=True)
class Quantization:
    label: str  # as the table shows it
    quantize: Callable[[onnx.ModelProto], onnx.ModelProto]
    # Both builds (float32 and int8) with relaxed-simd = true: the int8 one then multiplies
    # 7-bit weights on the relaxed dot product (`compiler.passes.relaxed_products`).
    relaxed: bool = False


# What onnxruntime's documentation recommends per model kind: static QDQ for CNNs (uint8
# activations, per-channel int8 weights: the quantizer's defaults), dynamic for transformers.
STATIC_QDQ = Quantization("static QDQ, per-channel", lambda m: quantized.qdq(m))
STATIC_QOPERATOR = Quantization("static QOperator", lambda m: quantized.qoperator(m))
DYNAMIC = Quantization("dynamic (MatMulInteger)", lambda m: quantized.dynamic(m))
# The same with 7-bit weights (onnxruntime's reduce_range, its advice for x86 hosts), built with
# relaxed SIMD.
STATIC_QDQ_RELAXED = Quantization("static QDQ, per-channel, 7-bit weights; relaxed SIMD",
                                  lambda m: quantized.qdq(m, reduce_range=True), relaxed=True)
DYNAMIC_RELAXED = Quantization("dynamic (MatMulInteger), 7-bit weights; relaxed SIMD",
                               lambda m: quantized.dynamic(m, reduce_range=True), relaxed=True)

CASES: dict[str, tuple[str, Quantization]] = {
    "mobilenet_v2": ("mobilenet_v2", STATIC_QDQ),
    "mobilenet_v2_qop": ("mobilenet_v2", STATIC_QOPERATOR),
    "resnet18": ("resnet18", STATIC_QDQ),
    "kws_cnn": ("kws_cnn", STATIC_QDQ),
    "transformer_encoder": ("transformer_encoder", DYNAMIC),
    "mobilenet_v2_relaxed": ("mobilenet_v2", STATIC_QDQ_RELAXED),
    "resnet18_relaxed": ("resnet18", STATIC_QDQ_RELAXED),
    "kws_cnn_relaxed": ("kws_cnn", STATIC_QDQ_RELAXED),
    "transformer_encoder_relaxed": ("transformer_encoder", DYNAMIC_RELAXED),
}


def log(message: str) -> None:
    print(f"[int8] {message}", file=sys.stderr, flush=True)


def _build(name: str, path: Path, out: Path, relaxed: bool) -> tuple[Path, Path]:
    from wasm_build.build import build_model
    from wasm_build.config.settings import ModelSettings

    # With the smoke test, as users build: a quantized model whose wasm kernels round away
    # from the native reference fails here rather than in a user's build.
    settings = ModelSettings(name=name, source=str(path), relaxed_simd=relaxed)
    directory = build_model(settings, out / "wasm", project_dir=out, cache_dir=None, log=lambda _m: None).directory
    return directory, link_timing_harness(directory, out / "harness" / f"{name}.wasm")


def _int8_bytes(model: onnx.ModelProto) -> int:
    return sum(a.nbytes for a in (numpy_helper.to_array(i) for i in model.graph.initializer) if a.itemsize == 1)


def _accuracy(model: onnx.ModelProto, outputs: list[np.ndarray], inputs: dict[str, np.ndarray]) -> str:
    """Worst difference from onnxruntime running the same quantized model: in quantization
    steps for quantized outputs, else relative to the output's scale."""
    steps = output_steps(model)
    worst = []
    for output, got, want in zip(model.graph.output, outputs, reference_outputs(model, inputs)):
        error = float(np.abs(got.astype(np.float64) - want).max())
        if output.name in steps:
            worst.append(f"{error / steps[output.name]:.0f} steps")
        else:
            worst.append(f"{error / max(float(np.abs(want).max()), 1e-30):.1e}")
    return ", ".join(worst)


def run(cases: list[str], rounds: int, repeat: int, max_seconds: float, out: Path) -> dict[str, Any]:
    prepared = {}
    for case in cases:
        source, quantization = CASES[case]
        log(f"{case}: quantizing ({quantization.label}) and building")
        float_model = BENCH_MODELS[source]()
        int8_model = quantization.quantize(float_model)
        inputs = random_inputs(float_model, seed=0)
        paths = {kind: save(model, out / "models" / f"{case}_{kind}.onnx")
                 for kind, model in (("float32", float_model), ("int8", int8_model))}
        builds = {}
        for kind, path in paths.items():
            start = time.perf_counter()
            builds[kind] = _build(f"{case}_{kind}", path, out, quantization.relaxed)
            log(f"{case} {kind}: built in {time.perf_counter() - start:.0f} s")
        prepared[case] = (float_model, int8_model, inputs, paths, builds)

    times: dict[str, dict[str, list[float]]] = {case: {"float32": [], "int8": []} for case in cases}
    outputs: dict[str, list[np.ndarray]] = {}
    for round_index in range(rounds):
        for case, (_f, _q, inputs, _p, builds) in prepared.items():
            for kind in ("float32", "int8") if round_index % 2 == 0 else ("int8", "float32"):
                directory, harness = builds[kind]
                manifest = json.loads(next(directory.glob("*.json")).read_text())
                ordered = [inputs[i["name"]] for i in manifest["inputs"]]
                timing = time_artifact(directory, ordered, repeat, max_seconds, harness)
                times[case][kind] += timing.times_ms
                if kind == "int8":
                    outputs[case] = timing.outputs
        log(f"round {round_index + 1} of {rounds} done")

    jobs = [peers.NodeJob(f"{case}_{kind}", paths[kind], inputs)
            for case, (_f, _q, inputs, paths, _b) in prepared.items() for kind in ("float32", "int8")]
    try:
        web, _info = peers.onnxruntime_web(jobs, out / "node", repeat, max_seconds)
    except peers.PeerUnavailable as exc:
        log(f"onnxruntime-web unavailable: {exc}")
        web = {}

    rows = []
    for case, (float_model, int8_model, inputs, _paths, builds) in prepared.items():
        weights = {kind: json.loads(next(builds[kind][0].glob("*.json")).read_text())["weights"]["nbytes"]
                   for kind in ("float32", "int8")}
        row = {
            "case": case,
            "model": CASES[case][0],
            "quantization": CASES[case][1].label,
            "float32_ms": statistics.median(times[case]["float32"]),
            "int8_ms": statistics.median(times[case]["int8"]),
            "float32_min_ms": min(times[case]["float32"]),
            "int8_min_ms": min(times[case]["int8"]),
            "weights_float32": weights["float32"],
            "weights_int8": weights["int8"],
            "int8_initializer_bytes": _int8_bytes(int8_model),
            "initializer_bytes": sum(numpy_helper.to_array(i).nbytes for i in int8_model.graph.initializer),
            "accuracy": _accuracy(int8_model, outputs[case], inputs),
        }
        for kind in ("float32", "int8"):
            entry = web.get(f"{case}_{kind}")
            row[f"web_{kind}_ms"] = entry.median_ms if isinstance(entry, peers.PeerTiming) else None
            if isinstance(entry, str):
                row[f"web_{kind}_error"] = entry
        rows.append(row)
    return {
        "command": "python bench/int8.py " + " ".join(sys.argv[1:]),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": report.machine_info(),
        "rounds": rounds,
        "repeat": repeat,
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=list(CASES), default=list(CASES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20, help="timed runs per build and round (fewer past --max-seconds)")
    parser.add_argument("--max-seconds", type=float, default=10.0)
    parser.add_argument("--out", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wasm-build-int8-") as tmp:
        results = run(args.models, args.rounds, args.repeat, args.max_seconds, args.out or Path(tmp))
    RESULTS_JSON.write_text(json.dumps(results, indent=1) + "\n")
    if RESULTS_MD.exists():
        RESULTS_MD.write_text(report.with_int8_section(RESULTS_MD.read_text(), results))
    print("\n".join(report.int8_lines(results)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
