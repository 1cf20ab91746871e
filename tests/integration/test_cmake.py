"""CMake integration, with real cmake, clang-19 for wasm32-wasi, wasmtime and pip.

- A C program configured with cmake/wasi-toolchain.cmake finds a model with
  find_package(kws CONFIG), links kws::kws without whole-archive and matches onnxruntime.
- wasm_build_add_model() builds at build time, rebuilds when the model changes, installs.
- wasm_build_models_from_pyproject() reads [tool.wasm-build], and rejects a bad table at configure time.
- scikit-build-core: `pip wheel` of example_project/cmake_project gives a py3-none-any
  wheel with the artifacts; wasm-build's cmake/ is found through its entry points
  in wheel and editable installs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pytest

from wasm_build.testing import models
from tests.support.pip import copy_repository, venv_seeing_this_environment

from tests.support import REPO  # noqa: E402
CMAKE_DIR = REPO / "cmake"
TOOLCHAIN = CMAKE_DIR / "wasi-toolchain.cmake"


def which_or_skip(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (.ci/run installs it)")
    return path


def _generator() -> list[str]:
    return ["-G", "Ninja"] if shutil.which("ninja") else []


def _run(args: list, cwd: Path | None = None, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def _env(**extra: str) -> dict[str, str]:
    """The environment for CMake: its custom commands run `python -m wasm_build` from this checkout."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO / "src"), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _run_command_module(module: Path, stdin: Path, work: Path) -> tuple[int, str]:
    """Run a WASI command (`_start`) in wasmtime; returns (exit code, stdout)."""
    import wasmtime

    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    config = wasmtime.WasiConfig()
    stdout = work / "stdout.txt"
    config.stdin_file = str(stdin)
    config.stdout_file = str(stdout)
    config.inherit_stderr()
    store.set_wasi(config)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, wasmtime.Module.from_file(engine, str(module)))
    code = 0
    try:
        instance.exports(store)["_start"](store)
    except wasmtime.ExitTrap as exit_:
        code = exit_.code
    return code, stdout.read_text()


def _printed_values(stdout: str) -> np.ndarray:
    (line,) = [line for line in stdout.splitlines() if line.startswith("values:")]
    return np.array([float(v) for v in line.split()[1:]], dtype=np.float32)


@pytest.fixture(scope="module")
def kws(kws_build):
    """The kws model the consumer expects: x [1, 1, 49, 40] -> logits [1, 12]."""
    result = kws_build
    config = result.directory / "cmake" / "kwsConfig.cmake"
    assert config.is_file(), (
        f"{config} is missing: wasm_build.cmake_package.write_cmake_package must be one of "
        "builder._extra_writers()"
    )
    return result


# -- the C consumer ---------------------------------------------------------------------------


