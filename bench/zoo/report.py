"""results.json (every field of every row) and RESULTS.md (a summary by failure class, then the table)."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path

from . import speed
from .compare import RTOL, STEP_ALLOWANCE
from .evaluate import TIMED_RUNS, CaseResult
from .libraries import versions
from .models import all_cases
from .triage import CLASSES, classify


def load_rows(path: Path) -> dict[str, CaseResult]:
    """The rows of a results.json; fields this version does not know are ignored."""
    if not path.is_file():
        return {}
    known = {f.name for f in fields(CaseResult)}
    rows = json.loads(path.read_text())["cases"]
    return {row["id"]: CaseResult(**{k: v for k, v in row.items() if k in known}) for row in rows}


def load_sessions(path: Path) -> dict[str, dict]:
    """The --speed sessions a results.json's rows refer to, by their start."""
    if not path.is_file():
        return {}
    return json.loads(path.read_text()).get("speed_sessions", {})


def merge(previous: Mapping[str, CaseResult], new: Mapping[str, CaseResult]) -> list[CaseResult]:
    """Rows in the zoo's order: this run's, else the previous run's; cases gone from the zoo are dropped."""
    merged = []
    for case in all_cases():
        row = new.get(case.id) or previous.get(case.id)
        if row is None:
            continue
        # What the zoo says now, not when the row was measured: its tier, and the triage rules.
        row.fast, row.library, row.task = case.fast, case.model.library, case.model.task
        if not row.passed and row.stage is not None:
            row.failure_class = classify(row.stage, row.message)
        merged.append(row)
    return merged


