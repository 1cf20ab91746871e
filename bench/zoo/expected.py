"""bench/zoo/expected_failures.txt: the fast tier's cases that fail today, and where.

One line per case, `case_id  stage: reason`; `#` starts a comment. tests/integration/test_zoo.py marks a
listed case xfail(strict): a fix shows up as XPASS (delete the line), a failure that moved to
another stage as a plain failure (update the line).
"""

from __future__ import annotations

from pathlib import Path

from wasm_build.testing.conformance import ExpectedFailure
from wasm_build.testing.conformance import (
    read_expected_failures as read_conformance_format,
)

PATH = Path(__file__).with_name("expected_failures.txt")
STAGES = ("export", "frontend", "compile", "codegen", "link", "run", "numerics")


def read_expected_failures(path: Path = PATH) -> dict[str, ExpectedFailure]:
    """The listed cases, by case id (the conformance suite's format, with an export stage)."""
    return read_conformance_format(path, STAGES)
