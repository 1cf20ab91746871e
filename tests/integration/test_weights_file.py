"""weights = "file": NAME.weights next to the library, loaded at init, checked."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wasm_build import WasmModel, WasmModelError
from wasm_build.testing import models

from tests.support import build


@pytest.fixture(scope="module")
def cnn_file_weights(tmp_path_factory):
    return build(models.cnn(), "cnnw", tmp_path_factory.mktemp("weights-file"), weights="file")


def test_weights_file_artifacts(cnn_file_weights):
    directory = cnn_file_weights.directory
    manifest = json.loads((directory / "cnnw.json").read_text())
    weights = (directory / "cnnw.weights").read_bytes()
    assert manifest["weights"] == {"mode": "file", "nbytes": len(weights)}
    assert len(weights) > 4000
    header = (directory / "cnnw.h").read_text()
    assert "int cnnw_init_from_file(const char* path);" in header
    assert "int cnnw_init(void);" not in header
    # The weights are not embedded: the archive is smaller than the weights plus code would be.
    assert weights[:4096] not in (directory / "libcnnw.a").read_bytes()


def test_weights_file_runs(cnn_file_weights):
    wasm = WasmModel(cnn_file_weights.directory / "cnnw.wasm")
    onnx_model = models.cnn()
    inputs = models.random_inputs(onnx_model, seed=11)
    np.testing.assert_allclose(wasm.run(inputs)[0], models.reference_outputs(onnx_model, inputs)[0], rtol=1e-3, atol=1e-5)


def test_weights_from_wasi_path(cnn_file_weights):
    """NAME_init_from_file reads through WASI from a preopened directory."""
    import wasmtime

    directory = cnn_file_weights.directory
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    wasi = wasmtime.WasiConfig()
    wasi.preopen_dir(str(directory), "/model")
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    exports = linker.instantiate(store, wasmtime.Module.from_file(engine, str(directory / "cnnw.wasm"))).exports(store)
    exports["_initialize"](store)
    memory = exports["memory"]

    def call_with_path(path: str) -> int:
        address = exports["malloc"](store, len(path) + 1)
        memory.write(store, path.encode() + b"\0", address)
        return exports["cnnw_init_from_file"](store, address)

    assert call_with_path("/model/missing.weights") == 6
    error = bytes(memory.read(store, exports["cnnw_last_error"](store), exports["cnnw_last_error"](store) + 200))
    assert b"cannot open weights file '/model/missing.weights'" in error
    assert call_with_path("/model/cnnw.weights") == 0


def test_wrong_or_stale_weights_are_rejected(cnn_file_weights):
    path = cnn_file_weights.directory / "cnnw.wasm"
    weights = (cnn_file_weights.directory / "cnnw.weights").read_bytes()
    with pytest.raises(WasmModelError) as info:
        WasmModel(path, weights=weights[:-4])
    assert info.value.status == 6 and "needs" in info.value.message
    stale = bytearray(weights)
    stale[len(stale) // 2] ^= 0x40
    with pytest.raises(WasmModelError) as info:
        WasmModel(path, weights=bytes(stale))
    assert info.value.status == 6 and "sha256 mismatch" in info.value.message


def test_crafted_weights_that_a_checksum_would_pass_are_rejected(cnn_file_weights):
    """Adding 3 to word 0 and subtracting 1 from word 1 kept the old checksum (a sum of words
    times odd position weights); SHA-256 refuses any change."""
    path = cnn_file_weights.directory / "cnnw.wasm"
    words = np.frombuffer((cnn_file_weights.directory / "cnnw.weights").read_bytes(), dtype="<u4").copy()
    words[0] += np.uint32(3)
    words[1] -= np.uint32(1)
    with pytest.raises(WasmModelError) as info:
        WasmModel(path, weights=words.tobytes())
    assert info.value.status == 6 and "sha256 mismatch" in info.value.message


def test_init_from_buffer_with_an_unaligned_pointer_and_a_huge_size_is_an_error(cnn_file_weights):
    """The aligned copy's size used to overflow before the size check, and the module trapped."""
    from wasm_build.wasm import engine

    instance = engine.instantiate(engine.load(cnn_file_weights.directory / "cnnw.wasm"))
    address = instance.call("malloc", 128) + 1  # unaligned
    for size in (0xFFFFFFFF, 0xFFFFFFC1, 0x80000000):
        assert instance.call("cnnw_init_from_buffer", address, size) == 6
        assert "needs" in engine.c_string(instance, instance.call("cnnw_last_error"))
