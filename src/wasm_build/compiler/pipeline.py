"""Lower a Relax module for wasm32 and the static executor, in public phases.

The pipeline is TVM's CPU pipeline (``relax/backend/cpu_generic/pipeline.py``) with
three changes:

1. `optimize_passes`: static shapes restored where the frontend lost them (`compiler.passes.
   static_slices`), quantized operators as integer kernels (`compiler.passes.quantized_passes`),
   then inference-only decompositions (batch norm), constant folding and common
   subexpressions computed once;
2. `legalize_passes`: wasm-build's graph passes (`compiler.passes`) before TVM's
   legalization, so layouts and algorithms are chosen before kernels exist (and, for
   bounded symbolic dimensions, `row_chunks` after it);
3. `schedule_passes`: each kernel's work recorded (`compiler.work`), then tuned schedules (a
   tuning database's pass, made by the caller) and wasm-build's SIMD schedules
   (`compiler.schedules`) after fusion.

The module attribute `system_lib_prefix` is set before `AttachGlobalSymbol`, so every
kernel symbol carries the model's prefix and two models link together. A model with
bounded symbolic dimensions (`tir_var_upper_bound` on `main`, set by the frontends) has
its storage planned for the bounds, the outputs' included (`plan_for_bounds`). `lower` stops
before `VMCodeGen`: `codegen.plan` reads the lowered `main`, and `compiler.kernels`
compiles the PrimFuncs. Tuning runs the same phases (up to fusion) to extract the
kernels it searches, so it sees exactly the kernels a build makes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tvm
from tvm import relax
from tvm.relax.backend.cpu_generic import pipeline as cpu

from .init_kernels import fold_constants
from .passes import epilogue_transposes_pass, graph_passes, quantized_passes, static_slices_pass
from .row_chunks import row_chunk_pass
from .schedules import default_schedule_pass
from .symbolic_loops import symbolic_loop_pass
from .target import TargetOptions
from .work import annotate_work_pass


@dataclass
class LoweredModel:
    module: Any  # IRModule after VM lowering: Relax main + kernel PrimFuncs
    prefix: str


def optimize_passes() -> list[tvm.transform.Pass]:
    """Static slices (FoldConstant stops at the first tensor of unknown shape), quantized
    operators as integer kernels (before constant folding turns int8 weights into float32
    ones), inference-only decompositions (batch norm), constant folding, and what is computed
    twice computed once: exporters write a reshape per consumer, and ``quantize_dynamic``
    then quantizes each one (a transformer's Q, K and V projections quantized the same
    activations three times)."""
    return [
        static_slices_pass(),
        quantized_passes(),
        relax.transform.DecomposeOpsForInference(),
        relax.transform.FoldConstant(),
        relax.transform.EliminateCommonSubexpr(),
        relax.transform.CanonicalizeBindings(),
        relax.transform.DeadCodeElimination(),
    ]


def legalize_passes(target: tvm.target.Target, options: TargetOptions) -> list[tvm.transform.Pass]:
    """wasm-build's graph passes, then TVM's library dispatch and legalization to TIR, fusion
    (transposes of a contraction's output fused into it: `epilogue_transposes`); row-wise
    kernels over a symbolic number of rows are then compiled for chunks of rows (`row_chunks`)."""
    return [
        *graph_passes(target, winograd_budget=options.winograd_budget),
        *cpu.library_dispatch_passes(target),
        # TVM's CPU legalization (`cpu.legalize_passes`), its constant folding leaving the
        # kernels that run at init (`init_kernels`) unfolded.
        relax.transform.LegalizeOps(),
        relax.transform.AnnotateTIROpPattern(),
        fold_constants(),
        epilogue_transposes_pass(),
        relax.transform.FuseOps(),
        relax.transform.FuseTIR(),
        row_chunk_pass(),
    ]


def schedule_passes(
    target: tvm.target.Target, *, default_schedules: bool, tuned: tvm.transform.Pass | None = None
) -> list[tvm.transform.Pass]:
    """Each kernel's work recorded as fused (for `wasm-build profile`), then tuned schedules
    (`tuned`, e.g. `tuning.apply_database_pass`); wasm-build's rules cover the kernels left
    unscheduled (those with symbolic extents: `symbolic_loops`)."""
    passes = [annotate_work_pass(), *([tuned] if tuned is not None else [])]
    if default_schedules:
        passes += [symbolic_loop_pass(), default_schedule_pass(target)]
    return passes


def lower_passes(target: tvm.target.Target) -> list[tvm.transform.Pass]:
    """TVM's dataflow lowering and finalization, up to (not including) VM code generation."""
    return [*cpu.dataflow_lower_passes(target), *cpu.finalize_passes(target)]


# Read by StaticPlanBlockMemory (a function attribute, which it removes): plan the storage of
# tensors with symbolic shapes, the function's outputs too, at the upper bounds, so the
# executor's one static arena holds every run.
_PLAN_DYNAMIC_OUTPUT = "relax.memory_plan_dynamic_func_output"


def plan_for_bounds(module: tvm.IRModule) -> tvm.IRModule:
    """`module` with `main` marked for static planning at its bounds, if it has any."""
    main = module["main"]
    if not (main.attrs and "tir_var_upper_bound" in main.attrs):
        return module
    module = module.clone()
    module["main"] = main.with_attr(_PLAN_DYNAMIC_OUTPUT, True)
    return module


def lower(
    module: tvm.IRModule,
    prefix: str,
    options: TargetOptions,
    *,
    default_schedules: bool = True,
    tuned: tvm.transform.Pass | None = None,
) -> LoweredModel:
    """Run every phase, up to (not including) VM code generation."""
    target = options.tvm_target()
    module = plan_for_bounds(module).with_attr("system_lib_prefix", prefix)
    seq = tvm.transform.Sequential(
        [
            *optimize_passes(),
            *legalize_passes(target, options),
            *schedule_passes(target, default_schedules=default_schedules, tuned=tuned),
            *lower_passes(target),
        ]
    )
    with target, tvm.transform.PassContext(opt_level=3):
        lowered = seq(module)
    return LoweredModel(lowered, prefix)
