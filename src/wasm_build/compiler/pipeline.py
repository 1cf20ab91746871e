"""Compile a Relax module for wasm32: lower it for the static executor and build its kernels.

The pipeline is TVM's CPU pipeline with three changes:
- inference-only decompositions (batch norm) and constant folding first;
- wasm-build's SIMD schedules (and any tuning database) after fusion;
- the module attribute `system_lib_prefix` set before `AttachGlobalSymbol`, so
  every kernel symbol carries the model's prefix and two models link together.

We stop before `VMCodeGen`: `aot.plan_executor` reads the lowered `main`, and
the PrimFuncs go to `tvm.tirx.build`, whose object file holds the kernels; its TIR
pipeline is TVM's default one followed by `lane_shuffle` (packed tile rows splat
by lane shuffles).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import WasmBuildError
from ..config.settings import ModelSettings


@dataclass(frozen=True)
class TargetOptions:
    """How kernels are generated: the wasm features they may use and the algorithms chosen."""

    simd: bool = True
    relaxed_simd: bool = False
    # Extra weight bytes Winograd convs may add, as a fraction of the weights (schedules.relax_passes).
    winograd_budget: float = ModelSettings.winograd_budget

    @classmethod
    def for_model(cls, model: ModelSettings) -> TargetOptions:
        return cls(simd=model.simd, relaxed_simd=model.relaxed_simd, winograd_budget=model.winograd_budget)

    @property
    def features(self) -> list[str]:
        features = []
        if self.simd or self.relaxed_simd:
            features.append("+simd128")
        if self.relaxed_simd:
            features.append("+relaxed-simd")
        return features

    def tvm_target(self) -> Any:
        import tvm

        # vector-width: wasm SIMD is 128 bits (TVM guesses so anyway, with a warning on every build).
        spec: dict[str, Any] = {"kind": "llvm", "mtriple": "wasm32-unknown-unknown-wasm", "num-cores": 1, "vector-width": 128}
        if self.features:
            spec["mattr"] = self.features
        return tvm.target.Target(spec)

    def c_flags(self) -> list[str]:
        flags = []
        if self.simd or self.relaxed_simd:
            flags.append("-msimd128")
        if self.relaxed_simd:
            flags.append("-mrelaxed-simd")
        return flags


@dataclass
class LoweredModel:
    module: Any  # IRModule after VM lowering: Relax main + kernel PrimFuncs
    prefix: str


def _optimize_passes() -> list[Any]:
    from tvm import relax

    return [
        relax.transform.DecomposeOpsForInference(),
        relax.transform.FoldConstant(),
    ]


def _legalize_passes(target: Any, options: TargetOptions) -> list[Any]:
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    from .schedules import relax_passes

    # Graph-level layout choices come first, so tuning sees the same fused kernels as the build.
    return [
        *relax_passes(target, winograd_budget=options.winograd_budget),
        *cpu.library_dispatch_passes(target),
        *cpu.legalize_passes(target),
    ]


def _lower_passes(target: Any) -> list[Any]:
    from tvm.relax.backend.cpu_generic import pipeline as cpu

    return [*cpu.dataflow_lower_passes(target), *cpu.finalize_passes(target)]


def schedule_passes(target: Any, *, default_schedules: bool, database: str | None) -> list[Any]:
    """Apply tuned schedules from `database` first; wasm-build's rules cover the rest."""
    passes: list[Any] = []
    if database and Path(database).is_file():
        from ..tuning import apply_database_pass

        passes.append(apply_database_pass(database, target))
    if default_schedules:
        try:
            from .schedules import default_schedule_pass
        except ImportError:  # schedules are optional during bring-up
            default_schedule_pass = None
        if default_schedule_pass is not None:
            passes.append(default_schedule_pass(target))
    return passes


def lower(
    module: Any,
    prefix: str,
    options: TargetOptions,
    *,
    default_schedules: bool = True,
    database: str | None = None,
) -> LoweredModel:
    """Run the wasm-build pipeline up to (not including) VM code generation."""
    import tvm

    target = options.tvm_target()
    module = module.with_attr("system_lib_prefix", prefix)
    seq = tvm.transform.Sequential(
        [
            *_optimize_passes(),
            *_legalize_passes(target, options),
            *schedule_passes(target, default_schedules=default_schedules, database=database),
            *_lower_passes(target),
        ]
    )
    with target, tvm.transform.PassContext(opt_level=3):
        lowered = seq(module)
    return LoweredModel(lowered, prefix)


def kernel_module(lowered: LoweredModel) -> Any:
    """The PrimFuncs of a lowered module, as an IRModule carrying the system-lib prefix."""
    import tvm

    funcs = {gv: f for gv, f in lowered.module.functions.items() if isinstance(f, tvm.tirx.PrimFunc)}
    return tvm.IRModule(funcs).with_attr("system_lib_prefix", lowered.prefix)


def kernel_build_context() -> Any:
    """Pass context for generating kernel code: without assertions.

    Each kernel would otherwise check every tensor argument's ndim, dtype,
    shape, strides and alignment on every call, which was three quarters of
    the code of a MobileNetV2 build.  The generated executor is the kernels'
    only caller and passes the statically planned, aligned tensors those
    checks verify; user input is checked by ``NAME_run``.
    """
    import tvm

    return tvm.transform.PassContext(opt_level=3, config={"tirx.disable_assert": True})


def build_kernels(lowered: LoweredModel, options: TargetOptions, output: Path) -> None:
    """Compile every kernel into one relocatable wasm object at `output`."""
    import tvm

    from .tir import lane_shuffle

    kernels = kernel_module(lowered)
    if not kernels.functions:
        # A model with no computation (e.g. a pure reshape) still needs a valid object.
        output.write_bytes(b"")
        return
    try:
        with kernel_build_context():
            lib = tvm.tirx.build(kernels, target=options.tvm_target(), pipeline=lane_shuffle.tir_pipeline())
    except Exception as exc:
        raise WasmBuildError(
            f"TVM failed to generate wasm32 code for the kernels: {type(exc).__name__}: {_last_line(exc)}",
            fix="try --no-simd, or report the model; the native TVM build may still work",
        ) from exc
    with tempfile.TemporaryDirectory(prefix="wasm-build-kernels-") as tmp:
        obj = Path(tmp) / "kernels.o"
        lib.write_to_file(str(obj))
        os.replace(obj, output)


def _last_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def native_reference(module: Any, inputs: list[Any]) -> list[Any]:
    """Run the model with TVM's own pipeline and VM on the host CPU: the smoke-test reference."""
    import numpy as np
    import tvm
    from tvm import relax

    executable = tvm.compile(module, tvm.target.Target({"kind": "llvm"}))
    vm = relax.VirtualMachine(executable, tvm.cpu())
    result = vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(x)) for x in inputs])
    return [np.asarray(r.numpy()) for r in _flatten(result)]


def _flatten(value: Any):
    import tvm

    if isinstance(value, tvm.runtime.Tensor):
        yield value
    else:
        for item in value:
            yield from _flatten(item)
