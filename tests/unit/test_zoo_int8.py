"""The zoo's `@int8` format (bench/zoo/quantize.py): the quantized export is deterministic and
cached, calibrated on the entry's own seeded inputs, keeps tensors with an infinite range float,
and its quantized outputs are compared in quantization steps. No wasm build here: the cases
themselves run with `python bench/zoo/run.py` (and two in the CI tier)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import onnx
from onnx import numpy_helper

from bench.zoo.compare import STEP_ALLOWANCE, compare_outputs, compare_quantized
from bench.zoo.export import ExportCache, ExportError, digest
from bench.zoo.models import MODELS, all_cases, fast_cases
from bench.zoo.quantize import calibration_inputs, output_steps, unbounded_nodes
from bench.zoo.spec import SEED, Case, Tensor, ZooModel


class _ConvHead(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 4)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean((2, 3)))


class _MaskedAttention(torch.nn.Module):
    """Scores masked with -inf, as attention implementations do: their calibrated range is infinite."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = torch.nn.Embedding(16, 8)
        self.query = torch.nn.Linear(8, 8)

    def forward(self, ids, mask):
        h = self.embed(ids)
        scores = self.query(h) @ h.transpose(1, 2)
        scores = scores.masked_fill(mask[:, None, :] == 0, float("-inf"))
        return torch.softmax(scores, -1) @ h


CONV = ZooModel("probe_conv", "torch", "ops", _ConvHead, (Tensor.floats("x", 1, 3, 8, 8),))
MASKED = ZooModel("probe_masked", "torch", "nlp", _MaskedAttention,
                  (Tensor.ints("ids", 1, 6, high=16), Tensor.mask("mask", 1, 6, padding=2)))


def _initializers(path: Path) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in onnx.load(str(path)).graph.initializer}


def test_every_model_has_an_int8_case_and_the_ci_tier_two() -> None:
    ids = {case.id for case in all_cases()}
    assert all(f"{name}@int8" in ids for name in MODELS)
    int8_fast = [case for case in fast_cases() if case.format == "int8"]
    assert {case.id for case in int8_fast} == {"ops_conv@int8", "bert@int8"} and all(case.fast for case in int8_fast)
    assert Case(CONV, "int8").id == "probe_conv@int8" and Case(CONV, "int8").c_name == "probe_conv_int8"


def test_the_int8_tier_flag_leaves_the_export_cache_key_alone() -> None:
    tiered = ZooModel("probe_conv", "torch", "ops", _ConvHead, CONV.inputs, fast_int8=True)
    assert digest(tiered) == digest(CONV)


def test_calibration_uses_the_next_seeds_and_the_graph_inputs() -> None:
    batches = calibration_inputs(MASKED, ["ids"])
    assert len(batches) == 4 and all(list(batch) == ["ids"] for batch in batches)
    compared = MASKED.sample_inputs()["ids"]
    assert not any(np.array_equal(batch["ids"], compared) for batch in batches)
    assert all(np.array_equal(a["ids"], MASKED.sample_inputs(SEED + 1 + i)["ids"]) for i, a in enumerate(batches))
    assert all(batch["ids"].max() < 16 for batch in batches)  # token ids stay in the vocabulary


def test_quantized_export_is_deterministic_and_cached(tmp_path: Path) -> None:
    first = ExportCache(tmp_path / "a").export(Case(CONV, "int8"))
    again = ExportCache(tmp_path / "b").export(Case(CONV, "int8"))
    assert first.path.read_bytes() == again.path.read_bytes()
    assert ExportCache(tmp_path / "a").export(Case(CONV, "int8")).seconds == 0.0  # from the cache
    model = onnx.load(str(first.path))
    assert {"QuantizeLinear", "DequantizeLinear"} <= {node.op_type for node in model.graph.node}
    weights = [a for a in _initializers(first.path).values() if a.dtype == np.int8 and a.ndim == 4]
    assert weights, "the conv weights are int8"
    # Per channel: the conv weight's DequantizeLinear has a scale per output channel.
    scales = {node.input[1] for node in model.graph.node if node.op_type == "DequantizeLinear" and node.input[0] in
              {init.name for init in model.graph.initializer if init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 4}}
    assert any(_initializers(first.path)[s].size == 8 for s in scales)
    assert output_steps(first.path)[0] is not None, "the head's output is quantized: compared in steps"


