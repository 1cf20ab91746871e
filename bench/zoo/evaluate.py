"""One case end to end: export → wasm-build → wasmtime → compare with onnxruntime (an `@int8`
case: with onnxruntime running the quantized model, its quantized outputs in quantization steps).

Failures are results, not exceptions: the stage where the case stopped and the message say why.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .compare import compare_outputs, compare_quantized
from .export import ExportCache, ExportError, op_types, parameter_bytes
from .families import families
from .quantize import output_steps
from .reference import median_ms, run_onnxruntime, time_onnxruntime
from .spec import Case
from .triage import classify

TIMED_RUNS = 5
_MESSAGE_LINES = 40  # kept of a failure's message: TVM's can hold a whole IR dump


@dataclass
class CaseResult:
    """A row of the results table (results.json holds these fields)."""

    id: str
    model: str
    format: str
    library: str
    task: str
    fast: bool
    status: str = "fail"  # pass | fail
    stage: str | None = None  # where it failed: export, frontend, compile, codegen, link, run, numerics, timeout, crash
    failure_class: str | None = None
    reason: str = ""  # one line
    message: str = ""  # the whole message, cut to its last lines
    op_types: list[str] = field(default_factory=list)
    op_families: list[str] = field(default_factory=list)
    max_error: float | None = None  # floats: relative to the output's scale; ints: absolute
    max_steps: float | None = None  # @int8: the worst quantized output's difference, in quantization steps
    reference_spread: float | None = None  # @int8: how far onnxruntime's optimized and literal runs are apart
    compile_s: float | None = None
    run_ms: float | None = None  # median of TIMED_RUNS calls of WasmModel.run from Python
    onnxruntime_ms: float | None = None  # native, one thread
    export_s: float | None = None
    build_timings: dict[str, float] = field(default_factory=dict)
    weights_bytes: int | None = None  # the artifact's weights (its manifest)
    parameter_bytes: int | None = None  # the ONNX file's constant tensors (export.parameter_bytes)
    # --speed (speed.py): steady-state medians, one thread each, and the session that measured them.
    wasm_ms: float | None = None  # NAME_run timed inside the module
    wasm_runs: int | None = None
    wasm_timing_error: str = ""
    onnxruntime_web_ms: float | None = None  # the model's TorchScript ONNX export, whatever this row's format
    onnxruntime_web_runs: int | None = None
    onnxruntime_web_error: str = ""
    speed_ratio: float | None = None  # onnxruntime_web_ms / wasm_ms: above 1, wasm-build is faster
    speed_session: str | None = None  # a key of results.json's "speed_sessions"

    @classmethod
    def for_case(cls, case: Case) -> CaseResult:
        m = case.model
        return cls(case.id, m.name, case.format, m.library, m.task, case.fast)

    def fail(self, stage: str, reason: str, message: str = "") -> CaseResult:
        self.status, self.stage = "fail", stage
        self.reason = reason.strip().splitlines()[0][:300] if reason.strip() else stage
        self.message = _tail(message or reason)
        self.failure_class = classify(stage, self.message)
        return self

    @property
    def passed(self) -> bool:
        return self.status == "pass"


def evaluate(case: Case, work_dir: Path, exports: ExportCache, *, timed_runs: int = TIMED_RUNS,
             speed: bool = False) -> CaseResult:
    """The case's row; with `speed`, a passing case is also timed inside its module (speed.py)."""
    result = CaseResult.for_case(case)
    inputs = case.model.sample_inputs()
    try:
        reference_file = exports.export(Case(case.model, "onnx"))  # op types and reference outputs come from it
        result.op_types = op_types(reference_file.path)
        result.op_families = families(result.op_types)
        exported = exports.export(case) if case.format != "onnx" else reference_file
    except ExportError as exc:
        return result.fail("export", str(exc))
    result.export_s = round(exported.seconds, 3)
    reference_onnx = exported.path if exported.path.suffix == ".onnx" else reference_file.path
    quantized = case.format == "int8"
    steps = output_steps(exported.path) if quantized else []
    if quantized:  # the quantized graph's operators (QuantizeLinear, DequantizeLinear) are the row's
        result.op_types = op_types(exported.path)
        result.op_families = families(result.op_types)
    # A quantized model has two references, onnxruntime optimized (QDQ fused into its integer
    # kernels) and literal (node by node): see compare.compare_quantized.
    expected = run_onnxruntime(reference_onnx, inputs)
    literal = run_onnxruntime(reference_onnx, inputs, optimized=False) if quantized else None
    result.onnxruntime_ms = round(time_onnxruntime(reference_onnx, inputs, timed_runs), 4)

    wasm_path = _build(case, exported.path, work_dir, result)
    if wasm_path is None:
        return result
    ran = _run_and_compare(wasm_path, inputs, expected, result, timed_runs, steps, literal)
    if speed and result.passed and ran is not None:
        _time_in_module(wasm_path, ran, work_dir, result)
    return result


