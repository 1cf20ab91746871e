"""Rust programs for wasm32-wasi built with Debian's cargo (the `cargo` fixture is in
tests/integration/conftest.py)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

CARGO = "/usr/bin/cargo"
RUSTC = "/usr/bin/rustc"
WASI_STD = Path("/usr/lib/rustlib/wasm32-wasi")


@dataclass(frozen=True)
class Cargo:
    """Debian cargo with its own home and one target directory shared by the programs of a session."""

    home: Path
    target_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_LIB_DIR") and not k.startswith("CARGO_")}
        env.update(RUSTC=RUSTC, CARGO_HOME=str(self.home), CARGO_TARGET_DIR=str(self.target_dir), **extra)
        return env

    def build(self, crate: Path, *, release: bool = False, **env: str) -> subprocess.CompletedProcess:
        args = [CARGO, "build", "--offline", "--target", "wasm32-wasi", "--manifest-path", str(crate / "Cargo.toml")]
        if release:
            args.append("--release")
        return subprocess.run(args, env=self.env(**env), capture_output=True, text=True)

    def build_ok(self, crate: Path, artifact: str, *, release: bool = False, **env: str) -> Path:
        proc = self.build(crate, release=release, **env)
        assert proc.returncode == 0, f"cargo build of {crate} failed:\n{proc.stderr}"
        wasm = self.target_dir / "wasm32-wasi" / ("release" if release else "debug") / f"{artifact}.wasm"
        assert wasm.is_file(), proc.stderr
        return wasm


def write_crate(directory: Path, cargo_toml: str, sources: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "Cargo.toml").write_text(cargo_toml)
    for relative, text in sources.items():
        (directory / relative).parent.mkdir(parents=True, exist_ok=True)
        (directory / relative).write_text(text)
    return directory


def dependency(build, crate: str | None = None) -> str:
    return f'{crate or build.name} = {{ path = "{(build.directory / "rust").as_posix()}" }}'
