"""ONNX `RNN` (the plain recurrent layer), unrolled over its static sequence length (TVM's
Relax frontend has none): H' = f(X W^T + Wb + Rb + H R^T), default f = Tanh."""

from __future__ import annotations

import onnx

from . import recurrent as rec
from .emitter import Emitter

CELL = rec.Cell("RNN", gates=1, activations=("Tanh",), states=1)


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every RNN node of the main graph by standard operators."""
    return rec.rewrite_layers(model, CELL, _unroll)


def _unroll(em: Emitter, layer: rec.Layer, d: int) -> rec.Unrolled:
    (f,) = layer.activations[d]
    w = rec.stacked_gate_weights(em, layer, rec.W, d, range(1))
    r = rec.stacked_gate_weights(em, layer, rec.R, d, range(1))
    wb, rb = rec.gate_vectors(em, layer, rec.B, d, 2)
    x = rec.project(em, layer, w, em.add(wb, rb, f"B{d}"), f"X{d}")

    hidden = rec.initial_state(em, layer, rec.INITIAL_H, d)
    outputs: dict[int, str] = {}
    for t in layer.steps(d):
        s = f"{d}t{t}"
        hidden = outputs[t] = rec.activate(em, layer, f, rec.gate_input(em, layer, x, t, hidden, r, f"H{s}"), f"H{s}")
    assert hidden is not None  # seq_length >= 1
    return rec.Unrolled([outputs[t] for t in range(layer.seq_length)], (hidden,))
