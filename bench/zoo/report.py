"""results.json (every field of every row) and RESULTS.md (a summary by failure class, then the table)."""

from __future__ import annotations

import json
import platform
from collections.abc import Mapping
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path

from .compare import RTOL
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


def merge(previous: Mapping[str, CaseResult], new: Mapping[str, CaseResult]) -> list[CaseResult]:
    """Rows in the zoo's order: this run's, else the previous run's; cases gone from the zoo are dropped."""
    merged = []
    for case in all_cases():
        row = new.get(case.id) or previous.get(case.id)
        if row is None:
            continue
        # What the zoo says now, not when the row was measured: its tier, and the triage rules.
        row.fast, row.library, row.task = case.model.fast, case.model.library, case.model.task
        if not row.passed and row.stage is not None:
            row.failure_class = classify(row.stage, row.message)
        merged.append(row)
    return merged


def write(rows: list[CaseResult], directory: Path, *, command: str, seconds: float) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "seconds": round(seconds, 1),
        "machine": f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}",
        "versions": versions(),
        "tolerance": RTOL,
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
        "Regenerate with `python bench/zoo/run.py` (every case) — see bench/zoo/README.md.",
        "",
        f"**{len(passed)} of {len(rows)} cases pass** — {len(architectures)} architectures; "
        f"their TorchScript ONNX exports: {sum(r.passed for r in onnx_rows)} of {len(onnx_rows)} pass.",
        "",
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
        f"(pass ≤ {meta['tolerance']:g}); integer and bool outputs must match exactly. compile s: the whole "
        f"wasm-build (frontend, compile, codegen, link), uncached. run ms: median of {TIMED_RUNS} calls of "
        "`WasmModel.run` from Python in wasmtime (copies in and out included), one thread. onnxruntime-web ms: "
        "left for the onnxruntime-web harness. Formats: `onnx` TorchScript exporter (opset 17), `@dynamo` the "
        "dynamo exporter (opset 18), `@pt2` torch.export; `fast` models are the CI tier (tests/integration/test_zoo.py).",
        "",
        "| model | format | library | op families | status | max error | compile s | run ms | onnxruntime-web ms | reason |",
        "|---|---|---|---|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        name = f"{r.model} (fast)" if r.fast and r.format == "onnx" else r.model
        status = "pass" if r.passed else f"FAIL ({r.stage})"
        lines.append(
            f"| {name} | {r.format} | {r.library} | {' '.join(r.op_families)} | {status} | {_number(r.max_error, '.1e')} "
            f"| {_number(r.compile_s, '.1f')} | {_number(r.run_ms, '.2f')} | {_number(r.onnxruntime_web_ms, '.2f')} "
            f"| {_cell(r.reason)} |"
        )
    lines += ["", "## Versions", "", *[f"- {name} {version}" for name, version in meta["versions"].items()], ""]  # type: ignore[union-attr]
    lines += ["Model libraries are pinned in bench/zoo/requirements.txt.", ""]
    return "\n".join(lines)


def _number(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:220]

