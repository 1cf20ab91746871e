"""Toolchain discovery, deterministic archives, and the PyPI-only (ziglang) path."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wasm_build.errors import ToolchainError
from wasm_build.testing import models
from wasm_build.artifact.toolchain import find_toolchain

from tests.support import REPO, build


def test_found_toolchain_builds_reactors(toolchain):
    assert toolchain.kind in {"explicit", "wasi-sdk", "system-clang", "zig"}
    assert toolchain.version


def test_same_inputs_give_the_same_bytes(tmp_path):
    first = build(models.two_in_two_out(), "twin", tmp_path / "a")
    second = build(models.two_in_two_out(), "twin", tmp_path / "b")
    for artifact in ("libtwin.a", "twin.wasm", "twin.h", "twin.json"):
        assert (first.directory / artifact).read_bytes() == (second.directory / artifact).read_bytes(), artifact
    assert str(tmp_path).encode() not in (first.directory / "libtwin.a").read_bytes()


def test_unknown_toolchain_kind_is_an_error(monkeypatch):
    monkeypatch.setenv("WASM_BUILD_TOOLCHAIN", "gcc")
    find_toolchain.cache_clear()
    try:
        with pytest.raises(ToolchainError, match="not a toolchain kind"):
            find_toolchain()
    finally:
        find_toolchain.cache_clear()


def test_missing_toolchain_names_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("WASM_BUILD_TOOLCHAIN", "wasi-sdk")
    monkeypatch.setenv("WASI_SDK_PATH", str(tmp_path / "no-sdk"))
    find_toolchain.cache_clear()
    try:
        with pytest.raises(ToolchainError) as info:
            find_toolchain()
        assert "pip install ziglang" in str(info.value) and "clang-19 lld-19 wasi-libc" in str(info.value)
    finally:
        find_toolchain.cache_clear()


@pytest.mark.slow
def test_ziglang_toolchain_from_pypi_alone(tmp_path):
    """The path a fresh machine takes with nothing but `pip install`: the first use builds wasi-libc."""
    pytest.importorskip("ziglang")
    env = {**os.environ, "WASM_BUILD_TOOLCHAIN": "zig", "PYTHONPATH": str(tmp_path.parent)}
    code = (
        "import sys; sys.path.insert(0, %r); sys.path.insert(0, %r); sys.path.insert(0, %r);"
        "from tests.support import build; from wasm_build.testing import models;"
        "r = build(models.mlp(), 'zmlp', %r); import json;"
        "print(json.load(open(r.directory / 'zmlp.json'))['toolchain']['kind'])"
    ) % (os.getcwd(), str(REPO), str(REPO / "src"), str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == "zig"


def test_doctor_reports_components():
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    proc = subprocess.run([sys.executable, "-m", "wasm_build", "doctor"], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "tvm:       0.27" in proc.stdout
    assert "wasmtime:" in proc.stdout and "toolchain: " in proc.stdout


def test_damaged_cache_entry_is_rebuilt(tmp_path):
    cache = tmp_path / "cache"
    source = models.save(models.two_in_two_out(), tmp_path / "twin.onnx")
    first = build(source, "twin", tmp_path / "a", cache_dir=cache)
    assert not first.cached
    (entry,) = [p for p in cache.iterdir() if not p.name.startswith(".")]
    second = build(source, "twin", tmp_path / "b", cache_dir=cache)
    assert second.cached
    (entry / "libtwin.a").write_bytes(b"!<arch>\ndamaged")
    third = build(source, "twin", tmp_path / "c", cache_dir=cache)
    assert not third.cached
    assert (third.directory / "libtwin.a").read_bytes() == (first.directory / "libtwin.a").read_bytes()
    # The damaged entry was replaced by the fresh build.
    assert (entry / "libtwin.a").read_bytes() == (first.directory / "libtwin.a").read_bytes()
