"""What generated code, the runtime shim and hosts agree on about memory."""

from __future__ import annotations

# Arena, weights and tensor offsets: cache-line and v128 friendly; hosts align weights they pass too.
ALIGNMENT = 64

# Parameters of one function that WebAssembly engines load (wasmtime's and V8's limit): a kernel
# takes one per tensor it reads or writes.
MAX_KERNEL_PARAMS = 1000


def init_functions(name: str, weights_mode: str) -> list[str]:
    """The C functions that initialize a model: `NAME_init` with embedded weights, else the
    two that take the weights from a file or a buffer."""
    if weights_mode == "embed":
        return [f"{name}_init"]
    return [f"{name}_init_from_file", f"{name}_init_from_buffer"]
