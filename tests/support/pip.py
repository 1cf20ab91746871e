"""Real pip in a throw-away venv with wasm-build installed, for build-integration tests.

Installing this repository into the test environment would register its
setuptools entry points for every build on the machine, so tests build a
wheel of wasm-build from a copy of the repository and install it (without
dependencies) into a venv under a temporary directory. That venv sees the
packages of the interpreter running the tests (TVM & co.), whether that is a
venv or the machine's Python: never the base interpreter's behind a venv.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from dataclasses import dataclass
from pathlib import Path

from . import REPO

_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "dist", "*.egg-info", ".pytest_cache")


def run(command: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command, keeping stdout and stderr together (as pip -v shows them)."""
    result = subprocess.run(
        [str(c) for c in command], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(map(str, command))} failed ({result.returncode}):\n{result.stdout[-6000:]}")
    return result


# What installing wasm-build needs (pyproject maps cmake/ into the package).
_PACKAGED = ("pyproject.toml", "README.md", "LICENSE", "src", "cmake")


def copy_repository(destination: Path) -> Path:
    """A copy of what installing wasm-build reads: the repository itself stays clean."""
    if destination.exists():
        shutil.rmtree(destination)
    destination.mkdir(parents=True)
    for name in _PACKAGED:
        entry = REPO / name
        if entry.is_dir():
            shutil.copytree(entry, destination / name, ignore=_IGNORE)
        elif entry.is_file():
            shutil.copy2(entry, destination / name)
    return destination


def build_wasm_build_wheel(wheelhouse: Path, scratch: Path) -> Path:
    """A wheel of wasm-build built from a copy of the repository."""
    source = copy_repository(scratch / "wasm-build-src")
    wheelhouse.mkdir(parents=True, exist_ok=True)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", source, "-w", wheelhouse])
    (wheel,) = wheelhouse.glob("wasm_build-*.whl")
    return wheel


@dataclass
class Venv:
    path: Path

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("PYTHONPATH", None)  # the installed wasm-build, not the repository's
        env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
        env["VIRTUAL_ENV"] = str(self.path)
        env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env.update(extra)
        return env

    def pip(self, *args: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None, check: bool = True):
        return run([self.python, "-m", "pip", *args], env=env or self.env(), cwd=cwd, check=check)

    def pip_wheel(
        self, project: Path, out: Path, *args: str, isolation: bool = False, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess:
        """`pip wheel -v --no-deps PROJECT -w OUT`, by default without build isolation."""
        flags = [] if isolation else ["--no-build-isolation"]
        return self.pip("wheel", "-v", "--no-deps", *flags, *args, project, "-w", out, env=self.env(**env), check=check)

    def python_run(self, code: str, *, env: dict[str, str] | None = None, check: bool = True):
        return run([self.python, "-c", code], env=env or self.env(), check=check)


def venv_seeing_this_environment(path: Path) -> Venv:
    """An empty venv that also sees the site-packages of the interpreter running the tests.

    `--system-site-packages` would show the *base* interpreter's packages when the tests
    run in a venv; a .pth file in the new venv adds this interpreter's own site directories
    instead (after the venv's, so what is installed into the venv wins). `site.addsitedir`
    also runs their .pth files (editable installs, setuptools' distutils shim).
    """
    # No pip of its own: this environment's pip, run by the venv's python, installs into the venv.
    run([sys.executable, "-m", "venv", "--without-pip", path])
    venv = Venv(path)
    site_dir = run([venv.python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"]).stdout.strip()
    ours = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    lines = [f"import site; site.addsitedir({directory!r})" for directory in ours]
    Path(site_dir, "_wasm_build_tests_parent_env.pth").write_text("\n".join(lines) + "\n")
    return venv


def make_venv(path: Path, wasm_build_wheel: Path) -> Venv:
    """A venv seeing this environment's packages, with wasm-build installed from `wasm_build_wheel`."""
    venv = venv_seeing_this_environment(path)
    venv.pip("install", "--no-deps", "-q", wasm_build_wheel)
    return venv


def copy_project(source: Path, destination: Path) -> Path:
    """A clean copy of a project (no build/, dist/, egg-info or in-place artifacts)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "build", "dist", "*.egg-info", "wasm", "target")
    shutil.copytree(source, destination, ignore=ignore)
    return destination


def wheel_names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()
