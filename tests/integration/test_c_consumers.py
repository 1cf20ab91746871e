"""Plain C programs linking the generated archives: no special linker flags, real clang, real wasmtime."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np

from wasm_build.testing import models

from tests.support import REPO
from tests.support import which_or_skip
from tests.support import EXAMPLE
from tests.support.c import WASI, compile_ok
from tests.support.wasm import read_f32, run_command

def parse_floats(line: str) -> np.ndarray:
    return np.array(line.split(), dtype=np.float32)


def _check_kws_output(stdout: str, model, inputs) -> None:
    fields = dict(line.split(": ", 1) for line in stdout.splitlines())
    [expected] = models.reference_outputs(model, inputs)
    np.testing.assert_allclose(parse_floats(fields["logits"]), expected.ravel(), rtol=1e-4, atol=1e-5)
    assert int(fields["class"]) == int(np.argmax(expected))


def test_plain_c_command_without_special_flags(clang, kws_build, tmp_path):
    """The example's main.c, linked with exactly `clang --target=wasm32-wasi main.c libkws.a -lm`."""
    for name in ("libkws.a", "kws.h"):
        shutil.copyfile(kws_build.directory / name, tmp_path / name)
    shutil.copyfile(EXAMPLE / "c" / "main.c", tmp_path / "main.c")
    compile_ok([clang, *WASI, "main.c", "libkws.a", "-lm", "-o", "kws.wasm"], tmp_path)

    model = models.kws_cnn(blocks=2)
    inputs = models.random_inputs(model, seed=11)
    inputs["x"].astype("<f4").tofile(tmp_path / "features.f32")
    code, stdout, stderr = run_command(tmp_path / "kws.wasm", tmp_path, "features.f32")
    assert code == 0, stdout + stderr
    _check_kws_output(stdout, model, inputs)

    # A wrong-sized input is reported by the program, not a trap.
    (tmp_path / "short.f32").write_bytes(b"\0" * 100)
    code, stdout, stderr = run_command(tmp_path / "kws.wasm", tmp_path, "short.f32")
    assert code == 1 and "read 100 bytes of features, expected 7840" in stderr


def test_wasm_build_run_runs_the_program_as_the_readme_says(clang, kws_build, tmp_path):
    """`wasm-build run main.wasm ARGS`: the README's way to run a program without a wasmtime CLI."""
    import os
    import sys

    for name in ("libkws.a", "kws.h"):
        shutil.copyfile(kws_build.directory / name, tmp_path / name)
    shutil.copyfile(EXAMPLE / "c" / "main.c", tmp_path / "main.c")
    compile_ok([clang, *WASI, "-O2", "main.c", "libkws.a", "-lm", "-o", "main.wasm"], tmp_path)
    model = models.kws_cnn(blocks=2)
    inputs = models.random_inputs(model, seed=12)
    inputs["x"].astype("<f4").tofile(tmp_path / "features.f32")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}

    def wasm_build_run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "wasm_build", "run", *args]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, env=env)

    proc = wasm_build_run("main.wasm", "features.f32")
    assert proc.returncode == 0, proc.stderr
    _check_kws_output(proc.stdout, model, inputs)
    # The program's exit status is the command's; its messages reach stderr.
    proc = wasm_build_run("main.wasm", "missing.f32")
    assert proc.returncode == 1 and "missing.f32" in proc.stderr
    # A reactor is not a program: said so, with what to do instead.
    proc = wasm_build_run(str(kws_build.directory / "kws.wasm"))
    assert proc.returncode == 1 and "has no _start" in proc.stderr and "WasmModel" in proc.stderr


def test_example_makefile_builds_the_c_program(clang, kws_build, tmp_path):
    make = which_or_skip("make")
    for name in ("main.c", "Makefile"):
        shutil.copyfile(EXAMPLE / "c" / name, tmp_path / name)
    compile_ok([make, f"KWS_DIR={kws_build.directory}"], tmp_path)

    model = models.kws_cnn(blocks=2)
    inputs = models.random_inputs(model, seed=12)
    inputs["x"].astype("<f4").tofile(tmp_path / "features.f32")
    code, stdout, stderr = run_command(tmp_path / "kws.wasm", tmp_path, "features.f32")
    assert code == 0, stdout + stderr
    _check_kws_output(stdout, model, inputs)


