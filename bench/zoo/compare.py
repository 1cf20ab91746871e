"""Comparing a model's outputs with a reference: float32 by the error relative to the output's
scale, integers and booleans exactly, and a quantized model's dequantized outputs in quantization
steps (quantize.py: two correct integer implementations may round a value a step apart)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from wasm_build.wasm.steps import MAX_STEPS

# Pass when max |got - want| <= RTOL * max |want| for every float output.
RTOL = 1e-3
# A quantized output passes when max |got - want| <= STEP_ALLOWANCE * its step: the most two correct
# integer implementations differ by (`MAX_STEPS`) plus a float32 rounding of the dequantized value,
# the allowance of tests/integration/test_int8.py and of the smoke test.
STEP_ALLOWANCE = MAX_STEPS + 1e-3


@dataclass(frozen=True)
class OutputError:
    index: int
    error: float  # floats: max |got - want| / max |want|; ints and bools: max |got - want|
    ok: bool
    problem: str = ""  # a shape, dtype or NaN mismatch, said in words
    steps: float | None = None  # a quantized output: max |got - want| in its quantization steps


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
    def max_steps(self) -> float | None:
        """The worst quantized output's difference, in quantization steps."""
        steps = [o.steps for o in self.outputs if o.steps is not None]
        return max(steps) if steps and not self.problem else None

    @property
    def summary(self) -> str:
        if self.problem:
            return self.problem
        bad = [o for o in self.outputs if not o.ok]
        if not bad:
            return f"max error {self.max_error:.2g}"
        worst = max(bad, key=lambda o: o.error if o.steps is None else o.steps)
        return f"output {worst.index}: {worst.problem or _excess(worst)}"


def _excess(output: OutputError) -> str:
    if output.steps is not None:
        return f"{output.steps:.3g} quantization steps (allowance {STEP_ALLOWANCE:g})"
    return f"error {output.error:.3g} (tolerance {RTOL:g} of its scale)"


def compare_outputs(want: Sequence[np.ndarray], got: Sequence[np.ndarray], rtol: float = RTOL,
                    steps: Sequence[float | None] = ()) -> Verdict:
    """`steps`: each output's quantization step (None: not quantized), for a quantized model."""
    if len(want) != len(got):
        return Verdict((), f"{len(got)} outputs, the reference has {len(want)}")
    steps = list(steps) + [None] * (len(want) - len(steps))
    return Verdict(tuple(_compare(i, np.asarray(w), np.asarray(g), rtol, step)
                         for i, (w, g, step) in enumerate(zip(want, got, steps))))


def _compare(index: int, want: np.ndarray, got: np.ndarray, rtol: float, step: float | None = None) -> OutputError:
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
    if step is not None and want.dtype.kind == "f":
        steps = float(difference.max() / step) if difference.size else 0.0
        return OutputError(index, error, steps <= STEP_ALLOWANCE, steps=steps)
    return OutputError(index, error, error <= rtol)
