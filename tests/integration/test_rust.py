"""The generated Rust crate, built with Debian's rustc 1.63 / cargo 1.65 for wasm32-wasi.

Every program here is really compiled with cargo, run in wasmtime and compared
with onnxruntime on the same inputs. Models are built once per session.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.support import EXAMPLE, build
from tests.support.rust import CARGO, dependency, write_crate
from tests.support.wasm import read_f32, run_command
from wasm_build.wasm import engine as wasm_engine
from wasm_build.testing import models

# The same keys and factories as tests/integration/test_c_consumers.py: a session builds each model once.


# -- models -----------------------------------------------------------------------------------


# -- the generated crate, without cargo --------------------------------------------------------


def test_crate_files_link_the_archive_without_whole_archive(kws_build, mlp_build):
    crate = kws_build.directory / "rust"
    cargo_toml = (crate / "Cargo.toml").read_text()
    build_rs = (crate / "build.rs").read_text()
    lib_rs = (crate / "src" / "lib.rs").read_text()
    assert 'links = "kws"' in cargo_toml and 'name = "kws"' in cargo_toml
    assert "cargo:rustc-link-lib=static:-bundle={}" in build_rs and "whole-archive=" not in build_rs.replace("`+whole-archive`", "")
    for var in ("KWS_LIB_DIR", "WASM_BUILD_LIB_DIR"):
        assert f"cargo:rerun-if-env-changed={var}" in build_rs
    assert "pub fn kws_init() -> c_int;" in lib_rs
    assert 'TensorSpec { name: "x", dtype: DType::F32, shape: &[1, 1, 49, 40], nbytes: 7840 }' in lib_rs
    # File-mode models get path and buffer constructors instead of the embedded init.
    mlp_lib = (mlp_build.directory / "rust" / "src" / "lib.rs").read_text()
    assert "pub fn mlp_init_from_file(path: *const c_char) -> c_int;" in mlp_lib
    assert "pub fn from_weights(weights: &[u8])" in mlp_lib and "fn mlp_init()" not in mlp_lib
    assert "rust/src/lib.rs" in kws_build.manifest["artifacts"]


def test_crates_of_one_out_dir_share_one_runtime(kws_build, mlp_build):
    """The model-independent code is written once per output directory, not into every crate."""
    from wasm_build.codegen.rust import runtime_fingerprint, runtime_text

    for result in (kws_build, mlp_build):
        runtime = result.directory.parent / "rust-runtime" / "runtime.rs"
        assert runtime.read_text() == runtime_text()
        lib_rs = (result.directory / "rust" / "src" / "lib.rs").read_text()
        assert '#[path = "../../../rust-runtime/runtime.rs"]\nmod runtime;' in lib_rs
        assert f"runtime::FINGERPRINT == 0x{runtime_fingerprint()}," in lib_rs
        assert "pub struct Model" not in lib_rs and "fn verify_library" not in lib_rs
        assert len(lib_rs.splitlines()) < 200
    assert "pub struct Model {" in runtime_text() and "fn verify_library(" in runtime_text()


def test_runtime_writes_are_whole_and_leave_an_unchanged_file_alone(tmp_path):
    """Concurrent builds into one out-dir: readers see the old or the new file, never a part."""
    import threading

    from wasm_build.codegen.rust import runtime_text, write_rust_runtime

    runtime = tmp_path / "rust-runtime" / "runtime.rs"
    new = runtime_text()
    runtime.parent.mkdir()
    seen: set[str] = set()
    for _ in range(10):
        runtime.write_text("// another wasm-build\n")
        stop = threading.Event()

        def read() -> None:
            while not stop.is_set():
                seen.add(runtime.read_text())

        reader = threading.Thread(target=read)
        reader.start()
        writers = [threading.Thread(target=write_rust_runtime, args=(tmp_path,)) for _ in range(4)]
        for thread in writers:
            thread.start()
        for thread in writers:
            thread.join()
        stop.set()
        reader.join()
        assert runtime.read_text() == new
    assert seen <= {"// another wasm-build\n", new}
    assert [p.name for p in runtime.parent.iterdir()] == ["runtime.rs"]  # no temporary files left
    # Same content: the file is not rewritten, so cargo does not rebuild the crates.
    os.utime(runtime, ns=(1, 1))
    write_rust_runtime(tmp_path)
    assert runtime.stat().st_mtime_ns == 1


def test_crate_names_avoid_rust_keywords():
    from wasm_build.codegen.rust import crate_name, rust_string

    assert crate_name("kws") == "kws"
    assert crate_name("type") == "type_model"
    assert rust_string('a"b\\c\u00e9\n') == '"a\\"b\\\\c\\u{e9}\\u{a}"'


# -- command programs ----------------------------------------------------------------------

# Little-endian f32 files: how the test programs exchange tensors with the tests.
RUST_FILE_HELPERS = r"""
fn read_f32(path: &str) -> Vec<f32> {
    let bytes = fs::read(path).unwrap_or_else(|e| { println!("cannot read {}: {}", path, e); process::exit(3) });
    bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn write_f32(path: &str, values: &[f32]) {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    fs::write(path, bytes).unwrap_or_else(|e| { println!("cannot write {}: {}", path, e); process::exit(3) });
}
"""

SINGLE_MAIN = r"""
use std::fs;
use std::process;

""" + RUST_FILE_HELPERS + r"""
fn main() {
    let mut model = match kws::Model::new() {
        Ok(model) => model,
        Err(error) => { println!("error: {}", error); process::exit(2) }
    };
    for spec in model.inputs().iter().chain(model.outputs()) {
        println!("tensor {} {} {:?} {}", spec.name, spec.dtype, spec.shape, spec.nbytes);
    }
    let x = read_f32("x.bin");
    let outputs = match model.run(&[kws::Input::from(&x[..])]) {
        Ok(outputs) => outputs,
        Err(error) => { println!("error: {}", error); process::exit(2) }
    };
    let typed = model.run_f32(&[&x]).unwrap_or_else(|e| { println!("error: {}", e); process::exit(2) });
    for (i, output) in outputs.iter().enumerate() {
        let values = output.as_slice::<f32>().expect("float32 output");
        println!("run_f32 agrees: {}", values == &typed[i][..]);
        write_f32(&format!("out{}.bin", i), values);
    }
}
"""


def _single_crate(root: Path, kws_build, *, lto: bool) -> Path:
    profile = "\n[profile.release]\nlto = true\ncodegen-units = 1\n" if lto else ""
    cargo_toml = f"""[package]
name = "single_{'lto' if lto else 'debug'}"
version = "0.1.0"
edition = "2021"

[dependencies]
{dependency(kws_build)}
{profile}"""
    return write_crate(root, cargo_toml, {"src/main.rs": SINGLE_MAIN})


def _check_single(wasm: Path, workdir: Path) -> None:
    model = models.kws_cnn(blocks=2)
    inputs = models.random_inputs(model, seed=3)
    workdir.mkdir(parents=True, exist_ok=True)
    inputs["x"].astype("<f4").tofile(workdir / "x.bin")
    code, out, err = run_command(wasm, workdir)
    assert code == 0, out + err
    assert "tensor x float32 [1, 1, 49, 40] 7840" in out
    assert "tensor logits float32 [1, 12] 48" in out
    assert "run_f32 agrees: true" in out and "false" not in out
    [expected] = models.reference_outputs(model, inputs)
    np.testing.assert_allclose(read_f32(workdir / "out0.bin", expected.shape), expected, rtol=1e-4, atol=1e-5)


def test_rust_command_matches_onnxruntime(cargo, kws_build, tmp_path):
    crate = _single_crate(tmp_path / "single", kws_build, lto=False)
    proc = cargo.build(crate)
    assert proc.returncode == 0, proc.stderr
    # The generated crate compiles without warnings (path dependencies show theirs).
    assert "warning" not in proc.stderr, proc.stderr
    wasm = cargo.target_dir / "wasm32-wasi" / "debug" / "single_debug.wasm"
    _check_single(wasm, tmp_path / "run")


def test_rust_release_lto_keeps_the_library(cargo, kws_build, tmp_path):
    crate = _single_crate(tmp_path / "single", kws_build, lto=True)
    wasm = cargo.build_ok(crate, "single_lto", release=True)
    _check_single(wasm, tmp_path / "run")


def test_build_script_honours_lib_dir_overrides(cargo, kws_build, tmp_path):
    crate = _single_crate(tmp_path / "single", kws_build, lto=False)
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = cargo.build(crate, KWS_LIB_DIR=str(empty))
    assert proc.returncode != 0
    assert f"libkws.a not found in {empty}" in proc.stderr and "KWS_LIB_DIR" in proc.stderr
    # WASM_BUILD_LIB_DIR may name the output root (OUT/kws/libkws.a) or the archive's directory.
    cargo.build_ok(crate, "single_debug", WASM_BUILD_LIB_DIR=str(kws_build.directory.parent))
    proc = cargo.build(crate, WASM_BUILD_LIB_DIR=str(empty))
    assert proc.returncode != 0 and "WASM_BUILD_LIB_DIR" in proc.stderr


TWO_MODELS_MAIN = r"""
use std::env;
use std::fs;
use std::process;

""" + RUST_FILE_HELPERS + r"""
fn both() -> Result<(), Box<dyn std::error::Error>> {
    let mut kws_model = kws::Model::new()?;
    let mut mlp_model = mlp::Model::new()?; // reads mlp.weights from "."
    let kws_out = kws_model.run_f32(&[&read_f32("kws_x.bin")])?;
    let mlp_x = read_f32("mlp_x.bin");
    let mlp_out = mlp_model.run_f32(&[&mlp_x])?;
    write_f32("kws_out0.bin", &kws_out[0]);
    write_f32("mlp_out0.bin", &mlp_out[0]);
    // The same weights from a buffer give the same result.
    drop(mlp_model);
    let weights = fs::read("mlp.weights")?;
    let mut from_buffer = mlp::Model::from_weights(&weights)?;
    println!("from_weights agrees: {}", from_buffer.run_f32(&[&mlp_x])? == mlp_out);
    Ok(())
}

fn misuse() {
    let x = vec![0.5f32; kws::INPUTS[0].len()];
    let mut model = kws::Model::new().expect("kws init");
    println!("wrong length: {}", model.run_f32(&[&x[1..]]).unwrap_err());
    println!("wrong count: {}", model.run_f32(&[&x, &x]).unwrap_err());
    let ints = vec![1i64; kws::INPUTS[0].len()];
    println!("wrong dtype: {}", model.run(&[kws::Input::from(&ints[..])]).unwrap_err());
    let mut small = [0u8; 4];
    println!("wrong output size: {}", model.run_bytes(&[&[0u8; 7840][..]], &mut [&mut small[..]]).unwrap_err());
    println!("second model: {}", kws::Model::new().unwrap_err());
    println!("still works: {}", model.run_f32(&[&x]).is_ok());

    let error = mlp::Model::from_file("missing.weights").unwrap_err();
    println!("missing weights: {} [status {:?}]", error, error.status());
    // Bypassing the wrapper after the failed init: the C library reports, it does not trap.
    let input = vec![0f32; 64];
    let mut output = vec![0f32; 10];
    let status = unsafe {
        mlp::ffi::mlp_run(
            [input.as_ptr() as *const std::os::raw::c_void].as_ptr(),
            [256usize].as_ptr(),
            [output.as_mut_ptr() as *mut std::os::raw::c_void].as_ptr(),
            [40usize].as_ptr(),
        )
    };
    let message = unsafe { std::ffi::CStr::from_ptr(mlp::ffi::mlp_last_error()) };
    println!("raw run after failed init: status {}: {}", status, message.to_string_lossy());
    println!("short weights: {}", mlp::Model::from_weights(&[0u8; 16]).unwrap_err());
    let mut recovered = mlp::Model::new().expect("mlp init");
    println!("recovered: {}", recovered.run_f32(&[&input]).is_ok());
}

fn main() {
    match env::args().nth(1).as_deref() {
        Some("both") => {
            if let Err(error) = both() {
                println!("error: {}", error);
                process::exit(2);
            }
        }
        Some("misuse") => misuse(),
        _ => { println!("usage: two-models both|misuse"); process::exit(2) }
    }
}
"""


@pytest.fixture(scope="module")
def two_models_wasm(cargo, kws_build, mlp_build, tmp_path_factory) -> Path:
    cargo_toml = f"""[package]
name = "two_models"
version = "0.1.0"
edition = "2021"

[dependencies]
{dependency(kws_build)}
{dependency(mlp_build)}
"""
    crate = write_crate(tmp_path_factory.mktemp("two-models"), cargo_toml, {"src/main.rs": TWO_MODELS_MAIN})
    return cargo.build_ok(crate, "two_models")


def test_two_model_crates_in_one_program(two_models_wasm, mlp_build, tmp_path):
    kws_model, mlp_model = models.kws_cnn(blocks=2), models.mlp()
    kws_in = models.random_inputs(kws_model, seed=1)
    mlp_in = models.random_inputs(mlp_model, seed=2)
    kws_in["x"].astype("<f4").tofile(tmp_path / "kws_x.bin")
    mlp_in["x"].astype("<f4").tofile(tmp_path / "mlp_x.bin")
    shutil.copyfile(mlp_build.directory / "mlp.weights", tmp_path / "mlp.weights")

    code, out, err = run_command(two_models_wasm, tmp_path, "both")
    assert code == 0, out + err
    assert "from_weights agrees: true" in out
    for name, model, inputs in (("kws", kws_model, kws_in), ("mlp", mlp_model, mlp_in)):
        [expected] = models.reference_outputs(model, inputs)
        actual = read_f32(tmp_path / f"{name}_out0.bin", expected.shape)
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5, err_msg=name)


def test_bad_use_returns_errors_not_traps(two_models_wasm, mlp_build, tmp_path):
    shutil.copyfile(mlp_build.directory / "mlp.weights", tmp_path / "mlp.weights")
    code, out, err = run_command(two_models_wasm, tmp_path, "misuse")
    assert code == 0, out + err
    lines = dict(line.split(": ", 1) for line in out.splitlines())
    assert lines["wrong length"] == (
        "Model::run failed (Size): input 0 ('x') has 1959 elements, expected 1960 (shape [1, 1, 49, 40])"
    )
    assert lines["wrong count"] == "Model::run failed (Count): kws takes 1 inputs, got 2"
    assert lines["wrong dtype"] == "Model::run failed (DType): input 0 ('x') must be float32, got int64"
    # Raw byte sizes are checked by the C library itself: its status and message come through.
    assert lines["wrong output size"].startswith("kws_run failed with status 4 (Size): kws_run: output 0 ('logits') has 4 bytes, expected 48")
    assert "(InUse)" in lines["second model"]
    assert lines["still works"] == "true"
    assert lines["missing weights"] == (
        "mlp_init_from_file failed with status 6 (Weights): cannot open weights file 'missing.weights' "
        "(is its directory preopened?) [status Some(6)]"
    )
    assert lines["raw run after failed init"].startswith("status 1: mlp_run: the model is not initialized")
    assert lines["short weights"].startswith("mlp_init_from_buffer failed with status 6 (Weights): weights have 16 bytes")
    assert lines["recovered"] == "true"


# -- tensor names are data ----------------------------------------------------------------

# Names from a model file land in Rust string literals, doc comments (Markdown, and
# a doctest's code), C string literals and C comments: none may end any of them.
HOSTILE_INPUT = 'x */ int evil; /*\n//! pub fn injected() {}\n"q\\ `tick` ```\n<b>bold</b> \u00e9??/ \U0001f600'
HOSTILE_OUTPUT = "y\r\n#[cfg(any())] mod m { */\n}\n\x01"


def _hostile_model():
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Relu", [HOSTILE_INPUT], [HOSTILE_OUTPUT])],
        "hostile",
        [helper.make_tensor_value_info(HOSTILE_INPUT, TensorProto.FLOAT, [1, 8])],
        [helper.make_tensor_value_info(HOSTILE_OUTPUT, TensorProto.FLOAT, [1, 8])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model


HOSTILE_MAIN = r"""
use std::fs;
use std::process;

""" + RUST_FILE_HELPERS + r"""
fn main() {
    // Model::new checks the crate's names against the C library's.
    let mut model = hostile::Model::new().unwrap_or_else(|e| { println!("error: {}", e); process::exit(2) });
    let names = format!("{}\u{0}{}", hostile::INPUTS[0].name, hostile::OUTPUTS[0].name);
    fs::write("names.bin", names).expect("write names.bin");
    let x = read_f32("x.bin");
    let y = model.run_f32(&[&x]).unwrap_or_else(|e| { println!("error: {}", e); process::exit(2) });
    write_f32("y.bin", &y[0]);
    fs::write("error.txt", model.run_f32(&[&x[1..]]).unwrap_err().to_string()).expect("write error.txt");
    // A second crate of the same out-dir: both include its one runtime, with types of their own.
    let mut twin = twin::Model::new().unwrap_or_else(|e| { println!("error: {}", e); process::exit(2) });
    let same: Result<Vec<Vec<f32>>, twin::Error> = twin.run_f32(&[&x]);
    println!("twin agrees: {}", same.map(|t| t == y).unwrap_or(false));
}
"""


def test_hostile_tensor_names_stay_data(cargo, tmp_path):
    out = tmp_path / "out"
    hostile = build(_hostile_model(), "hostile", out)
    build(_hostile_model(), "twin", out)
    assert hostile.manifest["inputs"][0]["name"] == HOSTILE_INPUT

    # Nothing of a name reaches the start of a line, where it would be code.
    for path in [*(out / "hostile").rglob("*.rs"), out / "hostile" / "hostile.h"]:
        for line in path.read_text().splitlines():
            assert not line.lstrip().startswith(("pub fn injected", "#[cfg(any())]", "<b>")), (path, line)

    cargo_toml = f"""[package]
name = "hostile_names"
version = "0.1.0"
edition = "2021"

[dependencies]
hostile = {{ path = "{(out / "hostile" / "rust").as_posix()}" }}
twin = {{ path = "{(out / "twin" / "rust").as_posix()}" }}
"""
    crate = write_crate(tmp_path / "program", cargo_toml, {"src/main.rs": HOSTILE_MAIN})
    proc = cargo.build(crate)
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr, proc.stderr
    wasm = cargo.target_dir / "wasm32-wasi" / "debug" / "hostile_names.wasm"

    workdir = tmp_path / "run"
    workdir.mkdir()
    x = np.linspace(-1.0, 1.0, 8, dtype="<f4")
    x.tofile(workdir / "x.bin")
    code, stdout, stderr = run_command(wasm, workdir)
    assert code == 0, stdout + stderr
    assert (workdir / "names.bin").read_bytes() == f"{HOSTILE_INPUT}\0{HOSTILE_OUTPUT}".encode()
    np.testing.assert_array_equal(np.fromfile(workdir / "y.bin", dtype="<f4"), np.maximum(x, 0))
    assert f"input 0 ('{HOSTILE_INPUT}') has 7 elements" in (workdir / "error.txt").read_text()
    assert "twin agrees: true" in stdout

    # rustdoc: the names are text in code spans, not Markdown or HTML.
    rustdoc = Path("/usr/bin/rustdoc")
    if rustdoc.is_file():
        args = [CARGO, "doc", "--offline", "--no-deps", "--target", "wasm32-wasi", "--manifest-path",
                str(out / "hostile" / "rust" / "Cargo.toml")]
        proc = subprocess.run(args, env=cargo.env(RUSTDOC=str(rustdoc)), capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        html = (cargo.target_dir / "wasm32-wasi" / "doc" / "hostile" / "index.html").read_text()
        assert "&lt;b&gt;bold&lt;/b&gt;" in html and "<b>bold</b>" not in html


def test_cache_hits_write_the_runtime_too(tmp_path):
    """A model reused from the build cache into a new out-dir brings its crate's runtime along."""
    from wasm_build.codegen.rust import runtime_text

    cache, source = tmp_path / "cache", models.save(_hostile_model(), tmp_path / "tiny.onnx")
    first = build(source, "tiny", tmp_path / "a", cache_dir=cache, smoke_test=False)
    second = build(source, "tiny", tmp_path / "b", cache_dir=cache, smoke_test=False)
    assert not first.cached and second.cached
    assert (tmp_path / "b" / "rust-runtime" / "runtime.rs").read_text() == runtime_text()


# -- a reactor (cdylib) -------------------------------------------------------------------


def test_rust_reactor_cdylib_called_without_start(cargo, kws_build, tmp_path):
    """The example's reactor crate, built against this session's kws, called like a host would."""
    import wasmtime

    cargo_toml = f"""[package]
name = "kws-reactor"
version = "0.1.0"
edition = "2021"

[lib]
crate-type = ["cdylib"]

[dependencies]
{dependency(kws_build)}
"""
    source = (EXAMPLE / "rust" / "reactor" / "src" / "lib.rs").read_text()
    crate = write_crate(tmp_path / "reactor", cargo_toml, {"src/lib.rs": source})
    wasm = cargo.build_ok(crate, "kws_reactor")

    engine = wasm_engine.engine()
    module = wasmtime.Module.from_file(engine, str(wasm))
    exports = {e.name for e in module.exports}
    assert "_start" not in exports and "kws_reactor_classify" in exports
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, module)
    api = instance.exports(store)
    if "_initialize" in exports:
        api["_initialize"](store)
    memory = api["memory"]

    model = models.kws_cnn(blocks=2)
    for seed in (4, 5):  # twice: the model is created on the first call and reused
        inputs = models.random_inputs(model, seed=seed)
        features = inputs["x"].astype("<f4").tobytes()
        assert api["kws_reactor_input_len"](store) * 4 == len(features)
        memory.write(store, features, api["kws_reactor_input"](store))
        best = api["kws_reactor_classify"](store)
        if best < 0:
            start, size = api["kws_reactor_error"](store), api["kws_reactor_error_len"](store)
            pytest.fail(bytes(memory.read(store, start, start + size)).decode())
        start, count = api["kws_reactor_scores"](store), api["kws_reactor_scores_len"](store)
        scores = np.frombuffer(bytes(memory.read(store, start, start + 4 * count)), dtype="<f4")
        [expected] = models.reference_outputs(model, inputs)
        np.testing.assert_allclose(scores, expected.ravel(), rtol=1e-4, atol=1e-5)
        assert best == int(np.argmax(expected))


