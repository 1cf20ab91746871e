"""Build one model end to end: frontend → compile → codegen → link → smoke test.

This module knows nothing of setuptools, CMake or argparse: the CLI and the build-system
adapters all call `build_model` (or `build_project`). It imports the compiler, so they
import it when they build.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import tvm

from . import __version__
from .artifact.assemble import PackageInputs, assemble
from .artifact.cache import BuildCache, cache_key
from .artifact.files import WORK_PREFIX, make_temp_dir, output_lock, replace_directory, sweep_stale, work_dir
from .artifact.toolchain import Toolchain, find_toolchain
from .codegen.c import render
from .codegen.cmake import write_cmake_package
from .codegen.plan import plan_executor
from .codegen.rust import write_rust_crate, write_rust_runtime
from .compiler.kernels import build_kernels, kernel_work_table
from .compiler.input_values import input_value_ranges
from .compiler.pipeline import lower
from .compiler.target import TargetOptions
from .config.project import Project
from .config.settings import ModelSettings
from .config.sources import ModelSource
from .errors import WasmBuildError
from .frontends import LoadedModel, load_model
from .tuning import apply_database_pass, tune_model
from .wasm.smoke import smoke_test

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class BuildResult:
    name: str
    directory: Path
    manifest: dict[str, Any]
    cached: bool
    timings: dict[str, float]


class Progress:
    """One line per stage with its time; details only when verbose. Errors leave a stage
    with the model and the stage named."""

    def __init__(self, model: str, log: Log = _stderr, verbose: bool = False) -> None:
        self.model = model
        self.log = log
        self.verbose = verbose
        self.timings: dict[str, float] = {}

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        except WasmBuildError as exc:
            raise exc.with_context(model=self.model, stage=name)
        except Exception as exc:  # an unexpected failure still says where it happened
            raise WasmBuildError(
                f"{type(exc).__name__}: {_summary(exc, self.verbose)}",
                fix=None if self.verbose else "run with -v for the whole message, and report the model to wasm-build",
                model=self.model,
                stage=name,
            ) from exc
        elapsed = time.perf_counter() - start
        self.timings[name] = elapsed
        self.log(f"wasm-build: {self.model}: {name:<11} {elapsed:7.2f} s")

    def detail(self, message: str) -> None:
        if self.verbose:
            self.log(f"wasm-build: {self.model}:   {message}")


_SUMMARY_LINES = 4


def _summary(exc: BaseException, verbose: bool) -> str:
    """An unexpected error's message, cut short unless verbose: TVM's can hold a whole IR dump."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    if verbose or len(lines) <= _SUMMARY_LINES:
        return "\n".join(lines)
    return "\n".join([*lines[:_SUMMARY_LINES], f"... ({len(lines) - _SUMMARY_LINES} more lines)"])


def _database(model: ModelSettings, project_dir: Path) -> Path | None:
    if not model.tuning.database:
        return None
    path = Path(model.tuning.database)
    return path if path.is_absolute() else project_dir / path


def _source_digest(source: ModelSource, project_dir: Path) -> str:
    """The model's bytes (ONNX external data included); callables are known once loaded."""
    if source.path is None or not source.path.is_file():
        return ""
    digest = hashlib.sha256()
    for file in source.input_files(project_dir):
        digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


# -- the build ------------------------------------------------------------------------------


def build_project(project: Project, *, log: Log = _stderr, verbose: bool = False) -> list[BuildResult]:
    """Build every model a project declares into its out-dir."""
    return [
        build_model(
            model, project.out_dir, project_dir=project.directory, cache_dir=project.cache_dir, log=log, verbose=verbose
        )
        for model in project.settings.models
    ]


