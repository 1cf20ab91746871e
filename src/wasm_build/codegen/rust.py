"""Write `OUT/NAME/rust/`: a std-only Rust crate that links `libNAME.a` and wraps its C API.

The crate is rendered from `templates/rust/*.j2`:

    rust/Cargo.toml    package NAME, `links = "NAME"`
    rust/build.rs      finds libNAME.a (NAME_LIB_DIR, WASM_BUILD_LIB_DIR, or ../)
    rust/src/lib.rs    `ffi` declarations and the safe `Model` wrapper

Consumers depend on it by path (`NAME = { path = "OUT/NAME/rust" }`) and build
with `cargo build --target wasm32-wasi`. See docs/consumers.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .. import __version__

from . import templating
from .escape import rust_string
from .plan import ALIGNMENT
from ..artifact.assemble import PackageInputs
from ..artifact.files import write_text_atomic

CRATE_DIR = "rust"

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
        "variant": variant or f"Other({rust_string(dtype)})",
        "primitive": primitive is not None,
        "zero": f"0{primitive}" if primitive else "0u8",
    }


def crate_context(inputs: PackageInputs) -> dict[str, Any]:
    name = inputs.name
    plan = inputs.plan
    embed = inputs.weights_mode == "embed"
    return {
        "name": name,
        "NAME": name.upper(),
        "crate": crate_name(name),
        "version": __version__,
        "archive": f"lib{name}.a",
        "weights_mode": inputs.weights_mode,
        "weights_nbytes": len(plan.weights),
        "weights_file": f"{name}.weights",
        "alignment": ALIGNMENT,
        "init_doc": f"`{name}_init`" if embed else f"`{name}_init_from_file` or `{name}_init_from_buffer`",
        "inputs": [_describe(sig) for sig, _ in plan.inputs],
        "outputs": [_describe(sig) for sig, _ in plan.outputs],
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
    """Package writer: render the crate into `staging_dir/rust/`."""
    for relative, text in render_crate(inputs).items():
        write_text_atomic(Path(staging_dir) / CRATE_DIR / relative, text)
