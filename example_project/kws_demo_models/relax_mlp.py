"""A small MLP written directly in Relax: the `mlp` model of pyproject.toml.

`build()` returns a Relax IRModule whose `main` takes "features" [1, 64] and
returns scores [1, 8]. Weights are seeded random constants bound into the IR
(`relax.const`), so wasm-build embeds them in the artifact. `reference()`
computes the same function in numpy, for tests and for the README.
"""

from __future__ import annotations

import numpy as np

IN_FEATURES, HIDDEN, OUT_FEATURES = 64, 32, 8
SEED = 0


def weights(seed: int = SEED) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def dense(fan_in: int, fan_out: int) -> np.ndarray:
        return (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype("float32")

    return {
        "w1": dense(IN_FEATURES, HIDDEN),
        "b1": (0.1 * rng.standard_normal(HIDDEN)).astype("float32"),
        "w2": dense(HIDDEN, OUT_FEATURES),
        "b2": (0.1 * rng.standard_normal(OUT_FEATURES)).astype("float32"),
    }


def build(seed: int = SEED):
    """features [1, 64] -> dense + relu -> dense -> softmax -> [1, 8]."""
    from tvm import relax

    w = weights(seed)
    bb = relax.BlockBuilder()
    features = relax.Var("features", relax.TensorType((1, IN_FEATURES), "float32"))
    with bb.function("main", [features]):
        with bb.dataflow():
            hidden = bb.emit(relax.op.add(relax.op.matmul(features, relax.const(w["w1"])), relax.const(w["b1"])))
            hidden = bb.emit(relax.op.nn.relu(hidden))
            logits = bb.emit(relax.op.add(relax.op.matmul(hidden, relax.const(w["w2"])), relax.const(w["b2"])))
            scores = bb.emit_output(relax.op.nn.softmax(logits, axis=-1))
        bb.emit_func_output(scores)
    return bb.get()


def reference(features: np.ndarray, seed: int = SEED) -> np.ndarray:
    w = weights(seed)
    hidden = np.maximum(features @ w["w1"] + w["b1"], 0.0)
    logits = hidden @ w["w2"] + w["b2"]
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)
