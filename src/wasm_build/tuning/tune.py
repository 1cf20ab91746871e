"""`tune_model`: search a model's kernels with meta-schedule, measured in wasmtime.

The run extracts the tasks (`tasks`), seeds the search with the records already in the
database file (`database`), builds and times candidates in wasmtime (`harness`), reports
progress through `log`, and at the end times the default schedule and the best record
of each kernel side by side before it writes the database.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import tempfile
import time
import types
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import tvm
from tvm import s_tir
from tvm.ir.utils import derived_object
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback

from ..compiler.schedules import SCHEDULES_REVISION
from ..compiler.target import TargetOptions
from ..config.settings import TuningSettings
from ..errors import WasmBuildError
from .database import (
    SCHEDULED_ATTR,
    Entry,
    memory_database,
    read_database,
    unique_best,
    workload_key,
    write_database,
)
from .harness import WasmBuilder, WasmHarness, WasmRunner, error_text
from .logs import Log, meta_schedule_logging
from .tasks import (
    chosen_kernels,
    default_schedule_module,
    estimate_flops,
    extract_tasks_and_constants,
    left_to_default,
)

logger = logging.getLogger(__name__)


def tune_model(
    module: tvm.IRModule,
    options: TargetOptions,
    database_path: str,
    settings: TuningSettings,
    log: Log = print,
) -> None:
    """Tune the kernels of `module` within `settings.trials` and `settings.time_budget`.

    Candidates are measured in wasmtime. Results merge into `database_path`,
    which a previous run may have filled: its best records seed the search.
    """
    if not database_path:
        raise WasmBuildError("tuning needs a database file to keep its results", fix="pass --database tuning/NAME.json")
    if settings.trials <= 0:
        return
    start = time.monotonic()
    deadline = start + settings.time_budget if settings.time_budget else math.inf
    target = options.tvm_target()
    tasks, constants = extract_tasks_and_constants(module, options)
    tasks = [t for t in tasks if not (t.mod.attrs and t.mod.attrs.get(SCHEDULED_ATTR, False))]
    skipped: dict[str, list[str]] = {}
    searchable = []
    flops = {task.task_name: estimate_flops(task) for task in tasks}
    total_flops = sum(f for f in flops.values() if f is not None)
    for task in chosen_kernels(tasks, settings.kernels, log):
        reason = left_to_default(task, flops[task.task_name], total_flops)
        if reason is None:
            searchable.append(task)
        else:
            skipped.setdefault(reason, []).append(task.task_name)
    for reason, names in skipped.items():
        log(f"tune: {len(names)} kernels left to the default schedules ({reason}): " + ", ".join(names))
    tasks = searchable
    if not tasks:
        log("tune: the model has no kernels to tune")
        return
    entries = read_database(database_path)
    threads = _tuning_threads()

    with tempfile.TemporaryDirectory(prefix="wasm-build-tune-") as tmp:
        work = Path(tmp)
        harness = WasmHarness(options, work)
        task_entries = []
        for task in tasks:
            workload = ms.database.Workload(task.dispatched[0])
            entry = entries.setdefault(workload_key(workload), Entry(task.task_name, workload))
            entry.name = task.task_name
            task_entries.append(entry)
        log(
            f"tune: {len(tasks)} kernels, {settings.trials} trials"
            + (f", time budget {settings.time_budget:g} s" if settings.time_budget else "")
            + f", {sum(len(e.records) for e in entries.values())} records already in {database_path}"
        )

        database = memory_database(entries, improving_only=False)
        progress = _Progress(task_entries, settings.trials, deadline, log)
        with meta_schedule_logging():
            with _without_tensor_intrinsics():
                log(f"tune: preparing the search of {len(tasks)} kernels")
                contexts, weights = ms.relax_integration.extracted_tasks_to_tune_contexts(
                    tasks, work_dir=str(work / "logs"), space="post-order-apply", strategy=_search_strategy(),
                    num_threads=threads, seed=0,
                )
            try:
                ms.tune_tasks(
                    tasks=contexts,
                    task_weights=weights,
                    work_dir=str(work / "logs"),
                    max_trials_global=settings.trials,
                    # Small batches: the cost model learns between them, and the time budget is checked after each.
                    num_trials_per_iter=max(1, min(16, settings.trials)),
                    builder=WasmBuilder(harness, deadline),
                    runner=WasmRunner(harness),
                    database=database,
                    cost_model=_cost_model(threads, log),
                    measure_callbacks=[
                        ms.measure_callback.AddToDatabase(),
                        ms.measure_callback.UpdateCostModel(),
                        progress,
                    ],
                    task_scheduler="gradient",
                )
            except RuntimeError:
                if not progress.expired:
                    raise
                log(f"tune: time budget of {settings.time_budget:g} s reached")

        for record in database.get_all_tuning_records():
            key = workload_key(record.workload)
            if key in entries:
                entries[key].records.append(record)
        for entry in task_entries:
            entry.records = unique_best(entry.records)
            # Search times are minima over noisy runs; decide on a paired measurement instead.
            best = database.query_ir_module(entry.workload.mod, target, "main") if entry.records else None
            entry.default_secs, entry.tuned_secs = _compare_with_default(
                harness, entry.workload.mod, best, target, log, constants.get(entry.name, [])
            )
            entry.schedules_revision = SCHEDULES_REVISION
            verdict = "builds use it" if entry.improves() else "builds keep the default schedule"
            log(f"tune: {entry.name}: default schedule {_ms(entry.default_secs)}, tuned {_ms(entry.tuned_secs)}: {verdict}")
    write_database(database_path, entries)
    log(f"tune: wrote {database_path} in {time.monotonic() - start:.0f} s")


# -- the search ----------------------------------------------------------------------------


@contextmanager
def _without_tensor_intrinsics() -> Iterator[None]:
    """Skip `tvm.s_tir.tensor_intrin` while tuning contexts are created.

    `TuneContext()` imports it to register CUDA, x86 and ARM tensor
    intrinsics: about 250 TVMScript functions, each parsed with
    `inspect.stack()`, which takes one to several minutes. The schedule rules
    meta-schedule uses for a wasm32 llvm target use none of them. The stub is
    removed afterwards, so a later real import still works.
    """
    name = "tvm.s_tir.tensor_intrin"
    if name in sys.modules:
        yield
        return
    sys.modules[name] = types.ModuleType(name, "placeholder: wasm-build tuning needs no tensor intrinsics")
    try:
        yield
    finally:
        del sys.modules[name]
        if getattr(s_tir, "tensor_intrin", None) is not None and not hasattr(s_tir.tensor_intrin, "__file__"):
            delattr(s_tir, "tensor_intrin")


def _tuning_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def _search_strategy() -> Any:
    """Evolutionary search with a quarter of meta-schedule's default population (512): each
    kernel samples and evolves its population before its first candidate is measured, which
    took about 20 s per kernel here (11 minutes before MobileNetV2's first measurement)."""
    return ms.search_strategy.EvolutionarySearch(population_size=128, init_min_unmeasured=16)


def _cost_model(threads: int, log: Log) -> Any:
    try:
        import xgboost  # noqa: F401  (optional: a heavy dependency)
    except ImportError:
        log("tune: xgboost is not installed, so candidates are picked at random (pip install xgboost)")
        return ms.CostModel.create("random")
    return ms.CostModel.create("xgb", num_tuning_cores=threads)


@derived_object
class _Progress(PyMeasureCallback):
    """Logs each batch (trials so far, best time per task) and enforces the time budget."""

    def __init__(self, entries: list[Entry], budget: int, deadline: float, log: Log) -> None:
        super().__init__()
        self.names = [entry.name for entry in entries]
        self.best: list[float | None] = [entry.best_secs() for entry in entries]
        self.trials = 0
        self.budget = budget
        self.deadline = deadline
        self.start = time.monotonic()
        self.log = log
        self.expired = False

    def apply(self, task_scheduler: Any, task_id: int, measure_candidates: Any, builder_results: Any, runner_results: Any) -> None:
        times = [sum(map(float, r.run_secs)) / len(r.run_secs) for r in runner_results if r.run_secs]
        errors = len(runner_results) - len(times)
        self.trials += len(runner_results)
        if times and (self.best[task_id] is None or min(times) < self.best[task_id]):
            self.best[task_id] = min(times)
        self.log(
            f"tune: {self.trials}/{self.budget} trials, {time.monotonic() - self.start:.0f} s: "
            f"{self.names[task_id]}: best {_ms(self.best[task_id])}"
            + (f", {errors} of {len(runner_results)} failed" if errors else "")
        )
        # Past the deadline, abandon the whole run (its records so far are in the database).
        # Ending tasks from here instead breaks the scheduler's own bookkeeping: it may be
        # iterating over them, or about to end the task it is joining (internal errors).
        if time.monotonic() > self.deadline:
            self.expired = True  # the exception comes back through the FFI as a RuntimeError
            raise RuntimeError("wasm-build: tuning time budget reached")


def _ms(secs: float | None) -> str:
    return "-" if secs is None else f"{secs * 1e3:.3f} ms"


# -- the verdict ---------------------------------------------------------------------------


def _compare_with_default(
    harness: WasmHarness,
    mod: tvm.IRModule,
    tuned: tvm.IRModule | None,
    target: Any,
    log: Log,
    constants: list[int] = (),
    rounds: int = 3,
) -> tuple[float | None, float | None]:
    """Median seconds of the default build's kernel and of the tuned one, timed in alternation."""
    times: list[list[float]] = [[] for _ in range(1 + (tuned is not None))]
    wasms: list[Path] = []
    try:
        candidates = [default_schedule_module(mod, target, constants)] + ([tuned] if tuned is not None else [])
        # Each on its own arguments: the default may take its weights packed.
        args = [list(ms.arg_info.ArgInfo.from_prim_func(c["main"])) for c in candidates]
        wasms = [harness.build(candidate) for candidate in candidates]
        for _ in range(rounds):
            for wasm, arg_info, samples in zip(wasms, args, times):
                samples.extend(harness.time(wasm, arg_info))
    except Exception as exc:  # then the tuned records apply unconditionally, as before
        message = f"tune: could not compare with the default schedule, the tuned records apply as measured: {error_text(exc)}"
        log(message)
        logger.warning(message)  # shown even when the build is not verbose
        return None, None
    finally:
        for wasm in wasms:
            wasm.unlink(missing_ok=True)
    medians = [float(np.median(samples)) for samples in times]
    return medians[0], (medians[1] if tuned is not None else None)
