"""The three model sources: ONNX (covered everywhere), PyTorch .pt2 and Relax callables."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from wasm_build import WasmModel
from wasm_build.errors import ConfigError, WasmBuildError

from tests.support import build

RELAX_SOURCE = textwrap.dedent(
    '''
    import numpy as np
    import tvm
    from tvm import relax


    def _weights(seed):
        rng = np.random.default_rng(seed)
        return rng.standard_normal((16, 8)).astype("float32") * 0.25, rng.standard_normal((8,)).astype("float32")


    def build(batch="n"):
        """x[batch, 16] @ W + b -> relu, with weights bound as constants."""
        w, b = _weights(0)
        bb = relax.BlockBuilder()
        n = tvm.tirx.Var(batch, "int64") if isinstance(batch, str) else batch
        x = relax.Var("x", relax.TensorType((n, 16), "float32"))
        with bb.function("main", [x]):
            with bb.dataflow():
                y = bb.emit(relax.op.matmul(x, relax.const(w)))
                y = bb.emit(relax.op.add(y, relax.const(b)))
                out = bb.emit_output(relax.op.nn.relu(y))
            bb.emit_func_output(out)
        return bb.get()


    def static():
        return build(batch=2)


    def reference(x):
        w, b = _weights(0)
        return np.maximum(x @ w + b, 0)


    not_a_module = 42
    '''
)


@pytest.fixture
def relax_project(tmp_path):
    (tmp_path / "relax_models.py").write_text(RELAX_SOURCE)
    return tmp_path


def _reference(tmp_path):
    import importlib
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        return importlib.import_module("relax_models").reference
    finally:
        sys.path.remove(str(tmp_path))


def test_relax_callable_static(relax_project):
    result = build("relax_models:static", "relaxmlp", relax_project)
    wasm = WasmModel(result.directory / "relaxmlp.wasm")
    assert [(i.name, i.shape) for i in wasm.inputs] == [("x", (2, 16))]
    x = np.random.default_rng(3).standard_normal((2, 16)).astype("float32")
    (got,) = wasm.run({"x": x})
    np.testing.assert_allclose(got, _reference(relax_project)(x), rtol=1e-4, atol=1e-5)


def test_relax_callable_symbolic_dim_must_be_pinned(relax_project):
    with pytest.raises(ConfigError, match=r"input 'x' dimension 0 is dynamic \('n'\)"):
        build("relax_models:build", "relaxdyn", relax_project)
    result = build("relax_models:build", "relaxdyn", relax_project, inputs={"x": {"shape": [5, 16]}})
    wasm = WasmModel(result.directory / "relaxdyn.wasm")
    assert wasm.inputs[0].shape == (5, 16)
    x = np.random.default_rng(4).standard_normal((5, 16)).astype("float32")
    np.testing.assert_allclose(wasm.run([x])[0], _reference(relax_project)(x), rtol=1e-4, atol=1e-5)


def test_relax_callable_errors(relax_project):
    with pytest.raises(WasmBuildError, match="cannot import 'relax_models:nope'"):
        build("relax_models:nope", "bad", relax_project)
    with pytest.raises(WasmBuildError, match="returned int, not a tvm.IRModule"):
        build("relax_models:not_a_module", "bad", relax_project)


def test_pytorch_exported_program(tmp_path):
    torch = pytest.importorskip("torch")

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.fc = torch.nn.Linear(8, 4)

        def forward(self, image):
            features = torch.relu(self.conv(image)).mean(dim=(2, 3))
            return torch.softmax(self.fc(features), dim=-1)

    torch.manual_seed(0)
    net = Net().eval()
    example = torch.randn(1, 3, 16, 16)
    torch.export.save(torch.export.export(net, (example,)), str(tmp_path / "net.pt2"))

    result = build("net.pt2", "torchnet", tmp_path)
    wasm = WasmModel(result.directory / "torchnet.wasm")
    assert wasm.inputs[0].shape == (1, 3, 16, 16)
    image = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        want = net(image).numpy()
    np.testing.assert_allclose(wasm.run([image.numpy()])[0], want, rtol=1e-4, atol=1e-5)


def test_unknown_format(tmp_path):
    (tmp_path / "model.tflite").write_bytes(b"TFL3")
    with pytest.raises(WasmBuildError, match="unknown model format '.tflite'"):
        build("model.tflite", "tfl", tmp_path)
