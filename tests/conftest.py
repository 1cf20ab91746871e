"""Shared fixtures: real toolchains, real TVM builds, seeded models. Helpers are in tests/support."""

from __future__ import annotations

from typing import Any

import pytest

from wasm_build.artifact.toolchain import find_toolchain
from wasm_build.build import BuildResult
from wasm_build.testing import models

from tests.support import build


@pytest.fixture(scope="session")
def toolchain():
    return find_toolchain()


@pytest.fixture
def build_model_in(tmp_path):
    """`build_model_in(source, name, **options)` builds into a fresh directory."""

    def _build(source: Any, name: str, **options: Any) -> BuildResult:
        return build(source, name, tmp_path / "out", **options)

    return _build


@pytest.fixture(scope="session")
def session_builds(tmp_path_factory):
    """Models built once per session, shared by tests that only read artifacts."""
    cache: dict[str, BuildResult] = {}
    root = tmp_path_factory.mktemp("session-builds")

    def _get(key: str, factory, name: str, **options: Any) -> BuildResult:
        if key not in cache:
            cache[key] = build(factory(), name, root / key, **options)
        return cache[key]

    return _get


@pytest.fixture(scope="module")
def kws_build(session_builds):
    """The keyword-spotting CNN as `kws`, weights embedded (shared by the consumer tests)."""
    return session_builds("consumers-kws", lambda: models.kws_cnn(blocks=2), "kws")


@pytest.fixture(scope="module")
def mlp_build(session_builds):
    """The MLP as `mlp`, with weights = "file"."""
    return session_builds("consumers-mlp-file", models.mlp, "mlp", weights="file")
