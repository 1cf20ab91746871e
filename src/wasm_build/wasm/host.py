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

A model with symbolic dimensions also exports `NAME_run_dims`, `NAME_num_dims`,
`NAME_dim_info` (a 24-byte struct {name: u32 ptr, pad, min: i64, max: i64}) and
`NAME_input_dim`; its tensor infos give -1 for a symbolic dimension and the byte size
at the upper bounds. `NAME_run_dims(inputs, input_shapes, input_sizes, outputs,
output_shapes, output_capacities)` takes every input's dimensions as one i64 array and
fills another with every output's.
"""

from __future__ import annotations

import ctypes
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import engine

_RUN_EXPORT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)_run$")
_INFO_STRUCT = struct.Struct("<IIiII")  # name, dtype, ndim, shape, nbytes on wasm32
_DIM_STRUCT = struct.Struct("<I4xqq")  # name, min, max on wasm32


class WasmModelError(RuntimeError):
    """A call into the model returned an error status."""

    def __init__(self, function: str, status: int, message: str) -> None:
        super().__init__(f"{function} returned {status}: {message}")
        self.function = function
        self.status = status
        self.message = message


@dataclass(frozen=True)
class TensorInfo:
    """An input or output. With symbolic dimensions, `shape` names them in inputs ("seq") and
    has None in outputs (known after a run); `nbytes` is then the size at the upper bounds."""

    name: str
    dtype: str
    shape: tuple[int | str | None, ...]
    nbytes: int


@dataclass(frozen=True)
class DimInfo:
    """A symbolic dimension and its bounds."""

    name: str
    min: int
    max: int


class WasmModel:
    """A compiled model's reactor module, instantiated in wasmtime."""

    def __init__(self, path: str | Path, *, weights: str | Path | bytes | None = None, name: str | None = None) -> None:
        self.path = Path(path)
        self._instance = engine.instantiate(engine.load(self.path), engine.Wasi(inherit_stdio=True))
        self._store = self._instance.store
        self._exports = self._instance.exports
        self._memory = self._instance.memory
        self.name = name or self._find_name()
        self._run_buffers: _RunBuffers | None = None
        self._view_key: tuple[int, int] | None = None
        self._init(weights)
        self.dynamic = f"{self.name}_run_dims" in self._exports
        self.dims = [self._dim_info(i) for i in range(self._call("num_dims"))] if self.dynamic else []
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
        dims: list[int | str | None] = list(struct.unpack(f"<{ndim}q", self._read(shape, 8 * ndim)) if ndim else ())
        for axis, dim in enumerate(dims):
            if dim == -1:  # symbolic: named in inputs, known after a run in outputs
                dims[axis] = self.dims[self._input_dim(index, axis)].name if group == "input" else None
        return TensorInfo(self._c_string(name), self._c_string(dtype), tuple(dims), nbytes)

    def _dim_info(self, index: int) -> DimInfo:
        address = self._malloc(_DIM_STRUCT.size)
        try:
            self._checked("dim_info", index, address)
            name, low, high = _DIM_STRUCT.unpack(self._read(address, _DIM_STRUCT.size))
        finally:
            self._free(address)
        return DimInfo(self._c_string(name), low, high)

    def _input_dim(self, index: int, axis: int) -> int:
        address = self._malloc(4)
        try:
            self._checked("input_dim", index, axis, address)
            return struct.unpack("<i", self._read(address, 4))[0]
        finally:
            self._free(address)

    # -- running -----------------------------------------------------------------

    def _memory_view(self) -> np.ndarray:
        """The module's linear memory as bytes; made anew only when memory moved or grew."""
        size = self._memory.data_len(self._store)
        pointer = self._memory.data_ptr(self._store)
        key = (ctypes.addressof(pointer.contents), size)
        if self._view_key != key:
            self._view = np.ctypeslib.as_array(pointer, shape=(size,))
            self._view_key = key
        return self._view

    def _buffers(self) -> _RunBuffers:
        """Input and output buffers (for the largest shapes) and the pointer/size arrays of
        `NAME_run` (`NAME_run_dims`, with shape arrays), allocated once, with the call on
        them bound once."""
        if self._run_buffers is None:
            shapes = (sum(len(t.shape) for t in self.inputs), sum(len(t.shape) for t in self.outputs)) if self.dynamic else None
            self._run_buffers = _RunBuffers.allocate(
                self, [t.nbytes for t in self.inputs], [t.nbytes for t in self.outputs], shapes
            )
            function = "run_dims" if self.dynamic else "run"
            self._run_call = engine.BoundCall(self._instance, f"{self.name}_{function}", *self._run_buffers.arguments)
        return self._run_buffers

    def run_bytes(self, inputs: Sequence[bytes], output_sizes: Sequence[int] | None = None) -> list[bytes]:
        """Run on raw buffers; their sizes are checked by the module itself, not here."""
        output_sizes = list(output_sizes if output_sizes is not None else [o.nbytes for o in self.outputs])
        buffers = _RunBuffers.allocate(self, [len(b) for b in inputs], output_sizes)
        try:
            memory = self._memory_view()
            for address, data in zip(buffers.inputs, inputs):
                memory[address : address + len(data)] = np.frombuffer(bytes(data), np.uint8)
            self._checked("run", *buffers.arrays)
            memory = self._memory_view()
            return [memory[a : a + n].tobytes() for a, n in zip(buffers.outputs, output_sizes)]
        finally:
            buffers.free(self)

    def run(self, inputs: Mapping[str, Any] | Sequence[Any]) -> list[np.ndarray]:
        """Run on numpy arrays (by input name, or in input order); returns the outputs.

        Arrays of another dtype are converted only when no value changes (float64 values that
        fit float32, ints in range); anything else is refused, never wrapped or rounded to inf."""
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
        arrays = [_as_input(self.name, info, value) for info, value in zip(self.inputs, ordered)]
        buffers = self._buffers()
        memory = self._memory_view()
        for address, info, array in zip(buffers.inputs, self.inputs, arrays):
            # Larger than the bounds allow: not copied; the module refuses its shape (ERROR_SHAPE).
            if array.nbytes <= info.nbytes:
                memory[address : address + array.nbytes] = array.reshape(-1).view(np.uint8)
        if self.dynamic:
            return self._run_dims(buffers, arrays)
        status = self._run_call()
        if status != 0:
            raise WasmModelError(f"{self.name}_run", status, self.last_error())
        memory = self._memory_view()
        return [
            memory[address : address + info.nbytes].view(info.dtype).reshape(info.shape).copy()
            for address, info in zip(buffers.outputs, self.outputs)
        ]

    def _run_dims(self, buffers: _RunBuffers, arrays: list[np.ndarray]) -> list[np.ndarray]:
        """`NAME_run_dims` on inputs already in the buffers: their shapes and sizes go in the
        arrays the bound call points at, the outputs' shapes come back the same way."""
        assert buffers.shapes is not None
        input_shapes, output_shapes = buffers.shapes
        memory = self._memory_view()
        shapes = np.array([d for array in arrays for d in array.shape], dtype="<i8")
        memory[input_shapes : input_shapes + shapes.nbytes] = shapes.view(np.uint8)
        sizes = np.array([array.nbytes for array in arrays], dtype="<u4")
        memory[buffers.arrays[1] : buffers.arrays[1] + sizes.nbytes] = sizes.view(np.uint8)
        status = self._run_call()
        if status != 0:
            raise WasmModelError(f"{self.name}_run_dims", status, self.last_error())
        memory = self._memory_view()
        count = sum(len(info.shape) for info in self.outputs)
        flat = memory[output_shapes : output_shapes + 8 * count].view("<i8").tolist()
        results = []
        for address, info in zip(buffers.outputs, self.outputs):
            shape, flat = tuple(flat[: len(info.shape)]), flat[len(info.shape) :]
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(info.dtype).itemsize
            results.append(memory[address : address + nbytes].view(info.dtype).reshape(shape).copy())
        return results