def test_cmake_consumer_finds_model_and_matches_onnxruntime(kws, tmp_path):
    which_or_skip("cmake")
    source = REPO / "example_project" / "cmake_consumer"
    build = tmp_path / "build"
    _run(["cmake", "-S", source, "-B", build, *_generator(),
          f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}", f"-DCMAKE_PREFIX_PATH={kws.directory.parent}"])
    log = _run(["cmake", "--build", build, "--verbose"]).stdout
    # A plain link of the archive: no whole-archive, no -u/--export tricks.
    link = [line for line in log.splitlines() if "kws_demo.wasm" in line and "libkws.a" in line]
    assert link, log
    assert "whole-archive" not in link[0] and "--export" not in link[0]

    model = models.kws_cnn(seed=0, blocks=2)
    inputs = models.random_inputs(model, seed=3)
    (x,) = inputs.values()
    stdin = tmp_path / "x.f32"
    stdin.write_bytes(np.ascontiguousarray(x, dtype=np.float32).tobytes())
    code, stdout = _run_command_module(build / "kws_demo.wasm", stdin, tmp_path)
    assert code == 0, stdout
    assert 'input "x" float32[1, 1, 49, 40], 7840 bytes' in stdout
    (expected,) = models.reference_outputs(model, inputs)
    np.testing.assert_allclose(_printed_values(stdout), expected.reshape(-1), rtol=1e-3, atol=1e-4)
    assert f"best: {int(np.argmax(expected))}" in stdout


def test_find_package_refuses_a_native_build(kws, tmp_path):
    which_or_skip("cmake")
    which_or_skip("cc")
    result = _run(["cmake", "-S", REPO / "example_project" / "cmake_consumer", "-B", tmp_path / "build",
                   f"-DCMAKE_PREFIX_PATH={kws.directory.parent}"], check=False)
    assert result.returncode != 0
    assert "kws is a wasm32-wasi library" in result.stderr
    assert "wasi-toolchain.cmake" in result.stderr


# -- wasm_build_add_model / wasm_build_models_from_pyproject ---------------------------------------


ADD_MODEL_PROJECT = """
cmake_minimum_required(VERSION 3.20)
project(add_model_demo LANGUAGES C)
include(WasmBuild)
wasm_build_add_model(mlp SOURCE models/mlp.onnx NO_SMOKE_TEST INSTALL_DESTINATION share/models)
add_executable(app app.c)
target_link_libraries(app PRIVATE mlp::mlp)
"""

APP_C = """
#include <stdio.h>
#include "mlp.h"
static float x[MLP_INPUT0_BYTES / 4], y[MLP_OUTPUT0_BYTES / 4];
int main(void) {
  if (mlp_init() != MLP_OK) { puts(mlp_last_error()); return 1; }
  for (int i = 0; i < (int)(sizeof x / 4); ++i) x[i] = (float)(i % 5) - 2.0f;
  const void* in[] = {x}; size_t in_sizes[] = {sizeof x};
  void* out[] = {y}; size_t out_sizes[] = {sizeof y};
  if (mlp_run(in, in_sizes, out, out_sizes) != MLP_OK) { puts(mlp_last_error()); return 1; }
  printf("values:");
  for (int i = 0; i < (int)(sizeof y / 4); ++i) printf(" %.9g", y[i]);
  printf("\\n");
  return 0;
}
"""


def test_add_model_builds_links_rebuilds_and_installs(tmp_path):
    which_or_skip("cmake")
    project = tmp_path / "project"
    models.save(models.mlp(seed=1), project / "models" / "mlp.onnx")
    (project / "CMakeLists.txt").write_text(ADD_MODEL_PROJECT)
    (project / "app.c").write_text(APP_C)
    build = tmp_path / "build"
    env = _env(WASM_BUILD_CACHE_DIR=str(tmp_path / "cache"))
    _run(["cmake", "-S", project, "-B", build, *_generator(), f"-DCMAKE_TOOLCHAIN_FILE={TOOLCHAIN}",
          f"-DCMAKE_MODULE_PATH={CMAKE_DIR}", f"-DWASM_BUILD_PYTHON={sys.executable}"], env=env)
    first = _run(["cmake", "--build", build], env=env)
    assert "wasm-build: compiling model mlp" in first.stdout
    archive = build / "wasm" / "mlp" / "libmlp.a"
    assert archive.is_file()

    x = np.array([(i % 5) - 2.0 for i in range(64)], dtype=np.float32).reshape(1, 64)
    (expected,) = models.reference_outputs(models.mlp(seed=1), {"x": x})
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    code, stdout = _run_command_module(build / "app.wasm", empty, tmp_path)
    assert code == 0, stdout
    np.testing.assert_allclose(_printed_values(stdout), expected.reshape(-1), rtol=1e-3, atol=1e-4)

    # Nothing changed: the compiler does not run.
    assert "compiling model mlp" not in _run(["cmake", "--build", build], env=env).stdout
    # A new model file: compiled again (here a cache hit, the bytes being the same).
    os.utime(project / "models" / "mlp.onnx")
    again = _run(["cmake", "--build", build], env=env)
    assert "compiling model mlp" in again.stdout
    assert "up to date (cache" in again.stdout + again.stderr

    prefix = tmp_path / "prefix"
    _run(["cmake", "--install", build, "--prefix", prefix], env=env)
    installed = prefix / "share" / "models" / "mlp"
    assert {"libmlp.a", "mlp.h", "mlp.wasm", "mlp.json"} <= {p.name for p in installed.iterdir()}


def _pyproject(models_toml: str, extra: str = "") -> str:
    return textwrap.dedent(
        """
        [project]
        name = "demo"
        version = "0.1.0"

        [tool.wasm-build]
        out-dir = "build/wasm"
        wheel-dir = "demo/wasm"
        {extra}
        {models}
        """
    ).format(models=models_toml, extra=extra)


PYPROJECT_PROJECT = """
cmake_minimum_required(VERSION 3.20)
project(pyproject_demo LANGUAGES NONE)
include(WasmBuild)
wasm_build_models_from_pyproject()
message(STATUS "models: ${WASM_BUILD_MODELS}")
"""


def test_models_from_pyproject_builds_and_installs_every_model(tmp_path):
    which_or_skip("cmake")
    project = tmp_path / "project"
    models.save(models.mlp(seed=2), project / "models" / "a.onnx")
    models.save(models.two_in_two_out(seed=2), project / "models" / "b.onnx")
    (project / "pyproject.toml").write_text(_pyproject(textwrap.dedent(
        """
        [[tool.wasm-build.models]]
        name = "net_a"
        source = "models/a.onnx"
        smoke-test = false

        [[tool.wasm-build.models]]
        name = "net_b"
        source = "models/b.onnx"
        weights = "file"
        simd = false
        winograd-budget = 0.25
        smoke-test = false
        """
    )))
    (project / "CMakeLists.txt").write_text(PYPROJECT_PROJECT)
    build = tmp_path / "build"
    env = _env(WASM_BUILD_CACHE_DIR=str(tmp_path / "cache"))
    configure = _run(["cmake", "-S", project, "-B", build, *_generator(), f"-DCMAKE_MODULE_PATH={CMAKE_DIR}",
                      f"-DWASM_BUILD_PYTHON={sys.executable}"], env=env)
    assert "models: net_a;net_b" in configure.stdout
    _run(["cmake", "--build", build], env=env)
    out = project / "build" / "wasm"  # the table's out-dir, relative to the project
    assert (out / "net_b" / "net_b.weights").is_file()
    options = json.loads((out / "net_b" / "net_b.json").read_text())["build_options"]
    assert options["simd"] is False and options["winograd_budget"] == 0.25  # WINOGRAD_BUDGET reached the compiler
    assert json.loads((out / "net_a" / "net_a.json").read_text())["build_options"]["winograd_budget"] == 0.5

    prefix = tmp_path / "prefix"
    _run(["cmake", "--install", build, "--prefix", prefix], env=env)
    for name in ("net_a", "net_b"):  # wheel-dir = "demo/wasm"
        assert (prefix / "demo" / "wasm" / name / f"lib{name}.a").is_file()
        assert (prefix / "demo" / "wasm" / name / "rust" / "src" / "lib.rs").is_file()
    # Installed once beside the models: their Rust crates include it (../../rust-runtime/runtime.rs).
    assert (prefix / "demo" / "wasm" / "rust-runtime" / "runtime.rs").read_bytes() == (
        out / "rust-runtime" / "runtime.rs"
    ).read_bytes()


def test_models_from_pyproject_rejects_a_bad_table_at_configure_time(tmp_path):
    which_or_skip("cmake")
    project = tmp_path / "project"
    models.save(models.mlp(), project / "m.onnx")
    (project / "pyproject.toml").write_text(_pyproject(
        '[[tool.wasm-build.models]]\nname = "m"\nsource = "m.onnx"\nsmoke-tst = false\n'))
    (project / "CMakeLists.txt").write_text(PYPROJECT_PROJECT)
    result = _run(["cmake", "-S", project, "-B", tmp_path / "build", f"-DCMAKE_MODULE_PATH={CMAKE_DIR}",
                   f"-DWASM_BUILD_PYTHON={sys.executable}"], env=_env(), check=False)
    assert result.returncode != 0
    assert "smoke-tst" in result.stderr and "smoke-test" in result.stderr  # the key and the suggestion


def test_add_model_reports_a_missing_source(tmp_path):
    which_or_skip("cmake")
    project = tmp_path / "project"
    project.mkdir()
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(p LANGUAGES NONE)\ninclude(WasmBuild)\n"
        "wasm_build_add_model(kws SOURCE models/kws.onx)\n"
    )
    result = _run(["cmake", "-S", project, "-B", tmp_path / "build", f"-DCMAKE_MODULE_PATH={CMAKE_DIR}",
                   f"-DWASM_BUILD_PYTHON={sys.executable}"], env=_env(), check=False)
    assert result.returncode != 0
    assert "wasm_build_add_model(kws): SOURCE = 'models/kws.onx': no such file" in result.stderr


