"""Shared fixtures: real toolchains, real TVM builds, seeded models."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from wasm_build.build import BuildResult, build_model
from wasm_build.config.settings import ModelSettings, from_dict


@pytest.fixture(scope="session")
def toolchain():
    from wasm_build.artifact.toolchain import find_toolchain

    return find_toolchain()


def build(
    source: Any,
    name: str,
    out_dir: Path,
    *,
    cache_dir: Path | None = None,
    log=lambda _msg: None,
    **options: Any,
) -> BuildResult:
    """Build a model (an onnx.ModelProto, a path or a 'module:function') with options in TOML spelling."""
    out_dir = Path(out_dir).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(source, "SerializeToString"):
        path = out_dir / f"{name}.onnx"
        path.write_bytes(source.SerializeToString())
        source = str(path)
    table = {"name": name, "source": str(source), **{k.replace("_", "-"): v for k, v in options.items()}}
    model = from_dict(ModelSettings, table, path="test")
    return build_model(model, out_dir, project_dir=out_dir, cache_dir=cache_dir, log=log)


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


# Models the consumer tests (C, Rust, CMake) share: built once per session.
def _kws_small():
    from wasm_build.testing import models

    return models.kws_cnn(blocks=2)


def _mlp():
    from wasm_build.testing import models

    return models.mlp()


@pytest.fixture(scope="module")
def kws_build(session_builds):
    """The keyword-spotting CNN as `kws`, weights embedded."""
    return session_builds("consumers-kws", _kws_small, "kws")


@pytest.fixture(scope="module")
def mlp_build(session_builds):
    """The MLP as `mlp`, with weights = "file"."""
    return session_builds("consumers-mlp-file", _mlp, "mlp", weights="file")


def which_or_skip(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (.ci/run installs it)")
    return path
