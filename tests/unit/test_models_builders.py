"""The seeded ONNX model builders: valid, runnable, deterministic, and
computed identically by onnxruntime and by TVM natively."""

from __future__ import annotations

import importlib.util

import numpy as np
import onnx
import pytest
from onnx import helper
import tvm
from tvm.relax.frontend.onnx import from_onnx

from wasm_build.testing import models

from tests.support import REPO as ROOT  # noqa: E402

# Output name -> shape, in graph order, for each model in models.MODELS.
EXPECTED_OUTPUTS = {
    "mlp": {"probs": (1, 10)},
    "cnn": {"probs": (1, 10)},
    "transformer_block": {"hidden": (1, 16, 32)},
    "two_in_two_out": {"sum_relu": (2, 8), "prod_proj": (2, 4)},
    "kws_cnn": {"logits": (1, 12)},
}
RTOL = ATOL = 1e-4


def _load_bench_models():
    """Import bench/models.py by path: ``bench`` is a plain folder, not a package."""
    spec = importlib.util.spec_from_file_location("bench_models", ROOT / "bench" / "models.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_tvm(model: onnx.ModelProto, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Import with the Relax ONNX frontend, compile for the host, run in the VM."""
    executable = tvm.compile(from_onnx(model), tvm.target.Target({"kind": "llvm"}))
    vm = tvm.relax.VirtualMachine(executable, tvm.cpu())
    result = vm["main"](*[tvm.runtime.tensor(v) for v in inputs.values()])
    if isinstance(result, tvm.runtime.Tensor):
        return [result.numpy()]
    return [t.numpy() for t in result]  # several outputs come back as an Array


def _dim_params(value: onnx.ValueInfoProto) -> list[str]:
    return [d.dim_param for d in value.type.tensor_type.shape.dim if d.HasField("dim_param")]


def test_registry_matches_expectations():
    assert set(models.MODELS) == set(EXPECTED_OUTPUTS)


@pytest.fixture(scope="module", params=sorted(models.MODELS))
def built(request):
    """(name, model, inputs, onnxruntime outputs) for each registered model."""
    model = models.MODELS[request.param]()
    inputs = models.random_inputs(model)
    return request.param, model, inputs, models.reference_outputs(model, inputs)


def test_valid_onnx(built):
    _, model, _, _ = built
    onnx.checker.check_model(model, full_check=True)
    onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    assert [(op.domain, op.version) for op in model.opset_import] == [("", 17)]


def test_runs_in_onnxruntime(built):
    name, model, inputs, outputs = built
    expected = EXPECTED_OUTPUTS[name]
    assert [o.name for o in model.graph.output] == list(expected)
    assert [o.shape for o in outputs] == list(expected.values())
    for out in outputs:
        assert out.dtype == np.float32
        assert np.isfinite(out).all()


def test_inputs_are_float32_with_graph_shapes(built):
    _, model, inputs, _ = built
    assert list(inputs) == [i.name for i in model.graph.input]
    for value, array in zip(model.graph.input, inputs.values()):
        assert array.dtype == np.float32
        assert array.shape == tuple(d.dim_value for d in value.type.tensor_type.shape.dim)


def test_tvm_native_matches_onnxruntime(built):
    _, model, inputs, reference = built
    actual = _run_tvm(model, inputs)
    assert len(actual) == len(reference)
    for got, want in zip(actual, reference):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_deterministic(name):
    builder = models.MODELS[name]
    first = builder().SerializeToString()
    assert builder().SerializeToString() == first
    assert builder(seed=1).SerializeToString() != first


def test_softmax_outputs_are_not_saturated():
    for builder in (models.mlp, models.cnn):
        model = builder()
        (probs,) = models.reference_outputs(model, models.random_inputs(model))
        np.testing.assert_allclose(probs.sum(), 1.0, rtol=1e-5)
        assert probs.max() < 0.9


def test_unsupported_op_model_fails_in_tvm_frontend():
    model = models.unsupported_op_model()
    inputs = models.random_inputs(model)
    (spectrum,) = models.reference_outputs(model, inputs)
    assert spectrum.shape == (1, 9, 2)
    with pytest.raises(tvm.error.OpNotImplemented, match="not supported for frontend ONNX: DFT"):
        from_onnx(model)


def test_dynamic_batch_mlp():
    model = models.dynamic_batch_mlp()
    assert _dim_params(model.graph.input[0]) == ["batch"]
    assert _dim_params(model.graph.output[0]) == ["batch"]
    inputs = models.random_inputs(model, dims={"batch": 3})
    assert inputs["x"].shape == (3, 64)
    (reference,) = models.reference_outputs(model, inputs)
    assert reference.shape == (3, 10)
    (actual,) = _run_tvm(model, inputs)
    np.testing.assert_allclose(actual, reference, rtol=RTOL, atol=ATOL)


def test_save_round_trips(tmp_path):
    model = models.two_in_two_out()
    path = models.save(model, tmp_path / "sub" / "model.onnx")
    assert onnx.load(path).SerializeToString() == model.SerializeToString()


def test_bench_mobilenet_v2_is_valid():
    bench = _load_bench_models()
    assert set(bench.BENCH_MODELS) == {
        "mlp_784",
        "mobilenet_v2",
        "resnet18",
        "transformer_encoder",
        "kws_cnn",
        "vit_tiny",
        "deit_tiny",
    }
    model = bench.mobilenet_v2()
    onnx.checker.check_model(model, full_check=True)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    (output,) = inferred.graph.output
    assert [d.dim_value for d in output.type.tensor_type.shape.dim] == [1, 1000]
    groups = [
        helper.get_node_attr_value(node, "group")
        for node in model.graph.node
        if node.op_type == "Conv"
    ]
    assert sum(g > 1 for g in groups) == 17  # one depthwise Conv per inverted-residual block
    params = sum(int(np.prod(t.dims)) for t in model.graph.initializer)
    assert 3.4e6 < params < 3.6e6


def test_bench_sweep_shapes_are_valid_models_of_their_multiply_adds():
    from bench import sweep

    assert len({shape.name for shape in sweep.SHAPES}) == len(sweep.SHAPES)
    for shape in sweep.SHAPES:
        model = shape.model()
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        (node,) = inferred.graph.node
        dims = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
                for v in [*inferred.graph.input, *inferred.graph.output, *inferred.graph.value_info]}
        dims.update({t.name: list(t.dims) for t in inferred.graph.initializer})
        a, b = (dims[name] for name in node.input)
        out = dims[node.output[0]]
        reduction = a[1] if node.op_type == "Conv" else a[-1]
        assert int(np.prod(out)) * reduction == shape.macs, shape.name