def test_tensors_with_an_infinite_range_stay_float(tmp_path: Path) -> None:
    from wasm_build.testing import quantized

    cache = ExportCache(tmp_path)
    float_model = onnx.load(str(cache.export(Case(MASKED, "onnx")).path))
    names = [value.name for value in float_model.graph.input]
    with np.errstate(divide="ignore", invalid="ignore"):
        plain = quantized.qdq(float_model, calibration_inputs=calibration_inputs(MASKED, names))
    assert unbounded_nodes(plain).tensors, "onnxruntime's quantizer alone gives the masked scores an infinite scale"
    model = onnx.load(str(cache.export(Case(MASKED, "int8")).path))
    assert unbounded_nodes(model).tensors == []
    assert "QuantizeLinear" in {node.op_type for node in model.graph.node}  # the rest is still quantized


def test_a_quantizer_failure_is_an_export_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.zoo.quantize

    def fail(*_args):
        raise RuntimeError("Unable to find data type for weight_name")

    monkeypatch.setattr(bench.zoo.quantize, "quantize", fail)
    cache = ExportCache(tmp_path)
    with pytest.raises(ExportError, match="RuntimeError: Unable to find data type"):
        cache.export(Case(CONV, "int8"))
    assert cache.export(Case(CONV, "onnx")).path.is_file()  # the float export is unaffected
    with pytest.raises(ExportError, match="Unable to find"):  # cached with its message
        cache.export(Case(CONV, "int8"))


def test_quantized_outputs_are_compared_in_steps() -> None:
    step = np.float32(0.05)
    want = np.arange(-5, 5, dtype=np.float32) * step
    one_step = want + step * np.float32(1.0)
    verdict = compare_outputs([want], [one_step], steps=[float(step)])
    assert verdict.ok and verdict.max_steps == pytest.approx(1.0, rel=1e-5)
    assert not compare_outputs([want], [one_step], steps=[None]).ok  # relative error: 0.05 / 0.25
    two_steps = compare_outputs([want], [want + 2 * step], steps=[float(step)])
    assert not two_steps.ok and "2 quantization steps" in two_steps.summary
    assert STEP_ALLOWANCE == pytest.approx(1.001)
    # Unquantized and integer outputs beside a quantized one keep their own comparison.
    ints = np.array([1, 2], np.int64)
    mixed = compare_outputs([want, want, ints], [want, want * np.float32(1.01), ints], steps=[float(step), None])
    assert not mixed.ok and mixed.max_steps == 0.0 and mixed.outputs[1].steps is None


def test_quantized_models_pass_within_onnxruntimes_own_spread() -> None:
    """Two references, onnxruntime optimized and literal: wasm passes within their spread (at
    least one step) of the nearer one, and fails beyond it."""
    step = np.float32(0.05)
    optimized = np.arange(-5, 5, dtype=np.float32) * step
    literal = optimized + 5 * step  # a deep net: the two runs end 5 steps apart
    for got, ok in ((literal + 4 * step, True), (optimized - 5 * step, True), (optimized - 6 * step, False)):
        verdict = compare_quantized([optimized], [literal], [got], steps=[float(step)])
        assert verdict.ok is ok and verdict.max_spread == pytest.approx(5.0, rel=1e-5)
    # Runs that agree leave the one-step allowance.
    assert compare_quantized([optimized], [optimized], [optimized + step], steps=[float(step)]).ok
    tight = compare_quantized([optimized], [optimized], [optimized + 2 * step], steps=[float(step)])
    assert not tight.ok and "onnxruntime's two runs 0 apart" in tight.summary
    # An output that is not quantized: relative error, the spread or 1e-3.
    scale = np.float32(np.abs(optimized).max())
    drifted = optimized + np.float32(0.02) * scale
    assert compare_quantized([optimized], [drifted], [optimized + np.float32(0.01) * scale], steps=[None]).ok
    assert not compare_quantized([optimized], [optimized], [optimized + np.float32(0.01) * scale], steps=[None]).ok
