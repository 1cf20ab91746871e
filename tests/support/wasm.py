"""WASI programs (command modules linked with a model) run as a user's host would run them."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wasm_build.wasm import engine


def run_command(wasm: Path, workdir: Path, *args: str) -> tuple[int, str, str]:
    """Run a WASI command (`_start`) with `workdir` preopened as "."; returns (exit code, stdout, stderr)."""
    stdout, stderr = workdir / ".stdout", workdir / ".stderr"
    wasi = engine.Wasi(argv=[wasm.name, *args], preopen=workdir, stdout_file=stdout, stderr_file=stderr)
    code = engine.run_command(engine.load(wasm), wasi)
    return code, stdout.read_text(), stderr.read_text()


def read_f32(path: Path, shape) -> np.ndarray:
    return np.fromfile(path, dtype="<f4").reshape(shape)
