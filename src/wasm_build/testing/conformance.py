"""ONNX backend conformance: the test models shipped in the ``onnx`` wheel, run through wasm-build.

``onnx/backend/test/data/{pytorch-converted,pytorch-operator,simple}/<test>/``
holds ``model.onnx`` and ``test_data_set_0/{input,output}_<i>.pb``. Each case is
built like a user's model (frontend → compile → codegen → link), its reactor is
run in wasmtime on the shipped inputs, and the outputs are compared with the
shipped expected outputs.

A failing case is reported with the stage it failed in (``frontend``,
``compile``, ``codegen``, ``link``, ``run`` or ``numerics``) and a one-line
cause. Known failures live in ``tests/integration/conformance/expected_failures.txt``, one
line per case: ``suite/test_name  stage: reason``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import numpy_helper

from ..build import build_model
from ..config.settings import ModelSettings, from_dict
from ..errors import WasmBuildError
from ..wasm.host import WasmModel
from ..wasm.smoke import compare, format_failures

SUITES = ("pytorch-converted", "pytorch-operator", "simple")
STAGES = ("frontend", "compile", "codegen", "link", "run", "numerics")

# The onnx backend runner's own tolerance (onnx/backend/test/loader: rtol=1e-3, atol=1e-7).
# All cases that run pass with it, so nothing looser is needed; NaN must match NaN.
RTOL = 1e-3
ATOL = 1e-7


def data_dir() -> Path:

    return Path(onnx.__file__).parent / "backend" / "test" / "data"


@dataclass(frozen=True)
class ConformanceCase:
    suite: str
    name: str
    directory: Path

    @property
    def id(self) -> str:
        return f"{self.suite}/{self.name}"

    @property
    def model_path(self) -> Path:
        return self.directory / "model.onnx"

    @property
    def c_name(self) -> str:
        """A C identifier for the build: the test name without its ``test_`` prefix."""
        return re.sub(r"\W", "_", self.name.removeprefix("test_")).lower() or "model"

    def load(self) -> tuple[Any, dict[str, Any], list[Any]]:
        """(model, inputs by name, expected outputs) from ``test_data_set_0``."""

        model = onnx.load(str(self.model_path))
        initializers = {init.name for init in model.graph.initializer}
        graph_inputs = [i for i in model.graph.input if i.name not in initializers]
        data = self.directory / "test_data_set_0"
        inputs = {
            value.name: _load_value(data / f"input_{i}.pb", value.type) for i, value in enumerate(graph_inputs)
        }
        expected = []
        for i, value in enumerate(model.graph.output):
            path = data / f"output_{i}.pb"
            if path.is_file():
                expected.append(_load_value(path, value.type))
        return model, inputs, expected


def _load_value(path: Path, type_proto: Any) -> Any:
    """A TensorProto as numpy, or a SequenceProto/OptionalProto as its Python value."""

    raw = path.read_bytes()
    kind = type_proto.WhichOneof("value")
    proto: Any = {"sequence_type": onnx.SequenceProto, "optional_type": onnx.OptionalProto}.get(kind, onnx.TensorProto)()
    proto.ParseFromString(raw)
    if isinstance(proto, onnx.SequenceProto):
        return numpy_helper.to_list(proto)
    if isinstance(proto, onnx.OptionalProto):
        return numpy_helper.to_optional(proto)
    return numpy_helper.to_array(proto)


def discover(root: Path | None = None, suites: tuple[str, ...] = SUITES) -> list[ConformanceCase]:
    root = root or data_dir()
    cases = []
    for suite in suites:
        for directory in sorted((root / suite).iterdir()):
            if (directory / "model.onnx").is_file() and (directory / "test_data_set_0").is_dir():
                cases.append(ConformanceCase(suite, directory.name, directory))
    return cases


def pinned_inputs(model: Any, inputs: dict[str, Any]) -> dict[str, dict[str, list[int]]]:
    """TOML-style ``inputs`` pins for inputs whose shape the model leaves open, taken from the test data."""
    pins = {}
    for value in model.graph.input:
        if value.name not in inputs or value.type.WhichOneof("value") != "tensor_type":
            continue
        dims = value.type.tensor_type.shape.dim
        if any(not d.HasField("dim_value") for d in dims) and isinstance(inputs[value.name], np.ndarray):
            pins[value.name] = {"shape": [int(n) for n in inputs[value.name].shape]}
    return pins


# -- expected failures ---------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedFailure:
    stage: str
    reason: str

    def __str__(self) -> str:
        return f"{self.stage}: {self.reason}"

    def check_stage(self, case_id: str, stage: str, detail: str, listing: str) -> None:
        """A listed case failing at another stage than its line says: the line is out of date."""
        if stage != self.stage:
            raise AssertionError(
                f"{case_id} is listed as failing at {self.stage} ({self.reason}), but now fails at {stage}: {detail}\n"
                f"update its line in {listing}"
            )


def read_expected_failures(path: Path, stages: tuple[str, ...] = STAGES) -> dict[str, ExpectedFailure]:
    """Parse ``case_id  stage: reason`` lines (a stage of `stages`); ``#`` starts a comment."""
    failures: dict[str, ExpectedFailure] = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        case_id, _, text = line.partition(" ")
        stage, sep, reason = text.strip().partition(":")
        if not sep or stage not in stages or not reason.strip():
            raise ValueError(f"{path}:{number}: expected 'case_id  stage: reason' with stage in {stages}, got {line!r}")
        if case_id in failures:
            raise ValueError(f"{path}:{number}: {case_id} is listed twice")
        failures[case_id] = ExpectedFailure(stage, reason.strip())
    return failures


