"""Build one model end to end: frontend → compile → codegen → link → smoke test.

This module knows nothing of setuptools, CMake or argparse: the CLI and the
build-system adapters all call `build_model`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from . import __version__
from .errors import WasmBuildError
from .config.settings import ModelSettings

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
    """One line per stage with its time; details only when verbose."""

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


# -- cache ----------------------------------------------------------------------------------




def _source_digest(model: ModelSettings, project_dir: Path) -> str:
    path = Path(model.source) if Path(model.source).is_absolute() else project_dir / model.source
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    return ""  # callables: the cache key uses the printed IRModule instead (see build_model)


def cache_key(model: ModelSettings, source_digest: str, toolchain_identity: str, project_dir: Path) -> str:
    import tvm

    options = dataclasses.asdict(model)
    database = model.tuning.database
    db_path = Path(database) if database and Path(database).is_absolute() else project_dir / (database or "")
    payload = {
        "source": source_digest,
        "options": options,
        "tvm": tvm.__version__,
        "wasm-build": __version__,
        # The code and templates themselves: a changed generator never reuses old artifacts.
        "wasm-build-files": _package_fingerprint(),
        "toolchain": toolchain_identity,
        "tuning-database": _digest_path(db_path) if database else "",
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _cache_entry_intact(entry: Path, name: str) -> bool:
    """A cache entry is used only if every artifact still has the hash its manifest records."""
    from .artifact.files import sha256_file

    try:
        manifest = json.loads((entry / f"{name}.json").read_text())
        return all(sha256_file(entry / relative) == digest for relative, digest in manifest["artifacts"].items())
    except (OSError, ValueError, KeyError):
        return False


def _digest_path(path: Path) -> str:
    """sha256 of a file, or of every file below a directory (names included)."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else []
    for file in files:
        digest.update(file.relative_to(path).as_posix().encode() if file != path else b"")
        digest.update(file.read_bytes())
    return digest.hexdigest()