def build_model(
    model: ModelSettings,
    out_dir: Path,
    *,
    project_dir: Path = Path("."),
    cache_dir: Path | None = None,
    log: Log = _stderr,
    verbose: bool = False,
) -> BuildResult:
    """Build `model` into `out_dir/NAME/`, reusing the cache when nothing changed."""
    progress = Progress(model.name, log, verbose)
    project_dir = project_dir.resolve()
    destination = _output_directory(Path(out_dir), model.name)
    source = ModelSource.parse(model.source, project_dir)

    with progress.stage("toolchain"):
        toolchain = find_toolchain()
        progress.detail(toolchain.describe())

    digest = _source_digest(source, project_dir)
    loaded = None
    if not digest and source.kind == "callable":
        # A Python source is known only once loaded: its printed IRModule keys the cache.
        with progress.stage("frontend"):
            loaded = load_model(source, model.inputs, project_dir, model.dims)
        digest = loaded.digest
    cache = BuildCache(cache_dir) if cache_dir is not None and digest else None
    key = cache_key(model, digest, toolchain.identity, tvm.__version__, _database(model, project_dir)) if cache else None
    if cache is not None and key is not None:
        # The shared files come from this wasm-build, which the cache key includes.
        write_rust_runtime(destination.parent)
        manifest = _reuse(cache, key, destination)
        if manifest is not None:
            log(f"wasm-build: {model.name}: up to date (cache {key[:12]}), reused {destination}")
            return BuildResult(model.name, destination, manifest, True, {})
    manifest = _build_uncached(model, source, destination, project_dir, toolchain, progress, loaded)
    if cache is not None and key is not None:
        try:
            cache.publish(key, destination)
        except OSError as exc:  # a read-only or full cache costs the next build time, not this one
            log(f"wasm-build: {model.name}: warning: could not add the build to the cache {cache.directory} ({exc})")
    return BuildResult(model.name, destination, manifest, False, progress.timings)


def _output_directory(out_dir: Path, name: str) -> Path:
    """`out_dir/NAME`, checked to be writable; what killed builds left there (and in the
    temporary directory) is removed first."""
    if out_dir.exists() and not out_dir.is_dir():
        raise WasmBuildError(
            f"the output directory {out_dir} is a file", fix="pass a directory (it is created if missing)", model=name
        )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with output_lock(out_dir):
            sweep_stale(out_dir, f".{name}.")
        probe = make_temp_dir(out_dir, f".{name}.probe-")
        probe.rmdir()
    except OSError as exc:
        raise WasmBuildError(
            f"cannot write to the output directory {out_dir} ({exc.strerror or exc})",
            fix="choose a directory you can write to (--out, or out-dir in pyproject.toml)",
            model=name,
        ) from None
    sweep_stale(Path(tempfile.gettempdir()), WORK_PREFIX)
    return out_dir / name