TWO_MODELS_C = r"""
#include <stdio.h>

#include "kws.h"
#include "mlp.h"

static int load(const char* path, void* data, size_t size) {
  FILE* file = fopen(path, "rb");
  if (!file) return 0;
  size_t got = fread(data, 1, size, file);
  fclose(file);
  return got == size;
}

static int save(const char* path, const void* data, size_t size) {
  FILE* file = fopen(path, "wb");
  if (!file) return 0;
  size_t put = fwrite(data, 1, size, file);
  fclose(file);
  return put == size;
}

int main(void) {
  static float kws_x[KWS_INPUT0_BYTES / 4], kws_y[KWS_OUTPUT0_BYTES / 4];
  static float mlp_x[MLP_INPUT0_BYTES / 4], mlp_y[MLP_OUTPUT0_BYTES / 4];
  if (!load("kws_x.bin", kws_x, sizeof kws_x) || !load("mlp_x.bin", mlp_x, sizeof mlp_x)) {
    puts("cannot read inputs");
    return 1;
  }
  /* A run before init is an error with a message, not a trap. */
  const void* mi[] = {mlp_x};  size_t mis[] = {sizeof mlp_x};
  void* mo[] = {mlp_y};        size_t mos[] = {sizeof mlp_y};
  printf("before init: %d %s\n", mlp_run(mi, mis, mo, mos), mlp_last_error());

  if (kws_init() != KWS_OK) { printf("kws: %s\n", kws_last_error()); return 1; }
  if (mlp_init_from_file("mlp.weights") != MLP_OK) { printf("mlp: %s\n", mlp_last_error()); return 1; }

  const void* ki[] = {kws_x};  size_t kis[] = {sizeof kws_x};
  void* ko[] = {kws_y};        size_t kos[] = {sizeof kws_y};
  if (kws_run(ki, kis, ko, kos) != KWS_OK) { printf("kws: %s\n", kws_last_error()); return 1; }
  if (mlp_run(mi, mis, mo, mos) != MLP_OK) { printf("mlp: %s\n", mlp_last_error()); return 1; }
  if (!save("kws_y.bin", kws_y, sizeof kws_y) || !save("mlp_y.bin", mlp_y, sizeof mlp_y)) return 1;
  puts("ok");
  return 0;
}
"""


def test_c_program_linking_two_models(clang, kws_build, mlp_build, tmp_path):
    (tmp_path / "main.c").write_text(TWO_MODELS_C)
    compile_ok(
        [
            clang,
            *WASI,
            "-O2",
            f"-I{kws_build.directory}",
            f"-I{mlp_build.directory}",
            "main.c",
            str(kws_build.directory / "libkws.a"),
            str(mlp_build.directory / "libmlp.a"),
            "-lm",
            "-o",
            "two.wasm",
        ],
        tmp_path,
    )
    kws_model, mlp_model = models.kws_cnn(blocks=2), models.mlp()
    kws_in, mlp_in = models.random_inputs(kws_model, seed=13), models.random_inputs(mlp_model, seed=14)
    kws_in["x"].astype("<f4").tofile(tmp_path / "kws_x.bin")
    mlp_in["x"].astype("<f4").tofile(tmp_path / "mlp_x.bin")
    shutil.copyfile(mlp_build.directory / "mlp.weights", tmp_path / "mlp.weights")

    code, stdout, stderr = run_command(tmp_path / "two.wasm", tmp_path)
    assert code == 0, stdout + stderr
    assert "before init: 1 mlp_run: the model is not initialized" in stdout
    assert stdout.rstrip().endswith("ok")
    for name, model, inputs in (("kws", kws_model, kws_in), ("mlp", mlp_model, mlp_in)):
        [expected] = models.reference_outputs(model, inputs)
        actual = read_f32(tmp_path / f"{name}_y.bin", expected.shape)
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5, err_msg=name)
