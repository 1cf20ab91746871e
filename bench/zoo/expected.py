"""bench/zoo/expected_failures.txt: the fast tier's cases that fail today, and where.

One line per case, `case_id  stage: reason`; `#` starts a comment. tests/integration/test_zoo.py marks a
listed case xfail(strict): a fix shows up as XPASS (delete the line), a failure that moved to
another stage as a plain failure (update the line).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PATH = Path(__file__).with_name("expected_failures.txt")
STAGES = ("export", "frontend", "compile", "codegen", "link", "run", "numerics")


@dataclass(frozen=True)
class ExpectedFailure:
    stage: str
    reason: str

    def __str__(self) -> str:
        return f"{self.stage}: {self.reason}"


def read_expected_failures(path: Path = PATH) -> dict[str, ExpectedFailure]:
    failures: dict[str, ExpectedFailure] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        case_id, _, text = line.partition(" ")
        stage, colon, reason = text.strip().partition(":")
        if not colon or stage not in STAGES or not reason.strip():
            raise ValueError(f"{path}:{number}: expected 'case_id  stage: reason' with stage in {STAGES}, got {line!r}")
        if case_id in failures:
            raise ValueError(f"{path}:{number}: {case_id} is listed twice")
        failures[case_id] = ExpectedFailure(stage, reason.strip())
    return failures
