"""The kws model, compiled to wasm32 at build time, shipped as package data."""

from __future__ import annotations

from pathlib import Path

WASM_DIR = Path(__file__).parent / "wasm"


def artifact_dir(name: str = "kws") -> Path:
    """OUT/NAME as installed: libNAME.a, NAME.h, NAME.wasm, NAME.json, cmake/."""
    return WASM_DIR / name


def load(name: str = "kws"):
    """The model's WASI reactor, ready to run in wasmtime."""
    from wasm_build import WasmModel

    return WasmModel(artifact_dir(name) / f"{name}.wasm")
