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
    bias = rec.gate_vectors(em, layer, rec.B, d, 6)  # Wb (zrh), then Rb (zrh)
    recurrent_bias_h = bias[3 + H] if linear_before_reset else None  # applied inside r (...)
    input_bias = [em.add(bias[k], None if k == H and linear_before_reset else bias[3 + k], f"B{d}_{k}") for k in range(3)]
    # One input projection for every step and gate; per step, one MatMul for the recurrent
    # terms of z and r, and of h too under linear_before_reset (without it, h's multiplies r H).
    x = rec.project(em, layer, rec.stacked_gate_weights(em, layer, rec.W, d, range(3)), rec.stacked_vectors(em, input_bias, f"B{d}"), f"X{d}")
    stacked = range(3) if linear_before_reset else range(2)
    r = rec.stacked_gate_weights(em, layer, rec.R, d, stacked)
    r_h = None if linear_before_reset else rec.stacked_gate_weights(em, layer, rec.R, d, range(H, H + 1))
    one = em.scalar(1.0, "one")

    hidden = rec.initial_state(em, layer, rec.INITIAL_H, d)
    outputs: dict[int, str] = {}
    for t in layer.steps(d):
        s = f"{d}t{t}"
        x_t = rec.at(em, layer, x, t, f"x{s}")
        recurrent = em.matmul(hidden, r, f"hR{s}")  # None for a zero state

        def gate(k: int, label: str) -> str:
            pre = em.add(rec.gate_block(em, layer, x_t, k, f"{label}_x"), rec.block_of(em, layer, recurrent, k, f"{label}_r"), f"{label}_sum")
            return rec.activate(em, layer, f, pre, label)

        z = gate(Z, f"z{s}")
        if linear_before_reset:  # r (H R_h + Rb_h): Rb_h alone for a zero state
            linear = em.add(rec.block_of(em, layer, recurrent, H, f"hRh{s}"), recurrent_bias_h, f"hRb{s}")
            gated = None if linear is None else em.mul(gate(R, f"r{s}"), linear, f"rhR{s}")
        elif hidden is None:
            gated = None  # (r H) R_h of a zero state
        else:
            gated = em.matmul(em.mul(gate(R, f"r{s}"), hidden, f"rH{s}"), r_h, f"rHR{s}")
        candidate = rec.activate(em, layer, g, em.add(rec.gate_block(em, layer, x_t, H, f"h{s}_x"), gated, f"h{s}_sum"), f"h{s}")
        kept = em.mul(z, hidden, f"zH{s}")
        hidden = outputs[t] = em.add(em.mul(em.sub(one, z, f"1-z{s}"), candidate, f"zh{s}"), kept, f"H{s}")
    assert hidden is not None  # seq_length >= 1
    return rec.Unrolled([outputs[t] for t in range(layer.seq_length)], (hidden,))
