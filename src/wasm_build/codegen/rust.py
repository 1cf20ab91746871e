"""Write `OUT/NAME/rust/`: a std-only Rust crate that links `libNAME.a` and wraps its C API.

The crates of one output directory share their model-independent code, written
once beside them (by `write_rust_runtime`, before a model's directory appears):

    OUT/rust-runtime/runtime.rs   `Model`, `Input`, `Output`, `Error`, `TensorSpec`, `DType`,
                                  the checks and the weights buffer (templates/rust/runtime.rs.j2)
    OUT/NAME/rust/Cargo.toml      package NAME, `links = "NAME"`
    OUT/NAME/rust/build.rs        finds libNAME.a (NAME_LIB_DIR, WASM_BUILD_LIB_DIR, or ../)
    OUT/NAME/rust/src/lib.rs      `ffi` declarations, the constants, the constructors, and
                                  `#[path = "../../../rust-runtime/runtime.rs"] mod runtime;`

The runtime is a module of each crate, not a crate of its own: every model crate
keeps its own types, and cargo never sees one package from two directories (models
of different output directories can be used together). Its contents depend only
on the wasm-build version; each crate checks at compile time that the runtime it
includes has the fingerprint it was generated with.

Consumers depend on the crates by path (`NAME = { path = "OUT/NAME/rust" }`) and
build with `cargo build --target wasm32-wasi`. See docs/consumers.md.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__

from . import templating
from .abi import ALIGNMENT, init_functions
from .escape import rust_string
from ..artifact.files import write_text_atomic

if TYPE_CHECKING:
    from ..artifact.assemble import PackageInputs

CRATE_DIR = "rust"
# Shared by the crates of one output directory: OUT/RUNTIME_DIR/RUNTIME_FILE. Not a
# C identifier, so no model directory can have the name. cmake/WasmBuild.cmake and the
# docs spell it out too.
RUNTIME_DIR = "rust-runtime"
RUNTIME_FILE = "runtime.rs"
_RUNTIME_TEMPLATE = "rust/runtime.rs.j2"

# TVM dtype name -> (DType variant, Rust primitive or None)
_DTYPES: dict[str, tuple[str, str | None]] = {
    "float16": ("F16", None),
    "bfloat16": ("BF16", None),
    "float32": ("F32", "f32"),
    "float64": ("F64", "f64"),
    "int8": ("I8", "i8"),
    "int16": ("I16", "i16"),
    "int32": ("I32", "i32"),
    "int64": ("I64", "i64"),
    "uint8": ("U8", "u8"),
    "uint16": ("U16", "u16"),
    "uint32": ("U32", "u32"),
    "uint64": ("U64", "u64"),
    "bool": ("Bool", None),
}

# Rust keywords (2021 edition, strict and reserved) that are valid C identifiers.
_RUST_KEYWORDS = frozenset(
    "as async await become box crate dyn enum extern false fn impl in let loop macro match mod move mut "
    "override priv pub ref self super trait true type typeof unsafe unsized use virtual where yield abstract final try".split()
)


def crate_name(model_name: str) -> str:
    """The crate (and library) name: the model name unless that is a Rust keyword."""
    return f"{model_name}_model" if model_name in _RUST_KEYWORDS else model_name


def _describe(sig) -> dict[str, Any]:
    dtype = sig.dtype.name
    variant, primitive = _DTYPES.get(dtype, (None, None))
    return {
        **sig.describe(),
        "shape": list(sig.dims or sig.shape),  # for docs: symbolic dimensions by name
        "spec_shape": [d if isinstance(d, int) else -1 for d in (sig.dims or sig.shape)],  # TensorSpec's: -1 symbolic
        "nbytes": sig.nbytes,  # at the upper bounds
        "dynamic": sig.dims is not None,
        "variant": variant or f"Other({rust_string(dtype)})",
        "primitive": primitive is not None,
        "zero": f"0{primitive}" if primitive else "0u8",
    }


@lru_cache(maxsize=1)
def _runtime() -> tuple[str, str]:
    """(fingerprint, text) of the shared runtime for this wasm-build."""
    env = templating.environment()
    source, _, _ = env.loader.get_source(env, _RUNTIME_TEMPLATE)
    context = {"version": __version__, "alignment": ALIGNMENT}
    fingerprint = hashlib.sha256(repr((source, sorted(context.items()))).encode()).hexdigest()[:16]
    return fingerprint, templating.render(_RUNTIME_TEMPLATE, {**context, "fingerprint": fingerprint})


def runtime_text() -> str:
    """The text of `OUT/rust-runtime/runtime.rs`: the same for every model and build of this wasm-build."""
    return _runtime()[1]


def runtime_fingerprint() -> str:
    """16 hex digits identifying `runtime_text()`; each crate checks it at compile time."""
    return _runtime()[0]


def write_rust_runtime(out_dir: Path) -> Path:
    """Write `out_dir/rust-runtime/runtime.rs` unless it already has this content.

    Safe when builds of several models into `out_dir` run at once: the file is
    replaced whole (temporary file, then rename), and every writer of one
    wasm-build writes the same bytes. An unchanged file is not touched, so cargo
    does not rebuild the crates that include it.
    """
    path = Path(out_dir) / RUNTIME_DIR / RUNTIME_FILE
    data = runtime_text().encode("utf-8")
    try:
        if path.read_bytes() == data:
            return path
    except OSError:
        pass
    write_text_atomic(path, runtime_text())
    return path


def shared_files() -> list[str]:
    """Files outside `OUT/NAME/` that the model's directory needs (relative to OUT):
    whatever copies a model directory copies these too."""
    return [f"{RUNTIME_DIR}/{RUNTIME_FILE}"]


def crate_context(inputs: PackageInputs) -> dict[str, Any]:
    name = inputs.name
    plan = inputs.plan
    return {
        "name": name,
        "NAME": name.upper(),
        "crate": crate_name(name),
        "version": __version__,
        "archive": f"lib{name}.a",
        "weights_mode": inputs.weights_mode,
        "weights_nbytes": len(plan.weights),
        "weights_file": f"{name}.weights",
        # From OUT/NAME/rust/src/ (the directory of lib.rs) to OUT/rust-runtime/runtime.rs.
        "runtime_path": f"../../../{RUNTIME_DIR}/{RUNTIME_FILE}",
        "runtime_file": f"{RUNTIME_DIR}/{RUNTIME_FILE}",
        "runtime_fingerprint": runtime_fingerprint(),
        "init_doc": " or ".join(f"`{function}`" for function in init_functions(name, inputs.weights_mode)),
        "inputs": [_describe(sig) for sig, _ in plan.inputs],
        "outputs": [_describe(sig) for sig, _ in plan.outputs],
        "dims": [{"name": d.name, "min": d.min, "max": d.max} for d in plan.heap.dims] if plan.dynamic else [],
    }


def render_crate(inputs: PackageInputs) -> dict[str, str]:
    """The crate's files, relative path -> text."""
    context = crate_context(inputs)
    return {
        "Cargo.toml": templating.render("rust/Cargo.toml.j2", context),
        "build.rs": templating.render("rust/build.rs.j2", context),
        "src/lib.rs": templating.render("rust/lib.rs.j2", context),
    }


def write_rust_crate(inputs: PackageInputs, staging_dir: Path) -> None:
    """Package writer: render the crate into `staging_dir/rust/` (the runtime it includes
    is written by `write_rust_runtime` when the model's directory is put in place)."""
    for relative, text in render_crate(inputs).items():
        write_text_atomic(Path(staging_dir) / CRATE_DIR / relative, text)
