"""The model zoo's fast tier (bench/zoo): small models that together cover every op family of
the zoo, each exported from PyTorch, built with wasm-build, run in wasmtime and compared with
onnxruntime on seeded inputs (never with stored outputs).

Cases that fail today are listed in bench/zoo/expected_failures.txt and are xfail(strict): a fix
shows up as XPASS (delete the line), a failure that moved to another stage as a plain failure.
The whole zoo runs with `python bench/zoo/run.py`; its table is bench/zoo/RESULTS.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch", reason="the zoo exports PyTorch models (bash scripts/setup.sh --tests installs torch)")

from bench.zoo import expected, libraries, report, triage  # noqa: E402
from bench.zoo.compare import compare_outputs  # noqa: E402
from bench.zoo.evaluate import CaseResult, evaluate  # noqa: E402
from bench.zoo.export import ExportCache, digest  # noqa: E402
from bench.zoo.families import families  # noqa: E402
from bench.zoo.models import MODELS, all_cases, fast_cases  # noqa: E402
from bench.zoo.spec import Case, Tensor, ZooModel  # noqa: E402

ZOO = Path(__file__).resolve().parents[2] / "bench" / "zoo"
EXPECTED_FAILURES = expected.read_expected_failures()
LIBRARIES = {"torchvision": "torchvision", "timm": "timm", "transformers": "transformers"}


class ZooFailure(AssertionError):
    """The case failed where expected_failures.txt says it does (the only failure an xfail accepts)."""


def _params():
    for case in fast_cases():
        listed = EXPECTED_FAILURES.get(case.id)
        marks = [pytest.mark.xfail(raises=ZooFailure, strict=True, reason=str(listed))] if listed else []
        yield pytest.param(case, id=case.id, marks=marks)


def _import_or_skip(library: str) -> None:
    """Through bench.zoo.libraries: a plain import of torchvision fails on CPU torch."""
    try:
        libraries.import_library(library)
    except ImportError:
        pytest.skip(f"{library} is missing: pip install -r bench/zoo/requirements.txt")


@pytest.fixture(scope="session")
def exports(tmp_path_factory) -> ExportCache:
    return ExportCache(tmp_path_factory.mktemp("zoo-exports"))


@pytest.mark.parametrize("case", list(_params()))
def test_fast_model_matches_onnxruntime(case: Case, exports: ExportCache, tmp_path: Path) -> None:
    library = LIBRARIES.get(case.model.library)
    if library:
        _import_or_skip(library)
    result = evaluate(case, tmp_path, exports, timed_runs=1)
    if result.passed:
        _check_weights(result)
        return
    listed = EXPECTED_FAILURES.get(case.id)
    if listed is not None:
        listed.check_stage(case.id, result.stage, result.reason, "bench/zoo/expected_failures.txt")
    raise ZooFailure(f"{case.id} fails at {result.stage} ({result.failure_class}): {result.reason}\n{result.message}")


# The artifact's weights against the model's constants: packing pads to whole tiles (Winograd's
# transformed kernels are made at init, `compiler.init_kernels`, and take none), but no weight is
# copied per call (an RNN's recurrent weights once were, per unrolled step: 22x the model's size).
# Over the whole zoo (bench/zoo/results.json, round 25) the largest is levit@int8, 0.99x + 64 KB.
WEIGHTS_ALLOWANCE = 1.1
WEIGHTS_SLACK = 64 * 1024  # alignment and tile padding of a small model's many small tensors


def _check_weights(result: CaseResult) -> None:
    if result.parameter_bytes is None:  # a .pt2 program
        return
    allowed = WEIGHTS_ALLOWANCE * result.parameter_bytes + WEIGHTS_SLACK
    assert result.weights_bytes is not None and result.weights_bytes <= allowed, (
        f"{result.id}: the artifact holds {result.weights_bytes} bytes of weights for the model's "
        f"{result.parameter_bytes} bytes of constants (at most {allowed:.0f} expected)"
    )


# -- the zoo's own promises, checked without building ---------------------------------------


def test_zoo_covers_the_required_architectures() -> None:
    assert len(MODELS) >= 45
    tasks = {model.task for model in MODELS.values()}
    assert tasks == {"vision", "dense", "nlp", "audio", "multi-io", "ops"}
    assert {model.library for model in MODELS.values()} == {"torchvision", "timm", "transformers", "torch"}
    formats = {case.format for case in all_cases()}
    assert formats == {"onnx", "onnx-dynamo", "pt2", "int8"}
    assert 10 <= len(fast_cases()) <= 16, "the fast tier is about a dozen models"
    assert 1 <= sum(case.format == "int8" for case in fast_cases()) <= 2, "two quantized cases at most: CI time"


def _committed_rows() -> list[dict]:
    return json.loads((ZOO / "results.json").read_text())["cases"]


def test_committed_table_has_a_row_for_every_case() -> None:
    rows = {row["id"] for row in _committed_rows()}
    missing = sorted({case.id for case in all_cases()} - rows)
    assert not missing, f"bench/zoo/results.json has no row for {missing}: run `python bench/zoo/run.py --models ...`"
    text = (ZOO / "RESULTS.md").read_text()
    assert all(f"| {case.model.name}" in text for case in all_cases())


def test_fast_tier_covers_every_op_family_of_the_zoo() -> None:
    rows = _committed_rows()
    fast_ids = {case.id for case in fast_cases()}
    everywhere = {f for row in rows for f in row["op_families"]}
    in_fast_tier = {f for row in rows if row["id"] in fast_ids for f in row["op_families"]}
    assert everywhere - in_fast_tier == set(), "op families only slow models use: add a fast model that has them"


def test_expected_failures_name_fast_cases() -> None:
    stale = sorted(set(EXPECTED_FAILURES) - {case.id for case in fast_cases()})
    assert not stale, f"bench/zoo/expected_failures.txt lists cases outside the fast tier: {stale}"


def test_expected_failures_file_is_validated(tmp_path: Path) -> None:
    bad = tmp_path / "expected_failures.txt"
    bad.write_text("unet  linking: a typo in the stage\n")
    with pytest.raises(ValueError, match="stage in"):
        expected.read_expected_failures(bad)
    bad.write_text("unet  frontend: a\nunet  compile: b\n")
    with pytest.raises(ValueError, match="listed twice"):
        expected.read_expected_failures(bad)


def test_comparison_is_relative_to_the_output_scale_and_exact_for_integers() -> None:
    want = np.array([100.0, -50.0, 1.0], np.float32)
    assert compare_outputs([want], [want + np.float32(0.09)]).ok  # 0.09 / 100 < 1e-3
    assert not compare_outputs([want], [want + np.float32(0.2)]).ok
    ints = np.array([3, 1, 2], np.int64)
    assert compare_outputs([ints], [ints.copy()]).ok
    assert not compare_outputs([ints], [ints + np.array([0, 0, 1])]).ok
    assert "shape" in compare_outputs([want], [want[:2]]).summary
    assert "outputs" in compare_outputs([want], [want, want]).summary


def test_failure_classes() -> None:
    assert triage.classify("export", "anything") == triage.EXPORT
    assert triage.classify("frontend", "TVM's ONNX frontend could not import: OpNotImplemented: GRU") == triage.UNSUPPORTED_OP
    assert triage.classify("frontend", "broadcast_to expects the input shape to have ...") == triage.FRONTEND
    assert triage.classify("compile", "relax.nn.conv2d_transpose is not supported by the static executor") in (
        triage.UNSUPPORTED_OP, triage.EXECUTOR)
    assert triage.classify("compile", "AssertionError: emit_te now only supports Tensor that has ShapeExpr shape") == triage.LOWERING
    assert triage.classify("numerics", "does not match") == triage.NUMERICS
    assert triage.classify("timeout", "") == triage.TIMEOUT


def test_export_cache_key_follows_the_definition() -> None:
    def make():  # pragma: no cover - never called: only its source is hashed
        raise AssertionError

    a = ZooModel("probe", "torch", "ops", make, (Tensor.floats("x", 1, 4),))
    b = ZooModel("probe", "torch", "ops", make, (Tensor.floats("x", 1, 5),))
    assert digest(a) == digest(ZooModel("probe", "torch", "ops", make, (Tensor.floats("x", 1, 4),), fast=True))
    assert digest(a) != digest(b)


def test_op_families_group_operator_types() -> None:
    assert families(["Conv", "Relu", "Constant", "GRU", "Conv"]) == ["conv", "activation", "recurrent"]
    assert families(["SomethingNew"]) == ["SomethingNew"]


def test_seeded_inputs_are_reproducible_and_typed() -> None:
    model = MODELS["bert"]
    first, second = model.sample_inputs(), model.sample_inputs()
    assert all(np.array_equal(first[k], second[k]) for k in first)
    assert first["input_ids"].dtype == np.int64 and first["attention_mask"][0, -1] == 0


def test_speed_summary_is_over_models_and_names_the_slower_ones() -> None:
    def row(case_id: str, fmt: str, wasm_ms: float | None, web_ms: float | None, web_error: str = "") -> CaseResult:
        speedup = web_ms / wasm_ms if web_ms and wasm_ms else None
        return CaseResult(case_id, case_id.split("@")[0], fmt, "torch", "vision", False, status="pass", wasm_ms=wasm_ms,
                          onnxruntime_web_ms=web_ms, onnxruntime_web_error=web_error, speed_ratio=speedup,
                          speed_session="s")

    rows = [row("a", "onnx", 1.0, 4.0), row("a@pt2", "pt2", 2.0, 4.0), row("b", "onnx", 4.0, 1.0),
            row("c", "onnx", 1.0, None, "Error: unsupported op"), row("a@int8", "int8", 0.5, 4.0),
            row("b@int8", "int8", 2.0, 1.0)]
    session = {"command": "run.py --speed", "cpu": "a CPU", "cores": 2, "load_start": [1.0, 1.0, 1.0],
               "load_web": [], "load_end": [], "node": "v20", "onnxruntime_web": "1.30.0"}
    meta = {"command": "run.py --speed", "generated": "now", "machine": "x86_64", "seconds": 1.0, "tolerance": 1e-3,
            "versions": {}, "speed_sessions": {"s": session}}
    text = report.render_markdown(rows, meta)
    summary = text.split("## Speed", 1)[1].split("\n## ", 1)[0]
    # Over models, the TorchScript ONNX rows only: sqrt(4 * 1/4); a@pt2 is in the every-row mean.
    assert "over **2 models**" in summary and "geometric mean **1.00**" in summary
    assert "**1 of 2** models at least as fast" in summary
    assert "slower than onnxruntime-web (1): `b` 0.25" in summary
    assert "`c` has no ratio: Error: unsupported op" in summary
    # The int8 rows apart: sqrt(8 * 1/2).
    assert "the quantized builds (`@int8`" in summary and "2 rows, geometric mean 2.00" in summary
    assert "slower (1): `b` 0.50" in summary
    assert "Measured in one session" in summary
    table_row = next(line for line in text.splitlines() if line.startswith("| c | onnx |"))
    assert "error: Error: unsupported op" in table_row
