"""`wasm-build run`: a WASI program (a command module linked with a model) in wasmtime."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import wasmtime

from ..errors import WasmBuildError
from . import engine


def run_program(module: Path, args: Sequence[str]) -> int:
    """Run `module`'s `_start` as a program of this process; returns its exit status.

    Its argv is the module's name and `args`, its standard streams and environment are this
    process's, and the current directory is its "." (so `NAME_init_from_file` finds weights).
    """
    if not module.is_file():
        raise WasmBuildError(f"{module}: no such file", fix="link a program first, e.g. clang-19 ... -o main.wasm")
    try:
        compiled = engine.load(module)
    except wasmtime.WasmtimeError as exc:
        raise WasmBuildError(f"{module} is not a WebAssembly module wasmtime can load: {exc}") from None
    if not engine.has_export(compiled, "_start"):
        raise WasmBuildError(
            f"{module} has no _start: it is a library or reactor module, not a program",
            fix="load reactors with wasm_build.WasmModel (Python) or a host's API; link a program with a main()",
        )
    wasi = engine.Wasi(argv=[module.name, *args], preopen=Path("."), inherit_stdio=True, inherit_env=True)
    return engine.run_command(compiled, wasi)
