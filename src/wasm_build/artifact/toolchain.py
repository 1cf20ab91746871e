"""Find a C compiler, wasm-ld and an archiver that target wasm32-wasi.

Search order, first that works wins:
1. explicit settings: `WASM_BUILD_CC` / `WASM_BUILD_AR`, then `WASI_SDK_PATH`, then
   `CC` / `AR` when they can target wasm32-wasi;
2. a system clang with a wasm32-wasi sysroot (Debian: clang-19 lld-19 wasi-libc
   libclang-rt-19-dev-wasm32);
3. the `ziglang` PyPI package (a dependency of wasm-build, so `pip install`
   alone always yields a toolchain).

"Works" means a probe program really compiles and links as a reactor module.
`WASM_BUILD_TOOLCHAIN=explicit|wasi-sdk|system-clang|zig` restricts the search
to one kind (e.g. to test the PyPI-only path on a machine that has clang).
"""

from __future__ import annotations

import functools
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import ToolchainError
from .files import work_dir

INSTALL_HINT = (
    "install a wasm32-wasi C toolchain: `pip install ziglang` (pure PyPI), or on Debian/Ubuntu "
    "`apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32`, or set WASI_SDK_PATH to a wasi-sdk"
)

_PROBE_SOURCE = "int wb_probe(int x) { return x * 2; }\n"


@dataclass(frozen=True)
class Toolchain:
    """A working wasm32-wasi toolchain: commands are argument-list prefixes."""

    kind: str  # "explicit", "wasi-sdk", "system-clang", "zig"
    cc: tuple[str, ...]
    ar: tuple[str, ...]
    version: str = ""
    env: tuple[tuple[str, str], ...] = field(default=())

    @property
    def identity(self) -> str:
        """Stable fingerprint for build caches."""
        text = "\n".join([self.kind, shlex.join(self.cc), shlex.join(self.ar), self.version])
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        return f"{self.kind}: {shlex.join(self.cc)} (ar: {shlex.join(self.ar)}) {self.version}".strip()

    # -- running -------------------------------------------------------------

    def _run(self, args: Sequence[str], what: str, cwd: Path | None = None) -> str:
        env = {**os.environ, **dict(self.env)}
        proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ToolchainError(
                f"{what} failed ({self.kind} toolchain):\n  $ {shlex.join(args)}\n{proc.stderr.strip() or proc.stdout.strip()}"
            )
        return proc.stdout

    def compile_c(self, source: Path, output: Path, flags: Sequence[str] = (), cwd: Path | None = None) -> None:
        self._run([*self.cc, "-c", str(source), "-o", str(output), *flags], f"compiling {source.name}", cwd)

    def archive(self, output: Path, members: Sequence[Path]) -> None:
        """A deterministic static archive (no timestamps, uids or modes) with a symbol index."""
        if output.exists():
            output.unlink()
        self._run([*self.ar, "rcsD", str(output), *map(str, members)], f"archiving {output.name}")

    def link(self, inputs: Sequence[Path | str], output: Path, flags: Sequence[str] = (), cwd: Path | None = None) -> None:
        self._run([*self.cc, *map(str, inputs), "-o", str(output), *flags], f"linking {output.name}", cwd)

    def link_reactor(self, inputs: Sequence[Path | str], output: Path, exports: Sequence[str], flags: Sequence[str] = ()) -> None:
        """A WASI reactor: exports `_initialize` and `exports`, no `_start`."""
        export_flags = [f"-Wl,--export={name}" for name in exports]
        self.link(inputs, output, ["-mexec-model=reactor", *export_flags, "-Wl,--strip-debug", *flags])


# -- discovery --------------------------------------------------------------------------


