"""Auto-tuning measured in wasmtime: meta-schedule without RPC.

WASI has no sockets, so TVM's RPC runner cannot reach a wasm program. Instead
every candidate is measured in this process:

- `WasmBuilder` builds a candidate PrimFunc with `tvm.tirx.build` into a wasm32
  object and links it with the runtime shim and a small C timing driver into a
  WASI reactor (one `.wasm` per candidate);
- `WasmRunner` instantiates that module in wasmtime, fills the arguments with
  random data (DLTensors laid out in linear memory) and times repeated calls
  inside the module, with the WASI monotonic clock, so host call overhead does
  not count for tiny kernels.

The tuning database is one JSON file in the user's repository (see
`docs/tuning.md`): the workloads, the best records of each, and the times of
wasm-build's default schedule and of the best record, measured side by side at
the end of the run. A build applies a tuned record only where it beat that
default, so a short tuning run never makes a model slower.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import math
import os
import struct
import sys
import tempfile
import time
import types
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import tvm
from tvm import s_tir
from tvm.s_tir import meta_schedule as ms
from tvm.s_tir.meta_schedule.builder import BuilderInput, BuilderResult, PyBuilder
from tvm.s_tir.meta_schedule.measure_callback import PyMeasureCallback
from tvm.s_tir.meta_schedule.runner import PyRunner, RunnerInput
from tvm.s_tir.meta_schedule.runner.local_runner import LocalRunnerFuture
from tvm.ir.utils import derived_object

from ..compiler.tir.pipeline import tir_pipeline
from ..compiler.pipeline import legalize_passes, optimize_passes
from ..compiler.target import TargetOptions
from ..artifact.files import write_text_atomic
from ..errors import WasmBuildError
from ..compiler.schedules import SCHEDULES_REVISION
from ..config.settings import TuningSettings

Log = Callable[[str], None]
logger = logging.getLogger(__name__)

DATABASE_FORMAT = "wasm-build-tuning-database"
DATABASE_VERSION = 1
# Records kept per workload: the best ones seed the next tuning run's search.
KEEP_RECORDS = 16
# The attribute meta-schedule, dlight and wasm-build's default schedules all read.
SCHEDULED_ATTR = "tirx.is_scheduled"
# Kernels below this share of the model's estimated FLOPs are not searched.
_MIN_WORK_SHARE = 0.01

_PREFIX = "wbtune_"
_KERNEL = "wbtune_kernel"
from ..artifact.assemble import RUNTIME_DIR as _RUNTIME_DIR

# The driver calls the candidate `number` times between two reads of the WASI
# monotonic clock. Kernels link statically, so the call is direct.
_DRIVER_SOURCE = f"""\
#include <stdint.h>
#include <time.h>
#include "wasm_build_runtime.h"

extern char wb_raised_error[512];
int __tvm_ffi_{_KERNEL}(void* self, const WBAny* args, int32_t num_args, WBAny* result);

/* Seconds for `number` calls, or -1 when a call fails (wbt_error says why). */
double wbt_time(const WBAny* args, int32_t num_args, int32_t number) {{
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (int32_t i = 0; i < number; ++i) {{
    WBAny result = {{WB_TYPE_NONE, 0, {{0}}}};
    if (__tvm_ffi_{_KERNEL}(NULL, args, num_args, &result) != 0) return -1.0;
  }}
  clock_gettime(CLOCK_MONOTONIC, &end);
  return (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) * 1e-9;
}}

