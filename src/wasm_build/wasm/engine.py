"""The one place wasm-build sets up wasmtime: engines, WASI and instances.

Every module wasm-build runs (reactors in the smoke test and `WasmModel`,
tuning candidates, profiling drivers, WASI programs of `wasm-build run`) is
instantiated here, with the same features: SIMD128 and relaxed SIMD on
(relaxed SIMD is needed only by modules built with it).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import wasmtime


@functools.lru_cache(maxsize=None)
def engine() -> wasmtime.Engine:
    """A shared engine with the features wasm-build's modules may use (one per process:
    compiled code is cached per engine)."""
    config = wasmtime.Config()
    config.wasm_simd = True
    config.wasm_relaxed_simd = True
    return wasmtime.Engine(config)


@dataclass(frozen=True)
class Wasi:
    """What a module sees of the host: its argv, files and standard streams."""

    argv: Sequence[str] = ()
    preopen: Path | None = None  # this directory is "." for the module
    inherit_stdio: bool = False  # stdin, stdout, stderr of this process
    inherit_env: bool = False
    stdout_file: Path | None = None
    stderr_file: Path | None = None

    def config(self) -> wasmtime.WasiConfig:
        wasi = wasmtime.WasiConfig()
        if self.argv:
            wasi.argv = list(self.argv)
        if self.preopen is not None:
            wasi.preopen_dir(str(self.preopen), ".")
        if self.inherit_stdio:
            wasi.inherit_stdin()
            wasi.inherit_stdout()
            wasi.inherit_stderr()
        if self.inherit_env:
            wasi.inherit_env()
        if self.stdout_file is not None:
            wasi.stdout_file = str(self.stdout_file)
        if self.stderr_file is not None:
            wasi.stderr_file = str(self.stderr_file)
        return wasi


@dataclass
class Instance:
    """An instantiated module with its store and exports."""

    store: wasmtime.Store
    module: wasmtime.Module
    exports: Any  # wasmtime's export map: exports["name"](store, ...)

    @property
    def memory(self) -> wasmtime.Memory:
        return self.exports["memory"]

    def call(self, name: str, *args: Any) -> Any:
        return self.exports[name](self.store, *args)


def load(path: str | Path | bytes) -> wasmtime.Module:
    """Compile a module from a file (or its bytes) with the shared engine."""
    if isinstance(path, bytes):
        return wasmtime.Module(engine(), path)
    return wasmtime.Module.from_file(engine(), str(path))


def instantiate(module: wasmtime.Module, wasi: Wasi = Wasi(), *, initialize: bool = True) -> Instance:
    """Instantiate `module` with WASI; a reactor's `_initialize` runs once when `initialize`."""
    store = wasmtime.Store(engine())
    store.set_wasi(wasi.config())
    linker = wasmtime.Linker(engine())
    linker.define_wasi()
    instance = Instance(store, module, linker.instantiate(store, module).exports(store))
    if initialize and "_initialize" in instance.exports:
        instance.call("_initialize")
    return instance


def run_command(module: wasmtime.Module, wasi: Wasi) -> int:
    """Run a WASI command's `_start`; returns its exit status."""
    instance = instantiate(module, wasi, initialize=False)
    try:
        instance.call("_start")
    except wasmtime.ExitTrap as exit_:
        return exit_.code
    return 0


def c_string(instance: Instance, address: int, limit: int = 1 << 16) -> str:
    """The NUL-terminated string at `address` in the module's memory."""
    memory = instance.memory
    end = min(address + limit, memory.data_len(instance.store))
    data = memory.read(instance.store, address, end)
    return bytes(data).split(b"\0", 1)[0].decode("utf-8", "replace")


def has_export(module: wasmtime.Module, name: str) -> bool:
    return any(export.name == name for export in module.exports)