# -- scikit-build-core -----------------------------------------------------------------------


def _venv(tmp: Path, repo: Path, editable: bool) -> Path:
    """A venv seeing this Python's packages (TVM, scikit-build-core), with wasm-build installed from `repo`."""
    python = venv_seeing_this_environment(tmp).python
    _run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", *(["-e"] if editable else []), repo])
    return python


def test_entry_points_find_cmake_dir_in_an_editable_install(tmp_path):
    repo = copy_repository(tmp_path / "repo")
    python = _venv(tmp_path / "venv", repo, editable=True)
    probe = (
        # A wasm-build installed in this Python's site-packages would shadow the editable one
        # (the editable finder comes after the path finder): hide it, as a venv of its own would.
        "import os, sys\n"
        "sys.path = [p for p in sys.path if not os.path.isdir(os.path.join(p, 'wasm_build'))]\n"
        "import importlib.metadata as md, importlib.resources as r\n"
        "for group in ('cmake.module', 'cmake.root'):\n"
        "    (ep,) = [e for e in md.entry_points(group=group) if e.value == 'wasm_build.cmake']\n"
        "    print(group, ep.name, r.files(ep.load()))\n"
    )
    out = _run([python, "-c", probe], cwd=tmp_path).stdout
    assert f"cmake.module wasm_build {repo / 'cmake'}" in out
    assert f"cmake.root WasmBuild {repo / 'cmake'}" in out


