"""Bad input gets a clear error naming the problem and the fix, and leaves nothing half-written."""

from __future__ import annotations

import os

import numpy as np
import pytest
import wasmtime

from wasm_build import WasmModel, WasmModelError
from wasm_build.errors import ConfigError, SmokeTestError, WasmBuildError
from wasm_build.testing import models

from tests.support import build, run_cli


def assert_nothing_left(out_dir, name):
    leftovers = [p.name for p in out_dir.iterdir() if name in p.name and not p.name.endswith(".onnx")]
    assert leftovers == [], f"partial artifacts left behind: {leftovers}"


def test_unsupported_operator_is_named(tmp_path):
    with pytest.raises(WasmBuildError) as info:
        build(models.unsupported_op_model(), "dft", tmp_path)
    message = str(info.value)
    assert "DFT" in message and "not support" in message
    assert info.value.stage == "frontend" and info.value.model == "dft"
    assert "fix:" in message
    assert_nothing_left(tmp_path, "dft")


def test_unpinned_dynamic_dimension_says_how_to_pin(tmp_path):
    with pytest.raises(ConfigError) as info:
        build(models.dynamic_batch_mlp(), "dyn", tmp_path)
    message = str(info.value)
    assert "input 'x' dimension 0 is dynamic ('batch')" in message
    assert "--input x=1x64" in message
    assert_nothing_left(tmp_path, "dyn")