const char* wbt_error(void) {{ return wb_raised_error; }}
"""
_DRIVER_EXPORTS = ("wbt_time", "wbt_error", "malloc", "free")

# DLTensor and TVMFFIAny on wasm32 (see wasm_build_runtime.h).
_DLTENSOR = struct.Struct("<IiiiBBHII4xQ")  # data, device, ndim, dtype, shape, strides, byte_offset
_ANY = struct.Struct("<iIq")  # type index, padding, value
_DLTENSOR_PTR = 7
_CPU = 1
_ALIGN = 64


# -- the database file ----------------------------------------------------------------------


@dataclass
class _Entry:
    """One workload of the database file and its best records."""

    name: str
    workload: Any  # ms.database.Workload
    default_secs: float | None = None  # the default schedule, timed beside...
    tuned_secs: float | None = None  # ...the best record, at the end of the last tuning run
    records: list[Any] = field(default_factory=list)  # ms.database.TuningRecord
    # schedules.SCHEDULES_REVISION of the default schedule timed (None: before revisions were kept)
    schedules_revision: int | None = None

    def best_secs(self) -> float | None:
        times = [_mean_secs(r) for r in self.records]
        return min((t for t in times if t is not None), default=None)

    def improves(self) -> bool:
        """Whether builds should use the best record: it ran faster than the default schedule
        of this wasm-build (`default-secs` null: apply it regardless)."""
        if self.default_secs is None:
            return bool(self.records) and self._tuned() is not None
        return self.beat_default() and not self.stale()

    def beat_default(self) -> bool:
        """Whether the best record ran faster than the default schedule it was timed beside."""
        tuned = self._tuned()
        return bool(self.records) and tuned is not None and self.default_secs is not None and tuned < self.default_secs

    def _tuned(self) -> float | None:
        return self.tuned_secs if self.tuned_secs is not None else self.best_secs()

    def stale(self) -> bool:
        """Whether the comparison was with the default schedule of another wasm-build revision."""
        return self.default_secs is not None and self.schedules_revision != SCHEDULES_REVISION


def _mean_secs(record: Any) -> float | None:
    secs = [float(s) for s in (record.run_secs or [])]
    return sum(secs) / len(secs) if secs else None


def _workload_key(workload: Any) -> str:
    return str(workload.as_json()[0])  # the structural hash, as meta-schedule writes it


def read_database(path: str | Path) -> dict[str, _Entry]:
    """The entries of a database file by workload hash; empty when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WasmBuildError(
            f"cannot read tuning database {path}: {exc}",
            fix="delete the file (and re-run `wasm-build tune`) or restore it from version control",
        ) from exc
    if not isinstance(data, dict) or data.get("format") != DATABASE_FORMAT:
        raise WasmBuildError(
            f"{path} is not a wasm-build tuning database (no \"format\": \"{DATABASE_FORMAT}\")",
            fix="point `tuning.database` at a file written by `wasm-build tune`, or at a new path",
        )
    if data.get("version") != DATABASE_VERSION:
        raise WasmBuildError(
            f"{path} has database version {data.get('version')}, this wasm-build reads version {DATABASE_VERSION}",
            fix="re-run `wasm-build tune` with a new database path",
        )
    entries: dict[str, _Entry] = {}
    for item in data.get("workloads", []):
        workload = ms.database.Workload.from_json(item["workload"])
        entry = _Entry(item.get("name", ""), workload, item.get("default-secs"), item.get("tuned-secs"))
        entry.schedules_revision = item.get("default-schedules")
        entry.records = [ms.database.TuningRecord.from_json(r, workload) for r in item.get("records", [])]
        entries[_workload_key(workload)] = entry
    return entries


def write_database(path: str | Path, entries: dict[str, _Entry]) -> None:
    """Write `entries` atomically, sorted by name, each record on its own line for readable diffs."""
    blocks = []
    for entry in sorted(entries.values(), key=lambda e: (e.name, _workload_key(e.workload))):
        records = sorted(entry.records, key=lambda r: _mean_secs(r) or math.inf)[:KEEP_RECORDS]
        header = {
            "name": entry.name,
            "default-secs": entry.default_secs,
            "tuned-secs": entry.tuned_secs,
            "default-schedules": entry.schedules_revision,
            "workload": entry.workload.as_json(),
        }
        lines = ",\n".join(f"    {json.dumps(r.as_json(), separators=(',', ':'))}" for r in records)
        head = json.dumps(header, separators=(", ", ": "))[:-1]
        blocks.append(f"  {head}, \"records\": [\n{lines}\n  ]}}")
    text = (
        f'{{"format": "{DATABASE_FORMAT}", "version": {DATABASE_VERSION}, "workloads": [\n'
        + ",\n".join(blocks)
        + "\n]}\n"
    )
    json.loads(text)  # never write a file we could not read back
    write_text_atomic(Path(path), text)




def _memory_database(entries: dict[str, _Entry], *, improving_only: bool) -> Any:
    database = ms.database.MemoryDatabase()
    for entry in entries.values():
        if improving_only and not entry.improves():
            continue
        workload = database.commit_workload(entry.workload.mod)
        for record in entry.records:
            database.commit_tuning_record(
                ms.database.TuningRecord(record.trace, workload, record.run_secs, record.target, record.args_info)
            )
    return database


# -- applying a database in the compile pipeline ----------------------------------------------


