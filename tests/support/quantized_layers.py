"""Single quantized layers for the integer kernels' tests, quantized by onnxruntime's quantizer."""

from __future__ import annotations

import numpy as np

from wasm_build.testing import quantized
from wasm_build.testing.models import Chain


def qdq_dense(m, k, n, seed=0):
    """x [m, k] @ W [k, n] + bias, quantized by onnxruntime (QDQ: uint8 activations, int8 weights)."""
    g = Chain(np.random.default_rng(seed), [m, k])
    g.add("MatMul", g.const([k, n], scale=1 / np.sqrt(k)))
    g.add("Add", g.const([n]))
    return quantized.qdq(g.build())
