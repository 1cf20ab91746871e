"""Build, compile, run and compare every model of the zoo; write the results table.

    python bench/zoo/run.py                      # every case (about 25 minutes here)
    python bench/zoo/run.py --fast               # the CI tier
    python bench/zoo/run.py --models bert unet resnet18@pt2
    python bench/zoo/run.py --list               # the cases, their formats and tiers
    python bench/zoo/run.py --speed              # and time each passing case in wasm and onnxruntime-web

Each case (a model in one format) runs in its own process with a timeout, one at a time: a crash
or a hang is that case's row, and the rest go on. Exports are cached under bench/out/zoo/exports
(keyed by the entry's definition and the libraries' versions); builds are never cached, so the
compile times are real. Rows of cases not run this time are kept from the previous results.json,
so a partial run updates the table; --fresh starts from an empty one.

--speed (speed.py) times every passing case inside its module, in its worker, and once every case has
run, the models' TorchScript ONNX exports in onnxruntime-web, in one Node process.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# `python bench/zoo/run.py` from anywhere, with this checkout's wasm_build (src/), not an installed one.
for _path in (REPO, REPO / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench.zoo import report  # noqa: E402
from bench.zoo.evaluate import CaseResult  # noqa: E402
from bench.zoo.export import ExportCache, ExportError  # noqa: E402
from bench.zoo.models import select  # noqa: E402
from bench.zoo.spec import Case  # noqa: E402
from bench.zoo.speed import (  # noqa: E402
    Session,
    WebJob,
    graph_inputs,
    load_average,
    ratio,
    time_onnxruntime_web,
)


def log(message: str) -> None:
    print(f"zoo: {message}", file=sys.stderr, flush=True)


def run_case(case: Case, out: Path, timeout: float, speed: bool = False) -> CaseResult:
    """The case in a child process; a timeout or a crash becomes the row's failure."""
    with tempfile.TemporaryDirectory(prefix=f"zoo-{case.c_name}-") as scratch:
        result_file = Path(scratch) / "result.json"
        command = [sys.executable, "-m", "bench.zoo.worker", case.id, "--work", str(Path(scratch) / "work"),
                   "--exports", str(out / "exports"), "--result", str(result_file), *(["--speed"] if speed else [])]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
        log_file = out / "logs" / f"{case.c_name}.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("w") as output:
            # A session of its own: on a timeout the whole process group goes, compilers included.
            child = subprocess.Popen(command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                code = child.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(child.pid, signal.SIGKILL)
                child.wait()
                return CaseResult.for_case(case).fail("timeout", f"no result after {timeout:.0f} s (log: {_relative(log_file)})")
        if result_file.is_file():
            return CaseResult(**json.loads(result_file.read_text()))
        last = _last_line(log_file.read_text(errors="replace"))
        return CaseResult.for_case(case).fail("crash", f"worker exited with {code}: {last}", log_file.read_text(errors="replace"))


def time_web(cases: list[Case], rows: dict[str, CaseResult], out: Path, session: Session) -> None:
    """onnxruntime-web on the TorchScript ONNX export of every model with a passing case, one Node
    process for all; each of the model's passing rows gets that time and its ratio to its own."""
    exports = ExportCache(out / "exports")
    jobs: dict[str, WebJob] = {}
    for case in cases:
        model = case.model
        if not rows[case.id].passed or model.name in jobs:
            continue
        try:
            path = exports.export(Case(model, "onnx")).path  # cached: the worker compared against it
        except ExportError as exc:
            rows[case.id].onnxruntime_web_error = f"no TorchScript ONNX export: {str(exc).splitlines()[0]}"
            continue
        jobs[model.name] = WebJob(model.name, path, graph_inputs(path, model.sample_inputs()))
    if not jobs:
        return
    log(f"onnxruntime-web: {len(jobs)} models in one Node process")
    session.load_web = load_average()
    timings, info = time_onnxruntime_web(list(jobs.values()), out / "node")
    session.load_end = load_average()
    session.node, session.onnxruntime_web = info.get("node", ""), info.get("onnxruntime_web", "")
    for case in cases:
        row, web = rows[case.id], timings.get(case.model.name)
        if web is None or not row.passed:
            continue
        row.onnxruntime_web_ms = None if web.median_ms is None else round(web.median_ms, 6)
        row.onnxruntime_web_runs, row.onnxruntime_web_error = web.runs or None, web.error
        speedup = ratio(row.onnxruntime_web_ms, row.wasm_ms)
        row.speed_ratio = None if speedup is None else round(speedup, 4)
        web_text = f"{row.onnxruntime_web_ms} ms" if web.error == "" else f"error: {web.error}"
        log(f"{case.id}: wasm {row.wasm_ms} ms, onnxruntime-web {web_text}, ratio {row.speed_ratio}"[:200])


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _relative(path: Path) -> str:
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/zoo/run.py", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fast", action="store_true", help="only the CI tier (each fast model's ONNX case, and a few @int8 cases)")
    parser.add_argument("--models", nargs="+", metavar="NAME", help="models (every format) or cases (NAME@dynamo, NAME@pt2, NAME@int8)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case before it counts as hung (default 900)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "zoo", help="exports and logs (default bench/out/zoo)")
    parser.add_argument("--results", type=Path, default=HERE, help="where RESULTS.md and results.json go (default bench/zoo)")
    parser.add_argument("--fresh", action="store_true", help="drop the previous results instead of updating them")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--speed", action="store_true",
                        help="also time each passing case inside its module and in onnxruntime-web (speed.py)")
    args = parser.parse_args(argv)

    try:
        cases = select(args.models, fast=args.fast)
    except KeyError as exc:
        parser.error(exc.args[0])
    if args.list:
        for case in cases:
            print(f"{case.id:<32} {case.model.library:<13} {case.model.task:<9} {'fast' if case.fast else ''}")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.results / "results.json"
    previous = {} if args.fresh else report.load_rows(json_path)
    sessions: dict[str, dict[str, Any]] = {} if args.fresh else report.load_sessions(json_path)
    command = ("python bench/zoo/run.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    session = Session.begin(command) if args.speed else None
    started = time.time()
    rows: dict[str, CaseResult] = {}

    def write() -> None:
        if session is not None:
            sessions[session.started] = asdict(session)
        report.write(report.merge(previous, rows), args.results, command=command, seconds=time.time() - started,
                     sessions=sessions)

    for number, case in enumerate(cases, 1):
        start = time.perf_counter()
        row = run_case(case, args.out, args.timeout, speed=args.speed)
        rows[case.id] = row
        if session is not None and row.passed:
            row.speed_session = session.started
        outcome = "pass" if row.passed else f"FAIL [{row.stage}] {row.reason[:120]}"
        timed = f", {row.wasm_ms} ms a run in wasm" if row.wasm_ms is not None else ""
        log(f"[{number}/{len(cases)}] {case.id}: {outcome} ({time.perf_counter() - start:.1f} s{timed})")
        write()  # after every case: an interrupted run keeps what it measured
    if session is not None:
        time_web(cases, rows, args.out, session)
        write()
    passed = sum(row.passed for row in rows.values())
    log(f"{passed} of {len(rows)} cases pass; wrote {_relative(args.results / 'RESULTS.md')} and {_relative(json_path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
