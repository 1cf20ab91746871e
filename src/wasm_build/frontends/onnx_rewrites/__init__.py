"""ONNX-to-ONNX rewrites that mend gaps in TVM's Relax ONNX frontend before import.

`from_onnx` has no hook for custom converters, so an operator TVM lacks (or imports wrongly)
is replaced, before import, by standard operators TVM handles. Each rewrite is one module with
a function `ModelProto -> ModelProto`; it raises `WasmBuildError`, naming the node, for a case
it cannot handle. `apply_rewrites` works on a copy: the original model stays the reference
onnxruntime runs in the smoke test. A model without any rewrite's operators is returned as it
is, so the kernels of models that already build do not change.

`REWRITES` lists them in the order they run; each runs only when the model (subgraphs
included) holds one of its `op_types` from ONNX's default domain. To add one: write
`onnx_rewrites/<name>.py` (shared helpers in `graph` and `emitter`), add a line here, and test
it against onnxruntime on the original model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import onnx

from . import (
    celu,
    computed_operands,
    computed_pads,
    constant_of_shape_scalar,
    dequantized_operands,
    expand_declared_shape,
    fractional_resize,
    gru,
    lstm,
    prelu_channel_slope,
    quantized_average_pool,
    quantized_moves,
    quantized_operators,
    rnn,
    slice_attributes,
    static_sequences,
    topk,
)
from .graph import graphs, is_standard, pin_inputs
from .quantized_operators import MICROSOFT


@dataclass(frozen=True)
class Rewrite:
    name: str
    op_types: frozenset[str]  # the operators it replaces
    apply: Callable[[onnx.ModelProto], onnx.ModelProto]
    microsoft_op_types: frozenset[str] = frozenset()  # onnxruntime's contrib operators it replaces


REWRITES: tuple[Rewrite, ...] = (
    # Pad with pads computed from static shapes: TVM refuses non-constant pads; folded first so
    # the rewrites after it see the constants.
    Rewrite("computed_pads", frozenset({"Pad"}), computed_pads.rewrite),
    # A Slice's bounds, TopK's k, Range's limits ... computed from static shapes (torch's chunk,
    # sort, unfold): TVM needs them constant.
    Rewrite("computed_operands", frozenset(computed_operands.OPERANDS), computed_operands.rewrite),
    # A Pad's value (or Clip's bounds) a quantizer dequantizes from int8: TVM needs the constant.
    Rewrite("dequantized_operands", frozenset(dequantized_operands.CONSTANT_OPERANDS), dequantized_operands.rewrite),
    # ConstantOfShape of an empty shape (a scalar): TVM's broadcast_to refuses it (attention masks).
    Rewrite("constant_of_shape_scalar", frozenset({"ConstantOfShape"}), constant_of_shape_scalar.rewrite),
    # Celu: no converter in TVM; alpha * Elu(x / alpha).
    Rewrite("celu", frozenset({"Celu"}), celu.rewrite),
    # PRelu's opset-6 per-channel slope: TVM puts it on the last axis.
    Rewrite("prelu_channel_slope", frozenset({"PRelu"}), prelu_channel_slope.rewrite),
    # Slice-1 with starts/ends as attributes: TVM's converter fails.
    Rewrite("slice_attributes", frozenset({"Slice"}), slice_attributes.rewrite),
    # Sequences whose contents are known when the model is built.
    Rewrite("static_sequences", frozenset(static_sequences.SEQUENCE_OPS), static_sequences.rewrite),
    # Expand to a shape read from an input: the shape the model declares for the result.
    Rewrite("expand_declared_shape", frozenset({"Expand"}), expand_declared_shape.rewrite),
    # Resize by scales that give no whole sizes: TVM maps coordinates through the sizes' ratio.
    Rewrite("fractional_resize", frozenset({"Resize"}), fractional_resize.rewrite),
    # TopK: TVM calls a sort function of its C++ runtime; k rounds of arg-max for a small k.
    Rewrite("topk", frozenset({"TopK"}), topk.rewrite),
    # Recurrent layers, unrolled over the static sequence length.
    Rewrite("lstm", frozenset({"LSTM"}), lstm.rewrite),
    Rewrite("gru", frozenset({"GRU"}), gru.rewrite),
    Rewrite("rnn", frozenset({"RNN"}), rnn.rewrite),
    # QOperator quantized operators (and ConvInteger): their float operator between dequantize
    # and quantize nodes, the QDQ form the integer kernels are made from.
    Rewrite("quantized_operators", quantized_operators.STANDARD_OP_TYPES, quantized_operators.rewrite,
            quantized_operators.MICROSOFT_OP_TYPES),
    # A quantized AveragePool (QDQ, or QLinearAveragePool made QDQ just above): onnxruntime adds
    # the zero point before rounding.
    Rewrite("quantized_average_pool", frozenset({"AveragePool"}), quantized_average_pool.rewrite,
            frozenset({"QLinearAveragePool"})),
    # A Pad, DepthToSpace, Tile, Gather ... between a dequantize and a quantize of the same
    # parameters: the operator on the quantized tensor (after `dequantized_operands`, which
    # makes a Pad's value a constant).
    Rewrite("quantized_moves", quantized_moves.MOVES, quantized_moves.rewrite),
)
# onnxruntime contrib operators the import accepts because a rewrite replaces them.
REWRITTEN_MICROSOFT_OPS = frozenset().union(*(rewrite.microsoft_op_types for rewrite in REWRITES))


def apply_rewrites(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None) -> onnx.ModelProto:
    """`model` with every applicable rewrite applied, or `model` itself when none applies.

    `input_shapes` are the static shapes the build pins the graph inputs to; rewrites that
    unroll over a size (a sequence length) read it from shapes inferred from them.
    """
    applicable = [rewrite for rewrite in REWRITES if _uses(model, rewrite)]
    if not applicable:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)  # some rewrites edit in place: the caller's model stays the reference
    model = pin_inputs(copy, input_shapes) if input_shapes else copy
    for rewrite in applicable:
        model = rewrite.apply(model)
    return model


def _uses(model: onnx.ModelProto, rewrite: Rewrite) -> bool:
    return any(
        is_standard(node, rewrite.op_types) or (node.domain == MICROSOFT and node.op_type in rewrite.microsoft_op_types)
        for graph in graphs(model.graph)
        for node in graph.node
    )


__all__ = ["REWRITES", "REWRITTEN_MICROSOFT_OPS", "Rewrite", "apply_rewrites"]
