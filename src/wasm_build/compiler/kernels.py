"""Compile a lowered model's kernels (its PrimFuncs) into one relocatable wasm32 object."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tvm

from ..artifact.files import work_dir
from ..codegen.abi import MAX_KERNEL_PARAMS
from ..errors import WasmBuildError
from .pipeline import LoweredModel
from .target import TargetOptions
from .tir.pipeline import tir_pipeline
from .work import work_of


def kernel_module(lowered: LoweredModel) -> Any:
    """The PrimFuncs of a lowered module, as an IRModule carrying the system-lib prefix."""
    funcs = {gv: f for gv, f in lowered.module.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}
    return tvm.IRModule(funcs).with_attr("system_lib_prefix", lowered.prefix)


def kernel_work_table(lowered: LoweredModel) -> dict[str, dict[str, int]]:
    """Each kernel's work as fused (`compiler.work`), by the name the executor calls it by."""
    table = {}
    for gvar, func in lowered.module.functions.items():
        work = work_of(func) if isinstance(func, tvm.tirx.PrimFunc) else None
        if work is not None:
            table[gvar.name_hint] = {"macs": work.macs, "bytes": work.bytes, "flops": work.flops}
    return dict(sorted(table.items()))


def kernel_build_context() -> Any:
    """Pass context for generating kernel code: without assertions.

    Each kernel would otherwise check every tensor argument's ndim, dtype,
    shape, strides and alignment on every call, which was three quarters of
    the code of a MobileNetV2 build.  The generated executor is the kernels'
    only caller and passes the statically planned, aligned tensors those
    checks verify; user input is checked by ``NAME_run``.
    """
    return tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True})


def build_kernels(lowered: LoweredModel, options: TargetOptions, output: Path) -> None:
    """Compile every kernel into one relocatable wasm object at `output`."""

    kernels = kernel_module(lowered)
    if not kernels.functions:
        # A model with no computation (e.g. a pure reshape) still needs a valid object.
        output.write_bytes(b"")
        return
    _check_parameter_counts(kernels)
    try:
        with kernel_build_context():
            lib = tvm.tirx.build(kernels, target=options.tvm_target(), pipeline=tir_pipeline())
    except Exception as exc:
        raise WasmBuildError(
            f"TVM failed to generate wasm32 code for the kernels: {type(exc).__name__}: {_last_line(exc)}",
            fix="try --no-simd, or report the model; the native TVM build may still work",
        ) from exc
    with work_dir("kernels") as work:
        obj = work / "kernels.o"
        lib.write_to_file(str(obj))
        os.replace(obj, output)


def _check_parameter_counts(kernels: Any) -> None:
    """Refuse, before generating code, a kernel no engine would load."""
    for gvar, func in kernels.functions.items():
        if len(func.params) > MAX_KERNEL_PARAMS:
            raise WasmBuildError(
                f"kernel '{gvar.name_hint}' takes {len(func.params)} tensors, and WebAssembly engines (wasmtime, V8) "
                f"load functions of at most {MAX_KERNEL_PARAMS} parameters",
                fix="the model joins that many tensors in one operation, typically the Concat of a recurrent layer's "
                "time steps (an LSTM, GRU or RNN unrolled over more than 1000 steps): export it over fewer steps and run "
                "a long input in chunks, passing the final states (Y_h, Y_c) of one run as the initial states of the next",
            )


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


