"""The tuning database: one JSON file in the user's repository (see `docs/tuning.md`).

It holds the workloads (kernels, by structural hash), the best records of each, and the
times of wasm-build's default schedule and of the best record, measured side by side at
the end of the last tuning run. `apply_database_pass` makes the pass builds run
after fusion (``compiler.pipeline.lower(..., tuned=apply_database_pass(path, target))``):
it applies a record only where it beat that default, so a short tuning run never makes
a model slower.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tvm
from tvm import relax
from tvm.s_tir import meta_schedule as ms

from ..artifact.files import write_text_atomic
from ..compiler.schedules import SCHEDULES_REVISION
from ..compiler.work import WORK_ATTR, work_of
from ..errors import WasmBuildError

logger = logging.getLogger(__name__)

DATABASE_FORMAT = "wasm-build-tuning-database"
DATABASE_VERSION = 1
# Records kept per workload: the best ones seed the next tuning run's search.
KEEP_RECORDS = 16
# The attribute meta-schedule, dlight and wasm-build's default schedules all read.
SCHEDULED_ATTR = "tirx.is_scheduled"


@dataclass
class Entry:
    """One workload of the database file and its best records."""

    name: str
    workload: Any  # ms.database.Workload
    default_secs: float | None = None  # the default schedule, timed beside...
    tuned_secs: float | None = None  # ...the best record, at the end of the last tuning run
    records: list[Any] = field(default_factory=list)  # ms.database.TuningRecord
    # schedules.SCHEDULES_REVISION of the default schedule timed (None: before revisions were kept)
    schedules_revision: int | None = None

    def best_secs(self) -> float | None:
        times = [mean_secs(r) for r in self.records]
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


def mean_secs(record: Any) -> float | None:
    """The mean of a record's measured times, None when it has none."""
    secs = [float(s) for s in (record.run_secs or [])]
    return sum(secs) / len(secs) if secs else None


def workload_key(workload: Any) -> str:
    return str(workload.as_json()[0])  # the structural hash, as meta-schedule writes it


def unique_best(records: list[Any]) -> list[Any]:
    """Records sorted by time, one per distinct trace, best first."""
    seen: set[str] = set()
    unique = []
    for record in sorted(records, key=lambda r: mean_secs(r) or math.inf):
        trace = json.dumps(record.as_json()[0], sort_keys=True)
        if trace not in seen and mean_secs(record) is not None:
            seen.add(trace)
            unique.append(record)
    return unique[:KEEP_RECORDS]


# -- the file ------------------------------------------------------------------------------


def read_database(path: str | Path) -> dict[str, Entry]:
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
    entries: dict[str, Entry] = {}
    for item in data.get("workloads", []):
        workload = ms.database.Workload.from_json(item["workload"])
        entry = Entry(item.get("name", ""), workload, item.get("default-secs"), item.get("tuned-secs"))
        entry.schedules_revision = item.get("default-schedules")
        entry.records = [ms.database.TuningRecord.from_json(r, workload) for r in item.get("records", [])]
        entries[workload_key(workload)] = entry
    return entries


def write_database(path: str | Path, entries: dict[str, Entry]) -> None:
    """Write `entries` atomically, sorted by name, each record on its own line for readable diffs."""
    blocks = []
    for entry in sorted(entries.values(), key=lambda e: (e.name, workload_key(e.workload))):
        records = sorted(entry.records, key=lambda r: mean_secs(r) or math.inf)[:KEEP_RECORDS]
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


# -- meta-schedule's view ------------------------------------------------------------------


def memory_database(entries: dict[str, Entry], *, improving_only: bool) -> Any:
    """A meta-schedule database of the records of `entries` (of those that beat the default
    schedule, when `improving_only`)."""
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


def apply_database_pass(database_path: str, target: Any) -> tvm.transform.Pass:
    """Replace each PrimFunc found in the database by its best tuned schedule.

    Runs right after FuseTIR, under `with target`. Tuned functions carry
    `tirx.is_scheduled`, so the default schedules leave them alone.
    """

    @tvm.transform.module_pass(opt_level=0, name="WasmApplyTuningDatabase")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        entries = read_database(database_path)
        # Records that beat another revision's default (the ones that lost then stay unapplied anyway).
        stale = sorted(e.name for e in entries.values() if e.stale() and e.beat_default())
        if stale:
            logger.warning(
                "%s: %d tuned kernels were compared with the default schedules of another wasm-build "
                "(%s) and are not applied; re-run `wasm-build tune` to compare them with this one",
                database_path, len(stale), ", ".join(stale),
            )
        database = memory_database(entries, improving_only=True)
        if len(database) == 0:
            return mod
        # Records are keyed by the kernel as tuning saw it: structural equality counts attributes,
        # so the recorded work comes off for the look-up and goes back on afterwards.
        works = {gvar: work_of(func) for gvar, func in mod.functions_items() if isinstance(func, tvm.tirx.PrimFunc)}
        plain = _without_work(mod)
        before = dict(plain.functions_items())
        with target, database:
            tuned = relax.transform.MetaScheduleApplyDatabase()(plain)
        for gvar, func in tuned.functions_items():
            if not isinstance(func, tvm.tirx.PrimFunc):
                continue
            # Mark what changed, whether or not this TVM version marks it already.
            if not func.same_as(before.get(gvar)) and not (func.attrs and func.attrs.get(SCHEDULED_ATTR, False)):
                func = func.with_attr(SCHEDULED_ATTR, True)
            if works.get(gvar) is not None and work_of(func) is None:
                func = func.with_attr(WORK_ATTR, list(works[gvar]))
            tuned[gvar] = func
        return tuned

    return _pass


def _without_work(mod: tvm.IRModule) -> tvm.IRModule:
    """``mod`` with `WORK_ATTR` taken off every kernel."""
    functions = {
        gvar: func.without_attr(WORK_ATTR) if isinstance(func, tvm.tirx.PrimFunc) and work_of(func) is not None else func
        for gvar, func in mod.functions_items()
    }
    return tvm.IRModule(functions, attrs=mod.attrs, global_infos=mod.global_infos)