def _build(case: Case, source: Path, work_dir: Path, result: CaseResult) -> Path | None:
    from wasm_build.artifact.assemble import read_manifest
    from wasm_build.build import build_model
    from wasm_build.config import ModelSettings, from_dict
    from wasm_build.errors import WasmBuildError

    out_dir = Path(work_dir).resolve() / "wasm"
    out_dir.mkdir(parents=True, exist_ok=True)
    # Our own comparison below records the error: wasm-build's smoke test would only stop the build.
    settings = from_dict(ModelSettings, {"name": case.c_name, "source": str(source), "smoke-test": False}, path="zoo")
    start = time.perf_counter()
    try:
        built = build_model(settings, out_dir, project_dir=out_dir, cache_dir=None, log=lambda _message: None)
    except WasmBuildError as exc:
        # The export cache's path says nothing about the failure: name the file only.
        reason, message = (text.replace(str(source), source.name) for text in (_reason(exc), _full_message(exc)))
        result.fail(exc.stage or "frontend", reason, message)
        return None
    result.compile_s = round(time.perf_counter() - start, 3)
    result.build_timings = {stage: round(seconds, 3) for stage, seconds in built.timings.items()}
    result.weights_bytes = read_manifest(built.directory)["weights"]["nbytes"]
    if source.suffix == ".onnx":
        result.parameter_bytes = parameter_bytes(source)
    return built.directory / f"{case.c_name}.wasm"


@dataclass
class _Ran:
    """What the comparison ran the module on, and what it returned (the timing reuses both)."""

    inputs: list[np.ndarray]
    outputs: list[np.ndarray]


def _run_and_compare(
    wasm_path: Path, inputs: dict[str, np.ndarray], expected: list[np.ndarray], result: CaseResult, timed_runs: int,
    steps: list[float | None], literal: list[np.ndarray] | None = None,
) -> _Ran | None:
    from wasm_build.wasm.host import WasmModel

    try:
        wasm = WasmModel(wasm_path)
        ordered = _ordered_inputs(wasm, inputs)
        got = wasm.run(ordered)
        result.run_ms = round(median_ms(lambda: wasm.run(ordered), timed_runs), 4)
    except Exception as exc:  # traps, error statuses, signature mismatches
        result.fail("run", f"{type(exc).__name__}: {_last_line(str(exc))}", f"{type(exc).__name__}: {exc}")
        return None
    if literal is None:
        verdict = compare_outputs(expected, got, steps=steps)
    else:
        verdict = compare_quantized(expected, literal, got, steps=steps)
    result.max_error, result.max_steps, result.reference_spread = verdict.max_error, verdict.max_steps, verdict.max_spread
    if verdict.ok:
        result.status = "pass"
    else:
        result.fail("numerics", f"does not match onnxruntime: {verdict.summary}")
    return _Ran(ordered, got)


def _time_in_module(wasm_path: Path, ran: _Ran, work_dir: Path, result: CaseResult) -> None:
    """The row's wasm_ms; a failure to time is noted on the row, the case still passes."""
    from .speed import time_in_module

    try:
        timing = time_in_module(wasm_path.parent, ran.inputs, ran.outputs, work_dir)
    except Exception as exc:
        result.wasm_timing_error = f"{type(exc).__name__}: {_last_line(str(exc))}"[:300]
        return
    result.wasm_ms, result.wasm_runs = round(timing.median_ms, 6), timing.runs


def _ordered_inputs(wasm: Any, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The inputs in the module's order: by name when the names are the zoo's (ONNX), else by
    position (a .pt2 names them after the forward's arguments)."""
    names = [info.name for info in wasm.inputs]
    if set(names) <= set(inputs):
        return [inputs[name] for name in names]
    if len(names) == len(inputs):
        return list(inputs.values())
    raise ValueError(f"the module takes inputs {names}; the zoo gives {list(inputs)}")


def _reason(exc: Any) -> str:
    """One line: wasm-build's own message when it is one line, else the underlying error's last line
    (TVM's messages start with a traceback and end with the check that failed)."""
    lines = [line.strip() for line in exc.message.strip().splitlines() if line.strip()]
    cause = exc.__cause__
    if len(lines) <= 1 or cause is None:
        return lines[0] if lines else str(exc)
    return f"{type(cause).__name__}: {_last_line(str(cause))}"


def _full_message(exc: Any) -> str:
    text = exc.message
    if exc.__cause__ is not None:
        text += "\n--- cause ---\n" + "".join(traceback.format_exception_only(exc.__cause__))
    return text


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def _tail(text: str) -> str:
    lines = text.strip().splitlines()
    return "\n".join(lines if len(lines) <= _MESSAGE_LINES else ["...", *lines[-_MESSAGE_LINES:]])