def _reuse(cache: BuildCache, key: str, destination: Path) -> dict[str, Any] | None:
    """Replace `destination` by the intact cache entry `key`; its manifest, or None on a miss."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(destination.parent, f".{destination.name}.cached-")
    try:
        if not cache.copy_out(key, staging):
            return None
        manifest = json.loads((staging / f"{destination.name}.json").read_text())
        with output_lock(destination.parent):
            replace_directory(staging, destination)
        return manifest
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@contextmanager
def _symbolic_hint(loaded: LoadedModel) -> Iterator[None]:
    """TVM's own failures on a model with symbolic dimensions, with what to do: TVM 0.27 lowers
    the TorchScript exporter's dynamic-axes graphs only in part (shapes of shapes, Ranges over a
    length), and the error it raises is about its internals."""
    try:
        yield
    except WasmBuildError:
        raise
    except Exception as exc:
        if not loaded.dims:
            raise
        names = ", ".join(d.name for d in loaded.dims)
        raise WasmBuildError(
            f"TVM could not compile the model with its symbolic dimensions ({names}): {type(exc).__name__}: "
            f"{_summary(exc, verbose=False)}",
            fix="pin them (one size per build: --input NAME=1x16:int64, or inputs in pyproject), or export the model "
            "with torch.export and a Dim (a .pt2; see docs/consumers.md, 'Symbolic dimensions')",
        ) from exc


def _build_uncached(
    model: ModelSettings,
    source: ModelSource,
    destination: Path,
    project_dir: Path,
    toolchain: Toolchain,
    progress: Progress,
    loaded: LoadedModel | None = None,
) -> dict[str, Any]:
    if loaded is None:
        with progress.stage("frontend"):
            loaded = load_model(source, model.inputs, project_dir, model.dims)
    bounds = "".join(f", {d.name} in {d.min}..{d.max}" for d in loaded.dims)
    progress.detail(f"{loaded.kind} model, inputs {loaded.input_names}{bounds}")

    options = TargetOptions.for_model(model)
    prefix = f"{model.name}_"
    database = _database(model, project_dir)
    if model.tuning.trials > 0:
        with progress.stage("tune"):
            tune_model(loaded.module, options, str(database), model.tuning, log=progress.detail)

    with work_dir("build") as work:
        with progress.stage("compile"):
            tuned = apply_database_pass(str(database), options.tvm_target()) if database and database.is_file() else None
            with _symbolic_hint(loaded):
                lowered = lower(loaded.module, prefix, options, default_schedules=model.default_schedules, tuned=tuned)
            # Planned before the kernels are compiled: a model too large for wasm32 fails now, not after LLVM.
            plan = plan_executor(
                lowered.module, prefix, loaded.input_names, loaded.output_names, input_value_ranges(loaded.module)
            )
            kernels_object = work / "kernels.o"
            build_kernels(lowered, options, kernels_object)
            kernel_count = sum(1 for f in lowered.module.functions.values() if isinstance(f, tvm.tirx.PrimFunc))
            progress.detail(f"{kernel_count} kernels, {kernels_object.stat().st_size} bytes of object code")

        with progress.stage("codegen"):
            sources = render(plan, model.name, model.weights, prefix)
            progress.detail(
                f"{len(plan.calls)} kernel calls, arena {plan.arena_size} bytes, weights {len(plan.weights)} bytes"
                + (f", {len(plan.init_calls)} calls at init into {plan.derived_size} bytes" if plan.init_calls else "")
            )

        with progress.stage("link"):
            package_inputs = PackageInputs(
                name=model.name,
                plan=plan,
                sources=sources,
                kernels_object=kernels_object,
                options=options,
                weights_mode=model.weights,
                toolchain=toolchain,
                build_options=_build_options(model),
                tvm_version=tvm.__version__,
                wasm_build_version=__version__,
                kernel_count=kernel_count,
                kernel_work=kernel_work_table(lowered),
            )
            # Unique per build: two builds of one model into one out-dir must not collide.
            destination.parent.mkdir(parents=True, exist_ok=True)
            unverified = make_temp_dir(destination.parent, f".{model.name}.unverified-")
            staging = unverified / model.name
            try:
                manifest = assemble(package_inputs, staging, extra_writers=[write_rust_crate, write_cmake_package])
            except BaseException:
                shutil.rmtree(unverified, ignore_errors=True)
                raise

        try:
            if model.smoke_test:
                with progress.stage("smoke test"):
                    smoke_test(
                        staging / f"{model.name}.wasm",
                        loaded.module,
                        loaded.onnx_model,
                        model.rtol,
                        model.atol,
                        log=progress.detail,
                        torch_program=loaded.torch_program,
                        values=[sig.values for sig, _ in plan.inputs],
                        fused_multiply_adds=model.relaxed_simd,
                    )
            # Only verified artifacts replace the previous ones.
            write_rust_runtime(destination.parent)
            with output_lock(destination.parent):
                replace_directory(staging, destination)
        finally:
            shutil.rmtree(unverified, ignore_errors=True)
    return manifest


def _build_options(model: ModelSettings) -> dict[str, Any]:
    """The options the manifest records."""
    return {
        "simd": model.simd,
        "relaxed_simd": model.relaxed_simd,
        "weights": model.weights,
        "default_schedules": model.default_schedules,
        "winograd_budget": model.winograd_budget,
        "tuning_database": model.tuning.database,
    }
