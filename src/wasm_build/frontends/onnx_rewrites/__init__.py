"""ONNX-to-ONNX rewrites that mend gaps in TVM's Relax ONNX frontend before import.

`from_onnx` has no hook for custom converters, so an operator TVM lacks (or imports wrongly)
is replaced, before import, by standard operators TVM handles. Each rewrite is one module
with a function `ModelProto -> ModelProto` that returns a new model (its argument is left
unchanged: the original still serves as the onnxruntime reference of the smoke test) and
raises `WasmBuildError`, naming the node, for a case it cannot handle.

`REWRITES` lists them in the order `apply_rewrites` runs them; each runs only when the model
(subgraphs included) holds one of its `op_types` from ONNX's default domain. To add one:
write `onnx_rewrites/<name>.py` (the shared helpers are in `graph` and `emitter`), add a
`Rewrite` line here, and test it against onnxruntime on the original model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import onnx

from . import gru, lstm, rnn
from .graph import graphs, is_standard, pin_inputs


@dataclass(frozen=True)
class Rewrite:
    name: str
    op_types: frozenset[str]  # the operators it replaces
    apply: Callable[[onnx.ModelProto], onnx.ModelProto]


REWRITES: tuple[Rewrite, ...] = (
    Rewrite("lstm", frozenset({"LSTM"}), lstm.rewrite),
    Rewrite("gru", frozenset({"GRU"}), gru.rewrite),
    Rewrite("rnn", frozenset({"RNN"}), rnn.rewrite),
)


def apply_rewrites(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None) -> onnx.ModelProto:
    """`model` with every applicable rewrite applied, or `model` itself when none applies.

    `input_shapes` are the static shapes the build pins the graph inputs to; rewrites that
    unroll over a size (a sequence length) read it from shapes inferred from them.
    """
    pinned = False
    for rewrite in REWRITES:
        if not _uses(model, rewrite.op_types):
            continue
        if input_shapes and not pinned:
            model, pinned = pin_inputs(model, input_shapes), True
        model = rewrite.apply(model)
    return model


def _uses(model: onnx.ModelProto, op_types: frozenset[str]) -> bool:
    return any(is_standard(node, op_types) for graph in graphs(model.graph) for node in graph.node)


__all__ = ["REWRITES", "Rewrite", "apply_rewrites"]
