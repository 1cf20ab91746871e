"""onnxruntime as the reference artifacts are held to: one thread, optionally node by node as
the graph is written, and integer products computed exactly on every x86-64 host.

On x86-64 without VNNI (AVX2 hosts: AMD Zen 3, Intel before Ice Lake) onnxruntime's default
uint8 x int8 products add pairs of products in 16 bits with saturation (`vpmaddubsw`), so a
quantized conv's result depends on the host running the reference: a QOperator MobileNetV2 came
out 3 quantization steps from its own definition on an AMD EPYC where a Xeon with VNNI matched
it, and the smoke test failed a correct artifact. The session option
``session.x64quantprecision`` makes onnxruntime's graph optimizer move such products onto its
uint8 x uint8 kernels, which do not saturate; other hosts are unaffected. A run with the graph
optimizer off (``optimized=False``) keeps the operators as written: QDQ models then compute
their float operators between DequantizeLinear and QuantizeLinear, exact by definition, while
models written with integer products (`INTEGER_PRODUCTS`: QOperator, ``quantize_dynamic``'s)
still run the saturating kernels; `node_by_node` says which run is exact for a model.
"""

from __future__ import annotations

from collections import Counter

import onnx
import onnxruntime as ort

from ..frontends.onnx_rewrites.graph import fresh_name, graphs

EXACT_INTEGER_PRODUCTS = "session.x64quantprecision"

# Operators onnxruntime runs on its uint8 x int8 kernels even when its graph optimizer is off.
INTEGER_PRODUCTS = frozenset({
    "QLinearConv", "QLinearMatMul", "ConvInteger", "MatMulInteger",  # ONNX
    "QGemm", "QAttention", "DynamicQuantizeMatMul", "MatMulIntegerToFloat",  # com.microsoft
})


def reference_options(optimized: bool = True, exact_integer_products: bool = True) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    if not optimized:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    if exact_integer_products:
        options.add_session_config_entry(EXACT_INTEGER_PRODUCTS, "1")
        options.log_severity_level = 4  # a refusal is handled (`reference_session`), not printed
    return options


def reference_session(model: onnx.ModelProto | bytes | str, optimized: bool = True) -> ort.InferenceSession:
    """A CPU session of ``model`` (a ModelProto, its bytes, or a path) with `reference_options`."""
    if not isinstance(model, onnx.ModelProto):
        model = onnx.load_model_from_string(model) if isinstance(model, bytes) else onnx.load(model)
    # Only the optimizer's move onto exact kernels needs the copies; a node-by-node run reads as written.
    source = (_unshared_8_bit_constants(model) if optimized else model).SerializeToString()
    try:
        # Its ConstantSharing pass would merge the copies again (every zero point of 0, say).
        return ort.InferenceSession(source, reference_options(optimized), providers=["CPUExecutionProvider"],
                                    disabled_optimizers=["ConstantSharing"])
    except Exception:  # onnxruntime's errors derive from Exception alone
        # A graph its move onto exact kernels still refuses runs on its default kernels (exact on
        # hosts with VNNI), as the reference did before that move.
        options = reference_options(optimized, exact_integer_products=False)
        return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _unshared_8_bit_constants(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with a copy of each 8-bit initializer for every further input that reads it.
    onnxruntime's move onto uint8 x uint8 kernels fails on a weight or zero point that two integer
    products share ("Attempt to replace the existing tensor", onnxruntime 1.23; BERT quantized by
    ``quantize_dynamic`` has each weight's zero point of 0 shared once onnxruntime's ConstantSharing
    has merged them); copies of a constant compute the same."""
    eight_bit = {t.name: t for t in model.graph.initializer if t.data_type in (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)}
    reads = Counter(name for node in model.graph.node for name in node.input if name in eight_bit)
    if all(count == 1 for count in reads.values()):
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    seen = Counter()
    for node in copy.graph.node:
        for position, name in enumerate(node.input):
            if reads.get(name, 0) < 2:
                continue
            seen[name] += 1
            if seen[name] > 1:
                tensor = copy.graph.initializer.add()
                tensor.CopyFrom(eight_bit[name])
                tensor.name = fresh_name(copy, name)
                node.input[position] = tensor.name
    return copy


def node_by_node(model: onnx.ModelProto) -> bool:
    """Whether running ``model``'s operators as written (``optimized=False``) computes its integer
    products exactly on every host: not when the model has `INTEGER_PRODUCTS` operators, whose
    exact kernels only the graph optimizer chooses."""
    return not any(node.op_type in INTEGER_PRODUCTS for graph in graphs(model.graph) for node in graph.node)

