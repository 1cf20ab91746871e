"""Builds are safe to run concurrently and to kill at any point (real processes, real builds).

Eight processes build overlapping models into one out-dir and one cache, twice (the second
round is served by the cache); builds killed with SIGKILL at several points leave nothing
stale once the next build of the model has run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from wasm_build import WasmModel
from wasm_build.artifact.files import sha256_file
from wasm_build.testing import models

from tests.support import REPO  # noqa: E402
_BUILD = """
import sys
from pathlib import Path
from wasm_build.build import build_model
from wasm_build.config import ModelSettings, from_dict
name, source, out, cache = sys.argv[1:5]
model = from_dict(ModelSettings, {"name": name, "source": source, "smoke-test": False}, "test")
build_model(model, Path(out), project_dir=Path(source).parent, cache_dir=Path(cache), log=lambda _: None)
"""


def _start_build(name: str, source: Path, out: Path, cache: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen(
        [sys.executable, "-c", _BUILD, name, str(source), str(out), str(cache)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _verified(directory: Path) -> dict:
    """The model's manifest, after checking every artifact it lists and that nothing else is there."""
    manifest = json.loads((directory / f"{directory.name}.json").read_text())
    present = {p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file()}
    assert present == set(manifest["artifacts"]) | {f"{directory.name}.json"}, directory
    for relative, digest in manifest["artifacts"].items():
        assert sha256_file(directory / relative) == digest, relative
    return manifest


def _leftovers(out: Path, cache: Path) -> list[str]:
    stale = [p.name for p in out.iterdir() if p.name.startswith(".")]
    stale += [p.name for p in cache.iterdir() if p.name.startswith(".")] if cache.exists() else []
    return stale


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("sources")
    return {
        f"m{i}": models.save(models.mlp(seed=i, sizes=(16, 8 + 4 * i, 4)), directory / f"m{i}.onnx") for i in range(3)
    }


def test_parallel_builds_into_one_out_dir_and_cache(sources, tmp_path):
    out, cache = tmp_path / "out", tmp_path / "cache"
    names = [f"m{i % 3}" for i in range(8)]  # each model built by two or three processes at once
    for round_ in range(2):
        processes = [_start_build(name, sources[name], out, cache) for name in names]
        for process in processes:
            _, stderr = process.communicate(timeout=600)
            assert process.returncode == 0, f"round {round_}: {stderr[-3000:]}"
        for name in set(names):
            manifest = _verified(out / name)
            model = WasmModel(out / name / f"{name}.wasm")
            x = np.random.default_rng(round_).standard_normal(model.inputs[0].shape).astype(np.float32)
            (want,) = models.reference_outputs(onnx.load(sources[name]), {model.inputs[0].name: x})
            np.testing.assert_allclose(model.run([x])[0], want, rtol=1e-4, atol=1e-5)
            assert manifest["name"] == name
        assert _leftovers(out, cache) == []
        assert len([p for p in cache.iterdir()]) == 3  # one entry per model


@pytest.mark.parametrize("delay", [0.3, 2.0, 4.0])
def test_a_killed_build_leaves_nothing_stale_after_the_next(sources, tmp_path, delay):
    out, cache = tmp_path / "out", tmp_path / "cache"
    victim = _start_build("m1", sources["m1"], out, cache)
    time.sleep(delay)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    rebuild = _start_build("m1", sources["m1"], out, cache)
    _, stderr = rebuild.communicate(timeout=600)
    assert rebuild.returncode == 0, stderr[-3000:]
    _verified(out / "m1")
    assert _leftovers(out, cache) == []
    # The killed process's scratch directories in the temporary directory are gone too.
    marker = f"-{victim.pid}-"
    assert not [p.name for p in Path(tempfile.gettempdir()).glob("wasm-build-*") if marker in p.name]
