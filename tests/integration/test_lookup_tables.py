"""Elementwise chains between 8-bit tensors as 256-entry lookup tables
(`compiler.passes.lookup_tables`), and ``clip`` written as maximum/minimum so activations
follow the convs' layout (`compiler.passes.scalar_clamp`).

The models are quantized by onnxruntime's quantizer inside the tests; wasm outputs are
compared with onnxruntime running the same quantized model, in quantization steps.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
import tvm
from tvm import relax

from wasm_build import WasmModel
from wasm_build.compiler.passes.lookup_tables import lookup_tables_pass
from wasm_build.config.settings import DimSpec
from wasm_build.testing import models, quantized
from wasm_build.testing.models import GraphBuilder, conv
from wasm_build.wasm.steps import output_steps

from tests.support import build
from tests.support.compiler import prim_funcs, scheduled_module
from tests.support.steps import worst_steps

CHANNELS = 8


def _gelu(g: GraphBuilder, x: str) -> str:
    erf = g.op("Erf", [g.op("Div", [x, g.scalar(math.sqrt(2.0))])])
    return g.op("Mul", [g.op("Mul", [x, g.op("Add", [erf, g.scalar(1.0)])]), g.scalar(0.5)])


def _mish(g: GraphBuilder, x: str) -> str:
    return g.op("Mul", [x, g.op("Tanh", [g.op("Softplus", [x])])])


def activations_model(seed: int = 0) -> onnx.ModelProto:
    """Convs with activation chains between them: GELU after the first; SiLU, HardSwish and
    Mish one after another after the second (one tensor read throughout: one table); a
    residual add of the two convs' activations (two tensors: no table)."""
    g = GraphBuilder("activations", seed)
    x = g.input("x", [1, CHANNELS, 12, 12])
    a = _gelu(g, conv(g, x, CHANNELS, CHANNELS, 1, bias=True))
    b = conv(g, a, CHANNELS, CHANNELS, 3, bias=True)
    b = g.op("Mul", [b, g.op("Sigmoid", [b])])
    b = g.op("HardSwish", [b])
    b = _mish(g, b)
    y = g.op("Add", [a, b])
    g.output(conv(g, y, CHANNELS, CHANNELS, 1, bias=True), "y", [1, CHANNELS, 12, 12])
    return g.build()


def hard_swish_model(seed: int = 0) -> onnx.ModelProto:
    """A float conv -> HardSigmoid -> Mul (MobileNetV3's HardSwish as PyTorch exports it)."""
    g = GraphBuilder("hard_swish", seed)
    x = g.input("x", [1, CHANNELS, 12, 12])
    y = conv(g, x, CHANNELS, 2 * CHANNELS, 3, bias=True)
    y = g.op("Mul", [y, g.op("HardSigmoid", [y], alpha=1.0 / 6.0, beta=0.5)])
    g.output(conv(g, y, 2 * CHANNELS, CHANNELS, 1, bias=True), "y", [1, CHANNELS, 12, 12])
    return g.build()


def _kernel_names(model, tmp_path, dims=None) -> list[str]:
    return list(prim_funcs(scheduled_module(model, tmp_path, dims)))


@pytest.fixture(scope="module")
def quantized_activations():
    return quantized.qdq(activations_model())


def test_activation_chains_become_one_table_each(quantized_activations, tmp_path):
    names = _kernel_names(quantized_activations, tmp_path)
    lookups = [name for name in names if "lookup" in name]
    # GELU's chain, and the SiLU -> HardSwish -> Mish chain (three activations and the
    # requantizes between them) composed into one table.
    assert len(lookups) == 2, names
    for function in ("erf", "tanh", "sigmoid", "exp", "log"):
        assert not [name for name in names if function in name.split("_")], (function, names)


def test_tables_match_onnxruntime_within_one_step(quantized_activations, tmp_path):
    model = quantized_activations
    operators = {node.op_type for node in model.graph.node}
    assert {"Erf", "Sigmoid", "Softplus", "Tanh"} <= operators and operators & {"HardSwish", "HardSigmoid"}, operators
    directory = build(model, "activations", tmp_path).directory
    worst = worst_steps(model, WasmModel(directory / "activations.wasm"), seeds=range(30, 36))
    assert max(worst.values()) <= 1.0 + 1e-3, worst


