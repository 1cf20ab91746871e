"""Quantized variants of the test and benchmark models, made by onnxruntime's own quantizer.

Quantized models reach wasm-build as users make them: `quantize_static` (QDQ or QOperator
format, calibrated on seeded random inputs) and `quantize_dynamic` (what it produces for
transformers: `DynamicQuantizeLinear` + `MatMulInteger`). The float model is first run
through onnxruntime's `quant_pre_process` (shape inference, batch norm folded into convs),
the preparation onnxruntime recommends before quantizing.

onnxruntime's quantizer works on files; these helpers hide that behind ModelProto in and out.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from .models import random_inputs

__all__ = ["dynamic", "qdq", "qoperator"]

_TYPES = {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}


Batches = Sequence[Mapping[str, np.ndarray]]


class _Batches(CalibrationDataReader):
    """The calibration input sets, in order."""

    def __init__(self, batches: Batches) -> None:
        self._batches = iter([dict(batch) for batch in batches])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._batches, None)


def _seeded_inputs(model: onnx.ModelProto, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """`count` seeded random input sets (standard normal floats), as `random_inputs` makes them."""
    return [random_inputs(model, seed=seed + i) for i in range(count)]


@contextmanager
def _quiet() -> Iterator[None]:
    """onnxruntime's quantizer logs advice (pre-processing, per-channel axes) at WARNING."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(previous)


def _prepared(model: onnx.ModelProto, work: Path) -> Path:
    source, prepared = work / "float.onnx", work / "prepared.onnx"
    onnx.save_model(model, source)
    quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
    return prepared


def _static(model: onnx.ModelProto, quant_format: QuantFormat, *, activations: str, weights: str, per_channel: bool,
            reduce_range: bool, symmetric_activations: bool, calibration: int, seed: int,
            calibration_inputs: Batches | None = None, nodes_to_exclude: Sequence[str] = ()) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory(prefix="wasm-build-quantize-") as tmp, _quiet():
        work = Path(tmp)
        prepared = _prepared(model, work)
        quantize_static(
            str(prepared),
            str(work / "quantized.onnx"),
            _Batches(calibration_inputs if calibration_inputs is not None else _seeded_inputs(model, calibration, seed)),
            quant_format=quant_format,
            activation_type=_TYPES[activations],
            weight_type=_TYPES[weights],
            per_channel=per_channel,
            reduce_range=reduce_range,
            nodes_to_exclude=list(nodes_to_exclude),
            extra_options={"ActivationSymmetric": symmetric_activations},
        )
        return onnx.load(str(work / "quantized.onnx"))


def qdq(model: onnx.ModelProto, *, activations: str = "uint8", weights: str = "int8", per_channel: bool = True,
        reduce_range: bool = False, symmetric_activations: bool = False, calibration: int = 4, seed: int = 0,
        calibration_inputs: Batches | None = None, nodes_to_exclude: Sequence[str] = ()) -> onnx.ModelProto:
    """`model` quantized by `quantize_static` in QDQ format (QuantizeLinear/DequantizeLinear
    pairs around float operators), calibrated on `calibration` seeded input sets, or on
    `calibration_inputs` when given (inputs a model's own random draws would not fit: token ids).
    `reduce_range` gives 7-bit weights (onnxruntime's advice for x86 without VNNI); the nodes
    named in `nodes_to_exclude` stay float."""
    return _static(model, QuantFormat.QDQ, activations=activations, weights=weights, per_channel=per_channel,
                   reduce_range=reduce_range, symmetric_activations=symmetric_activations,
                   calibration=calibration, seed=seed, calibration_inputs=calibration_inputs,
                   nodes_to_exclude=nodes_to_exclude)


def qoperator(model: onnx.ModelProto, *, activations: str = "uint8", weights: str = "int8", per_channel: bool = False,
              calibration: int = 4, seed: int = 0) -> onnx.ModelProto:
    """`model` quantized by `quantize_static` in QOperator format (`QLinearConv`,
    `QLinearMatMul`, ... between QuantizeLinear and DequantizeLinear)."""
    return _static(model, QuantFormat.QOperator, activations=activations, weights=weights, per_channel=per_channel,
                   reduce_range=False, symmetric_activations=False, calibration=calibration, seed=seed)


def dynamic(model: onnx.ModelProto, *, weights: str = "int8", per_channel: bool = False,
            reduce_range: bool = False) -> onnx.ModelProto:
    """`model` quantized by `quantize_dynamic`: weights int8 at rest, activations quantized
    at run time (`DynamicQuantizeLinear` + `MatMulInteger`)."""
    with tempfile.TemporaryDirectory(prefix="wasm-build-quantize-") as tmp, _quiet():
        work = Path(tmp)
        prepared = _prepared(model, work)
        quantize_dynamic(str(prepared), str(work / "quantized.onnx"), weight_type=_TYPES[weights],
                         per_channel=per_channel, reduce_range=reduce_range)
        return onnx.load(str(work / "quantized.onnx"))