@dataclass
class _RunBuffers:
    """Buffers in the module's memory for one `NAME_run` (or `NAME_run_dims`) call."""

    inputs: list[int]
    outputs: list[int]
    arrays: tuple[int, int, int, int]  # input pointers, input sizes, output pointers, output sizes
    shapes: tuple[int, int] | None = None  # input shapes, output shapes (i64 arrays), for NAME_run_dims

    @classmethod
    def allocate(
        cls, model: WasmModel, input_sizes: list[int], output_sizes: list[int], shape_lengths: tuple[int, int] | None = None
    ) -> _RunBuffers:
        inputs = [model._malloc(size) for size in input_sizes]
        outputs = [model._malloc(size) for size in output_sizes]
        arrays = []
        for values in (inputs, input_sizes, outputs, output_sizes):
            address = model._malloc(4 * max(1, len(values)))
            model._write(address, struct.pack(f"<{len(values)}I", *values))
            arrays.append(address)
        shapes = None
        if shape_lengths is not None:
            shapes = (model._malloc(8 * max(1, shape_lengths[0])), model._malloc(8 * max(1, shape_lengths[1])))
        return cls(inputs, outputs, tuple(arrays), shapes)  # type: ignore[arg-type]

    @property
    def arguments(self) -> tuple[int, ...]:
        """The arguments of `NAME_run`, or of `NAME_run_dims` when there are shape arrays."""
        if self.shapes is None:
            return self.arrays
        inputs, sizes, outputs, capacities = self.arrays
        return (inputs, self.shapes[0], sizes, outputs, self.shapes[1], capacities)

    def free(self, model: WasmModel) -> None:
        for address in (*self.inputs, *self.outputs, *self.arrays, *(self.shapes or ())):
            model._free(address)


