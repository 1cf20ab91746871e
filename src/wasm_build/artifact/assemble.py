"""Assemble a model's artifacts: archive, header, reactor module, manifest.

Layout of `OUT/NAME/`:

    libNAME.a      relocatable wasm32 objects: kernels, executor (+ weights), runtime shim
    NAME.h         the C API
    NAME.wasm      a WASI reactor built from the same archive
    NAME.weights   only with weights = "file"
    NAME.json      the manifest
    rust/          a std-only Rust crate wrapping the C API (it includes the module
                   OUT/rust-runtime/runtime.rs, shared by the models of OUT: see codegen.rust)

Everything is built in a staging directory next to the destination and moved
into place at the end, so a failed build never leaves half-written artifacts.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..codegen.abi import init_functions
from ..codegen.plan import ExecutorPlan
from ..codegen.c import WEIGHTS_BLOB, GeneratedSources
from ..compiler.target import TargetOptions
from ..errors import WasmBuildError
from .files import sha256_file, staged_directory, work_dir
from .toolchain import Toolchain

RUNTIME_DIR = Path(__file__).parent / "runtime"
RUNTIME_SOURCES = ("wasm_build_runtime.c", "wasm_build_runtime.h")
MANIFEST_VERSION = 1


def api_exports(name: str, weights_mode: str, dynamic: bool = False) -> list[str]:
    """Functions a reactor exports: the C API plus an allocator for the host (`dynamic`:
    the model has symbolic dimensions, and the functions that take and describe them)."""
    init = init_functions(name, weights_mode)
    dims = [f"{name}_run_dims", f"{name}_num_dims", f"{name}_dim_info", f"{name}_input_dim"] if dynamic else []
    return [
        *init,
        f"{name}_run",
        *dims,
        f"{name}_num_inputs",
        f"{name}_num_outputs",
        f"{name}_input_info",
        f"{name}_output_info",
        f"{name}_last_error",
        "malloc",
        "free",
    ]


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of the model built into ``directory`` (``OUT/NAME/``): the ``NAME.json``
    that has a ``libNAME.a`` beside it."""
    manifests = sorted(directory.glob("*.json")) if directory.is_dir() else []
    for path in manifests:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "manifest_version" in data and (directory / f"lib{data['name']}.a").is_file():
            return data
    raise WasmBuildError(
        f"{directory} holds no wasm-build artifact (NAME.json and libNAME.a)",
        fix="pass the model's output directory, e.g. build/wasm/kws after `wasm-build compile ... --out build/wasm`",
    )


def copy_runtime_sources(destination: Path) -> None:
    package = resources.files("wasm_build.artifact") / "runtime"
    for filename in RUNTIME_SOURCES:
        (destination / filename).write_bytes((package / filename).read_bytes())


def _c_flags(work: Path, target_flags: Any) -> list[str]:
    # -ffile-prefix-map keeps the temporary build path out of the objects (reproducible builds);
    # #embed (weights) is C23, accepted by clang 19 and zig as an extension.
    return [
        "-O2",
        "-std=c11",
        "-Wno-c23-extensions",
        "-ffunction-sections",
        "-fdata-sections",
        f"-ffile-prefix-map={work}=.",
        "-I",
        ".",
        *target_flags,
    ]


@functools.lru_cache(maxsize=8)
def _runtime_object(toolchain: Toolchain, target_flags: tuple[str, ...]) -> bytes:
    """The runtime shim, compiled once per process and target: it is the same for every model."""
    with work_dir("runtime") as work:
        copy_runtime_sources(work)
        toolchain.compile_c(Path("wasm_build_runtime.c"), work / "runtime.o", _c_flags(work, target_flags), cwd=work)
        return (work / "runtime.o").read_bytes()














@dataclass
class PackageInputs:
    name: str
    plan: ExecutorPlan
    sources: GeneratedSources
    kernels_object: Path
    options: TargetOptions
    weights_mode: str
    toolchain: Toolchain
    build_options: dict[str, Any]
    tvm_version: str
    wasm_build_version: str
    kernel_count: int
    # Multiply-adds and argument bytes per kernel, by call name (for `wasm-build profile`).
    kernel_work: dict[str, dict[str, int]] = field(default_factory=dict)


