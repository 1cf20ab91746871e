"""The kernels tuning searches: tasks extracted as a build makes them, and which to search.

Tasks come from the public phases of `compiler.pipeline` (`optimize_passes`, then
`legalize_passes`), so tuning sees exactly the kernels a build compiles. Not all are
searched: `tuning.kernels` may choose some by name, and `left_to_default` says which keep
the default schedule anyway. `default_schedule_module` is a task as a default build
compiles it, which a tuning run times beside the best record.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import tvm
from tvm import s_tir
from tvm.s_tir import meta_schedule as ms

from ..compiler.pipeline import legalize_passes, optimize_passes
from ..compiler.schedules import default_schedule_pass
from ..compiler.schedules.packed_weights import constant_params
from ..compiler.init_kernels import INIT_KERNEL_ATTR
from ..compiler.schedules.winograd_transforms import has_transforms
from ..compiler.target import TargetOptions
from ..compiler.tiles import LAYOUT_FREE_ATTR
from ..errors import WasmBuildError
from .logs import Log

# Kernels below this share of the model's estimated FLOPs are not searched.
MIN_WORK_SHARE = 0.01


def extract_tasks(module: tvm.IRModule, options: TargetOptions) -> list[Any]:
    """The fused PrimFuncs of `module`, exactly as `compiler.pipeline.lower` sees them before scheduling."""
    return extract_tasks_and_constants(module, options)[0]


def extract_tasks_and_constants(module: tvm.IRModule, options: TargetOptions) -> tuple[list[Any], dict[str, list[int]]]:
    """Tasks, and for each task name the kernel parameters the model passes constants
    (weights): a default build stores those packed, so the default is timed that way."""
    target = options.tvm_target()
    with target, tvm.transform.PassContext(opt_level=3):
        fused = tvm.transform.Sequential([*optimize_passes(), *legalize_passes(target, options)])(module)
    constants = {gvar.name_hint: sorted(params) for gvar, params in constant_params(fused).items() if params}
    return list(ms.relax_integration.extract_tasks(fused, target)), constants


def estimate_flops(task: Any) -> float | None:
    """Estimated FLOPs of all calls of `task`, or None where meta-schedule's analysis fails."""
    try:
        return float(s_tir.analysis.estimate_tir_flops(task.dispatched[0])) * task.weight
    except Exception:  # pylint: disable=broad-except
        return None


def left_to_default(task: Any, flops: float | None, total_flops: float) -> str | None:
    """Why `task` keeps its default schedule instead of being searched, or None.

    Meta-schedule's task scheduler estimates each task's FLOPs first, and that analysis
    rejects some TIR (the `Let` bindings of wasm-build's vectorized exp/erf/softmax
    kernels), which would abort the whole tuning run. Winograd kernels need their tile
    loops unrolled to fold the transform coefficients, which its search spaces do not do.
    Kernels with a negligible share of the work (transposes, a mean) are not worth the
    search's set-up, several seconds per kernel before its first measurement. Kernels that
    run once, at init (`compiler.init_kernels`), are no part of a run's time.
    """
    func = task.dispatched[0]["main"]
    if func.attrs is not None and INIT_KERNEL_ATTR in func.attrs:
        return "run once, at init"
    if has_transforms(func):
        return "Winograd convolutions"
    if flops is None:
        return "meta-schedule cannot analyse them"
    if flops < MIN_WORK_SHARE * total_flops:
        return f"under {MIN_WORK_SHARE:.0%} of the model's work each"
    return None


def chosen_kernels(tasks: list[Any], patterns: tuple[str, ...], log: Log) -> list[Any]:
    """The tasks `tuning.kernels` names (glob patterns over kernel names), all when it is empty."""
    if not patterns:
        return tasks
    names = [task.task_name for task in tasks]
    unmatched = [p for p in patterns if not any(fnmatch.fnmatchcase(name, p) for name in names)]
    if len(unmatched) == len(patterns):
        raise WasmBuildError(
            f"tuning.kernels {list(patterns)} matches none of the model's kernels",
            fix="use glob patterns over these names: " + ", ".join(sorted(names)),
        )
    for pattern in unmatched:
        log(f"tune: tuning.kernels pattern {pattern!r} matches no kernel")
    chosen = [task for task in tasks if any(fnmatch.fnmatchcase(task.task_name, p) for p in patterns)]
    log(f"tune: {len(chosen)} of {len(tasks)} kernels chosen by tuning.kernels")
    return chosen


def default_schedule_module(mod: tvm.IRModule, target: Any, constants: list[int] = ()) -> tvm.IRModule:
    """The task as a default build compiles it: wasm-build's default schedule when one applies,
    reading the constant parameters `constants` in the packed layout the build folds them into."""
    main = mod["main"]
    if constants:
        main = main.with_attr(LAYOUT_FREE_ATTR, list(constants))
    copy = tvm.IRModule({"main": main}, attrs=mod.attrs)  # the pass may update its input in place
    with target:
        scheduled = default_schedule_pass(target)(copy)
    # A build packs the weights at compile time: time the kernel on packed arguments.
    return s_tir.transform.RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(scheduled)
