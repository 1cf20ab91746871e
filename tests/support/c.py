"""C programs for wasm32-wasi built with Debian's clang-19 and wasi-libc (the `clang` fixture is in
tests/integration/conftest.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

CLANG = "clang-19"
WASI = ["--target=wasm32-wasi", "--sysroot=/usr"]


def compile_ok(args: list[str], cwd: Path) -> None:
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, f"$ {' '.join(args)}\n{proc.stderr}"
