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
from typing import Any, Literal

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

    def input_files(self, project_dir: Path) -> list[Path]:
        """The existing files the model is read from, for rebuild checks: the model file and
        the external data of an ONNX model, or the project's Python files behind a callable."""
        if self.path is not None:
            files = [self.path, *(external_data_files(self.path) if self.kind == "onnx" else [])]
        else:
            files = [f for f in (self.python_file(project_dir), *self.package_files(project_dir)) if f is not None]
        return [f for f in files if f.is_file()]

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


def external_data_files(path: Path) -> list[Path]:
    """The files an ONNX model keeps tensors in (external data), resolved next to the model;
    they are part of the model (and of its cache key) like the .onnx file itself."""
    try:
        data = path.read_bytes()
    except OSError:  # reported when the model is loaded
        return []
    if b"location" not in data:  # every external tensor names its file under this key
        return []
    import onnx  # heavy (about a second): only for a model that may have external data

    try:
        model = onnx.load_from_string(data)
    except Exception:  # an unreadable model is reported when it is loaded
        return []
    files = set()
    for tensor in tensors_of(model.graph):
        if onnx.external_data_helper.uses_external_data(tensor):
            info = {entry.key: entry.value for entry in tensor.external_data}
            files.add(path.parent / info.get("location", ""))
    return sorted(files)


def tensors_of(graph: Any):
    """Every tensor a graph holds: initializers and attribute values, subgraphs included."""
    yield from graph.initializer
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            for subgraph in ([attribute.g] if attribute.HasField("g") else []) + list(attribute.graphs):
                yield from tensors_of(subgraph)


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
