"""The one place wasm-build sets up wasmtime: engines, WASI and instances.

Every module wasm-build runs (reactors in the smoke test and `WasmModel`,
tuning candidates, profiling drivers, WASI programs of `wasm-build run`) is
instantiated here, with the same features: SIMD128 and relaxed SIMD on
(relaxed SIMD is needed only by modules built with it).
"""

from __future__ import annotations

import ctypes
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


class BoundCall:
    """A call of `func` with fixed integer arguments, made again and again at the cost of the
    wasm code alone: wasmtime-py's `Func.__call__` converts every argument and looks the
    function's type up each time (about 35 us for four i32s), which would dwarf a small
    model's run. The arguments are converted once; each call is one FFI call. Falls back to
    the public call when this wasmtime-py lacks the internals used."""

    def __init__(self, instance: Instance, name: str, *args: int) -> None:
        self.store = instance.store
        self.func = instance.exports[name]
        self.args = args
        try:
            from wasmtime import _ffi  # internals of wasmtime-py: checked to exist, else the public call
            from wasmtime._value import Val

            param_types = self.func.type(self.store).params
            self._params = (_ffi.wasmtime_val_t * len(args))()
            for index, (value, value_type) in enumerate(zip(args, param_types)):
                self._params[index] = Val._convert_to_raw(self.store, value_type, value)
            self._results = (_ffi.wasmtime_val_t * 1)()
            self._ffi = _ffi
        except (ImportError, AttributeError, TypeError):
            self._ffi = None

    def __call__(self) -> int:
        if self._ffi is None:
            return self.func(self.store, *self.args)
        ffi = self._ffi
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        error = ffi.wasmtime_func_call(
            self.store._context(), ctypes.byref(self.func._func), self._params, len(self.args), self._results, 1,
            ctypes.byref(trap),
        )
        if error or trap:
            # The public call raises wasmtime's own error (a Trap with its message) for the same state.
            return self.func(self.store, *self.args)
        return self._results[0].of.i32