def _probe(toolchain: Toolchain) -> str | None:
    """Compile, archive and link a reactor; return the compiler version, or None if it fails."""
    try:
        with work_dir("probe") as work:
            (work / "probe.c").write_text(_PROBE_SOURCE)
            toolchain.compile_c(work / "probe.c", work / "probe.o", ["-O2"])
            toolchain.archive(work / "libprobe.a", [work / "probe.o"])
            toolchain.link_reactor([work / "libprobe.a"], work / "probe.wasm", ["wb_probe"])
            if (work / "probe.wasm").read_bytes()[:4] != b"\0asm":
                return None
            env = {**os.environ, **dict(toolchain.env)}
            proc = subprocess.run([*toolchain.cc, "--version"], capture_output=True, text=True, env=env)
            return (proc.stdout.strip().splitlines() or ["unknown"])[0]
    except (ToolchainError, OSError):
        return None


def _explicit_candidates() -> list[Toolchain]:
    found = []
    cc, ar = os.environ.get("WASM_BUILD_CC"), os.environ.get("WASM_BUILD_AR")
    if cc:
        found.append(Toolchain("explicit", tuple(shlex.split(cc)), tuple(shlex.split(ar or "llvm-ar"))))
    sdk = os.environ.get("WASI_SDK_PATH")
    if sdk:
        root = Path(sdk)
        found.append(
            Toolchain(
                "wasi-sdk",
                (str(root / "bin" / "clang"), "--target=wasm32-wasi", f"--sysroot={root / 'share' / 'wasi-sysroot'}"),
                (str(root / "bin" / "llvm-ar"),),
            )
        )
    cc, ar = os.environ.get("CC"), os.environ.get("AR")
    if cc and "clang" in cc:
        found.append(Toolchain("explicit", (*shlex.split(cc), "--target=wasm32-wasi"), tuple(shlex.split(ar or "llvm-ar"))))
    return found


def _system_clang_candidates() -> list[Toolchain]:
    found = []
    sysroots = [p for p in ("/usr", "/opt/wasi-sdk/share/wasi-sysroot", "/usr/share/wasi-sysroot") if Path(p, "include", "wasm32-wasi").is_dir() or Path(p, "include", "wasi").is_dir()]
    for version in ("", *(f"-{v}" for v in range(22, 14, -1))):
        clang = shutil.which(f"clang{version}")
        ar = shutil.which(f"llvm-ar{version}") or shutil.which("llvm-ar")
        if not clang or not ar:
            continue
        for sysroot in sysroots:
            found.append(Toolchain("system-clang", (clang, "--target=wasm32-wasi", f"--sysroot={sysroot}"), (ar,)))
    return found


def _zig_candidates() -> list[Toolchain]:
    try:
        import ziglang  # noqa: F401
    except ImportError:
        return []
    zig = (sys.executable, "-m", "ziglang")
    return [Toolchain("zig", (*zig, "cc", "-target", "wasm32-wasi"), (*zig, "ar"))]


@functools.lru_cache(maxsize=1)
def find_toolchain() -> Toolchain:
    """The first working toolchain, probed once per process."""
    tried = []
    candidates = [*_explicit_candidates(), *_system_clang_candidates(), *_zig_candidates()]
    wanted = os.environ.get("WASM_BUILD_TOOLCHAIN")
    if wanted:
        kinds = {"explicit", "wasi-sdk", "system-clang", "zig"}
        if wanted not in kinds:
            raise ToolchainError(
                f"WASM_BUILD_TOOLCHAIN={wanted!r} is not a toolchain kind", fix=f"use one of {', '.join(sorted(kinds))}"
            )
        candidates = [c for c in candidates if c.kind == wanted]
    for candidate in candidates:
        version = _probe(candidate)
        if version is not None:
            return Toolchain(candidate.kind, candidate.cc, candidate.ar, version, candidate.env)
        tried.append(candidate.describe())
    tried_text = "".join(f"\n  tried {t}" for t in tried) or "\n  (no candidate compiler found)"
    raise ToolchainError(f"no working C toolchain for wasm32-wasi{tried_text}", fix=INSTALL_HINT)
