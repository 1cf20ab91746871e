"""Models built in the tests, compiled, linked, run in wasmtime, compared with references.

The build's own smoke test already compares with native TVM and onnxruntime
(and would fail the build); these tests also check the artifacts and compare
on their own inputs, independently of the smoke test's.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from wasm_build import WasmModel
from wasm_build.testing import models

from tests.support import build

SMALL_MODELS = ["mlp", "cnn", "transformer_block", "two_in_two_out", "kws_cnn"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    cache = {}

    def _get(name: str):
        if name not in cache:
            cache[name] = build(models.MODELS[name](), name, root)
        return cache[name]

    return _get


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_model_matches_onnxruntime_in_wasmtime(built, name):
    result = built(name)
    onnx_model = models.MODELS[name]()
    inputs = models.random_inputs(onnx_model, seed=7)
    expected = models.reference_outputs(onnx_model, inputs)

    wasm = WasmModel(result.directory / f"{name}.wasm")
    got = wasm.run(inputs)

    assert [o.name for o in wasm.outputs] == [o.name for o in onnx_model.graph.output]
    assert len(got) == len(expected)
    for have, want in zip(got, expected):
        assert have.shape == want.shape
        np.testing.assert_allclose(have, want, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_artifacts_and_manifest(built, name):
    result = built(name)
    directory = result.directory
    for artifact in (f"lib{name}.a", f"{name}.h", f"{name}.wasm", f"{name}.json"):
        assert (directory / artifact).is_file(), artifact
    manifest = json.loads((directory / f"{name}.json").read_text())
    assert manifest["name"] == name
    assert manifest["target"]["features"] == ["+bulk-memory", "+simd128"]
    assert manifest["versions"]["tvm"].startswith("0.27")
    onnx_model = models.MODELS[name]()
    assert [i["name"] for i in manifest["inputs"]] == [i.name for i in onnx_model.graph.input if i.name not in {t.name for t in onnx_model.graph.initializer}]
    for entry in manifest["inputs"] + manifest["outputs"]:
        assert entry["nbytes"] == int(np.prod(entry["shape"])) * np.dtype(entry["dtype"]).itemsize
    # Every artifact's hash is recorded and right.
    import hashlib

    for relative, digest in manifest["artifacts"].items():
        assert hashlib.sha256((directory / relative).read_bytes()).hexdigest() == digest
    # Archive members are relocatable wasm objects, not linked modules.
    archive = (directory / f"lib{name}.a").read_bytes()
    assert archive.startswith(b"!<arch>\n")
    assert b"\0asm" in archive


def test_header_documents_signature(built):
    header = (built("two_in_two_out").directory / "two_in_two_out.h").read_text()
    assert "int two_in_two_out_init(void);" in header
    assert "#define TWO_IN_TWO_OUT_NUM_INPUTS 2" in header
    assert '"a" float32[2, 8], 64 bytes' in header
    assert '"prod_proj" float32[2, 4], 32 bytes' in header


def test_wasm_model_metadata(built):
    wasm = WasmModel(built("two_in_two_out").directory / "two_in_two_out.wasm")
    assert [(i.name, i.shape, i.dtype, i.nbytes) for i in wasm.inputs] == [
        ("a", (2, 8), "float32", 64),
        ("b", (2, 8), "float32", 64),
    ]
    assert [(o.name, o.shape) for o in wasm.outputs] == [("sum_relu", (2, 8)), ("prod_proj", (2, 4))]


def test_runs_repeatedly_with_fresh_results(built):
    """State must not leak between runs (arena reuse, in-place kernels)."""
    wasm = WasmModel(built("mlp").directory / "mlp.wasm")
    onnx_model = models.mlp()
    for seed in (1, 2, 3):
        inputs = models.random_inputs(onnx_model, seed=seed)
        (got,) = wasm.run(inputs)
        (want,) = models.reference_outputs(onnx_model, inputs)
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


def test_simd_kernels_contain_v128(built):
    """SIMD128 is on by default: the linked module uses v128 instructions."""
    wasm_bytes = (built("cnn").directory / "cnn.wasm").read_bytes()
    import wasmtime

    # Validation with SIMD disabled must fail for a module that uses v128.
    config = wasmtime.Config()
    config.wasm_simd = False
    config.wasm_relaxed_simd = False
    with pytest.raises(Exception):
        wasmtime.Module(wasmtime.Engine(config), wasm_bytes)


def test_no_simd_build_validates_without_simd(tmp_path):
    result = build(models.mlp(), "mlp_scalar", tmp_path, simd=False)
    import wasmtime

    config = wasmtime.Config()
    config.wasm_simd = False
    config.wasm_relaxed_simd = False
    wasmtime.Module(wasmtime.Engine(config), (result.directory / "mlp_scalar.wasm").read_bytes())
    assert json.loads((result.directory / "mlp_scalar.json").read_text())["target"]["features"] == ["+bulk-memory"]
