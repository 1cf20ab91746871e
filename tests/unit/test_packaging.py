"""pyproject.toml lists every package and data folder of src/wasm_build (setuptools installs
only what it lists: a new subpackage left out would be missing from wheels)."""

from __future__ import annotations

import sys

from tests.support import REPO, SRC

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_every_package_folder_is_listed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {
        ".".join(path.relative_to(SRC).parts)
        for path in [SRC / "wasm_build", *(SRC / "wasm_build").rglob("*")]
        if path.is_dir() and "__pycache__" not in path.parts and any(path.glob("*.*"))
    }
    assert folders - listed == set(), "add these to [tool.setuptools] packages"
    assert {p for p in listed if not p.startswith("wasm_build.cmake")} - folders == set(), "listed but missing"
