"""Comparing a model's outputs with a reference: float32 by the error relative to the output's
scale, integers and booleans exactly."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# Pass when max |got - want| <= RTOL * max |want| for every float output.
RTOL = 1e-3


@dataclass(frozen=True)
class OutputError:
    index: int
    error: float  # floats: max |got - want| / max |want|; ints and bools: max |got - want|
    ok: bool
    problem: str = ""  # a shape, dtype or NaN mismatch, said in words


@dataclass(frozen=True)
class Verdict:
    outputs: tuple[OutputError, ...]
    problem: str = ""  # the output counts differ

    @property
    def ok(self) -> bool:
        return not self.problem and all(o.ok for o in self.outputs)

    @property
    def max_error(self) -> float | None:
        finite = [o.error for o in self.outputs if not o.problem]
        return max(finite) if finite and not self.problem else None

    @property
    def summary(self) -> str:
        if self.problem:
            return self.problem
        bad = [o for o in self.outputs if not o.ok]
        if not bad:
            return f"max error {self.max_error:.2g}"
        worst = max(bad, key=lambda o: o.error)
        return f"output {worst.index}: {worst.problem or f'error {worst.error:.3g} (tolerance {RTOL:g} of its scale)'}"


def compare_outputs(want: Sequence[np.ndarray], got: Sequence[np.ndarray], rtol: float = RTOL) -> Verdict:
    if len(want) != len(got):
        return Verdict((), f"{len(got)} outputs, the reference has {len(want)}")
    return Verdict(tuple(_compare(i, np.asarray(w), np.asarray(g), rtol) for i, (w, g) in enumerate(zip(want, got))))


def _compare(index: int, want: np.ndarray, got: np.ndarray, rtol: float) -> OutputError:
    if want.shape != got.shape:
        return OutputError(index, float("inf"), False, f"shape {list(got.shape)}, the reference's is {list(want.shape)}")
    if want.dtype.kind != got.dtype.kind:
        return OutputError(index, float("inf"), False, f"dtype {got.dtype}, the reference's is {want.dtype}")
    if want.size == 0:
        return OutputError(index, 0.0, True)
    if want.dtype.kind not in "fc":
        error = float(np.abs(got.astype(np.int64) - want.astype(np.int64)).max())
        return OutputError(index, error, error == 0)
    want64, got64 = want.astype(np.float64), got.astype(np.float64)
    # Non-finite values must match exactly (NaN with NaN, an infinity with the same infinity).
    finite = np.isfinite(want64)
    if not np.array_equal(want64[~finite], got64[~finite], equal_nan=True):
        return OutputError(index, float("inf"), False, "non-finite values differ from the reference's")
    scale = float(np.abs(want64[finite]).max()) if finite.any() else 0.0
    difference = np.abs(got64[finite] - want64[finite])
    error = float(difference.max() / (scale or 1.0)) if difference.size else 0.0
    if not np.isfinite(error):
        return OutputError(index, float("inf"), False, "non-finite values where the reference's are finite")
    return OutputError(index, error, error <= rtol)
