"""Turn bench results (plain data, see run.py) into bench/RESULTS.md and a bar chart."""

from __future__ import annotations

import math
import os
import platform
import statistics
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from wasm_build.artifact.files import write_text_atomic

# Column order, and how each backend is called in the report.
BACKENDS = {
    "wasm-build": "wasm-build (default)",
    "wasm-build tuned": "wasm-build (tuned)",
    "onnxruntime-web": "onnxruntime-web (wasm, Node)",
    "onnxruntime": "onnxruntime native",
    "tract": "tract native",
    "tvm": "TVM native (untuned)",
}
COLORS = {
    "wasm-build": "#1f77b4",
    "wasm-build tuned": "#17becf",
    "onnxruntime-web": "#ff7f0e",
    "onnxruntime": "#2ca02c",
    "tract": "#9467bd",
    "tvm": "#7f7f7f",
}
CODE_BUDGET = 300 * 1024
STARTUP_BUDGET_MS = 50.0


# -- the machine and the software --------------------------------------------------------------


def machine_info() -> dict[str, Any]:
    cpu, flags = platform.processor() or "unknown", set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and cpu in ("unknown", platform.processor()):
                cpu = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    memory = None
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(memory / 2**30, 1) if memory else None,
        "vector": " ".join(f for f in ("sse4_2", "avx", "avx2", "fma", "avx512f") if f in flags) or "unknown",
        "os": f"{platform.system()} {platform.release()}",
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "openblas_coretype": os.environ.get("OPENBLAS_CORETYPE"),
    }


