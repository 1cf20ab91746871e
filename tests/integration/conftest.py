"""Integration tests: real builds, toolchains (clang/wasm-ld, zig), wasmtime, cargo, CMake, pip."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(items):
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