def _as_input(model: str, info: TensorInfo, value: Any) -> np.ndarray:
    """`value` as a C-contiguous array of the input's shape and dtype, converted only when
    no value changes. Symbolic dimensions take any size here: the module checks their
    bounds, and that inputs agree on them."""
    array = np.asarray(value)
    fits = array.ndim == len(info.shape) and all(
        not isinstance(want, int) or want == got for want, got in zip(info.shape, array.shape)
    )
    if not fits:
        raise ValueError(f"{model}: input '{info.name}' must have shape {info.shape}, got {array.shape}")
    dtype = np.dtype(info.dtype)
    if array.dtype != dtype:
        problem = _unsafe_cast(array, dtype)
        if problem:
            raise ValueError(f"{model}: input '{info.name}' is {info.dtype}; {array.dtype} values {problem}")
        array = array.astype(dtype)
    return np.ascontiguousarray(array)


def _unsafe_cast(array: np.ndarray, dtype: np.dtype) -> str | None:
    """Why casting `array` to `dtype` would change values, or None when it would not."""
    if np.can_cast(array.dtype, dtype, casting="safe"):
        return None
    if array.dtype.kind == "b" or dtype.kind == "b":
        return f"do not convert to {dtype} without loss"
    if dtype.kind == "f" and array.dtype.kind == "f":
        with np.errstate(over="ignore", invalid="ignore"):
            overflow = np.isfinite(array) & ~np.isfinite(array.astype(dtype))
        return f"overflow {dtype} (e.g. {array[overflow].flat[0]!r})" if overflow.any() else None
    if dtype.kind in "iu" and array.dtype.kind in "iu":
        limits = np.iinfo(dtype)
        outside = (array < limits.min) | (array > limits.max) if array.size else np.zeros(0, bool)
        return f"fall outside [{limits.min}, {limits.max}] (e.g. {array[outside].flat[0]!r})" if outside.any() else None
    return f"would be converted across kinds ({array.dtype.kind} to {dtype.kind}): convert them yourself"
