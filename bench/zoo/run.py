"""Build, compile, run and compare every model of the zoo; write the results table.

    python bench/zoo/run.py                      # every case (about 25 minutes here)
    python bench/zoo/run.py --fast               # the CI tier
    python bench/zoo/run.py --models bert unet resnet18@pt2
    python bench/zoo/run.py --list               # the cases, their formats and tiers

Each case (a model in one format) runs in its own process with a timeout, one at a time: a crash
or a hang is that case's row, and the rest go on. Exports are cached under bench/out/zoo/exports
(keyed by the entry's definition and the libraries' versions); builds are never cached, so the
compile times are real. Rows of cases not run this time are kept from the previous results.json,
so a partial run updates the table; --fresh starts from an empty one.
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

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# `python bench/zoo/run.py` from anywhere, with this checkout's wasm_build (src/), not an installed one.
for _path in (REPO, REPO / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from bench.zoo import report  # noqa: E402
from bench.zoo.evaluate import CaseResult  # noqa: E402
from bench.zoo.models import select  # noqa: E402
from bench.zoo.spec import Case  # noqa: E402


def log(message: str) -> None:
    print(f"zoo: {message}", file=sys.stderr, flush=True)


def run_case(case: Case, out: Path, timeout: float) -> CaseResult:
    """The case in a child process; a timeout or a crash becomes the row's failure."""
    with tempfile.TemporaryDirectory(prefix=f"zoo-{case.c_name}-") as scratch:
        result_file = Path(scratch) / "result.json"
        command = [sys.executable, "-m", "bench.zoo.worker", case.id, "--work", str(Path(scratch) / "work"),
                   "--exports", str(out / "exports"), "--result", str(result_file)]
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
    parser.add_argument("--fast", action="store_true", help="only the CI tier (each fast model's ONNX case)")
    parser.add_argument("--models", nargs="+", metavar="NAME", help="models (every format) or cases (NAME@dynamo, NAME@pt2)")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per case before it counts as hung (default 900)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "out" / "zoo", help="exports and logs (default bench/out/zoo)")
    parser.add_argument("--results", type=Path, default=HERE, help="where RESULTS.md and results.json go (default bench/zoo)")
    parser.add_argument("--fresh", action="store_true", help="drop the previous results instead of updating them")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)

    try:
        cases = select(args.models, fast=args.fast)
    except KeyError as exc:
        parser.error(exc.args[0])
    if args.list:
        for case in cases:
            print(f"{case.id:<32} {case.model.library:<13} {case.model.task:<9} {'fast' if case.model.fast else ''}")
        return 0

    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.results / "results.json"
    previous = {} if args.fresh else report.load_rows(json_path)
    command = ("python bench/zoo/run.py " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    started = time.time()
    rows: dict[str, CaseResult] = {}
    for number, case in enumerate(cases, 1):
        start = time.perf_counter()
        row = run_case(case, args.out, args.timeout)
        rows[case.id] = row
        outcome = "pass" if row.passed else f"FAIL [{row.stage}] {row.reason[:120]}"
        log(f"[{number}/{len(cases)}] {case.id}: {outcome} ({time.perf_counter() - start:.1f} s)")
        # After every case: an interrupted run keeps what it measured.
        report.write(report.merge(previous, rows), args.results, command=command, seconds=time.time() - started)
    passed = sum(row.passed for row in rows.values())
    log(f"{passed} of {len(rows)} cases pass; wrote {_relative(args.results / 'RESULTS.md')} and {_relative(json_path)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