@pytest.mark.parametrize("activations", ["uint8", "int8"])
def test_a_table_holds_the_chain_at_every_value(activations, tmp_path):
    """A chain over the whole 8-bit range: every input value read once, compared with
    onnxruntime value by value."""
    g = GraphBuilder("sigmoid_chain", 0)
    x = g.input("x", [1, 256])
    g.output(g.op("Mul", [x, g.op("Sigmoid", [g.op("Mul", [x, g.scalar(1.7)])])]), "y", [1, 256])
    ramp = [{"x": np.linspace(-6.0, 6.0, 256, dtype=np.float32)[None]}]
    model = quantized.qdq(g.build(), activations=activations, symmetric_activations=activations == "int8",
                          calibration_inputs=ramp)
    assert "lookup" in " ".join(_kernel_names(model, tmp_path))
    wasm = WasmModel(build(model, "sigmoid_chain", tmp_path).directory / "sigmoid_chain.wasm")
    worst = worst_steps(model, wasm, seeds=range(3))
    assert max(worst.values()) <= 1.0 + 1e-3, worst


def _sigmoid_chain(constant: np.ndarray, *, second_input: bool = False) -> tvm.IRModule:
    """``quantize(sigmoid(dequantize(x)) * constant)`` (``+ dequantize(x2)`` with a second
    input) as `qdq_arithmetic` writes it, uint8 with zero point 128."""
    shape = (1, CHANNELS, 4, 4)
    inputs = [relax.Var(name, relax.TensorType(shape, "uint8")) for name in ("x", "x2")[: 1 + second_input]]

    def dequantize(x):
        shifted = relax.op.subtract(relax.op.astype(x, "int32"), relax.const(128, "int32"))
        return relax.op.multiply(relax.op.astype(shifted, "float32"), relax.const(0.05, "float32"))

    builder = relax.BlockBuilder()
    with builder.function("main", inputs):
        with builder.dataflow():
            y = builder.emit(relax.op.multiply(relax.op.sigmoid(dequantize(inputs[0])), relax.const(constant)))
            if second_input:
                y = builder.emit(relax.op.add(y, dequantize(inputs[1])))
            scaled = relax.op.round(relax.op.divide(y, relax.const(0.01, "float32")))
            clamped = relax.op.minimum(relax.op.maximum(scaled, relax.const(0.0, "float32")), relax.const(255.0, "float32"))
            out = builder.emit_output(relax.op.astype(relax.op.astype(clamped, "int32"), "uint8"))
        builder.emit_func_output(out)
    return builder.get()


def _lookup_tables(module: tvm.IRModule) -> list[np.ndarray]:
    """The tables the lookup kernels of ``module``'s main read."""
    tables = []

    def visit(expr):
        if isinstance(expr, relax.Call) and getattr(expr.op, "name", None) == "relax.call_tir":
            if "lookup" in expr.args[0].name_hint:
                tables.append(expr.args[1].fields[0].value.numpy())

    relax.analysis.post_order_visit(module["main"], visit)
    return tables


def test_the_table_is_the_chain_computed_at_every_value():
    constant = np.full((1, CHANNELS, 1, 1), 0.9, np.float32)  # the same at every position
    (table,) = _lookup_tables(lookup_tables_pass()(_sigmoid_chain(constant)))
    values = (np.arange(256) - 128) * np.float32(0.05)
    want = np.clip(np.round(1 / (1 + np.exp(-values)) * 0.9 / 0.01), 0, 255)
    assert table.dtype == np.uint8 and table.shape == (256,)
    assert np.abs(table.astype(int) - want).max() <= 1  # float32 against float64 at a tie


@pytest.mark.parametrize("constant, second_input, why", [
    (np.linspace(0.5, 1.0, CHANNELS, dtype=np.float32).reshape(1, CHANNELS, 1, 1), False, "a per-channel constant"),
    (np.float32(0.9), True, "it reads two tensors"),
])
def test_chains_that_are_not_functions_of_one_tensor_stay_arithmetic(constant, second_input, why):
    module = _sigmoid_chain(np.asarray(constant), second_input=second_input)
    assert lookup_tables_pass()(module).same_as(module), why


def _integer_chain(requantized: bool) -> tvm.IRModule:
    """``maximum(x, 3)`` of a uint8 tensor, as integers, or requantized to another scale."""
    x = relax.Var("x", relax.TensorType((1, CHANNELS, 4, 4), "uint8"))
    builder = relax.BlockBuilder()
    with builder.function("main", [x]):
        with builder.dataflow():
            if requantized:
                real = relax.op.astype(relax.op.maximum(x, relax.const(3, "uint8")), "float32")
                scaled = relax.op.round(relax.op.divide(real, relax.const(1.5, "float32")))
                clamped = relax.op.minimum(relax.op.maximum(scaled, relax.const(0.0, "float32")), relax.const(255.0, "float32"))
                out = builder.emit_output(relax.op.astype(relax.op.astype(clamped, "int32"), "uint8"))
            else:
                out = builder.emit_output(relax.op.maximum(x, relax.const(3, "uint8")))
        builder.emit_func_output(out)
    return builder.get()


