"""ONNX `GRU`, unrolled over its static sequence length (TVM's Relax frontend has no GRU).

Per direction and time step, with ONNX's equations (default f = Sigmoid, g = Tanh):
z = f(x_z + H R_z), r = f(x_r + H R_r),
h = g(x_h + (r H) R_h) or, with `linear_before_reset` (PyTorch's form), g(x_h + r (H R_h + Rb_h)),
H' = (1 - z) h + z H,
where x_k = X W_k^T + Wb_k (+ Rb_k, except Rb_h under linear_before_reset) for all steps at once.
"""

from __future__ import annotations

import onnx

from . import recurrent as rec
from .emitter import Emitter, Value

CELL = rec.Cell("GRU", gates=3, activations=("Sigmoid", "Tanh"), states=1)
Z, R, H = range(3)  # gate blocks in W, R and B, in ONNX's order (zrh)


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every GRU node of the main graph by standard operators."""
    return rec.rewrite_layers(model, CELL, _unroll)


def _unroll(em: Emitter, layer: rec.Layer, d: int) -> rec.Unrolled:
    f, g = layer.activations[d]
    linear_before_reset = bool(rec.attribute(layer.node, "linear_before_reset", 0))
    w = rec.gate_weights(em, layer, rec.W, d)
    r = rec.gate_weights(em, layer, rec.R, d)
    bias = rec.gate_vectors(em, layer, rec.B, d, 6)  # Wb (zrh), then Rb (zrh)
    recurrent_bias_h = bias[3 + H] if linear_before_reset else None  # applied inside r (...)
    input_bias = [em.add(bias[k], None if k == H and linear_before_reset else bias[3 + k], f"B{d}_{k}") for k in range(3)]
    x = [rec.project(em, layer, w[k], input_bias[k], f"X{d}_{k}") for k in range(3)]
    one = em.scalar(1.0, "one")

    def reset(t: int, hidden: Value) -> str:
        """The reset gate; built only where it multiplies something (not a zero state)."""
        return rec.activate(em, layer, f, rec.gate_input(em, layer, x[R], t, hidden, r[R], f"r{d}t{t}"), f"r{d}t{t}")

    hidden = rec.initial_state(em, layer, rec.INITIAL_H, d)
    outputs: dict[int, str] = {}
    for t in layer.steps(d):
        s = f"{d}t{t}"
        z = rec.activate(em, layer, f, rec.gate_input(em, layer, x[Z], t, hidden, r[Z], f"z{s}"), f"z{s}")
        if linear_before_reset:
            linear = em.add(em.matmul(hidden, r[H], f"hR{s}"), recurrent_bias_h, f"hRb{s}")
            gated = None if linear is None else em.mul(reset(t, hidden), linear, f"rhR{s}")
        else:
            gated = None if hidden is None else em.matmul(em.mul(reset(t, hidden), hidden, f"rH{s}"), r[H], f"rHR{s}")
        candidate = rec.activate(em, layer, g, em.add(rec.at(em, layer, x[H], t, f"h{s}_x"), gated, f"h{s}_sum"), f"h{s}")
        kept = em.mul(z, hidden, f"zH{s}")
        hidden = outputs[t] = em.add(em.mul(em.sub(one, z, f"1-z{s}"), candidate, f"zh{s}"), kept, f"H{s}")
    assert hidden is not None  # seq_length >= 1
    return rec.Unrolled([outputs[t] for t in range(layer.seq_length)], (hidden,))