def build_archive(inputs: PackageInputs, work: Path, destination: Path) -> Path:
    """Compile executor and shim, and archive them with the kernels into `destination/libNAME.a`."""
    name = inputs.name
    copy_runtime_sources(work)
    (work / f"{name}.h").write_text(inputs.sources.header)
    (work / f"{name}.c").write_text(inputs.sources.source)
    if inputs.weights_mode == "embed":
        (work / WEIGHTS_BLOB).write_bytes(inputs.sources.weights)
    flags = _c_flags(work, inputs.options.c_flags())
    # Object names inside the archive carry the model name: two models' archives can be unpacked together.
    executor_obj = work / f"{name}_executor.o"
    runtime_obj = work / "wasm_build_runtime.o"
    inputs.toolchain.compile_c(Path(f"{name}.c"), executor_obj, flags, cwd=work)
    runtime_obj.write_bytes(_runtime_object(inputs.toolchain, tuple(inputs.options.c_flags())))
    members = [executor_obj, runtime_obj]
    if inputs.kernels_object.stat().st_size > 0:
        kernels_obj = work / f"{name}_kernels.o"
        shutil.copyfile(inputs.kernels_object, kernels_obj)
        members.insert(0, kernels_obj)
    archive = destination / f"lib{name}.a"
    inputs.toolchain.archive(archive, members)
    return archive


def build_reactor(inputs: PackageInputs, archive: Path, destination: Path) -> Path:
    module = destination / f"{inputs.name}.wasm"
    inputs.toolchain.link_reactor([archive], module, api_exports(inputs.name, inputs.weights_mode, inputs.plan.dynamic))
    return module


def manifest(inputs: PackageInputs, artifact_dir: Path) -> dict[str, Any]:
    plan = inputs.plan

    artifacts = {
        path.relative_to(artifact_dir).as_posix(): sha256_file(path)
        for path in sorted(artifact_dir.rglob("*"))
        if path.is_file() and path.name != f"{inputs.name}.json"
    }
    # Symbolic dimensions (only models that have them list them): inputs and outputs then
    # give "shape" with names and expressions, "max_shape" and "max_nbytes" at the bounds.
    dims = {"dims": [{"name": d.name, "min": d.min, "max": d.max} for d in plan.heap.dims]} if plan.dynamic else {}
    return {
        "manifest_version": MANIFEST_VERSION,
        "name": inputs.name,
        **dims,
        "inputs": [sig.describe() for sig, _ in plan.inputs],
        "outputs": [sig.describe() for sig, _ in plan.outputs],
        "weights": {"mode": inputs.weights_mode, "nbytes": len(plan.weights)},
        "arena_nbytes": plan.arena_size,
        "derived_nbytes": plan.derived_size,  # computed from the weights at init (`ExecutorPlan.init_calls`)
        "kernels": inputs.kernel_count,
        "kernel_work": inputs.kernel_work,
        "exports": api_exports(inputs.name, inputs.weights_mode, plan.dynamic),
        "target": {"triple": "wasm32-wasi", "features": inputs.options.module_features},
        "build_options": inputs.build_options,
        "versions": {"wasm-build": inputs.wasm_build_version, "tvm": inputs.tvm_version},
        "toolchain": {"kind": inputs.toolchain.kind, "version": inputs.toolchain.version},
        "artifacts": artifacts,
    }


def assemble(inputs: PackageInputs, destination: Path, extra_writers: list[Any] = ()) -> dict[str, Any]:
    """Build all artifacts of one model into `destination` (replaced atomically)."""
    with staged_directory(destination) as staging, work_dir("c") as work:
        archive = build_archive(inputs, work, staging)
        (staging / f"{inputs.name}.h").write_text(inputs.sources.header)
        if inputs.weights_mode == "file":
            (staging / f"{inputs.name}.weights").write_bytes(inputs.sources.weights)
        build_reactor(inputs, archive, staging)
        for writer in extra_writers:
            writer(inputs, staging)
        data = manifest(inputs, staging)
        (staging / f"{inputs.name}.json").write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    return data
