"""What the tests share: paths, the environment for subprocesses, building a model, skipping
when a tool is missing. Fixtures are in tests/conftest.py; pip venvs in `support.pip`, WASI
programs in `support.wasm`, compiler internals in `support.compiler`."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from wasm_build.build import BuildResult, build_model
from wasm_build.config import ModelSettings, from_dict

REPO = Path(__file__).resolve().parents[2]
SRC = REPO / "src"
EXAMPLE = REPO / "example_project"


def python_env(**extra: str) -> dict[str, str]:
    """The environment for a subprocess that must import this checkout's wasm_build (src/)."""
    path = os.pathsep.join(filter(None, [str(SRC), str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **extra}


def run_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """`python -m wasm_build ARGS` as a user runs it; output captured as text."""
    return subprocess.run(
        [sys.executable, "-m", "wasm_build", *map(str, args)], cwd=cwd, capture_output=True, text=True, env=python_env(**env)
    )


def which_or_skip(program: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} is not installed (scripts/setup.sh --tests installs it)")
    return path


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