# -- running a case ------------------------------------------------------------------------


@dataclass
class CaseResult:
    case: ConformanceCase
    stage: str | None  # None: passed; otherwise one of STAGES
    message: str = ""  # the full error or comparison table
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.stage is None

    @property
    def summary(self) -> str:
        """First line of the cause, for tables."""
        first = next((line.strip() for line in self.message.splitlines() if line.strip()), "")
        return first if len(first) <= 160 else first[:157] + "..."


BuildFn = Callable[..., Any]  # build(source, name, out_dir, **toml_options) -> BuildResult


def default_build(source: Any, name: str, out_dir: Path, **options: Any) -> Any:
    """Same as tests/support's ``build``: TOML-spelled options into ``build_model``."""

    out_dir.mkdir(parents=True, exist_ok=True)
    table = {"name": name, "source": str(source), **{k.replace("_", "-"): v for k, v in options.items()}}
    return build_model(from_dict(ModelSettings, table, path="conformance"), out_dir, project_dir=out_dir, log=lambda _m: None)


def run_case(
    case: ConformanceCase,
    work_dir: Path,
    *,
    build: BuildFn = default_build,
    rtol: float = RTOL,
    atol: float = ATOL,
) -> CaseResult:
    """Build, run in wasmtime and compare one case; failures are returned, not raised."""

    model, inputs, expected = case.load()
    timings: dict[str, float] = {}
    options: dict[str, Any] = {"smoke_test": False}
    pins = pinned_inputs(model, inputs)
    if pins:
        options["inputs"] = pins
    try:
        result = build(case.model_path, case.c_name, work_dir, **options)
    except WasmBuildError as exc:
        # Settings errors (e.g. a pinned shape wasm-build rejects) come before any stage: count them
        # as frontend failures, the stage that owns input shapes.
        stage = exc.stage if exc.stage in STAGES else "frontend"
        return CaseResult(case, stage, exc.message, timings)
    timings.update(result.timings)

    start = time.perf_counter()
    try:
        wasm = WasmModel(result.directory / f"{case.c_name}.wasm")
        timings["load"] = time.perf_counter() - start  # wasmtime compiles the module here
        ordered = [inputs[name] for name in (info.name for info in wasm.inputs)]
        got = wasm.run(ordered)
    except Exception as exc:  # traps, status codes, signature mismatches: all are run failures
        return CaseResult(case, "run", f"{type(exc).__name__}: {exc}", timings)
    finally:
        timings["run"] = time.perf_counter() - start - timings.get("load", 0.0)

    if len(got) != len(expected):
        return CaseResult(case, "numerics", f"{len(got)} outputs, expected {len(expected)}", timings)
    names = [info.name for info in wasm.outputs]
    dtype_errors = [
        f"output '{n}' is {g.dtype}, expected {np.asarray(e).dtype}"
        for n, g, e in zip(names, got, expected)
        if np.asarray(e).dtype != g.dtype
    ]
    if dtype_errors:
        return CaseResult(case, "numerics", "; ".join(dtype_errors), timings)
    comparisons = compare("expected", names, expected, got, rtol, atol)
    if not all(c.ok for c in comparisons):
        worst = max((c for c in comparisons if not c.ok), key=lambda c: c.max_abs_error)
        headline = f"output '{worst.output}' max |error| {worst.max_abs_error:.3g}"
        return CaseResult(case, "numerics", f"{headline}\n{format_failures(comparisons, rtol, atol)}", timings)
    return CaseResult(case, None, "", timings)
