"""onnxruntime, the reference every case is compared with (one thread, like wasm)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np


def session(onnx_path: Path):
    """One-thread session as users run it (default options), for timing."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


def run_onnxruntime(onnx_path: Path, inputs: Mapping[str, np.ndarray], optimized: bool = True) -> list[np.ndarray]:
    """The reference outputs (`reference_session`: integer products exact on every host);
    ``optimized=False`` runs the graph node by node as written (a QDQ model's DequantizeLinear,
    float operator and QuantizeLinear each on their own)."""
    from wasm_build.wasm.onnxruntime_reference import reference_session

    sess = reference_session(str(onnx_path), optimized)
    return sess.run(None, _feed(sess, inputs))


def time_onnxruntime(onnx_path: Path, inputs: Mapping[str, np.ndarray], runs: int) -> float:
    """Median milliseconds of one run, after a warm-up."""
    sess = session(onnx_path)
    feed = _feed(sess, inputs)
    sess.run(None, feed)
    return median_ms(lambda: sess.run(None, feed), runs)


def median_ms(call, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def _feed(sess, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The inputs the graph declares: exporters drop inputs the model does not use."""
    return {i.name: inputs[i.name] for i in sess.get_inputs()}
