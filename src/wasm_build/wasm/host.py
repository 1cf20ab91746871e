"""Run a wasm-build reactor module in wasmtime from Python.

    from wasm_build import WasmModel
    model = WasmModel("build/wasm/kws/kws.wasm")
    [scores] = model.run({"x": x})

The host protocol, which any wasmtime host (Rust, Go, ...) can follow:
1. instantiate with WASI, call `_initialize` once if exported;
2. call `NAME_init()` (embedded weights) or copy `NAME.weights` into memory from
   `malloc` and call `NAME_init_from_buffer(ptr, size)`;
3. for each input/output, `NAME_input_info(i, info_ptr)` fills a 20-byte struct
   {name: u32 ptr, dtype: u32 ptr, ndim: i32, shape: u32 ptr to i64[ndim], nbytes: u32};
4. `malloc` buffers, write inputs, pass arrays of pointers and sizes (u32 each)
   to `NAME_run`; a non-zero status means `NAME_last_error()` holds a C string.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import engine

_RUN_EXPORT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)_run$")
_INFO_STRUCT = struct.Struct("<IIiII")  # name, dtype, ndim, shape, nbytes on wasm32


class WasmModelError(RuntimeError):
    """A call into the model returned an error status."""

    def __init__(self, function: str, status: int, message: str) -> None:
        super().__init__(f"{function} returned {status}: {message}")
        self.function = function
        self.status = status
        self.message = message


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    nbytes: int


class WasmModel:
    """A compiled model's reactor module, instantiated in wasmtime."""

    def __init__(self, path: str | Path, *, weights: str | Path | bytes | None = None, name: str | None = None) -> None:
        self.path = Path(path)
        self._instance = engine.instantiate(engine.load(self.path), engine.Wasi(inherit_stdio=True))
        self._store = self._instance.store
        self._exports = self._instance.exports
        self._memory = self._instance.memory
        self.name = name or self._find_name()
        self._init(weights)
        self.inputs = [self._info("input", i) for i in range(self._call("num_inputs"))]
        self.outputs = [self._info("output", i) for i in range(self._call("num_outputs"))]

    # -- low level ---------------------------------------------------------------

    def _find_name(self) -> str:
        names = [m.group(1) for export in self._exports if (m := _RUN_EXPORT.match(export))]
        if len(names) != 1:
            raise ValueError(f"{self.path}: expected one NAME_run export, found {names or 'none'}")
        return names[0]

    def _call(self, function: str, *args: int) -> int:
        return self._exports[f"{self.name}_{function}"](self._store, *args)

    def _checked(self, function: str, *args: int) -> None:
        status = self._call(function, *args)
        if status != 0:
            raise WasmModelError(f"{self.name}_{function}", status, self.last_error())

    def _read(self, address: int, size: int) -> bytes:
        return bytes(self._memory.read(self._store, address, address + size))

    def _write(self, address: int, data: bytes) -> None:
        self._memory.write(self._store, data, address)

    def _c_string(self, address: int) -> str:
        data = bytearray()
        while True:
            chunk = self._read(address + len(data), 64)
            end = chunk.find(b"\0")
            if end >= 0:
                return (data + chunk[:end]).decode("utf-8", "replace")
            data += chunk

    def _malloc(self, size: int) -> int:
        address = self._exports["malloc"](self._store, max(size, 1))
        if address == 0:
            raise MemoryError(f"malloc({size}) failed inside the wasm module")
        return address

    def _free(self, address: int) -> None:
        self._exports["free"](self._store, address)

    def last_error(self) -> str:
        return self._c_string(self._call("last_error"))

    def _init(self, weights: str | Path | bytes | None) -> None:
        if f"{self.name}_init" in self._exports:
            self._checked("init")
            return
        if weights is None:
            weights = self.path.with_name(f"{self.name}.weights")
        data = weights if isinstance(weights, bytes) else Path(weights).read_bytes()
        address = self._malloc(len(data) + 64)
        aligned = (address + 63) // 64 * 64  # the executor uses the buffer in place when aligned
        self._write(aligned, data)
        self._checked("init_from_buffer", aligned, len(data))

    def _info(self, group: str, index: int) -> TensorInfo:
        address = self._malloc(_INFO_STRUCT.size)
        try:
            self._checked(f"{group}_info", index, address)
            name, dtype, ndim, shape, nbytes = _INFO_STRUCT.unpack(self._read(address, _INFO_STRUCT.size))
        finally:
            self._free(address)
        dims = struct.unpack(f"<{ndim}q", self._read(shape, 8 * ndim)) if ndim else ()
        return TensorInfo(self._c_string(name), self._c_string(dtype), tuple(dims), nbytes)

    # -- running -----------------------------------------------------------------

    def run_bytes(self, inputs: Sequence[bytes], output_sizes: Sequence[int] | None = None) -> list[bytes]:
        """Run on raw buffers; sizes are checked by the module itself, not here."""
        output_sizes = list(output_sizes if output_sizes is not None else [o.nbytes for o in self.outputs])
        allocations: list[int] = []

        def place(data: bytes) -> int:
            address = self._malloc(len(data))
            allocations.append(address)
            self._write(address, data)
            return address

        def array(values: Sequence[int]) -> int:
            return place(struct.pack(f"<{len(values)}I", *values)) if values else 0

        try:
            input_ptrs = [place(bytes(data)) for data in inputs]
            output_ptrs = [place(bytes(size)) for size in output_sizes]
            self._checked(
                "run",
                array(input_ptrs) or place(b"\0" * 4),
                array([len(data) for data in inputs]) or place(b"\0" * 4),
                array(output_ptrs) or place(b"\0" * 4),
                array(output_sizes) or place(b"\0" * 4),
            )
            return [self._read(ptr, size) for ptr, size in zip(output_ptrs, output_sizes)]
        finally:
            for address in allocations:
                self._free(address)

    def run(self, inputs: Mapping[str, Any] | Sequence[Any]) -> list[np.ndarray]:
        """Run on numpy arrays (by input name, or in input order); returns the outputs."""
        if isinstance(inputs, Mapping):
            unknown = set(inputs) - {i.name for i in self.inputs}
            missing = [i.name for i in self.inputs if i.name not in inputs]
            if unknown or missing:
                raise ValueError(
                    f"{self.name}: inputs are {[i.name for i in self.inputs]}; "
                    f"got unknown {sorted(unknown)}, missing {missing}"
                )
            ordered = [inputs[i.name] for i in self.inputs]
        else:
            ordered = list(inputs)
            if len(ordered) != len(self.inputs):
                raise ValueError(f"{self.name}: expected {len(self.inputs)} inputs, got {len(ordered)}")
        buffers = []
        for info, value in zip(self.inputs, ordered):
            array = np.asarray(value)
            if tuple(array.shape) != info.shape:
                raise ValueError(f"{self.name}: input '{info.name}' must have shape {info.shape}, got {array.shape}")
            if array.dtype != np.dtype(info.dtype):
                if not np.can_cast(array.dtype, info.dtype, casting="same_kind"):
                    raise ValueError(f"{self.name}: input '{info.name}' must be {info.dtype}, got {array.dtype}")
                array = array.astype(info.dtype)
            buffers.append(np.ascontiguousarray(array).tobytes())
        raw = self.run_bytes(buffers)
        return [
            np.frombuffer(data, dtype=info.dtype).reshape(info.shape).copy() for data, info in zip(raw, self.outputs)
        ]

