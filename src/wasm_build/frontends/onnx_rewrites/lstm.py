"""ONNX `LSTM`, unrolled over its static sequence length (TVM's Relax frontend has no LSTM).

Per direction and time step, with ONNX's equations (default f = Sigmoid, g = h = Tanh):
i = f(x_i + H R_i + P_i C), f = f(x_f + H R_f + P_f C) (or 1 - i with `input_forget`),
c = g(x_c + H R_c), C' = f C + i c, o = f(x_o + H R_o + P_o C'), H' = o h(C'),
where x_k = X W_k^T + Wb_k + Rb_k is projected for all steps at once. `clip` applies to the
gates' pre-activations, as onnxruntime reads the spec.
"""

from __future__ import annotations

import onnx

from . import recurrent as rec
from .emitter import Emitter, Value

CELL = rec.Cell("LSTM", gates=4, activations=("Sigmoid", "Tanh", "Tanh"), states=2)
I, O, F, C = range(4)  # gate blocks in W, R and B, in ONNX's order (iofc)


def rewrite(model: onnx.ModelProto) -> onnx.ModelProto:
    """Replace every LSTM node of the main graph by standard operators."""
    return rec.rewrite_layers(model, CELL, _unroll)


def _unroll(em: Emitter, layer: rec.Layer, d: int) -> rec.Unrolled:
    f, g, h = layer.activations[d]
    # All four gates in one MatMul per step (and one input projection for every step).
    w = rec.stacked_gate_weights(em, layer, rec.W, d, range(4))
    r = rec.stacked_gate_weights(em, layer, rec.R, d, range(4))
    bias = rec.gate_vectors(em, layer, rec.B, d, 8)  # Wb (iofc), then Rb (iofc)
    peep_i, peep_o, peep_f = rec.gate_vectors(em, layer, rec.P, d, 3)  # iof
    stacked_bias = rec.stacked_vectors(em, [em.add(bias[k], bias[4 + k], f"B{d}_{k}") for k in range(4)], f"B{d}")
    x = rec.project(em, layer, w, stacked_bias, f"X{d}")
    one = em.scalar(1.0, "one") if rec.attribute(layer.node, "input_forget", 0) else None

    def pre(gates: str, k: int, t: int, peephole: Value = None, cell: Value = None) -> str:
        """Gate k's pre-activation at step t (from the step's stacked `gates`), with its
        peephole term when it has one."""
        label = f"{'iofc'[k]}{d}t{t}"
        gate = rec.gate_block(em, layer, gates, k, label)
        return em.add(gate, em.mul(peephole, cell, f"{label}_peep"), f"{label}_pre")

    hidden = rec.initial_state(em, layer, rec.INITIAL_H, d)
    cell = rec.initial_state(em, layer, rec.INITIAL_C, d)
    outputs: dict[int, str] = {}
    for t in layer.steps(d):
        s = f"{d}t{t}"
        gates = rec.gate_input(em, layer, x, t, hidden, r, f"g{s}")
        i = rec.activate(em, layer, f, pre(gates, I, t, peep_i, cell), f"i{s}")
        if cell is None:  # a zero cell state: the forget gate multiplies nothing
            forget = None
        elif one is not None:  # input_forget: the forget gate is 1 - i
            forget = em.sub(one, i, f"f{s}")
        else:
            forget = rec.activate(em, layer, f, pre(gates, F, t, peep_f, cell), f"f{s}")
        candidate = rec.activate(em, layer, g, pre(gates, C, t), f"c{s}")
        cell = em.add(em.mul(forget, cell, f"fC{s}"), em.mul(i, candidate, f"ic{s}"), f"C{s}")
        o = rec.activate(em, layer, f, pre(gates, O, t, peep_o, cell), f"o{s}")
        # `clip` bounds the gates' inputs only, not the cell state given to h (as onnxruntime does).
        hidden = outputs[t] = em.mul(o, em.unary(h, cell, f"hC{s}"), f"H{s}")
    assert hidden is not None and cell is not None  # seq_length >= 1
    return rec.Unrolled([outputs[t] for t in range(layer.seq_length)], (hidden, cell))