def apply_database_pass(database_path: str, target: Any) -> tvm.transform.Pass:
    """Replace each PrimFunc found in the database by its best tuned schedule.

    Runs right after FuseTIR, under `with target`. Tuned functions carry
    `tirx.is_scheduled`, so the default schedules leave them alone.
    """

    @tvm.transform.module_pass(opt_level=0, name="WasmApplyTuningDatabase")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        from tvm import relax

        entries = read_database(database_path)
        # Records that beat another revision's default (the ones that lost then stay unapplied anyway).
        stale = sorted(e.name for e in entries.values() if e.stale() and e.beat_default())
        if stale:
            logger.warning(
                "%s: %d tuned kernels were compared with the default schedules of another wasm-build "
                "(%s) and are not applied; re-run `wasm-build tune` to compare them with this one",
                database_path, len(stale), ", ".join(stale),
            )
        database = _memory_database(entries, improving_only=True)
        if len(database) == 0:
            return mod
        before = dict(mod.functions_items())
        with target, database:
            tuned = relax.transform.MetaScheduleApplyDatabase()(mod)
        # Mark what changed, whether or not this TVM version marks it already.
        for gvar, func in tuned.functions_items():
            if isinstance(func, tvm.tirx.PrimFunc) and not func.same_as(before.get(gvar)):
                if not (func.attrs and func.attrs.get(SCHEDULED_ATTR, False)):
                    tuned[gvar] = func.with_attr(SCHEDULED_ATTR, True)
        return tuned

    return _pass


# -- building and timing candidates in wasmtime ----------------------------------------------


class WasmHarness:
    """Compiles the shim and the driver once; builds candidates into reactors; times them.

    `min_repeat_secs` and `repeats` trade measuring time against noise: each
    measurement is `repeats` runs of at least `min_repeat_secs` each, after
    one warm-up call.
    """

    def __init__(self, options: TargetOptions, work_dir: Path, *, min_repeat_secs: float = 0.02, repeats: int = 3) -> None:
        import wasmtime

        from ..artifact.toolchain import find_toolchain

        self.options = options
        self.target = options.tvm_target()
        self.work_dir = work_dir
        self.min_repeat_secs = min_repeat_secs
        self.repeats = repeats
        self.toolchain = find_toolchain()
        flags = ["-O2", f"-I{_RUNTIME_DIR}", *options.c_flags()]
        (work_dir / "driver.c").write_text(_DRIVER_SOURCE)
        self.support = [work_dir / "driver.o", work_dir / "runtime.o"]
        self.toolchain.compile_c(work_dir / "driver.c", self.support[0], flags)
        self.toolchain.compile_c(_RUNTIME_DIR / "wasm_build_runtime.c", self.support[1], flags)
        config = wasmtime.Config()
        config.wasm_simd = True
        config.wasm_relaxed_simd = options.relaxed_simd
        self.engine = wasmtime.Engine(config)
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
            self.toolchain.link_reactor([f"{stem}.o", *self.support], Path(f"{stem}.wasm"), _DRIVER_EXPORTS)
        finally:
            os.unlink(f"{stem}.o")
        return Path(f"{stem}.wasm")

    def time(self, wasm: Path, args_info: list[Any]) -> list[float]:
        """Seconds per call of the candidate in `wasm`, one value per repeat."""
        import wasmtime

        store = wasmtime.Store(self.engine)
        store.set_wasi(wasmtime.WasiConfig())
        linker = wasmtime.Linker(self.engine)
        linker.define_wasi()
        instance = linker.instantiate(store, wasmtime.Module.from_file(self.engine, str(wasm)))
        exports = instance.exports(store)
        exports["_initialize"](store)
        args, count = _write_arguments(store, exports, args_info)

        def run(number: int) -> float:
            secs = exports["wbt_time"](store, args, count, number)
            if secs < 0:
                raise RuntimeError(f"the kernel failed: {_c_string(store, exports, exports['wbt_error'](store))}")
            return secs

        first = run(1)
        number = max(1, min(100_000, math.ceil(self.min_repeat_secs / max(first, 1e-9))))
        return [run(number) / number for _ in range(self.repeats)]


def _write_arguments(store: Any, exports: Any, args_info: list[Any]) -> tuple[int, int]:
    """DLTensors with random contents in the module's memory; returns (TVMFFIAny array, count)."""
    memory = exports["memory"]
    rng = np.random.default_rng(0)

    def alloc(size: int) -> int:
        address = exports["malloc"](store, size + _ALIGN)
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


