"""Checking an ONNX rewrite: the rewritten model runs in onnxruntime and matches the original."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort

from wasm_build.frontends.onnx_rewrites import apply_rewrites


def run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_rewrite_matches(model: onnx.ModelProto, feeds: dict[str, np.ndarray], expected: list[np.ndarray]) -> onnx.ModelProto:
    rewritten = apply_rewrites(model)
    onnx.checker.check_model(rewritten, full_check=True)
    assert not [n.op_type for n in rewritten.graph.node if n.op_type in ("LSTM", "GRU", "RNN")]
    # Weights are read once, folded into a new layout: the originals are gone unless an input.
    assert not {"W", "R", "B", "P"} & {n.output[0] for n in rewritten.graph.node if n.op_type == "Constant"}
    assert not {"W", "R", "B", "P"} & {i.name for i in rewritten.graph.initializer}
    got = run(rewritten, feeds)
    assert [o.name for o in rewritten.graph.output] == [o.name for o in model.graph.output]
    for want, have in zip(expected, got):
        assert have.shape == want.shape
        np.testing.assert_allclose(have, want, rtol=1e-5, atol=1e-5)
    return rewritten
