"""setuptools integration: `build_wasm_model`, run by `build` (so by `pip wheel .`).

Two entry points of this package hook it in:

- `distutils.commands` → `build_wasm_model`, the command itself;
- `setuptools.finalize_distribution_options` → `finalize_distribution_options`,
  which for projects with a `[tool.wasm-build]` table checks the settings
  (so errors come before any work) and adds `build_wasm_model` to the
  sub-commands of whatever `build` command the project ends up using.

Projects without the table are left exactly as they were: the hook reads
pyproject.toml and returns.

The command builds every model into `out-dir` (through the content-addressed
cache), then copies each `out-dir/NAME/` into the wheel under `wheel-dir`
(default `<top package>/wasm`), and the files the model directories share
(`out-dir/rust-runtime/`, included by every `NAME/rust/` crate). The artifacts
are platform-independent data files, so the wheel keeps its `py3-none-any` tag
unless the project has extension modules of its own. In editable installs the
copies go next to the package's sources instead, where `importlib.resources`
finds them.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path, PurePosixPath
from typing import Any

from setuptools import Command
from setuptools.errors import ExecError, SetupError

from ..codegen.rust import shared_files

from ..errors import WasmBuildError
from ..config.project import Project, load_project, read_table

COMMAND = "build_wasm_model"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _config_settings() -> dict[str, Any]:
    """`-C wasm-build.*` passed through `wasm_build.build_meta`, when that is the backend."""
    backend = sys.modules.get("wasm_build.build_meta")
    return backend.current_config_settings() if backend is not None else {}


def _project_dir(dist: Any) -> Path:
    return Path(getattr(dist, "src_root", None) or os.curdir).resolve()


def project_of(dist: Any) -> Project | None:
    """The merged settings of the project being built (loaded once per distribution)."""
    if not hasattr(dist, "_wasm_build_project"):
        try:
            dist._wasm_build_project = load_project(_project_dir(dist), _config_settings())
        except WasmBuildError as exc:
            # distutils turns SetupError into a one-line "error in setup command: ..." without a traceback.
            raise SetupError(f"wasm-build: {exc}") from None
    return dist._wasm_build_project


def finalize_distribution_options(dist: Any) -> None:
    """Entry point `setuptools.finalize_distribution_options`."""
    try:
        if read_table(_project_dir(dist)) is None:
            return
    except WasmBuildError:
        pass  # project_of reports it with the setup-error framing
    project_of(dist)
    dist.cmdclass.setdefault(COMMAND, build_wasm_model)
    _wrap_build(dist)


finalize_distribution_options.order = 10  # type: ignore[attr-defined]  # after hooks that set up commands


def _wrap_build(dist: Any) -> None:
    """Add our sub-command to a subclass of whatever `build` the project ends up with.

    Hooks run before pyproject's [tool.setuptools.cmdclass] is applied, so the
    class is wrapped when it is looked up, not now. The subclass composes with
    other plugins' `build` classes instead of replacing them.
    """
    lookup = dist.get_command_class

    def get_command_class(command: str) -> type:
        cls = lookup(command)
        if command == "build" and not any(name == COMMAND for name, _ in cls.sub_commands):
            cls = type(cls.__name__, (cls,), {"sub_commands": [*cls.sub_commands, (COMMAND, None)]})
            dist.cmdclass["build"] = cls
        return cls

    dist.get_command_class = get_command_class


class build_wasm_model(Command):
    """Compile the models of `[tool.wasm-build]` and put their artifacts into the build."""

    description = "compile the models declared in [tool.wasm-build] into wasm32 libraries"
    user_options = [("build-lib=", "b", "directory of the wheel's contents (default: build_py's)")]

    # setuptools sets this for editable installs (PEP 660): copies then go next to the sources.
    editable_mode: bool = False

    def initialize_options(self) -> None:
        self.build_lib: str | None = None
        self.editable_mode = False
        self.project: Project | None = None
        self._built: dict[str, list[str]] = {}

    def finalize_options(self) -> None:
        self.set_undefined_options("build_py", ("build_lib", "build_lib"))
        self.project = project_of(self.distribution)

    # -- where things go ----------------------------------------------------------------

    def wheel_dir(self) -> PurePosixPath:
        """Directory of the artifacts inside the wheel, e.g. `kws_demo/wasm`."""
        assert self.project is not None
        if self.project.settings.wheel_dir:
            return PurePosixPath(self.project.settings.wheel_dir)
        packages = self.distribution.packages or []
        tops = sorted({p.split(".")[0] for p in packages})
        if len(tops) != 1:
            found = f"top-level packages {', '.join(tops)}" if tops else "no packages"
            raise SetupError(
                f"wasm-build: cannot choose where the artifacts go in the wheel: the project has {found}\n"
                f'  fix: set wheel-dir in [tool.wasm-build], e.g. wheel-dir = "{tops[0] if tops else "mypkg"}/wasm"'
            )
        return PurePosixPath(tops[0]) / "wasm"

    def _inplace_dir(self) -> Path:
        """The wheel directory in the source tree (through package_dir, e.g. src/ layouts)."""
        assert self.project is not None
        wheel_dir = self.wheel_dir()
        build_py = self.get_finalized_command("build_py")
        top = wheel_dir.parts[0]
        package_dir = Path(build_py.get_package_dir(top)) if top in self._top_packages() else Path(top)
        return self.project.directory / package_dir / PurePosixPath(*wheel_dir.parts[1:])

    def _top_packages(self) -> set[str]:
        return {p.split(".")[0] for p in self.distribution.packages or []}

    def _model_files(self, name: str) -> list[str]:
        """Files of one model relative to its directory: those built, else those expected."""
        if name in self._built:
            return self._built[name]
        assert self.project is not None
        built = self.project.out_dir / name
        if (built / f"{name}.json").is_file():
            return _files_under(built)
        model = next(m for m in self.project.settings.models if m.name == name)
        expected = [f"lib{name}.a", f"{name}.h", f"{name}.wasm", f"{name}.json"]
        return expected + ([f"{name}.weights"] if model.weights == "file" else [])

    @staticmethod
    def _shared_files() -> list[str]:
        """Files beside the model directories that they need, relative to out-dir."""
        return shared_files()

    # -- the setuptools sub-command protocol ----------------------------------------------

    def get_source_files(self) -> list[str]:
        if self.project is None:
            return []
        return self.project.source_files()

    def get_outputs(self) -> list[str]:
        if self.project is None or self.build_lib is None:
            return []
        base = Path(self.build_lib, *self.wheel_dir().parts)
        models = [
            str(base / model.name / relative)
            for model in self.project.settings.models
            for relative in self._model_files(model.name)
        ]
        return models + ([str(base / relative) for relative in self._shared_files()] if models else [])

    def get_output_mapping(self) -> dict[str, str]:
        """In editable mode the outputs live in the source tree: map them there."""
        if self.project is None or not self.editable_mode:
            return {}
        base = Path(self.build_lib, *self.wheel_dir().parts)
        inplace = self._inplace_dir()
        mapping = {}
        for output in self.get_outputs():
            source = inplace / Path(output).relative_to(base)
            mapping[output] = os.path.relpath(source, self.project.directory)
        return mapping

    def run(self) -> None:
        project = self.project
        if project is None or not project.settings.models:
            return
        from ..build import build_model

        verbose = self.verbose > 1 or os.environ.get("WASM_BUILD_VERBOSE", "") not in ("", "0")
        destination = self._inplace_dir() if self.editable_mode else Path(self.build_lib, *self.wheel_dir().parts)
        _stderr(
            f"wasm-build: {len(project.settings.models)} model(s) into {project.out_dir} "
            f"(cache {project.cache_dir}), copies in {destination}"
        )
        for model in project.settings.models:
            try:
                result = build_model(
                    model, project.out_dir, project_dir=project.directory, cache_dir=project.cache_dir, verbose=verbose
                )
            except WasmBuildError as exc:
                # distutils prints ExecError as "error: ..." without a traceback: the message must stand alone.
                raise ExecError(f"wasm-build: {exc}") from None
            self._built[model.name] = _copy_model(result.directory, destination / model.name)
        for relative in self._shared_files():
            target = destination / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(project.out_dir / relative, target)
            shutil.copymode(project.out_dir / relative, target)


def _files_under(directory: Path) -> list[str]:
    return sorted(p.relative_to(directory).as_posix() for p in directory.rglob("*") if p.is_file())


def _copy_model(source: Path, destination: Path) -> list[str]:
    """Replace `destination` by a copy of `source`; returns the relative file names."""
    if destination.exists():
        shutil.rmtree(destination)
    files = _files_under(source)
    for relative in files:
        target = destination / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        # No copy2: a file's time stamp must not depend on the cache (the wheel uses SOURCE_DATE_EPOCH anyway).
        shutil.copyfile(source / relative, target)
        shutil.copymode(source / relative, target)
    return files


__all__ = ["build_wasm_model", "finalize_distribution_options", "project_of"]