# -- the example project's Rust program -------------------------------------------------------


@pytest.mark.slow
def test_example_project_rust_program(cargo, tmp_path, monkeypatch):
    """example_project/rust builds against build/wasm/{kws,mlp}/rust and matches the references."""
    monkeypatch.syspath_prepend(str(EXAMPLE))
    relax_mlp = pytest.importorskip("kws_demo_models.relax_mlp")
    project = tmp_path / "example"
    shutil.copytree(EXAMPLE / "rust", project / "rust", ignore=shutil.ignore_patterns("target", "Cargo.lock"))
    out = project / "build" / "wasm"
    build(EXAMPLE / "models" / "kws.onnx", "kws", out)
    build("kws_demo_models.relax_mlp:build", "mlp", out)

    wasm = cargo.build_ok(project / "rust", "kws-demo")
    import onnx

    kws_model = onnx.load(str(EXAMPLE / "models" / "kws.onnx"))
    inputs = models.random_inputs(kws_model, seed=7)
    inputs["x"].astype("<f4").tofile(tmp_path / "features.f32")
    code, stdout, stderr = run_command(wasm, tmp_path, "features.f32")
    assert code == 0, stdout + stderr
    fields = dict(line.split(": ", 1) for line in stdout.splitlines())
    [expected] = models.reference_outputs(kws_model, inputs)
    logits = np.array(fields["kws logits"].split(), dtype=np.float32)
    np.testing.assert_allclose(logits, expected.ravel(), rtol=1e-4, atol=1e-5)
    assert int(fields["kws class"]) == int(np.argmax(expected))
    scores = np.array(fields["mlp scores"].split(), dtype=np.float32)
    head = inputs["x"].reshape(1, -1)[:, : relax_mlp.IN_FEATURES]
    np.testing.assert_allclose(scores, relax_mlp.reference(head).ravel(), rtol=1e-4, atol=1e-6)