def _c_string(store: Any, exports: Any, address: int) -> str:
    raw = bytes(exports["memory"].read(store, address, address + 512))
    return raw.split(b"\0", 1)[0].decode("utf-8", "replace") or "no message"


def _error_text(exc: BaseException) -> str:
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
                results.append(BuilderResult(None, _error_text(exc)))
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
                futures.append(LocalRunnerFuture(error_message=_error_text(exc)))
            finally:
                wasm.unlink(missing_ok=True)
        return futures


@derived_object
class _Progress(PyMeasureCallback):
    """Logs each batch (trials so far, best time per task) and enforces the time budget."""

    def __init__(self, entries: list[_Entry], budget: int, deadline: float, log: Log) -> None:
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


# -- tuning a model --------------------------------------------------------------------------


def extract_tasks(module: tvm.IRModule, options: TargetOptions) -> list[Any]:
    """The fused PrimFuncs of `module`, exactly as `compile.lower` sees them before scheduling."""
    return _extract(module, options)[0]


def _extract(module: tvm.IRModule, options: TargetOptions) -> tuple[list[Any], dict[str, list[int]]]:
    """Tasks, and for each task name the kernel parameters the model passes constants
    (weights): a default build stores those packed, so the default is timed that way."""
    from ..compiler.schedules.packed_weights import constant_params

    target = options.tvm_target()
    with target, tvm.transform.PassContext(opt_level=3):
        fused = tvm.transform.Sequential([*optimize_passes(), *legalize_passes(target, options)])(module)
    constants = {gvar.name_hint: sorted(params) for gvar, params in constant_params(fused).items() if params}
    return list(ms.relax_integration.extract_tasks(fused, target)), constants


def _flops(task: Any) -> float | None:
    """Estimated FLOPs of all calls of `task`, or None where meta-schedule's analysis fails."""
    try:
        return float(s_tir.analysis.estimate_tir_flops(task.dispatched[0])) * task.weight
    except Exception:  # pylint: disable=broad-except
        return None


def _left_to_default(task: Any, flops: float | None, total_flops: float) -> str | None:
    """Why `task` keeps its default schedule instead of being searched, or None.

    Meta-schedule's task scheduler estimates each task's FLOPs first, and that analysis
    rejects some TIR (the `Let` bindings of wasm-build's vectorized exp/erf/softmax
    kernels), which would abort the whole tuning run. Winograd kernels need their tile
    loops unrolled to fold the transform coefficients, which its search spaces do not do.
    Kernels with a negligible share of the work (transposes, a mean) are not worth the
    search's set-up, several seconds per kernel before its first measurement.
    """
    from ..compiler.schedules.winograd_transforms import has_transforms

    if has_transforms(task.dispatched[0]["main"]):
        return "Winograd convolutions"
    if flops is None:
        return "meta-schedule cannot analyse them"
    if flops < _MIN_WORK_SHARE * total_flops:
        return f"under {_MIN_WORK_SHARE:.0%} of the model's work each"
    return None


def _default_schedule(mod: tvm.IRModule, target: Any, constants: list[int] = ()) -> tvm.IRModule:
    """The task as a default build compiles it: wasm-build's default schedule when one applies,
    reading the constant parameters `constants` in the packed layout the build folds them into."""
    from ..compiler.schedules import default_schedule_pass
    from ..compiler.tiles import LAYOUT_FREE_ATTR

    main = mod["main"]
    if constants:
        main = main.with_attr(LAYOUT_FREE_ATTR, list(constants))
    copy = tvm.IRModule({"main": main}, attrs=mod.attrs)  # the pass may update its input in place
    with target:
        scheduled = default_schedule_pass(target)(copy)
    # A build packs the weights at compile time: time the kernel on packed arguments.
    return s_tir.transform.RemoveWeightLayoutRewriteBlock(skip_tensor_rewrite=True)(scheduled)


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
        import tvm.s_tir

        if getattr(tvm.s_tir, "tensor_intrin", None) is not None and not hasattr(tvm.s_tir.tensor_intrin, "__file__"):
            delattr(tvm.s_tir, "tensor_intrin")


_META_SCHEDULE_LOGGER = "tvm.s_tir.meta_schedule"