@pytest.mark.slow
def test_pip_wheel_of_the_scikit_build_core_example(tmp_path):
    which_or_skip("cmake")
    pytest.importorskip("scikit_build_core")
    repo = copy_repository(tmp_path / "repo")
    python = _venv(tmp_path / "venv", repo, editable=False)
    project = shutil.copytree(REPO / "example_project" / "cmake_project", tmp_path / "project",
                              ignore=shutil.ignore_patterns("build", "dist"))
    env = dict(os.environ, WASM_BUILD_CACHE_DIR=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)  # wasm-build must come from the venv, as for a user
    dist = tmp_path / "dist"
    _run([python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", dist, project], env=env)

    (wheel,) = dist.glob("*.whl")
    assert wheel.name == "kws_cmake_demo-0.1.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "installed")
    for artifact in ("libkws.a", "kws.h", "kws.wasm", "kws.json"):
        assert f"kws_cmake_demo/wasm/kws/{artifact}" in names
    assert {"kws_cmake_demo/wasm/kws/rust/src/lib.rs", "kws_cmake_demo/wasm/rust-runtime/runtime.rs"} <= names

    # The installed copy runs, and matches onnxruntime on the checked-in model.
    import onnx

    from wasm_build import WasmModel

    model = onnx.load(project / "models" / "kws.onnx")
    inputs = models.random_inputs(model, seed=5)
    (got,) = WasmModel(tmp_path / "installed" / "kws_cmake_demo" / "wasm" / "kws" / "kws.wasm").run(inputs)
    (expected,) = models.reference_outputs(model, inputs)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
