"""Smoke test: run the reactor in wasmtime and compare with native references.

References: the same Relax module compiled for the host CPU by TVM's own
pipeline and run by its VM, and, for ONNX models, onnxruntime. Inputs are
seeded random values, so a failure is reproducible. A model with symbolic
dimensions runs at their lower bounds, at their upper bounds and in between.

A quantized model's outputs are compared in quantization steps. onnxruntime runs
such a model two correct ways, optimized (QDQ fused into its integer kernels) and
literally (each DequantizeLinear, float operator and QuantizeLinear as written);
where a value lies halfway between two steps they round it apart, and a deep net
carries that through its layers (ViT-Tiny: 14 steps between onnxruntime's two
runs). The artifact passes within one step, or within that spread, of the nearer
run.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..compiler.input_values import ValueRange
from ..compiler.reference import NativeReference
from ..errors import SmokeTestError
from .host import WasmModel
from .inputs import random_array
from .onnxruntime_reference import reference_session
from .steps import MAX_STEPS, is_quantized, output_steps, quantizes_at_run_time, run_time_steps

SEED = 20240613


def random_inputs(
    signatures: list[tuple[str, tuple[int, ...], str]], seed: int = SEED, values: Sequence[ValueRange | None] = ()
) -> list[np.ndarray]:
    """One array per (name, shape, dtype); `values`: the range of each input that indexes a table."""
    rng = np.random.default_rng(seed)
    values = list(values) + [None] * (len(signatures) - len(values))
    return [random_array(shape, dtype, rng, v) for (_name, shape, dtype), v in zip(signatures, values)]


def with_special_values(arrays: list[np.ndarray], seed: int = SEED) -> list[np.ndarray]:
    """`arrays` with NaN, +inf and -inf at a few seeded positions of every float input."""
    rng = np.random.default_rng(seed + 1)
    special = []
    for array in arrays:
        array = array.copy()
        if array.dtype.kind == "f" and array.size >= 3:
            flat = array.reshape(-1)
            flat[rng.choice(flat.size, 3, replace=False)] = [np.nan, np.inf, -np.inf]
        special.append(array)
    return special


# A clamp or max that turns NaN into a number loses nearly every non-finite value; kernels that
# differ from onnxruntime only where a NaN meets a zero weight (bilinear resize at an image's
# border) lose a few. More than this share lost fails the smoke test.
LOST_NON_FINITE_SHARE = 0.1


def compare_non_finite(reference: str, names: list[str], expected: list[np.ndarray], got: list[np.ndarray]) -> list[Comparison]:
    """Where the reference's output is NaN or infinite, the artifact's must not be a number: a
    ReLU that turns NaN into 0 would hide bad input. (Finite values are compared by the
    ordinary run; a NaN may also spread further in the artifact, e.g. across a Winograd tile.)"""
    results = []
    for name, want, have in zip(names, expected, got):
        want, have = np.asarray(want), np.asarray(have)
        if want.dtype.kind not in "fc" or want.shape != have.shape:
            continue
        non_finite = ~np.isfinite(want)
        lost = non_finite & np.isfinite(have)
        ok = lost.sum() <= LOST_NON_FINITE_SHARE * non_finite.sum()
        order = np.flatnonzero(lost)[:5]
        worst = [(tuple(int(i) for i in np.unravel_index(k, want.shape)), float(want.flat[k]), float(have.flat[k])) for k in order]
        results.append(Comparison(f"{reference} NaN/inf", name, 0.0 if ok else float("inf"), [] if ok else worst, bool(ok)))
    return results


@dataclass
class Comparison:
    reference: str
    output: str
    max_abs_error: float
    worst: list[tuple[tuple[int, ...], float, float]]  # index, expected, got
    ok: bool
    step: float | None = None  # a quantized output's step: compared in steps, not tolerances

    @property
    def steps(self) -> float | None:
        """The largest difference in quantization steps (quantized outputs only)."""
        return None if self.step is None else self.max_abs_error / self.step

    def describe(self) -> str:
        error = f"max |error| {self.max_abs_error:.3g}"
        if self.steps is not None and np.isfinite(self.steps):
            error += f" ({self.steps:.3g} quantization steps)"
        return f"{self.reference:<12} {self.output}: {error} {'ok' if self.ok else 'MISMATCH'}"


# Of an output's largest value, the share of rtol that any of its values may differ by.
ROUNDING_SHARE = 1e-2


def compare(
    reference: str,
    names: list[str],
    expected: list[np.ndarray],
    got: list[np.ndarray],
    rtol: float,
    atol: float,
    steps: dict[str, float] | None = None,
    spread: dict[str, float] | None = None,
) -> list[Comparison]:
    """Outputs compared within `rtol`/`atol` (plus `rtol * ROUNDING_SHARE` of each float
    output's largest value), or, for quantized outputs (`steps` gives their
    step), within `MAX_STEPS` quantization steps; `spread` (per output, an absolute difference:
    how far two correct references are apart) widens both."""
    results = []
    steps = steps or {}
    spread = spread or {}
    for name, want, have in zip(names, expected, got):
        want = np.asarray(want)
        have = np.asarray(have)
        if want.shape != have.shape:
            results.append(Comparison(reference, name, float("inf"), [], False))
            continue
        if want.dtype.kind in "fc":
            want64, have64 = want.astype(np.float64), have.astype(np.float64)
            finite = np.isfinite(want64) & np.isfinite(have64)
            with np.errstate(invalid="ignore"):
                error = np.where(finite, np.abs(have64 - want64), 0.0)
            magnitude = np.abs(np.where(finite, want64, 0.0))
            # Float rounding grows with what a value is summed from, not with the value: a small
            # output among large ones (a sum that nearly cancels) may differ by more than rtol of
            # itself. `ROUNDING_SHARE` of the output's largest value bounds that.
            scale = float(magnitude.max()) if magnitude.size else 0.0
            allowed = atol + rtol * (magnitude + ROUNDING_SHARE * scale)
            if name in steps:
                # A rounding apart (plus a float32 rounding of the dequantized value), or within the
                # user's tolerances: deep quantized nets may drift further, and --atol accepts that.
                allowed = np.maximum(allowed, steps[name] * (MAX_STEPS + 1e-3))
            if name in spread:
                allowed = np.maximum(allowed, spread[name] * (1 + 1e-6))
            bad = finite & (error > allowed)
            # Non-finite values compare exactly: NaN with NaN, an infinity with the same infinity.
            exact = np.isnan(want64) & np.isnan(have64) | (want64 == have64)
            bad |= ~finite & ~exact
            error = np.where(~finite & ~exact, np.inf, error)
        else:
            error = np.abs(have.astype(np.int64) - want.astype(np.int64)).astype(np.float64)
            # Integers match exactly, except a model's own quantized outputs: a step apart, like
            # the dequantized ones (a tie rounded the other way).
            bad = error > (steps[name] * MAX_STEPS if name in steps else 0)
        error = np.nan_to_num(error, nan=np.inf)
        order = np.argsort(error, axis=None)[::-1][:5]
        worst = [(tuple(int(i) for i in np.unravel_index(k, want.shape)), float(want.flat[k]), float(have.flat[k])) for k in order]
        results.append(Comparison(reference, name, float(error.max()) if error.size else 0.0, worst, not bool(bad.any()),
                                  steps.get(name)))
    return results


def format_failures(comparisons: list[Comparison], rtol: float, atol: float) -> str:
    quantized = (" (quantized outputs: beyond one quantization step and beyond onnxruntime's own spread; "
                 "a larger --atol accepts more)"
                 if any(c.step and not c.ok for c in comparisons) else "")
    lines = [f"wasm output differs from the reference beyond rtol={rtol:g}, atol={atol:g}{quantized}:",
             f"  {'reference':<12} {'output':<16} {'index':<18} {'expected':>14} {'wasm':>14}"]
    for c in comparisons:
        if c.ok:
            continue
        if not c.worst:
            lines.append(f"  {c.reference:<12} {c.output:<16} shape mismatch")
        for index, want, have in c.worst:
            lines.append(f"  {c.reference:<12} {c.output:<16} {str(list(index)):<18} {want:>14.6g} {have:>14.6g}")
    return "\n".join(lines)


def dim_sizes(dims: list[Any]) -> list[dict[str, int]]:
    """The sizes a smoke test runs symbolic dimensions at: all at their lower bounds, in
    between, at their upper bounds ([{}] for a model without any)."""
    if not dims:
        return [{}]
    picks = [{d.name: d.min for d in dims}, {d.name: (d.min + d.max + 1) // 2 for d in dims}, {d.name: d.max for d in dims}]
    return [p for i, p in enumerate(picks) if p not in picks[:i]]


def concrete_shape(shape: tuple[Any, ...], sizes: dict[str, int]) -> tuple[int, ...]:
    """An input shape with its symbolic dimensions at `sizes`."""
    return tuple(d if isinstance(d, int) else sizes[d] for d in shape)


def smoke_test(
    wasm_path: Path,
    module: Any,
    onnx_model: Any,
    rtol: float,
    atol: float,
    log=print,
    torch_program: Any = None,
    values: Sequence[ValueRange | None] = (),
    fused_multiply_adds: bool = False,
) -> list[Comparison]:
    """Run the reactor and the references on the same inputs; raise on mismatch. `values`: the
    range of each input that indexes a table (`compiler.input_values`), drawn inside it.
    `fused_multiply_adds`: the module's float kernels may round a multiply-add once (relaxed
    SIMD's `f32x4.relaxed_madd`) where the native reference rounds twice; a dynamically
    quantized model is then held to the native reference as to onnxruntime (a value an ulp
    apart may end a quantization step apart, `_with_run_time_steps`)."""
    model = WasmModel(wasm_path)
    native = NativeReference(module)
    names = [o.name for o in model.outputs]
    steps = output_steps(onnx_model)
    quantized = is_quantized(onnx_model)
    run_time = quantizes_at_run_time(onnx_model)
    comparisons: list[Comparison] = []
    for sizes in dim_sizes(model.dims):
        at = f" @ {', '.join(f'{k}={v}' for k, v in sizes.items())}" if sizes else ""
        inputs = random_inputs([(i.name, concrete_shape(i.shape, sizes), i.dtype) for i in model.inputs], values=values)
        got = model.run(inputs)
        expected = native(inputs)
        spread = _with_run_time_steps(names, expected, {}) if run_time and fused_multiply_adds else None
        comparisons += compare(f"tvm-native{at}", names, expected, got, rtol, atol, steps, spread)
        if onnx_model is not None:
            input_names = [i.name for i in model.inputs]
            reference = _onnxruntime_reference(onnx_model, input_names, inputs)
            if reference is not None:
                spread = None
                if quantized:
                    literal = _onnxruntime_reference(onnx_model, input_names, inputs, optimized=False)
                    reference, spread = nearer_run(names, reference, literal, got)
                    if run_time:
                        spread = _with_run_time_steps(names, reference, spread)
                comparisons += compare(f"onnxruntime{at}", names, reference, got, rtol, atol, steps, spread)
                # The same inputs with NaN and infinities: onnxruntime's NaN semantics must hold.
                special = with_special_values(inputs)
                comparisons += compare_non_finite(
                    f"onnxruntime{at}", names, _onnxruntime_reference(onnx_model, input_names, special), model.run(special)
                )
        if torch_program is not None:
            comparisons += compare(f"torch{at}", names, _torch_reference(torch_program, inputs), got, rtol, atol)
    for c in comparisons:
        log(f"  {c.describe()}")
    if not all(c.ok for c in comparisons):
        raise SmokeTestError(
            format_failures(comparisons, rtol, atol),
            fix="report the model to wasm-build; meanwhile try default-schedules = false or simd = false, "
            "or raise rtol/atol if the differences are rounding",
        )
    return comparisons


def nearer_run(
    names: list[str], optimized: list[np.ndarray], literal: list[np.ndarray], got: list[np.ndarray]
) -> tuple[list[np.ndarray], dict[str, float]]:
    """Per output of a quantized model, the nearer of onnxruntime's two runs, and for float
    outputs how far the two runs are apart (the model's own spread, allowed the artifact)."""
    reference, spread = [], {}
    for name, fused, plain, have in zip(names, optimized, literal, got):
        fused, plain, have = np.asarray(fused), np.asarray(plain), np.asarray(have)
        if fused.dtype.kind != "f" or fused.shape != plain.shape or fused.shape != have.shape or not fused.size:
            reference.append(fused)
            continue
        reference.append(min((fused, plain), key=lambda run, have=have: _max_difference(run, have)))
        spread[name] = _max_difference(fused, plain)
    return reference, spread


def _with_run_time_steps(names: list[str], reference: list[np.ndarray], spread: dict[str, float]) -> dict[str, float]:
    """`spread` widened, for the float outputs of a dynamically quantized model, to a few steps
    of their range (`steps.run_time_steps`). onnxruntime's two runs share its float kernels, so they
    agree where wasm's (an ulp apart) put a value a step over; the native reference, which shares
    wasm's integer rewrite and float kernels, still holds the artifact to rtol/atol, unless the
    module fuses multiply-adds (`smoke_test`'s `fused_multiply_adds`)."""
    widened = dict(spread)
    for name, values in zip(names, reference):
        values = np.asarray(values)
        if values.dtype.kind == "f" and values.size:
            widened[name] = max(widened.get(name, 0.0), run_time_steps(values))
    return widened


def _max_difference(a: np.ndarray, b: np.ndarray) -> float:
    with np.errstate(invalid="ignore"):
        return float(np.nanmax(np.abs(a.astype(np.float64) - b.astype(np.float64))))


def _onnxruntime_reference(onnx_model: Any, names: list[str], inputs: list[np.ndarray], optimized: bool = True) -> list[np.ndarray] | None:
    session = reference_session(onnx_model, optimized)  # optimized=False: node by node, as written
    try:
        return session.run(None, dict(zip(names, inputs)))
    except Exception as error:  # onnxruntime's errors derive from Exception alone
        # Made-up inputs outside what the model accepts (an index computed from an input).
        raise SmokeTestError(
            f"onnxruntime refused the smoke test's made-up inputs: {str(error).splitlines()[0]}",
            fix="the smoke test draws floats standard normal, integer inputs 0/1 and table indices within their "
            "tables; for a model that needs other values, set smoke-test = false (--no-smoke-test) and test "
            "the artifact on real inputs",
        ) from error


def _torch_reference(program: Any, inputs: list[np.ndarray]) -> list[np.ndarray]:
    import torch

    with torch.no_grad():
        result = program.module()(*[torch.from_numpy(x) for x in inputs])
    flat = list(result) if isinstance(result, (tuple, list)) else [result]
    return [t.detach().numpy() for t in flat]
