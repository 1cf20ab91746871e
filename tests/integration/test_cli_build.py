"""`wasm-build build`: every model a pyproject declares, through the cache."""

from __future__ import annotations

import textwrap
from pathlib import Path

from wasm_build.cli import main as cli_main
from wasm_build.testing.models import mlp, save


def write_table(project: Path, table: str) -> None:
    (project / "pyproject.toml").write_text('[project]\nname = "demo"\nversion = "0.1"\n\n' + textwrap.dedent(table))


def test_build_command_builds_every_model_and_reuses_the_cache(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.delenv("WASM_BUILD_CACHE_DIR", raising=False)  # it would override cache-dir below
    project = tmp_path / "proj"
    (project / "models").mkdir(parents=True)
    save(mlp(), project / "models" / "mlp.onnx")
    write_table(
        project,
        """\
        [tool.wasm-build]
        out-dir = "out"
        cache-dir = "../cache"

        [[tool.wasm-build.models]]
        name = "mlp"
        source = "models/mlp.onnx"
        smoke-test = false
        """,
    )
    args = ["build", "--project", str(project), "-C", "models.mlp.weights=file"]
    assert cli_main(args) == 0
    first = capsys.readouterr()
    assert (project / "out" / "mlp" / "mlp.weights").is_file()  # the -C override reached the build
    assert (project / "out" / "mlp" / "libmlp.a").is_file()
    assert "mlp: compile" in first.err
    assert len([p for p in (tmp_path / "cache").iterdir() if not p.name.startswith(".")]) == 1

    assert cli_main(args) == 0
    second = capsys.readouterr()
    assert "mlp: up to date (cache" in second.err and "compile" not in second.err
    assert "(cached)" in second.out
