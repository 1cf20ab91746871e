"""Integration tests: real builds, toolchains (clang/wasm-ld, zig), wasmtime, cargo, CMake, pip."""

from __future__ import annotations

import pytest


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