def test_pinned_dynamic_dimension_builds_and_runs(tmp_path):
    result = build(models.dynamic_batch_mlp(), "dyn", tmp_path, inputs={"x": {"shape": [3, 64]}})
    wasm = WasmModel(result.directory / "dyn.wasm")
    assert wasm.inputs[0].shape == (3, 64)
    onnx_model = models.dynamic_batch_mlp()
    x = np.random.default_rng(0).standard_normal((3, 64)).astype("float32")
    (want,) = models.reference_outputs(onnx_model, {"x": x})
    (got,) = wasm.run({"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


def test_missing_model_file(tmp_path):
    with pytest.raises(WasmBuildError) as info:
        build("does/not/exist.onnx", "missing", tmp_path)
    assert "does not exist" in str(info.value) and "does/not/exist.onnx" in str(info.value)
    assert_nothing_left(tmp_path, "missing")


@pytest.mark.parametrize("content", [b"this is not a protobuf \xff\xfe", None], ids=["garbage", "truncated"])
def test_corrupt_model_file(tmp_path, content):
    path = tmp_path / "broken.onnx"
    data = models.cnn().SerializeToString()
    path.write_bytes(content if content is not None else data[: len(data) // 3])
    with pytest.raises(WasmBuildError) as info:
        build(str(path), "broken", tmp_path)
    assert "broken.onnx" in str(info.value)
    assert "fix:" in str(info.value)
    assert_nothing_left(tmp_path, "broken")


def test_wrong_input_name_suggests_the_right_one(tmp_path):
    with pytest.raises(ConfigError) as info:
        build(models.kws_cnn(), "kws", tmp_path, inputs={"xx": {"shape": [1, 1, 49, 40]}})
    assert "input 'xx' is not an input of the model" in str(info.value)
    assert "did you mean 'x'?" in str(info.value)


def test_wrong_input_shape_is_rejected(tmp_path):
    with pytest.raises(ConfigError) as info:
        build(models.kws_cnn(), "kws", tmp_path, inputs={"x": {"shape": [1, 1, 50, 40]}})
    assert "dimension 2 is 49 in the model but pinned to 50" in str(info.value)
    with pytest.raises(ConfigError) as info:
        build(models.kws_cnn(), "kws", tmp_path, inputs={"x": {"shape": [1, 49, 40]}})
    assert "has 4 dimensions" in str(info.value)


def test_smoke_test_mismatch_fails_the_build_and_keeps_old_artifacts(tmp_path):
    good = build(models.cnn(), "cnn", tmp_path)
    before = (good.directory / "libcnn.a").read_bytes()
    # Zero tolerance: wasm SIMD and native accumulate in different orders, so outputs differ in the last bits.
    with pytest.raises(SmokeTestError) as info:
        build(models.cnn(), "cnn", tmp_path, rtol=0.0, atol=0.0, default_schedules=False)
    message = str(info.value)
    assert "wasm output differs from the reference" in message
    assert "expected" in message and "probs" in message
    assert info.value.stage == "smoke test"
    assert (good.directory / "libcnn.a").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


# -- run-time errors: status codes and messages, never a trap ------------------------------


@pytest.fixture(scope="module")
def mlp_build(tmp_path_factory):
    return build(models.mlp(), "mlp", tmp_path_factory.mktemp("runtime-errors"))


def test_wrong_buffer_size_is_an_error_code(mlp_build):
    wasm = WasmModel(mlp_build.directory / "mlp.wasm")
    with pytest.raises(WasmModelError) as info:
        wasm.run_bytes([b"\0" * 10])
    assert info.value.status == 4
    assert "input 0 ('x') has 10 bytes, expected 256" in info.value.message
    with pytest.raises(WasmModelError) as info:
        wasm.run_bytes([b"\0" * 256], output_sizes=[3])
    assert info.value.status == 4 and "output 0" in info.value.message
    # The instance is still usable after errors.
    x = np.ones((1, 64), dtype="float32")
    (got,) = wasm.run({"x": x})
    (want,) = models.reference_outputs(models.mlp(), {"x": x})
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


def _raw_instance(path):
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, wasmtime.Module.from_file(engine, str(path)))
    exports = instance.exports(store)
    exports["_initialize"](store)
    return store, exports


def _c_string(store, memory, address):
    data = bytes(memory.read(store, address, address + 256))
    return data.split(b"\0", 1)[0].decode()


def test_run_before_init_and_null_pointers(mlp_build):
    store, exports = _raw_instance(mlp_build.directory / "mlp.wasm")
    memory = exports["memory"]
    assert exports["mlp_run"](store, 0, 0, 0, 0) == 1  # not initialized
    assert "call mlp_init() first" in _c_string(store, memory, exports["mlp_last_error"](store))
    assert exports["mlp_init"](store) == 0
    assert exports["mlp_run"](store, 0, 0, 0, 0) == 2  # null pointers
    assert "must not be NULL" in _c_string(store, memory, exports["mlp_last_error"](store))
    info = exports["malloc"](store, 32)
    assert exports["mlp_input_info"](store, 5, info) == 3
    assert "index 5 out of range" in _c_string(store, memory, exports["mlp_last_error"](store))
    assert exports["mlp_input_info"](store, 0, 0) == 2


def test_wrong_shape_from_python_is_a_clear_error(mlp_build):
    wasm = WasmModel(mlp_build.directory / "mlp.wasm")
    with pytest.raises(ValueError, match=r"input 'x' must have shape \(1, 64\)"):
        wasm.run({"x": np.zeros((2, 64), dtype="float32")})
    with pytest.raises(ValueError, match="unknown"):
        wasm.run({"y": np.zeros((1, 64), dtype="float32")})


# -- the command line --------------------------------------------------------------------




def test_cli_reports_errors_with_exit_code(tmp_path):
    models.save(models.kws_cnn(), tmp_path / "kws.onnx")
    proc = run_cli("compile", "kws.onnx", "--name", "kws", "--input", "xx=1x1x49x40", "--no-cache", cwd=tmp_path)
    assert proc.returncode == 1
    assert "wasm-build: error:" in proc.stderr and "did you mean 'x'?" in proc.stderr
    proc = run_cli("compile", "kws.onnx", "--input", "x=1x?x49", cwd=tmp_path)
    assert proc.returncode == 1 and "is neither a size nor the name of a dimension" in proc.stderr
    proc = run_cli("compile", "models:build", cwd=tmp_path)
    assert proc.returncode == 1 and "pass --name NAME" in proc.stderr
    proc = run_cli("compile", "kws.onnx", "--name", "3kws", cwd=tmp_path)
    assert proc.returncode == 1 and "not a valid C identifier" in proc.stderr
    assert not (tmp_path / "build").exists() or not any((tmp_path / "build" / "wasm").iterdir())


def test_mistyped_cli_option_gets_a_suggestion(tmp_path):
    proc = run_cli("compile", "kws.onnx", "--imput", "x=1x64", cwd=tmp_path)
    assert proc.returncode == 2 and "unrecognized argument --imput; did you mean --input?" in proc.stderr
    assert "wasm-build compile" in proc.stderr  # the usage of the command it belongs to, not the top level
    proc = run_cli("compile", "kws.onnx", "--out-dir", "x", cwd=tmp_path)
    assert proc.returncode == 2 and "did you mean --out?" in proc.stderr


@pytest.mark.parametrize("op_type", ["NonMaxSuppression", "NonZero"])
def test_data_dependent_output_shapes_are_refused_by_node(tmp_path, op_type):
    from onnx import TensorProto, helper

    if op_type == "NonZero":
        inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])]
        node = helper.make_node("NonZero", ["x"], ["y"], name="find_nonzero")
        initializers = []
    else:
        inputs = [
            helper.make_tensor_value_info("boxes", TensorProto.FLOAT, [1, 10, 4]),
            helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 1, 10]),
        ]
        node = helper.make_node("NonMaxSuppression", ["boxes", "scores", "k"], ["y"], name="nms")
        initializers = [helper.make_tensor("k", TensorProto.INT64, [1], [5])]
    output = helper.make_tensor_value_info("y", TensorProto.INT64, None)
    graph = helper.make_graph([node], "g", inputs, [output], initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(WasmBuildError) as info:
        build(model, "dd", tmp_path)
    message = str(info.value)
    assert f"'{node.name}' ({op_type}" in message and "depends on the input values" in message
    assert "fix:" in message and "extract_model" in message
    assert len(message.splitlines()) < 5
    assert_nothing_left(tmp_path, "dd")


def test_string_tensors_and_training_operators_are_refused_by_name(tmp_path):
    from onnx import TensorProto, helper

    strings = helper.make_graph(
        [helper.make_node("StringNormalizer", ["text"], ["normalized"], case_change_action="LOWER")],
        "g",
        [helper.make_tensor_value_info("text", TensorProto.STRING, [3])],
        [helper.make_tensor_value_info("normalized", TensorProto.STRING, [3])],
    )
    with pytest.raises(WasmBuildError) as info:
        build(helper.make_model(strings, opset_imports=[helper.make_opsetid("", 17)]), "strings", tmp_path)
    assert "string tensors ('normalized', 'text')" in str(info.value) and "token ids" in str(info.value)

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    gradient = helper.make_node("Gradient", ["x"], ["dx"], domain="ai.onnx.preview.training", xs=["x"], y="x")
    training = helper.make_graph([gradient], "g", [x], [helper.make_tensor_value_info("dx", TensorProto.FLOAT, [2])])
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.preview.training", 1)]
    with pytest.raises(WasmBuildError) as info:
        build(helper.make_model(training, opset_imports=opsets), "training", tmp_path)
    assert "training operator(s) ai.onnx.preview.training:Gradient" in str(info.value) and info.value.fix
    assert_nothing_left(tmp_path, "strings")
    assert_nothing_left(tmp_path, "training")


def test_an_invalid_export_is_called_one(tmp_path):
    # torch's TorchScript exporter writes Falcon's rotary embedding as a Cast to complex128 that a
    # Mul reads: TVM fails on the dtype, and the message says onnxruntime refuses the model too.
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("Cast", ["x"], ["c"], to=TensorProto.COMPLEX128), helper.make_node("Mul", ["c", "c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [x], [helper.make_tensor_value_info("y", TensorProto.COMPLEX128, [2])])
    with pytest.raises(WasmBuildError) as info:
        build(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), "broken", tmp_path)
    message = str(info.value)
    assert "onnxruntime cannot load the model either" in message and "complex128" in message
    assert "re-export" in info.value.fix
    assert_nothing_left(tmp_path, "broken")


def test_artifact_directories_have_ordinary_permissions(mlp_build):
    """Staging directories come from mkdtemp (0700); the artifacts they turn into must not."""
    umask = os.umask(0)
    os.umask(umask)
    expected = 0o777 & ~umask
    for directory in [mlp_build.directory, *(p for p in mlp_build.directory.rglob("*") if p.is_dir())]:
        assert directory.stat().st_mode & 0o777 == expected, directory


def test_run_refuses_casts_that_change_values(mlp_build):
    """float64 values that fit float32 are converted; overflow, wrapped ints and kind changes are refused."""
    from wasm_build import WasmModel

    wasm = WasmModel(mlp_build.directory / "mlp.wasm", weights=mlp_build.directory / "mlp.weights")
    (info,) = wasm.inputs
    fits = np.random.default_rng(1).standard_normal(info.shape)  # float64
    (converted,) = wasm.run([fits])
    (direct,) = wasm.run([fits.astype(np.float32)])
    np.testing.assert_array_equal(converted, direct)
    huge = fits.copy()
    huge.flat[3] = 1e40
    with pytest.raises(ValueError, match="overflow float32"):
        wasm.run([huge])
    with pytest.raises(ValueError, match="across kinds"):
        wasm.run([np.ones(info.shape, dtype=np.int64)])
    with pytest.raises(ValueError, match="must have shape"):
        wasm.run([np.ones((1, 3), dtype=np.float32)])


def test_repeated_runs_survive_memory_growth(mlp_build):
    """Run buffers and the memory view are reused across runs; growing memory moves it."""
    from wasm_build import WasmModel

    wasm = WasmModel(mlp_build.directory / "mlp.wasm", weights=mlp_build.directory / "mlp.weights")
    x = np.random.default_rng(2).standard_normal(wasm.inputs[0].shape).astype(np.float32)
    (first,) = wasm.run([x])
    pages = wasm._memory.size(wasm._store)
    wasm._malloc(64 << 20)  # forces memory.grow
    assert wasm._memory.size(wasm._store) > pages
    (again,) = wasm.run([x])
    np.testing.assert_array_equal(first, again)


def test_a_kernel_past_the_engines_parameter_limit_is_refused_before_code_generation(tmp_path):
    """An LSTM unrolled over 1000 frames concatenates its 1000 states in one kernel of 1001
    tensors: wasmtime then refused the whole module ('function params size is out of bounds'),
    after minutes of compiling. The build stops before generating code and says what to do."""
    import tvm
    from tvm import tirx

    from wasm_build.codegen.abi import MAX_KERNEL_PARAMS
    from wasm_build.compiler.kernels import build_kernels
    from wasm_build.compiler.pipeline import LoweredModel
    from wasm_build.compiler.target import TargetOptions

    def kernel(name: str, params: int) -> tvm.IRModule:
        func = tirx.PrimFunc([tirx.Var(f"p{i}", "handle") for i in range(params)], tirx.Evaluate(tirx.const(0, "int32")))
        return tvm.IRModule({name: func.with_attr("global_symbol", name)})

    within = kernel("at_the_limit", MAX_KERNEL_PARAMS)
    build_kernels(LoweredModel(within, "t_"), TargetOptions(), tmp_path / "within.o")
    assert (tmp_path / "within.o").stat().st_size > 0

    past = kernel("fused_concatenate", MAX_KERNEL_PARAMS + 1)
    with pytest.raises(WasmBuildError) as info:
        build_kernels(LoweredModel(past, "t_"), TargetOptions(), tmp_path / "past.o")
    message = str(info.value)
    assert "kernel 'fused_concatenate' takes 1001 tensors" in message and "at most 1000 parameters" in message
    assert "fix:" in message and "initial states" in message
    assert not (tmp_path / "past.o").exists()
