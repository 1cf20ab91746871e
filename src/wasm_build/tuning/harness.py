"""Building candidate kernels into wasm reactors and timing them in wasmtime.

WASI has no sockets, so TVM's RPC runner cannot reach a wasm program. Instead every
candidate is measured in this process:

- `WasmBuilder` builds a candidate PrimFunc with `tvm.tirx.build` into a wasm32 object and
  links it with the runtime shim and the kernel timer (`wasm.drivers.KERNEL_TIMER`) into a
  WASI reactor (one `.wasm` per candidate);
- `WasmRunner` instantiates that module in wasmtime, fills the arguments with random data
  (DLTensors laid out in linear memory) and times repeated calls inside the module, with
  the WASI monotonic clock, so host call overhead does not count for tiny kernels.
"""

from __future__ import annotations

import math
import os
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import tvm
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.runner import PyRunner, RunnerInput
from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture

from ..artifact.toolchain import find_toolchain
from ..compiler.target import TargetOptions
from ..compiler.tir.pipeline import tir_pipeline
from ..wasm import engine
from ..wasm.drivers import compile_kernel_timer, link_with_kernel

_PREFIX = "wbtune_"
_KERNEL = "wbtune_kernel"

# DLTensor and TVMFFIAny on wasm32 (see wasm_build_runtime.h).
_DLTENSOR = struct.Struct("<IiiiBBHII4xQ")  # data, device, ndim, dtype, shape, strides, byte_offset
_ANY = struct.Struct("<iIq")  # type index, padding, value
_DLTENSOR_PTR = 7
_CPU = 1
_ALIGN = 64


class WasmHarness:
    """Compiles the shim and the driver once; builds candidates into reactors; times them.

    `min_repeat_secs` and `repeats` trade measuring time against noise: each
    measurement is `repeats` runs of at least `min_repeat_secs` each, after
    one warm-up call.
    """

    def __init__(self, options: TargetOptions, work_dir: Path, *, min_repeat_secs: float = 0.02, repeats: int = 3) -> None:
        self.options = options
        self.target = options.tvm_target()
        self.work_dir = work_dir
        self.min_repeat_secs = min_repeat_secs
        self.repeats = repeats
        self.toolchain = find_toolchain()
        self.support = compile_kernel_timer(self.toolchain, work_dir, _KERNEL, options.c_flags())
        self._count = 0

    def build(self, mod: tvm.IRModule) -> Path:
        """Link the single PrimFunc of `mod` into a reactor; returns its path."""
        (gvar, func), *rest = mod.functions_items()
        if rest:
            raise ValueError(f"expected one PrimFunc per candidate, got {len(rest) + 1}")
        kernel = tvm.IRModule({gvar: func.with_attr("global_symbol", _KERNEL)}).with_attr("system_lib_prefix", _PREFIX)
        self._count += 1
        stem = self.work_dir / f"candidate{self._count}"
        tvm.tirx.build(kernel, target=self.target, pipeline=tir_pipeline()).write_to_file(f"{stem}.o")
        try:
            link_with_kernel(self.toolchain, Path(f"{stem}.o"), self.support, Path(f"{stem}.wasm"))
        finally:
            os.unlink(f"{stem}.o")
        return Path(f"{stem}.wasm")

    def time(self, wasm: Path, args_info: list[Any]) -> list[float]:
        """Seconds per call of the candidate in `wasm`, one value per repeat."""
        instance = engine.instantiate(engine.load(wasm))
        args, count = _write_arguments(instance, args_info)

        def run(number: int) -> float:
            secs = instance.call("wbt_time", args, count, number)
            if secs < 0:
                raise RuntimeError(f"the kernel failed: {engine.c_string(instance, instance.call('wbt_error')) or 'no message'}")
            return secs

        first = run(1)
        number = max(1, min(100_000, math.ceil(self.min_repeat_secs / max(first, 1e-9))))
        return [run(number) / number for _ in range(self.repeats)]


def _write_arguments(instance: engine.Instance, args_info: list[Any]) -> tuple[int, int]:
    """DLTensors with random contents in the module's memory; returns (TVMFFIAny array, count)."""
    store, memory = instance.store, instance.memory
    rng = np.random.default_rng(0)

    def alloc(size: int) -> int:
        address = instance.call("malloc", size + _ALIGN)
        if address == 0:
            raise MemoryError(f"malloc({size}) failed in the candidate module")
        return (address + _ALIGN - 1) // _ALIGN * _ALIGN

    anys = b""
    for info in args_info:
        if not isinstance(info, ms.arg_info.TensorInfo):
            raise TypeError(f"cannot measure a kernel with a non-tensor argument ({info})")
        dtype = tvm.DataType(str(info.dtype))
        shape = [int(d) for d in info.shape]
        count = math.prod(shape)
        itemsize = max(1, (dtype.bits * dtype.lanes + 7) // 8)
        if dtype.is_float:
            # Positive, unit-scale values: no NaN from log/sqrt, no denormals.
            values = rng.uniform(0.5, 1.5, size=count).astype(f"float{dtype.bits}" if dtype.bits in (16, 32, 64) else "float32")
            data = values.tobytes()[: count * itemsize]
        else:
            data = bytes(count * itemsize)  # zeros are valid indices for gather/take
        data_ptr = alloc(len(data))
        memory.write(store, data, data_ptr)
        shape_ptr = alloc(8 * len(shape))
        memory.write(store, struct.pack(f"<{len(shape)}q", *shape), shape_ptr)
        tensor_ptr = alloc(_DLTENSOR.size)
        memory.write(
            store,
            _DLTENSOR.pack(data_ptr, _CPU, 0, len(shape), dtype.type_code, dtype.bits, dtype.lanes, shape_ptr, 0, 0),
            tensor_ptr,
        )
        anys += _ANY.pack(_DLTENSOR_PTR, 0, tensor_ptr)
    args_ptr = alloc(max(len(anys), 1))
    memory.write(store, anys, args_ptr)
    return args_ptr, len(args_info)


def error_text(exc: BaseException) -> str:
    """An exception in one line: its type and the last line of its message (TVM's are long)."""
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return f"{type(exc).__name__}: {lines[-1] if lines else ''}"


@derived_object
class WasmBuilder(PyBuilder):
    """Meta-schedule builder: each candidate becomes a wasm reactor, in this process."""

    def __init__(self, harness: WasmHarness, deadline: float) -> None:
        super().__init__()
        self.harness = harness
        self.deadline = deadline

    def build(self, build_inputs: list[BuilderInput]) -> list[BuilderResult]:
        results = []
        for build_input in build_inputs:
            if time.monotonic() > self.deadline:
                results.append(BuilderResult(None, "time budget exhausted"))
                continue
            try:
                results.append(BuilderResult(str(self.harness.build(build_input.mod)), None))
            except Exception as exc:  # a bad candidate must not stop the search
                results.append(BuilderResult(None, error_text(exc)))
        return results


@derived_object
class WasmRunner(PyRunner):
    """Meta-schedule runner: times each built candidate in wasmtime, in this process."""

    def __init__(self, harness: WasmHarness) -> None:
        super().__init__()
        self.harness = harness

    def run(self, runner_inputs: list[RunnerInput]) -> list[Any]:
        futures = []
        for runner_input in runner_inputs:
            wasm = Path(runner_input.artifact_path)
            try:
                futures.append(LocalRunnerFuture(res=self.harness.time(wasm, list(runner_input.args_info))))
            except Exception as exc:  # traps and kernel errors are failed candidates
                futures.append(LocalRunnerFuture(error_message=error_text(exc)))
            finally:
                wasm.unlink(missing_ok=True)
        return futures