@functools.lru_cache(maxsize=1)
def _package_fingerprint() -> str:
    root = Path(__file__).parent
    digest = hashlib.sha256()
    for file in sorted(root.rglob("*")):
        if file.is_file() and file.suffix in {".py", ".j2", ".c", ".h", ".cmake", ".json"} and "__pycache__" not in file.parts:
            digest.update(file.relative_to(root).as_posix().encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def _publish_to_cache(source: Path, entry: Path, name: str) -> None:
    """Add a finished build to the cache. Intact entries are never replaced, so a concurrent
    reader never sees one disappear or change; when two builds race, the first rename wins
    and the other's identical copy is dropped. A damaged entry is moved aside first."""
    from .artifact.files import make_temp_dir

    entry.parent.mkdir(parents=True, exist_ok=True)
    if entry.exists():
        if _cache_entry_intact(entry, name):
            return
        damaged = Path(tempfile.mkdtemp(prefix=f".{entry.name}.damaged-", dir=entry.parent))
        try:
            os.replace(entry, damaged / entry.name)
        except OSError:
            pass  # another build moved it already
        shutil.rmtree(damaged, ignore_errors=True)
    staging = make_temp_dir(entry.parent, f".{entry.name}.")
    try:
        shutil.copytree(source, staging, dirs_exist_ok=True)
        try:
            os.rename(staging, entry)  # fails if `entry` appeared meanwhile (non-empty directory)
        except OSError:
            if not entry.exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _copy_tree_atomic(source: Path, destination: Path) -> None:
    from .artifact.files import staged_directory

    with staged_directory(destination) as staging:
        shutil.copytree(source, staging, dirs_exist_ok=True)


# -- the build ------------------------------------------------------------------------------


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
    from .artifact.toolchain import find_toolchain

    progress = Progress(model.name, log, verbose)
    project_dir = project_dir.resolve()
    destination = out_dir / model.name

    with progress.stage("toolchain"):
        toolchain = find_toolchain()
        progress.detail(toolchain.describe())

    digest = _source_digest(model, project_dir)
    loaded = None
    if not digest and ":" in model.source:
        # A Python source is known only once loaded: its printed IRModule keys the cache.
        from .frontends import load_model

        with progress.stage("frontend"):
            loaded = load_model(model.source, model.inputs, project_dir)
        digest = loaded.digest
    key = cache_key(model, digest, toolchain.identity, project_dir) if digest else None
    cached_dir = (cache_dir / key) if (cache_dir and key) else None
    if cached_dir and _cache_entry_intact(cached_dir, model.name):
        # The shared files come from this wasm-build, which the cache key includes.
        _write_shared(out_dir)
        _copy_tree_atomic(cached_dir, destination)
        manifest = json.loads((destination / f"{model.name}.json").read_text())
        log(f"wasm-build: {model.name}: up to date (cache {key[:12]}), reused {destination}")
        return BuildResult(model.name, destination, manifest, True, {})

    manifest = _build_uncached(model, destination, project_dir, toolchain, progress, loaded)

    if cached_dir:
        _publish_to_cache(destination, cached_dir, model.name)
    return BuildResult(model.name, destination, manifest, False, progress.timings)


def _build_uncached(
    model: ModelSettings, destination: Path, project_dir: Path, toolchain: Any, progress: Progress, loaded: Any = None
) -> dict[str, Any]:
    import tvm

    from .codegen.plan import plan_executor
    from .codegen.c import render
    from .compiler.kernels import build_kernels
    from .compiler.pipeline import lower
    from .compiler.target import TargetOptions
    from .tuning import apply_database_pass
    from .frontends import load_model
    from .artifact.assemble import PackageInputs, assemble
    from .artifact.files import make_temp_dir, replace_directory
    from .wasm.smoke import smoke_test

    if loaded is None:
        with progress.stage("frontend"):
            loaded = load_model(model.source, model.inputs, project_dir)
    progress.detail(f"{loaded.kind} model, inputs {loaded.input_names}")

    options = TargetOptions.for_model(model)
    prefix = f"{model.name}_"
    database = model.tuning.database
    if database and not Path(database).is_absolute():
        database = str(project_dir / database)

    if model.tuning.trials > 0:
        with progress.stage("tune"):
            from .tuning import tune_model

            tune_model(loaded.module, options, database, model.tuning, log=progress.detail)

    with tempfile.TemporaryDirectory(prefix="wasm-build-") as tmp:
        work = Path(tmp)
        with progress.stage("compile"):
            tuned = apply_database_pass(database, options.tvm_target()) if database and Path(database).is_file() else None
            lowered = lower(loaded.module, prefix, options, default_schedules=model.default_schedules, tuned=tuned)
            kernels_object = work / "kernels.o"
            build_kernels(lowered, options, kernels_object)
            kernel_count = sum(1 for f in lowered.module.functions.values() if isinstance(f, tvm.tirx.PrimFunc))
            progress.detail(f"{kernel_count} kernels, {kernels_object.stat().st_size} bytes of object code")

        with progress.stage("codegen"):
            plan = plan_executor(lowered.module, prefix, loaded.input_names, loaded.output_names)
            sources = render(plan, model.name, model.weights, prefix)
            progress.detail(
                f"{len(plan.calls)} kernel calls, arena {plan.arena_size} bytes, weights {len(plan.weights)} bytes"
            )

        with progress.stage("link"):
            build_options = {
                "simd": model.simd,
                "relaxed_simd": model.relaxed_simd,
                "weights": model.weights,
                "default_schedules": model.default_schedules,
                "winograd_budget": model.winograd_budget,
                "tuning_database": model.tuning.database,
            }
            package_inputs = PackageInputs(
                name=model.name,
                plan=plan,
                sources=sources,
                kernels_object=kernels_object,
                options=options,
                weights_mode=model.weights,
                toolchain=toolchain,
                build_options=build_options,
                tvm_version=tvm.__version__,
                wasm_build_version=__version__,
                kernel_count=kernel_count,
            )
            # Unique per build: two builds of one model into one out-dir must not collide.
            destination.parent.mkdir(parents=True, exist_ok=True)
            unverified = make_temp_dir(destination.parent, f".{model.name}.unverified-")
            staging = unverified / model.name
            try:
                manifest = assemble(package_inputs, staging, extra_writers=_extra_writers())
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
                    )
            # Only verified artifacts replace the previous ones.
            _write_shared(destination.parent)
            replace_directory(staging, destination)
        finally:
            shutil.rmtree(unverified, ignore_errors=True)
    return manifest


def _write_shared(out_dir: Path) -> None:
    """Files the models of one out-dir share, outside `OUT/NAME/` (the Rust runtime that
    every `OUT/NAME/rust/` crate includes). Written before a model directory appears
    there, safely when several builds write into `out_dir` at once."""
    from .codegen.rust import write_rust_runtime

    write_rust_runtime(out_dir)


def _extra_writers() -> list[Any]:
    """Glue generated beside the C artifacts: the Rust crate and the CMake package."""
    from .codegen.cmake import write_cmake_package
    from .codegen.rust import write_rust_crate

    return [write_rust_crate, write_cmake_package]
