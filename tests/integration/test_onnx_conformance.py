"""ONNX backend conformance: every test model shipped in the onnx wheel, through wasm-build.

One test per model (ids like ``simple/test_gradient_of_add``): build with
`build()` (smoke test off: the shipped expected outputs are the reference),
run the reactor in wasmtime on the shipped inputs, compare.

Known failures are data, in tests/integration/conformance/expected_failures.txt. A listed
case is xfail(strict) and must fail at the listed stage: a fix shows up as
XPASS (delete the line), a failure that moved to another stage as a plain
failure (update the line).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import REPO
from tests.support import build
from wasm_build.testing.conformance import (
    SUITES,
    ConformanceCase,
    discover,
    read_expected_failures,
    run_case,
)

EXPECTED_FAILURES_FILE = Path(__file__).parent / "conformance" / "expected_failures.txt"
CASES = discover()
EXPECTED_FAILURES = read_expected_failures(EXPECTED_FAILURES_FILE)


class ConformanceFailure(AssertionError):
    """The case failed where expected_failures.txt says it does (the only failure an xfail accepts)."""


def _params():
    for case in CASES:
        expected = EXPECTED_FAILURES.get(case.id)
        marks = [pytest.mark.xfail(raises=ConformanceFailure, strict=True, reason=str(expected))] if expected else []
        yield pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", _params())
def test_onnx_backend_model(case: ConformanceCase, tmp_path: Path) -> None:
    result = run_case(case, tmp_path, build=build)
    if result.passed:
        return
    expected = EXPECTED_FAILURES.get(case.id)
    if expected is not None:
        expected.check_stage(case.id, result.stage, result.summary, str(EXPECTED_FAILURES_FILE.relative_to(REPO)))
    raise ConformanceFailure(f"{case.id} fails at {result.stage}:\n{result.message}")


def test_every_suite_is_found() -> None:
    found = {case.suite for case in CASES}
    assert found == set(SUITES), f"no test models found for {set(SUITES) - found}; is the onnx wheel complete?"


def test_expected_failures_name_real_cases() -> None:
    stale = sorted(set(EXPECTED_FAILURES) - {case.id for case in CASES})
    assert not stale, f"{EXPECTED_FAILURES_FILE.name} lists cases the onnx wheel does not ship: {stale}"


def test_expected_failures_file_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "expected_failures.txt"
    bad.write_text("simple/test_x  linking: typo in the stage\n")
    with pytest.raises(ValueError, match="stage in"):
        read_expected_failures(bad)
    bad.write_text("simple/test_x  frontend: a\nsimple/test_x  compile: b\n")
    with pytest.raises(ValueError, match="listed twice"):
        read_expected_failures(bad)