def versions(node_info: dict[str, Any]) -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("wasm-build", "apache-tvm", "onnxruntime", "wasmtime", "tract", "onnx", "numpy"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    if "wasm-build" not in found:  # run from the source tree, not installed
        import wasm_build

        found["wasm-build"] = f"{wasm_build.__version__} (source tree)"
    try:
        from wasm_build.artifact.toolchain import find_toolchain

        toolchain = find_toolchain()
        found["wasm toolchain"] = f"{toolchain.kind}: {toolchain.version}"
    except Exception:
        pass
    if node_info.get("node"):
        found["node"] = node_info["node"]
    if node_info.get("onnxruntime_web"):
        found["onnxruntime-web"] = node_info["onnxruntime_web"]
    return found


# -- formatting -----------------------------------------------------------------------------------


def _ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def _cell(result: dict[str, Any] | None) -> str:
    if not result:
        return "—"
    if "median_ms" in result:
        return _ms(result["median_ms"])
    return "skipped" if "skipped" in result else "failed"


def _timing(models: dict[str, Any], model: str, backend: str, statistic: str = "median_ms") -> float | None:
    """A backend's `statistic` on a model ("median_ms", "min_ms"), None when it did not run."""
    return models[model]["backends"].get(backend, {}).get(statistic)


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def _x(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}x"


def _kb(nbytes: int | None) -> str:
    return "—" if nbytes is None else f"{nbytes / 1024:,.0f} KB"


def _table(header: list[str], rows: list[list[str]], align: str | None = None) -> list[str]:
    align = align or "l" + "r" * (len(header) - 1)
    marks = ["---:" if a == "r" else "---" for a in align]
    return ["| " + " | ".join(header) + " |", "|" + "|".join(marks) + "|", *("| " + " | ".join(r) + " |" for r in rows)]


# -- RESULTS.md ---------------------------------------------------------------------------------


def goals(results: dict[str, Any], statistic: str = "median_ms") -> list[list[str]]:
    """Issue 5's goals against these numbers: [goal, target, measured, verdict]; the speed goals
    compare each backend's `statistic` ("median_ms", or "min_ms": the fastest run)."""
    models = results["models"]
    names = list(models)

    def speed(model: str, backend: str) -> float | None:
        return _timing(models, model, backend, statistic)

    def worst(values: dict[str, float | None], pick) -> tuple[str, float] | None:
        known = {k: v for k, v in values.items() if v is not None}
        if not known or len(known) < len(values):
            return None
        key = pick(known, key=known.get)
        return key, known[key]

    def verdict(found, ok) -> str:
        return "not measured" if found is None else ("**met**" if ok(found[1]) else "**missed**")

    def shown(found, fmt) -> str:
        return "—" if found is None else f"{fmt(found[1])} (worst: {found[0]})"

    rows = []
    speedup = worst({m: _ratio(speed(m, "onnxruntime-web"), speed(m, "wasm-build")) for m in names}, min)
    rows.append(["default build at least as fast as onnxruntime-web", "≥ 1.00x on every model",
                 shown(speedup, _x), verdict(speedup, lambda v: v >= 1.0)])
    has_tuned = any("wasm-build tuned" in models[m]["backends"] for m in names)
    if has_tuned:
        tuned = worst({m: _ratio(speed(m, "onnxruntime-web"), speed(m, "wasm-build tuned")) for m in names}, min)
        native = worst({m: _ratio(speed(m, "wasm-build tuned"), speed(m, "onnxruntime")) for m in names}, max)
    else:
        tuned = native = None
    rows.append(["tuned build 2x faster than onnxruntime-web", "≥ 2.00x on every model", shown(tuned, _x),
                 verdict(tuned, lambda v: v >= 2.0) if has_tuned else "not measured (no tuned build)"])
    rows.append(["tuned build within 3x of onnxruntime native", "≤ 3.00x on every model", shown(native, _x),
                 verdict(native, lambda v: v <= 3.0) if has_tuned else "not measured (no tuned build)"])
    mobilenet = models.get("mobilenet_v2", {}).get("backends", {}).get("wasm-build", {})
    startup = ("mobilenet_v2", mobilenet["startup_ms"]) if "startup_ms" in mobilenet else None
    rows.append(["start-up of MobileNetV2 (instantiate + init + first run)", f"< {STARTUP_BUDGET_MS:.0f} ms",
                 "—" if startup is None else f"{startup[1]:.1f} ms", verdict(startup, lambda v: v < STARTUP_BUDGET_MS)])
    code = worst({m: models[m]["backends"].get("wasm-build", {}).get("code_bytes") for m in names}, max)
    rows.append(["code size (.wasm minus weights)", f"≤ {CODE_BUDGET // 1024} KB on every model",
                 shown(code, _kb), verdict(code, lambda v: v <= CODE_BUDGET)])
    return rows


def ratio_summary(models: dict[str, Any], backend: str = "wasm-build", statistic: str = "median_ms"
                  ) -> tuple[float, str, float] | None:
    """(geometric mean, worst model, its ratio) of onnxruntime-web's time over `backend`'s, over
    the models where both ran; None when none did."""
    ratios = {m: _ratio(_timing(models, m, "onnxruntime-web", statistic), _timing(models, m, backend, statistic))
              for m in models}
    known = {m: r for m, r in ratios.items() if r is not None}
    if not known:
        return None
    worst = min(known, key=known.get)
    return float(math.exp(sum(math.log(r) for r in known.values()) / len(known))), worst, known[worst]


def sweep_fraction(row: dict[str, Any], sweep: dict[str, Any]) -> float:
    """A sweep shape's fraction of the peak: the median over rounds of its fastest run in a
    round against the peak measured before that round (results from before rounds were
    recorded: its fastest run against the session's best peak)."""
    per_round = row.get("round_min_ms", [])
    if len(per_round) != len(sweep["peak_rounds_gmacs"]):
        return row["macs"] / row["min_ms"] / 1e6 / sweep["peak_gmacs"]
    return statistics.median(row["macs"] / ms / 1e6 / peak for ms, peak in zip(per_round, sweep["peak_rounds_gmacs"]))


def goals_20(results: dict[str, Any], statistic: str = "median_ms") -> list[list[str]]:
    """Issue 20's goals (default build): [goal, target, measured, verdict]."""
    models, sweep = results["models"], results.get("sweep")

    def verdict(value, ok) -> str:
        return "not measured" if value is None else ("**met**" if ok(value) else "**missed**")

    rows = []
    if sweep:
        for dense, name, floor in ((True, "dense matmuls and 1x1 convs", 0.85), (False, "attention products", 0.75)):
            shapes = [r for r in sweep["shapes"] if r["dense"] == dense]
            fractions = {r["name"]: sweep_fraction(r, sweep) for r in shapes}
            worst = min(fractions, key=fractions.get) if fractions else None
            rows.append([f"{name} at the measured SIMD128 peak", f"≥ {floor:.0%} for every shape",
                         "—" if worst is None else f"{fractions[worst]:.0%} (worst: {worst})",
                         verdict(fractions[worst] if worst else None, lambda v, f=floor: v >= f)])
            if dense and fractions:
                spread = min(fractions.values()) / max(fractions.values())
                best = max(fractions, key=fractions.get)
                rows.append(["worst dense shape against the best", "within 15%",
                             f"{1 - spread:.0%} below ({best} {fractions[best]:.0%})", verdict(spread, lambda v: v >= 0.85)])
    vits = {m: _ratio(_timing(models, m, "onnxruntime-web", statistic), _timing(models, m, "wasm-build", statistic))
            for m in ("vit_tiny", "deit_tiny") if m in models}
    known = {m: v for m, v in vits.items() if v is not None}
    worst_vit = min(known, key=known.get) if known else None
    rows.append(["ViT-Tiny / DeiT-Tiny against onnxruntime-web", "≥ 1.30x",
                 "—" if worst_vit is None else f"{known[worst_vit]:.2f}x (worst: {worst_vit})",
                 verdict(known.get(worst_vit), lambda v: v >= 1.3)])
    summary = ratio_summary(models, "wasm-build", statistic)
    rows.append(["every model at least as fast as onnxruntime-web", "≥ 1.00x",
                 "—" if summary is None else f"{summary[2]:.2f}x (worst: {summary[1]})",
                 verdict(summary and summary[2], lambda v: v >= 1.0)])
    rows.append(["geometric mean over the models against onnxruntime-web", "≥ 1.80x",
                 "—" if summary is None else f"{summary[0]:.2f}x over {len([m for m in models if _ratio(_timing(models, m, 'onnxruntime-web', statistic), _timing(models, m, 'wasm-build', statistic))])} models",
                 verdict(summary and summary[0], lambda v: v >= 1.8)])
    return rows


def sweep_lines(sweep: dict[str, Any]) -> list[str]:
    """The shape sweep's section of RESULTS.md."""
    peak = sweep["peak_gmacs"]
    lines = ["## Contraction shape sweep (default build, GMAC/s)", "",
             f"Each shape is a model of its own (`bench/sweep.py`), built with default settings and timed inside wasm "
             f"in {sweep['rounds']} rounds; the machine's SIMD128 peak, measured in wasmtime before each round "
             f"(independent f32x4 multiplies and adds, `wasm_build.wasm.peak`), was at best **{peak:.1f} GMAC/s** "
             f"(rounds: {', '.join(f'{p:.1f}' for p in sweep['peak_rounds_gmacs'])}) and "
             f"{sweep['peak_gbytes']:.0f} GB/s in cache. \"of peak\" is the median over the rounds of a shape's fastest "
             "run in a round against the peak measured before it (`bench.report.sweep_fraction`); "
             "onnxruntime-web's times include a `session.run` call from JavaScript (tens of µs).", ""]
    rows = []
    for r in sweep["shapes"]:
        gmacs = r["macs"] / r["min_ms"] / 1e6
        web = r["macs"] / r["web_min_ms"] / 1e6 if "web_min_ms" in r else None
        rows.append([r["name"], r["kind"], r["label"], f"{r['macs'] / 1e6:.1f}", _ms(r["min_ms"]), f"{gmacs:.1f}",
                     f"{sweep_fraction(r, sweep):.0%}", f"{r['macs'] / r['median_ms'] / 1e6:.1f}",
                     "—" if web is None else f"{web:.1f}", _x(_ratio(r.get("web_min_ms"), r["min_ms"]))])
    lines += _table(["shape", "kind", "", "M MAC", "fastest ms", "GMAC/s", "of peak", "median GMAC/s",
                     "onnxruntime-web GMAC/s", "vs onnxruntime-web"], rows, "lllrrrrrrr") + [""]
    lines += [f"- {note}" for note in sweep.get("notes", [])]
    return lines


def render_markdown(results: dict[str, Any], chart: Path | None, results_path: Path) -> str:
    models = results["models"]
    names = list(models)
    present = [b for b in BACKENDS if any(b in models[m]["backends"] for m in names)]
    machine, settings = results["machine"], results["settings"]
    lines = [
        "# wasm-build benchmark",
        "",
        f"Written by `{results['command']}` on {results['date']}: do not edit by hand, re-run it.",
        f"Each backend runs each model on **one thread**; times are the **median of up to {settings['repeat']} runs** "
        f"after a first, untimed run (fewer when a backend took over {settings['max_seconds']:.0f} s, never fewer than 3)"
        + (f", taken in {settings['rounds']} rounds over all models and backends, so that load from elsewhere on "
           "the machine is shared out between the backends instead of landing on one." if settings.get("rounds", 1) > 1
           else "."),
        "",
    ]
    if chart is not None:
        rel = os.path.relpath(chart, results_path.parent)
        lines += [f"![median run time per model, log scale]({rel})", ""]

    lines += ["## Steady state: median ms per run (lower is better)", ""]
    rows = [[m] + [_cell(models[m]["backends"].get(b)) for b in present] for m in names]
    lines += _table(["model", *(BACKENDS[b] for b in present)], rows) + [""]

    lines += ["Fastest single run (ms): less sensitive to other work on the machine than the median.", ""]
    rows = [[m] + [_ms(models[m]["backends"].get(b, {}).get("min_ms")) for b in present] for m in names]
    lines += _table(["model", *(BACKENDS[b] for b in present)], rows) + [""]

    lines += ["## Ratios", "",
              "Speed-up = the peer's median / wasm-build's median (above 1: wasm-build is faster).", ""]
    header = ["model", "default vs onnxruntime-web", "default vs onnxruntime native"]
    tuned = "wasm-build tuned" in present
    if tuned:
        header += ["tuned vs onnxruntime-web", "tuned vs onnxruntime native"]
    rows = []
    for m in names:
        row = [m]
        for b in ["wasm-build", "wasm-build tuned"] if tuned else ["wasm-build"]:
            row += [_x(_ratio(_timing(models, m, "onnxruntime-web"), _timing(models, m, b))),
                    _x(_ratio(_timing(models, m, "onnxruntime"), _timing(models, m, b)))]
        rows.append(row)
    for label, pick in (("geometric mean", 0), ("worst", 1)):
        row = [f"*{label}*"]
        for b in ["wasm-build", "wasm-build tuned"] if tuned else ["wasm-build"]:
            summary = ratio_summary(models, b)
            cell = "—" if summary is None else (_x(summary[0]) if pick == 0 else f"{_x(summary[2])} ({summary[1]})")
            row += [cell, ""]
        rows.append(row)
    lines += _table(header, rows) + [""]

    lines += ["## Goals of issue 20 (default build, one thread)", ""]
    lines += _table(["goal", "target", "measured", "verdict"], goals_20(results), "llll") + [""]
    lines += ["The same on every backend's fastest run (the verdict above is on medians for the models; the sweep "
              "always uses fastest runs):", ""]
    lines += _table(["goal", "target", "measured", "verdict"], goals_20(results, "min_ms"), "llll") + [""]
    if results.get("sweep"):
        lines += sweep_lines(results["sweep"])

    lines += ["## Goals of issue 5", ""]
    lines += _table(["goal", "target", "measured", "verdict"], goals(results), "llll") + [""]
    fastest = [row for row in goals(results, "min_ms")[:3] if row[3] != "not measured"]
    if fastest:
        lines += ["The speed goals on every backend's fastest run instead (less sensitive to other load on a shared "
                  "machine; the goals above, on medians, are the verdict):", ""]
        lines += _table(["goal", "target", "measured", "verdict"], fastest, "llll") + [""]

    lines += ["## Start-up (ms)", "",
              "wasm-build: the shipped `NAME.wasm` precompiled by wasmtime into a `.cwasm` file (Cranelift compile shown "
              "apart: once per machine, as `wasmtime compile` does), then deserialize that file (wasmtime maps it) + "
              "instantiate + `_initialize` + `NAME_init` + place buffers + first run. "
              "onnxruntime-web: session creation + first run (which compiles the kernels it calls, Node running "
              "with `--no-liftoff`), after its own wasm runtime is loaded"
              + (f" ({results['node']['runtime_load_ms']:.0f} ms, once per process)" if results.get("node", {}).get("runtime_load_ms") else "")
              + ". onnxruntime / tract: load + optimise the model + first run."
              + (f" Each start-up is the median of the {settings['rounds']} rounds' (each round starts anew; for "
                 "wasm-build from a new `.cwasm` file, so the instance touches its memory for the first time again); "
                 "the phases are those of the round at the median (with an even number of rounds, the slower of the "
                 "middle two)."
                 if settings.get("rounds", 1) > 1 else ""), ""]
    rows = []
    for m in names:
        backends = models[m]["backends"]
        wasm = backends.get("wasm-build", {})
        phases = ", ".join(f"{k} {v:.1f}" for k, v in wasm.get("startup_phases_ms", {}).items())
        rows.append([m, _ms(wasm.get("compile_ms")), _ms(wasm.get("startup_ms")), phases or "—",
                     *(_ms(backends.get(b, {}).get("startup_ms")) for b in ("onnxruntime-web", "onnxruntime", "tract"))])
    lines += _table(["model", "wasm-build compile", "wasm-build start-up", "phases", "onnxruntime-web",
                     "onnxruntime native", "tract"], rows, "lrrlrrr") + [""]

    lines += ["## Artifact sizes (default build)", ""]
    rows = []
    for m in names:
        wasm = models[m]["backends"].get("wasm-build", {})
        rows.append([m, _kb(models[m]["onnx_bytes"]), _kb(wasm.get("wasm_bytes")), _kb(wasm.get("weights_bytes")),
                     _kb(wasm.get("code_bytes")), str(wasm.get("kernels", "—")),
                     "—" if "build_s" not in wasm else f"{wasm['build_s']:.1f} s"])
    lines += _table(["model", ".onnx", ".wasm", "weights", "code (.wasm − weights)", "kernels", "build time"], rows) + [""]

    lines += ["## Same computation? Largest |output − onnxruntime's| / largest |onnxruntime's output|", ""]
    rows = [[m] + [_err(models[m]["backends"].get(b)) for b in present if b != "onnxruntime"] for m in names]
    lines += _table(["model", *(BACKENDS[b] for b in present if b != "onnxruntime")], rows) + [""]

    lines += ["## How it was measured", ""]
    overheads = [models[m]["backends"].get("wasm-build", {}).get("call_overhead_us") for m in names]
    overheads = [o for o in overheads if o is not None]
    timed_in = {models[m]["backends"].get("wasm-build", {}).get("timed_in") for m in names} - {None}
    lines += [
        "- wasm-build: built with default settings (default schedules, SIMD128, embedded weights) and no build cache, "
        "run in wasmtime-py on one thread. "
        + ("The steady state is timed inside wasm: the model's `libNAME.a` linked with a loop that reads the WASI "
           "monotonic clock around each `NAME_run`, buffers placed once. " if timed_in == {"wasm"} else
           "The steady state is timed per Python call into `NAME_run`, buffers placed once. ")
        + (f"A call from Python into a wasmtime export costs {_span(overheads)} µs here "
           "(measured on `NAME_num_inputs`); it is not in the wasm-build medians"
           + (" (timed inside wasm)." if timed_in == {"wasm"} else ", but is in these medians.") if overheads else ""),
        *([
            "- wasm-build (tuned): the same build applying the tuning database `bench/tuning/NAME.json` "
            "(meta-schedule, measured in wasmtime; "
            + ", ".join(f"{m} {n} measured schedules" for m, n in settings["tuning_records"].items())
            + (f"; {settings['tune_trials']} more trials tuned in this run" if settings.get("tune_trials") else "")
            + "). Kernels whose tuned schedule did not beat the default keep the default."
        ] if settings.get("tuning_records") else []),
        "- onnxruntime native: PyPI wheel, CPU provider, `intra_op_num_threads = inter_op_num_threads = 1`, sequential, "
        "all graph optimisations; timed per `session.run` from Python (a few µs of overhead).",
        "- onnxruntime-web: npm package, wasm backend under Node, `ort.env.wasm.numThreads = 1`, no proxy worker "
        "(its only wasm binary is the SIMD build); timed per `await session.run` in JavaScript (`bench/node/bench.mjs`), "
        "in a Node process per model and round started right after the model's other backends. Node runs with "
        "`--no-liftoff`: V8 compiles each wasm function with its optimizing tier on first call, the code a "
        "long-running page reaches after tier-up (with V8's default tiering a process's first 25-50 runs ran "
        "baseline code, 2-5x slower).",
        "- tract: PyPI `tract`, `onnx().load().into_model().into_runnable()`, timed per `run` from Python.",
        "- TVM native (timed in the first round only: a reference, and slow to compile): "
        "`tvm.compile` default pipeline, target `{\"kind\": \"llvm\", \"num-cores\": 1}` (no `mcpu`: "
        "generic x86-64 code), `TVM_NUM_THREADS=1`, Relax VM, timed per call from Python.",
        "- Models: `bench/models.py` (seeded weights), inputs `wasm_build.testing.models.random_inputs(model, seed=0)`; "
        "all backends get the same ONNX file and the same inputs, in one process (Node in a subprocess).",
        "- `OPENBLAS_CORETYPE` "
        + (f"was set to `{machine['openblas_coretype']}` (it only slows numpy's own BLAS, which no timed path uses)."
           if machine.get("openblas_coretype") else "was not set (it only concerns numpy's BLAS, which no timed path uses)."),
        f"- Load average (1, 5, 15 min) at the start: {', '.join(map(str, machine.get('load_average', [])))}, "
        f"at the end: {', '.join(map(str, machine.get('load_average_end', [])))}, on {machine['cores']} cores: "
        "anything above 1 means other work shared the cores and shows up as noise.",
    ]
    runs = {f"{m}/{b}": r["runs"] for m in names for b, r in models[m]["backends"].items() if "runs" in r}
    short = {k: v for k, v in runs.items() if v < settings["repeat"]}
    if short:
        lines.append("- Fewer runs (time budget): " + ", ".join(f"{k} {v}" for k, v in short.items()) + ".")
    for m in names:
        for b, r in models[m]["backends"].items():
            for note in r.get("notes", []):
                lines.append(f"- {m} / {BACKENDS.get(b, b)}: {note}.")
            if "skipped" in r or "error" in r:
                lines.append(f"- {m} / {BACKENDS.get(b, b)}: {'skipped' if 'skipped' in r else 'failed'}: "
                             f"{(r.get('skipped') or r.get('error')).splitlines()[0]}")
    lines += [f"- {note}" for note in results.get("notes", [])]
    int8_json = Path(__file__).resolve().parent / "int8.json"
    if int8_json.exists():  # written by bench/int8.py, kept when this file is rewritten
        import json

        lines += [""] + int8_lines(json.loads(int8_json.read_text()))
    lines += ["", "## Machine and versions", ""]
    lines += [f"- CPU: {machine['cpu']}, {machine['cores']} cores ({machine['vector']}), "
              f"{machine.get('memory_gib')} GiB, {machine['os']}"]
    lines += ["- " + ", ".join(f"{k} {v}" for k, v in results["versions"].items())]
    lines.append("")
    return "\n".join(_dedupe(lines))


# -- the int8 section (bench/int8.py) -----------------------------------------------------------

INT8_HEADING = "## Quantized models: int8 against float32"


def _int8_weights(row: dict) -> str:
    """The weights cell of the int8 table: float32 -> int8 artifact bytes, then the int8
    artifact's against the quantized model's initializers (all, and the 8-bit ones)."""
    text = f"{row['weights_float32'] / 1e6:.2f} → {row['weights_int8'] / 1e6:.2f} MB ("
    if row.get("initializer_bytes"):
        text += f"{row['weights_int8'] / row['initializer_bytes'] - 1:+.0%} of the quantized model's, "
    return text + f"{row['weights_int8'] / max(row['int8_initializer_bytes'], 1) - 1:+.0%} of its 8-bit ones)"


def int8_lines(results: dict[str, Any]) -> list[str]:
    """The section of RESULTS.md on quantized models, from bench/int8.py's results."""
    machine = results["machine"]
    lines = [INT8_HEADING, "",
             f"Written by `{results['command']}` on {results['date']} ({machine['cpu']}, {machine['cores']} cores; "
             f"load average {', '.join(map(str, machine.get('load_average', [])))} at the start). Each model is built "
             "twice by wasm-build with default settings (SIMD128, no relaxed SIMD; rows saying \"relaxed SIMD\": both "
             "builds with `relaxed-simd = true`): float32, and quantized by "
             "onnxruntime's quantizer (seeded calibration). Both are timed inside wasm (the C driver around "
             f"`NAME_run`, WASI clock) in {results['rounds']} alternating rounds of up to {results['repeat']} runs; "
             "onnxruntime-web (one thread, Node `--no-liftoff`) runs the same two ONNX files in one process after "
             "them. Speed-ups are ratios of medians (above 1: the second is faster). Accuracy: the int8 build "
             "against onnxruntime running the same quantized model.", ""]
    rows = []
    for r in results["rows"]:
        web_int8 = r.get("web_int8_ms")
        rows.append([
            r["model"], r["quantization"], _ms(r["float32_ms"]), _ms(r["int8_ms"]),
            _x(_ratio(r["float32_ms"], r["int8_ms"])),
            _ms(r.get("web_float32_ms")) if r.get("web_float32_ms") else "—",
            _ms(web_int8) if web_int8 else r.get("web_int8_error", "—")[:60].replace("|", "/"),
            _x(_ratio(web_int8, r["int8_ms"])),
            _int8_weights(r),
            r["accuracy"],
        ])
    lines += ["Weights: the bytes each build's artifact carries (the int8 build's against the quantized "
              "model's initializers: int8 weights, int32 biases, float scales; and against its 8-bit ones alone).", ""]
    lines += _table(["model", "quantization", "float32 ms", "int8 ms", "int8 vs float32", "onnxruntime-web float32 ms",
                     "onnxruntime-web int8 ms", "int8 vs onnxruntime-web int8", "weights", "accuracy"], rows,
                    "llrrrrrrll")
    return lines


def with_int8_section(text: str, results: dict[str, Any]) -> str:
    """RESULTS.md with its int8 section replaced (or added before the machine section)."""
    section = "\n".join(int8_lines(results)) + "\n\n"
    start = text.find(INT8_HEADING)
    if start >= 0:
        end = text.find("\n## ", start + len(INT8_HEADING))
        return text[:start] + section + (text[end + 1:] if end >= 0 else "")
    anchor = text.find("## Machine and versions")
    return text + "\n" + section if anchor < 0 else text[:anchor] + section + text[anchor:]


def _span(values: list[float]) -> str:
    low, high = f"{min(values):.0f}", f"{max(values):.0f}"
    return low if low == high else f"{low}-{high}"


def _dedupe(lines: list[str]) -> list[str]:
    """The same skip reason for every model is said once."""
    seen: set[str] = set()
    out = []
    for line in lines:
        key = line.split(": ", 1)[-1] if line.startswith("- ") and (": skipped: " in line) else None
        if key is not None and key in seen:
            continue
        if key is not None:
            seen.add(key)
        out.append(line)
    return out


def _err(result: dict[str, Any] | None) -> str:
    if not result or result.get("max_rel_error") is None:
        return "—"
    return f"{result['max_rel_error']:.1e}"


def write_markdown(results: dict[str, Any], path: Path, chart: Path | None) -> None:
    write_text_atomic(path, render_markdown(results, chart, path))


# -- the chart ---------------------------------------------------------------------------------------


def write_chart(results: dict[str, Any], path: Path) -> str | None:
    """Grouped bars of the medians, log scale. Returns a note instead when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "No chart: matplotlib is not installed (fix: pip install matplotlib)."

    models = results["models"]
    names = list(models)
    present = [b for b in BACKENDS if any("median_ms" in models[m]["backends"].get(b, {}) for m in names)]
    width = 0.8 / max(len(present), 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.9 * len(names) + 3), 5.5), dpi=110)
    for i, backend in enumerate(present):
        xs, ys = [], []
        for j, m in enumerate(names):
            value = _timing(models, m, backend)
            if value is not None:
                xs.append(j + (i - (len(present) - 1) / 2) * width)
                ys.append(value)
        bars = ax.bar(xs, ys, width * 0.95, label=BACKENDS[backend], color=COLORS[backend])
        for bar, value in zip(bars, ys):
            ax.annotate(_ms(value), (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                        fontsize=6.5, rotation=90, xytext=(0, 2), textcoords="offset points")
    ax.set_yscale("log")
    # Say why a bar is missing rather than leave a silent gap.
    for i, backend in enumerate(present):
        for j, m in enumerate(names):
            result = models[m]["backends"].get(backend)
            if result is not None and "median_ms" not in result:
                x = j + (i - (len(present) - 1) / 2) * width
                ax.annotate("skipped" if "skipped" in result else "failed", (x, 0), xycoords=("data", "axes fraction"),
                            xytext=(0, 4), textcoords="offset points", ha="center", va="bottom", rotation=90,
                            fontsize=7, color=COLORS[backend])
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("median ms per run, one thread (log scale, lower is better)")
    ax.set_title(f"wasm-build vs peers — {results['machine']['cpu']}, {results['date']}", fontsize=10)
    ax.grid(axis="y", which="both", alpha=0.3)
    ax.set_axisbelow(True)
    ax.margins(y=0.15)
    ax.legend(fontsize=8, loc="upper left", ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        if os.path.exists(tmp):
            os.unlink(tmp)
    return None