def test_integer_operations_stay_arithmetic_and_a_requantize_makes_a_table():
    """A maximum of 8-bit values runs 16 lanes at a time: it stays; requantized (a division, a
    rounding, a clamp), the same chain costs more than a byte load per value: a table."""
    plain, requantized = _integer_chain(False), _integer_chain(True)
    assert lookup_tables_pass()(plain).same_as(plain)
    # The maximum is an 8-bit value of its own: the table is the requantize of its output.
    (table,) = _lookup_tables(lookup_tables_pass()(requantized))
    assert np.abs(table.astype(int) - np.clip(np.round(np.arange(256) / 1.5), 0, 255)).max() <= 1


def test_modules_without_chains_are_returned_unchanged():
    from tests.support.compiler import fused_module

    module = fused_module(activations_model(), {"kind": "llvm"}, schedule=False)
    assert lookup_tables_pass()(module).same_as(module)


def test_hard_sigmoid_follows_the_conv_layout(tmp_path):
    """relax.clip (HardSigmoid) has no layout inference: as maximum/minimum it fuses into the
    NHWC conv's epilogue instead of running in NCHW between two transposes."""
    names = _kernel_names(hard_swish_model(), tmp_path)
    # Only the model's input and output change layout.
    assert len([name for name in names if "transpose" in name]) == 2, names
    assert any("conv2d" in name and "maximum" in name and "minimum" in name for name in names), names
    # The build's smoke test compares the wasm with onnxruntime.
    build(hard_swish_model(), "hard_swish", tmp_path)


def test_tables_over_a_bounded_dimension(tmp_path):
    """A quantized encoder whose token count varies at run time (`dims`): its GELU chain is a
    lookup over a tensor of symbolic shape, right at every length."""
    encoder = models.sequence_encoder()
    calibration = [models.random_inputs(encoder, seed=seed, dims={"seq": 8}) for seed in range(4)]
    model = quantized.qdq(encoder, calibration_inputs=calibration)
    wasm = WasmModel(build(model, "qenc", tmp_path, dims={"seq": {"min": 1, "max": 24}}).directory / "qenc.wasm")
    steps = output_steps(model)
    assert "lookup" in " ".join(_kernel_names(model, tmp_path, dims={"seq": DimSpec(min=1, max=24)}))
    for seq in (1, 5, 24):
        inputs = models.random_inputs(model, seed=seq, dims={"seq": seq})
        for output, got, want in zip(model.graph.output, wasm.run(inputs), models.reference_outputs(model, inputs)):
            assert np.abs(got.astype(np.float64) - want).max() <= steps[output.name] * (1 + 1e-3), (seq, output.name)



def test_tables_tvm_cannot_compute_leave_the_chains_arithmetic(monkeypatch, caplog):
    """Computing the tables is an optimization: if TVM fails at it, the build goes on with the
    chains as they were (and says so)."""
    from wasm_build.compiler.passes import lookup_tables

    def fail(_expressions):
        raise RuntimeError("no host target")

    monkeypatch.setattr(lookup_tables, "compute_tables", fail)
    module = _sigmoid_chain(np.full((1, CHANNELS, 1, 1), 0.9, np.float32))
    with caplog.at_level("WARNING"):
        assert lookup_tables_pass()(module).same_as(module)
    assert "chains stay arithmetic" in caplog.text


def test_a_transposing_lookup_over_a_ragged_axis_stays_scalar(tmp_path):
    """Keys transposed for attention through a lookup (wav2vec2: [79 tokens, 32] to [32, 79]):
    the fused kernel gathers its bytes across rows, so vectors would be built lane by lane,
    each lane dividing its fused index (0.9 GB/s); it stays scalar code (twice as fast), and
    matches onnxruntime."""
    g = GraphBuilder("transposed_lookup", 0)
    x = g.input("x", [1, 79, 32])
    keys = g.op("Transpose", [g.op("MatMul", [x, g.normal((32, 32), 0.2)])], perm=[0, 2, 1])
    g.output(g.op("Mul", [keys, g.op("Sigmoid", [keys])]), "y", [1, 32, 79])
    model = quantized.qdq(g.build())
    kernels = prim_funcs(scheduled_module(model, tmp_path))
    (lookup,) = [f for name, f in kernels.items() if "lookup" in name and "transpose" in name]
    assert "T.vectorized" not in lookup.script() and "% T.int64(79)" not in lookup.script()
    wasm = WasmModel(build(model, "transposed_lookup", tmp_path).directory / "transposed_lookup.wasm")
    assert max(worst_steps(model, wasm, seeds=range(3)).values()) <= 1.0 + 1e-3
