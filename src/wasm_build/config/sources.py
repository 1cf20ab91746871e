"""Where a model comes from: a `.onnx` file, a `.pt2` file, or a Python callable.

The `source` setting is parsed here, once, into a `ModelSource`; everything that needs
to know what a source is (reading it, checking it exists, the files an sdist must hold,
the name a model takes from its file, CMake's dependencies) asks it.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import ConfigError

FILE_SUFFIXES = {".onnx": "onnx", ".pt2": "pt2"}
# "package.module:function" (or "module:attribute.path"): a Python callable returning a Relax IRModule.
_CALLABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
FORMS = "a .onnx file, a .pt2 file (torch.export.save), or 'package.module:function' returning a Relax IRModule"


@dataclass(frozen=True)
class ModelSource:
    """A parsed `source`: `path` for files (absolute), `module`/`function` for callables."""

    text: str
    kind: Literal["onnx", "pt2", "callable"]
    path: Path | None = None
    module: str | None = None
    function: str | None = None

    @classmethod
    def parse(cls, text: str, project_dir: Path, key: str = "source") -> ModelSource:
        """Files are named by their suffix (or by existing); a callable is `module:function`.
        `key` names the setting in error messages."""
        path = Path(text)
        path = path if path.is_absolute() else Path(project_dir) / path
        if path.suffix in FILE_SUFFIXES:
            return cls(text, FILE_SUFFIXES[path.suffix], path=path)  # type: ignore[arg-type]
        if _CALLABLE.match(text) and not path.exists():
            module, _, function = text.partition(":")
            return cls(text, "callable", module=module, function=function)
        if path.is_file():
            raise ConfigError(f"{key} = {text!r}: unknown model format '{path.suffix}'", fix=f"use {FORMS}")
        raise ConfigError(
            f"{key} = {text!r}: no such file (looked for {path}), and not a 'package.module:function'",
            fix=f"give the path relative to the project directory; sources are {FORMS}",
        )

    @property
    def is_file(self) -> bool:
        return self.path is not None

    @property
    def default_name(self) -> str | None:
        """The model name a file gives (its stem as a C identifier); callables have none."""
        if self.path is None:
            return None
        return re.sub(r"\W", "_", self.path.stem)

    def python_file(self, project_dir: Path) -> Path | None:
        """The project's Python file defining a callable source (for rebuilds and sdists)."""
        if self.module is None:
            return None
        base = Path(project_dir).joinpath(*self.module.split("."))
        return next((c for c in (base.with_suffix(".py"), base / "__init__.py") if c.is_file()), None)

    def package_files(self, project_dir: Path) -> list[Path]:
        """The `__init__.py` files of the packages around a callable's module, so an sdist imports it."""
        if self.module is None:
            return []
        parts = self.module.split(".")
        return [Path(project_dir).joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]

    def check(self, project_dir: Path, key: str, model: str | None = None) -> None:
        """The file exists, or the callable's module can be found; the error names `key`."""
        if self.path is not None:
            if not self.path.is_file():
                raise ConfigError(
                    f"{key} = {self.text!r}: no such file (looked for {self.path})",
                    fix="give the path relative to the directory of pyproject.toml",
                    model=model,
                )
            return
        if self.python_file(project_dir) is None and not _importable(self.module or "", Path(project_dir)):
            raise ConfigError(
                f"{key} = {self.text!r}: module '{self.module}' was not found in {project_dir} or on sys.path",
                fix=f"create {(self.module or '').replace('.', '/')}.py next to pyproject.toml, or fix the module name",
                model=model,
            )


def _importable(module: str, directory: Path) -> bool:
    added = str(directory) not in sys.path
    if added:
        sys.path.insert(0, str(directory))
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False
    finally:
        if added:
            sys.path.remove(str(directory))