def write(rows: list[CaseResult], directory: Path, *, command: str, seconds: float,
          sessions: Mapping[str, dict] | None = None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    referenced = {r.speed_session for r in rows}
    meta = {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "versions": versions(),
        "tolerance": RTOL,
        "step_allowance": STEP_ALLOWANCE,
        # Only the sessions rows still refer to: a row measured again drops its old one.
        "speed_sessions": {k: v for k, v in (sessions or {}).items() if k in referenced},
    }
    # One row a line, messages cut to their end (a TVM error can print whole modules): the file is
    # committed and stays small and diffable.
    head = json.dumps(meta, indent=1)[:-2]
    cases = ",\n".join(json.dumps(_compact(asdict(r))) for r in rows)
    (directory / "results.json").write_text(f'{head},\n "cases": [\n{cases}\n ]\n}}\n')
    (directory / "RESULTS.md").write_text(render_markdown(rows, meta))


MESSAGE_CHARS = 1500  # the end of a failure's message: where Python and TVM put the error


def _compact(row: dict) -> dict:
    message = row.get("message") or ""
    if len(message) > MESSAGE_CHARS:
        row["message"] = "..." + message[-MESSAGE_CHARS:]
    return row


def render_markdown(rows: list[CaseResult], meta: Mapping[str, object]) -> str:
    passed = [r for r in rows if r.passed]
    architectures = sorted({r.model for r in rows})
    onnx_rows = [r for r in rows if r.format == "onnx"]
    lines = [
        "# Model zoo: wasm-build against onnxruntime",
        "",
        f"Written by `{meta['command']}` ({meta['generated']}, {meta['machine']}; this run {meta['seconds']} s).",
        "Regenerate with `python bench/zoo/run.py --speed` (every case, timed) — see bench/zoo/README.md.",
        "",
        f"**{len(passed)} of {len(rows)} cases pass** — {len(architectures)} architectures; "
        f"their TorchScript ONNX exports: {sum(r.passed for r in onnx_rows)} of {len(onnx_rows)} pass.",
        "",
        *_speed_summary(rows, meta["speed_sessions"]),  # type: ignore[arg-type]
        "## Failures by class",
        "",
        "| class | cases | example (case, stage: message) |",
        "|---|---:|---|",
    ]
    by_class = {c: [r for r in rows if not r.passed and r.failure_class == c] for c in CLASSES}
    for name, members in by_class.items():
        if members:
            example = members[0]
            lines.append(f"| {name} | {len(members)} | `{example.id}`, {example.stage}: {_cell(example.reason)} |")
    if not any(by_class.values()):
        lines.append("| (none) | 0 | |")
    lines += ["", "Every failing case by class, cases with the same message together (whole messages in results.json):", ""]
    for name, members in by_class.items():
        if not members:
            continue
        lines.append(f"- **{name}**")
        by_reason: dict[tuple[str | None, str], list[CaseResult]] = {}
        for r in members:
            by_reason.setdefault((r.stage, r.reason), []).append(r)
        for (stage, reason), same in by_reason.items():
            cases = ", ".join(f"`{r.id}`" for r in same)
            lines.append(f"  - {stage}: {_cell(reason)} — {cases}")
    lines += [
        "",
        "## Results",
        "",
        f"max error: for float outputs max |wasm − onnxruntime| / max |onnxruntime|, the worst output "
        f"(pass ≤ {meta['tolerance']:g}); integer and bool outputs must match exactly; an `@int8` row's quantized "
        f"outputs in quantization steps (the `N steps` in the cell) from the nearer of onnxruntime's two runs of "
        f"the quantized model, optimized and literal (node by node); pass within the two runs' own spread (`/ "
        f"onnxruntime ±N`), at least {meta.get('step_allowance', STEP_ALLOWANCE):g} step. compile s: the whole "
        f"wasm-build (frontend, compile, codegen, link), uncached. run ms: median of {TIMED_RUNS} calls of "
        "`WasmModel.run` from Python in wasmtime (copies in and out and the Python-to-wasm call included), one "
        "thread. The speed columns, from `--speed` runs (one thread each, steady state; see the speed section): "
        "wasm ms, the median of `NAME_run` timed inside the module; onnxruntime-web ms, the median of "
        "onnxruntime-web on the model's TorchScript ONNX export — the same time on the `@dynamo` and `@pt2` rows; "
        "web / wasm, their ratio (above 1: wasm-build is faster). A cell that says `error` holds why there is "
        "no time (whole in results.json). Formats: `onnx` TorchScript exporter (opset 17), `@dynamo` the "
        "dynamo exporter (opset 18), `@pt2` torch.export, `@int8` the TorchScript export quantized by onnxruntime "
        "(QDQ, uint8 activations, int8 weights); `fast` models are the CI tier (tests/integration/test_zoo.py).",
        "",
        "| model | format | library | op families | status | max error | compile s | run ms | wasm ms "
        "| onnxruntime-web ms | web / wasm | reason |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        name = f"{r.model} (fast)" if r.fast and r.format in ("onnx", "int8") else r.model
        status = "pass" if r.passed else f"FAIL ({r.stage})"
        lines.append(
            f"| {name} | {r.format} | {r.library} | {' '.join(r.op_families)} | {status} | {_error(r)} "
            f"| {_number(r.compile_s, '.1f')} | {_ms(r.run_ms)} "
            f"| {_timed(r.wasm_ms, r.wasm_timing_error)} | {_timed(r.onnxruntime_web_ms, r.onnxruntime_web_error)} "
            f"| {_number(r.speed_ratio, '.2f')} | {_cell(r.reason)} |"
        )
    lines += ["", "## Versions", "", *[f"- {name} {version}" for name, version in meta["versions"].items()], ""]  # type: ignore[union-attr]
    lines += ["Model libraries are pinned in bench/zoo/requirements.txt.", ""]
    return "\n".join(lines)


def _speed_summary(rows: list[CaseResult], sessions: Mapping[str, dict]) -> list[str]:
    """The speed section: over models (each model's TorchScript ONNX row, the graph onnxruntime-web
    ran), the geometric mean of onnxruntime-web ms / wasm ms, the worst models, those slower."""
    if not sessions:
        return []
    lines = ["## Speed: wasm-build against onnxruntime-web", ""]
    timed = sorted((r for r in rows if r.format == "onnx" and r.speed_ratio is not None), key=lambda r: r.speed_ratio)
    if timed:
        slower = [r for r in timed if r.speed_ratio < 1]
        every = [r.speed_ratio for r in rows if r.speed_ratio is not None]
        # The one-operator nets run in microseconds, where onnxruntime-web's cost per call dominates.
        architectures = [r.speed_ratio for r in timed if r.task != "ops"]
        lines += [
            f"onnxruntime-web ms / wasm-build ms over **{len(timed)} models** (each model's TorchScript ONNX row; "
            f"above 1: wasm-build is faster): geometric mean **{speed.geometric_mean(r.speed_ratio for r in timed):.2f}**; "
            f"**{len(timed) - len(slower)} of {len(timed)}** models at least as fast as onnxruntime-web.",
            "",
            f"- without the one-operator nets (`ops_*`, microseconds a run): {len(architectures)} models, geometric "
            f"mean {_geomean(architectures)}",
            f"- every timed row (each format against the model's TorchScript export in onnxruntime-web): "
            f"{len(every)} rows, geometric mean {_geomean(every)}",
            f"- worst: {_ratios(timed[:3])}",
            f"- slower than onnxruntime-web ({len(slower)}): {_ratios(slower) or 'none'}",
        ]
    quantized = sorted((r for r in rows if r.format == "int8" and r.speed_ratio is not None), key=lambda r: r.speed_ratio)
    if quantized:
        slower = [r for r in quantized if r.speed_ratio < 1]
        lines.append(
            f"- the quantized builds (`@int8`: onnxruntime's QDQ model, against onnxruntime-web's float32 run of the "
            f"TorchScript export): {len(quantized)} rows, geometric mean {_geomean([r.speed_ratio for r in quantized])}; "
            f"worst: {_ratios(quantized[:3])}; slower ({len(slower)}): {_ratios(slower) or 'none'}"
        )
    lines += _int8_against_float32(rows)
    untimed = [r for r in rows if r.passed and r.speed_session and r.speed_ratio is None]
    for r in untimed:
        lines.append(f"- `{r.id}` has no ratio: {_cell(r.wasm_timing_error or r.onnxruntime_web_error or 'not timed')}")
    lines += [
        "",
        f"Method: wasm-build, `NAME_run` timed inside the module in wasmtime (bench/wasm_timing.py: the model's "
        f"`libNAME.a` linked with a C loop reading the WASI monotonic clock around each call; no Python in the "
        f"times); onnxruntime-web, its wasm backend on one thread in Node (`node --no-liftoff`: V8's optimizing "
        f"tier from the first call, the steady state; bench/peers.py), all models in one Node process after every "
        f"case ran. Both: the inputs of the comparison, {speed.WARMUP_RUNS} warm-up runs, then the median of up "
        f"to {speed.TIMED_RUNS} runs (fewer after {speed.MAX_SECONDS:g} s, never fewer than 3).",
        "",
        f"Measured in {'one session' if len(sessions) == 1 else f'{len(sessions)} sessions'}, on a machine "
        "shared with other jobs (load averages: 1, 5, 15 minutes):",
        "",
    ]
    for started, s in sorted(sessions.items()):
        lines.append(
            f"- {started}: `{s['command']}`; {s['cpu']}, {s['cores']} cores; load {_load(s['load_start'])} at the start, "
            f"{_load(s['load_web'])} when onnxruntime-web started, {_load(s['load_end'])} at the end; "
            f"Node {s['node'] or '-'}, onnxruntime-web {s['onnxruntime_web'] or '-'}"
        )
    return [*lines, ""]


def _int8_against_float32(rows: list[CaseResult]) -> list[str]:
    """A line comparing each model's quantized build with its float32 one, both timed inside
    wasmtime (float32 ms / int8 ms): quantizing should never make a model slower (issue 19)."""
    float32 = {r.model: r for r in rows if r.format == "onnx" and r.wasm_ms}
    pairs = sorted(((float32[r.model].wasm_ms / r.wasm_ms, r) for r in rows if r.format == "int8" and r.wasm_ms and r.model in float32),
                   key=lambda pair: pair[0])
    if not pairs:
        return []
    slower = [pair for pair in pairs if pair[0] < 1]
    architectures = [ratio for ratio, r in pairs if r.task != "ops"]
    worst = ", ".join(f"`{r.model}` {ratio:.2f} ({_ms(float32[r.model].wasm_ms)} / {_ms(r.wasm_ms)} ms)" for ratio, r in pairs[:3])
    return [
        f"- the quantized builds against the float32 builds of the same models (float32 ms / int8 ms, both inside "
        f"wasmtime): {len(pairs)} models, geometric mean {_geomean([ratio for ratio, _ in pairs])} (without the "
        f"one-operator nets: {len(architectures)}, {_geomean(architectures)}); int8 slower on {len(slower)}; "
        f"slowest: {worst}"
    ]


def _geomean(ratios: list[float]) -> str:
    return f"{speed.geometric_mean(ratios):.2f}" if ratios else "-"


def _ratios(rows: list[CaseResult]) -> str:
    return ", ".join(f"`{r.model}` {r.speed_ratio:.2f} ({_ms(r.onnxruntime_web_ms)} / {_ms(r.wasm_ms)} ms)" for r in rows)


def _ms(value: float | None) -> str:
    """Milliseconds to three significant digits below 1 ms (the one-operator nets run in microseconds)."""
    if value is None:
        return ""
    return f"{value:.2f}" if value >= 1 else f"{value:.3g}"


def _load(values: list[float]) -> str:
    return " ".join(f"{v:.2f}" for v in values) if values else "-"


def _timed(value: float | None, error: str) -> str:
    if value is not None:
        return _ms(value)
    return f"error: {_cell(error)[:80]}" if error else ""


def _error(row: CaseResult) -> str:
    """The max error, and for an @int8 row the worst quantized output's steps and the spread
    between onnxruntime's two runs."""
    steps = "" if row.max_steps is None else f"{row.max_steps:.3g} steps"
    spread = "" if row.reference_spread is None else f"onnxruntime ±{row.reference_spread:.3g}"
    return " / ".join(text for text in (_number(row.max_error, ".1e"), steps, spread) if text)


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:220]

