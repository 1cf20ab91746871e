"""Run the ONNX backend test models through wasm-build and report per suite.

    python bench/conformance_report.py              # all 140, writes tests/integration/conformance/RESULTS.md
    python bench/conformance_report.py -k PReLU     # only cases whose id contains "PReLU", no RESULTS.md

Prints passed/failed per suite, every failure with its stage and reason (the
reason from tests/integration/conformance/expected_failures.txt when listed, the error's
first line otherwise), cases whose status disagrees with that list, and where
the time went per stage. Exits non-zero when the results disagree with the list.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # this checkout's wasm_build, not an installed copy

from wasm_build.artifact.files import write_text_atomic  # noqa: E402
from wasm_build.testing.conformance import ATOL, RTOL, SUITES, CaseResult, discover, read_expected_failures, run_case  # noqa: E402

EXPECTED_FAILURES = ROOT / "tests" / "integration" / "conformance" / "expected_failures.txt"
RESULTS = ROOT / "tests" / "integration" / "conformance" / "RESULTS.md"
TIMED_STAGES = ("frontend", "compile", "codegen", "link", "load", "run")


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (clang, wasm-ld): insensitive to machine load."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _status(result: CaseResult, expected) -> str:
    if result.passed:
        return "pass" if expected is None else "NOW PASSES (remove from expected_failures.txt)"
    if expected is None:
        return "NEW FAILURE"
    if expected.stage != result.stage:
        return f"MOVED (listed at {expected.stage})"
    return "expected"


def render(results: list[CaseResult], expected_failures, wall: float, cpu: float) -> str:
    by_suite: dict[str, list[CaseResult]] = defaultdict(list)
    for result in results:
        by_suite[result.case.suite].append(result)
    lines = ["# ONNX backend conformance of wasm-build", ""]
    lines += [
        "Test models shipped in the `onnx` wheel (`onnx/backend/test/data`), each built with wasm-build,",
        "run in wasmtime on `test_data_set_0` and compared with its expected outputs",
        f"(rtol {RTOL:g}, atol {ATOL:g}). Regenerate with `python bench/conformance_report.py`.",
        "",
        "| suite | cases | passed | failed |",
        "|---|---:|---:|---:|",
    ]
    total = Counter()
    for suite in [s for s in SUITES if s in by_suite]:
        group = by_suite[suite]
        passed = sum(r.passed for r in group)
        total.update(cases=len(group), passed=passed)
        lines.append(f"| {suite} | {len(group)} | {passed} | {len(group) - passed} |")
    lines.append(f"| **all** | {total['cases']} | {total['passed']} | {total['cases'] - total['passed']} |")

    failures = [r for r in results if not r.passed or r.case.id in expected_failures]
    if failures:
        lines += ["", "## Failures", "", "| case | stage | reason | status |", "|---|---|---|---|"]
        for r in failures:
            expected = expected_failures.get(r.case.id)
            reason = expected.reason if expected and expected.stage == r.stage else r.summary
            reason = reason.replace("|", "\\|")
            lines.append(f"| `{r.case.id}` | {r.stage or '-'} | {reason} | {_status(r, expected)} |")

    stage_time = Counter()
    for r in results:
        stage_time.update({k: v for k, v in r.timings.items() if k in TIMED_STAGES})
    lines += [
        "",
        "## Time",
        "",
        f"{len(results)} cases in {wall:.0f} s wall clock, {cpu:.0f} s CPU (this process and its clang/wasm-ld children).",
        "",
        "| stage | seconds |",
        "|---|---:|",
        *(f"| {stage} | {stage_time[stage]:.1f} |" for stage in TIMED_STAGES),
        "",
        "`load` is instantiating the reactor in wasmtime (module compilation), `link` compiles the",
        "generated executor and the runtime shim with clang, archives, and links the reactor.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-k", dest="pattern", help="only cases whose id contains this text (RESULTS.md is not written)")
    parser.add_argument("--output", type=Path, default=RESULTS, help=f"Markdown report (default: {RESULTS.relative_to(ROOT)})")
    args = parser.parse_args(argv)

    expected_failures = read_expected_failures(EXPECTED_FAILURES)
    cases = [c for c in discover() if not args.pattern or args.pattern in c.id]
    results = []
    start, cpu_start = time.perf_counter(), _cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="wasm-build-conformance-") as tmp:
        for number, case in enumerate(cases, 1):
            result = run_case(case, Path(tmp) / case.name)
            results.append(result)
            status = _status(result, expected_failures.get(case.id))
            print(f"[{number:3}/{len(cases)}] {case.id:<62} {result.stage or 'pass':<9} {status if status != 'pass' else ''}", flush=True)
    wall, cpu = time.perf_counter() - start, _cpu_seconds() - cpu_start

    report = render(results, expected_failures, wall, cpu)
    print()
    print(report)
    if not args.pattern:
        write_text_atomic(args.output, report)
        print(f"wrote {args.output}")
    disagreements = [r for r in results if _status(r, expected_failures.get(r.case.id)) not in ("pass", "expected")]
    return 1 if disagreements else 0


if __name__ == "__main__":
    sys.exit(main())