@contextmanager
def _meta_schedule_logging() -> Iterator[None]:
    """Run meta-schedule with a logging set-up of its own, whatever the caller's is.

    meta-schedule reconfigures its loggers with `logging.config.dictConfig`, copying the
    handlers already on its top logger by name; an unnamed handler (pytest's log capture,
    a notebook's or an application's set-up) makes that fail. Its handlers are taken off
    for the run and put back afterwards, and the console and log-file handlers it adds are
    closed and removed, so the next run starts from the same state. The top logger sits
    at WARNING: meta-schedule's console handler takes that level, its tables and per-trial
    lines stay in the log files, and progress is reported through `log` instead.
    """
    top = logging.getLogger(_META_SCHEDULE_LOGGER)
    saved = (list(top.handlers), top.level, top.propagate)
    before = {name: list(logger.handlers) for name, logger in _meta_schedule_loggers().items()}
    for handler in saved[0]:
        top.removeHandler(handler)
    top.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for name, logger in _meta_schedule_loggers().items():
            for handler in list(logger.handlers):
                if handler not in before.get(name, ()):
                    logger.removeHandler(handler)
                    handler.close()
        for handler in saved[0]:
            top.addHandler(handler)
        top.setLevel(saved[1])
        top.propagate = saved[2]


def _meta_schedule_loggers() -> dict[str, logging.Logger]:
    loggers = {
        name: logger
        for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith(_META_SCHEDULE_LOGGER) and isinstance(logger, logging.Logger)
    }
    loggers[_META_SCHEDULE_LOGGER] = logging.getLogger(_META_SCHEDULE_LOGGER)
    return loggers


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
        import xgboost  # noqa: F401
    except ImportError:
        log("tune: xgboost is not installed, so candidates are picked at random (pip install xgboost)")
        return ms.CostModel.create("random")
    return ms.CostModel.create("xgb", num_tuning_cores=threads)


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
    tasks, constants = _extract(module, options)
    tasks = [t for t in tasks if not (t.mod.attrs and t.mod.attrs.get(SCHEDULED_ATTR, False))]
    skipped: dict[str, list[str]] = {}
    searchable = []
    flops = {task.task_name: _flops(task) for task in tasks}
    total_flops = sum(f for f in flops.values() if f is not None)
    for task in _chosen_kernels(tasks, settings.kernels, log):
        reason = _left_to_default(task, flops[task.task_name], total_flops)
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
            entry = entries.setdefault(_workload_key(workload), _Entry(task.task_name, workload))
            entry.name = task.task_name
            task_entries.append(entry)
        log(
            f"tune: {len(tasks)} kernels, {settings.trials} trials"
            + (f", time budget {settings.time_budget:g} s" if settings.time_budget else "")
            + f", {sum(len(e.records) for e in entries.values())} records already in {database_path}"
        )

        database = _memory_database(entries, improving_only=False)
        progress = _Progress(task_entries, settings.trials, deadline, log)
        with _meta_schedule_logging():
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
            key = _workload_key(record.workload)
            if key in entries:
                entries[key].records.append(record)
        for entry in task_entries:
            entry.records = _unique_best(entry.records)
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


def _chosen_kernels(tasks: list[Any], patterns: tuple[str, ...], log: Log) -> list[Any]:
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
        candidates = [_default_schedule(mod, target, constants)] + ([tuned] if tuned is not None else [])
        # Each on its own arguments: the default may take its weights packed.
        args = [list(ms.arg_info.ArgInfo.from_prim_func(c["main"])) for c in candidates]
        wasms = [harness.build(candidate) for candidate in candidates]
        for _ in range(rounds):
            for wasm, arg_info, samples in zip(wasms, args, times):
                samples.extend(harness.time(wasm, arg_info))
    except Exception as exc:  # then the tuned records apply unconditionally, as before
        message = f"tune: could not compare with the default schedule, the tuned records apply as measured: {_error_text(exc)}"
        log(message)
        logger.warning(message)  # shown even when the build is not verbose
        return None, None
    finally:
        for wasm in wasms:
            wasm.unlink(missing_ok=True)
    medians = [float(np.median(samples)) for samples in times]
    return medians[0], (medians[1] if tuned is not None else None)


def _unique_best(records: list[Any]) -> list[Any]:
    """Records sorted by time, one per distinct trace, best first."""
    seen: set[str] = set()
    unique = []
    for record in sorted(records, key=lambda r: _mean_secs(r) or math.inf):
        trace = json.dumps(record.as_json()[0], sort_keys=True)
        if trace not in seen and _mean_secs(record) is not None:
            seen.add(trace)
            unique.append(record)
    return unique[:KEEP_RECORDS]
