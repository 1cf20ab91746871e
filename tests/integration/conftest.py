"""Integration tests: real builds, toolchains (clang/wasm-ld, zig), wasmtime, cargo, CMake, pip."""

from __future__ import annotations

import pytest

from tests.support import which_or_skip
from tests.support.c import CLANG
from tests.support.rust import CARGO, RUSTC, WASI_STD, Cargo


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="module")
def torch_models():
    """tests.support.torch_models (models exported with torch.export); skips without torch."""
    pytest.importorskip("torch")
    from tests.support import torch_models

    return torch_models


@pytest.fixture(scope="session")
def clang() -> str:
    return which_or_skip(CLANG)


@pytest.fixture(scope="session")
def cargo(tmp_path_factory) -> Cargo:
    which_or_skip(CARGO)
    which_or_skip(RUSTC)
    if not WASI_STD.is_dir():
        pytest.skip("the wasm32-wasi Rust standard library is not installed (apt-get install libstd-rust-dev-wasm32)")
    return Cargo(tmp_path_factory.mktemp("cargo-home"), tmp_path_factory.mktemp("cargo-target"))
