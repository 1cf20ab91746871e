"""wasm-build: compile ML models ahead of time into static wasm32 libraries."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["WasmModel", "WasmModelError", "WasmBuildError", "__version__"]


def __getattr__(name: str):
    # Lazy: importing wasm_build (e.g. as a setuptools plugin) must not import TVM or wasmtime.
    if name in ("WasmModel", "WasmModelError"):
        from .wasm import host

        return getattr(host, name)
    if name == "WasmBuildError":
        from .errors import WasmBuildError

        return WasmBuildError
    raise AttributeError(f"module 'wasm_build' has no attribute {name!r}")
