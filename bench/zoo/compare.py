"""Comparing a model's outputs with a reference: float32 by the error relative to the output's
scale, integers and booleans exactly, and a quantized model's dequantized outputs in quantization
steps (quantize.py: two correct integer implementations may round a value a step apart).

A quantized model has two references (`compare_quantized`): onnxruntime's optimized run (QDQ
fused into its integer kernels) and its literal run (each DequantizeLinear, float operator and
QuantizeLinear as written). Both are correct; where a value falls halfway between two steps they
round it apart, and a deep net carries such a step through its layers (17 steps at DenseNet's
logits). How far onnxruntime's two runs are from each other is the model's own spread: wasm-build
passes within that spread (at least `STEP_ALLOWANCE`) of the nearer of the two."""

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
    spread: float | None = None  # a quantized model: how far onnxruntime's two runs are apart (steps or error)


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
    def max_spread(self) -> float | None:
        """A quantized model: the widest spread between onnxruntime's two runs, in steps where
        the output is quantized."""
        spreads = [o.spread for o in self.outputs if o.spread is not None]
        return max(spreads) if spreads and not self.problem else None

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
    spread = "" if output.spread is None else f", onnxruntime's two runs {output.spread:.3g} apart"
    if output.steps is not None:
        return f"{output.steps:.3g} quantization steps (allowance {STEP_ALLOWANCE:g}{spread})"
    return f"error {output.error:.3g} (tolerance {RTOL:g} of its scale{spread})"


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


def compare_quantized(optimized: Sequence[np.ndarray], literal: Sequence[np.ndarray], got: Sequence[np.ndarray],
                      steps: Sequence[float | None] = ()) -> Verdict:
    """A quantized model's outputs against onnxruntime's optimized and literal runs: each output
    passes within the two runs' own spread (at least `STEP_ALLOWANCE` steps, or `RTOL` for an
    output that is not quantized) of the nearer run."""
    if not (len(optimized) == len(literal) == len(got)):
        return Verdict((), f"{len(got)} outputs, the reference has {len(optimized)}")
    steps = list(steps) + [None] * (len(got) - len(steps))
    outputs = []
    for i, (fused, plain, have, step) in enumerate(zip(optimized, literal, got, steps)):
        fused, plain, have = np.asarray(fused), np.asarray(plain), np.asarray(have)
        spread = _compare(i, fused, plain, RTOL, step)
        if spread.problem or fused.dtype.kind not in "fc":
            outputs.append(_compare(i, fused, have, RTOL, step))
            continue
        nearer = min((_compare(i, ref, have, RTOL, step) for ref in (fused, plain)), key=_distance)
        if nearer.problem:
            outputs.append(nearer)
            continue
        allowance = max(STEP_ALLOWANCE if step is not None else RTOL, _distance(spread) * (1 + 1e-6))
        outputs.append(OutputError(i, nearer.error, _distance(nearer) <= allowance, steps=nearer.steps,
                                   spread=_distance(spread)))
    return Verdict(tuple(outputs))


def _distance(output: OutputError) -> float:
    """An output's difference in its unit: steps where quantized, else the relative error."""
    if output.problem:
        return float("inf")
    return output.steps if output.steps is not None else output.error

