"""Auto-tuning measured in wasmtime: meta-schedule without RPC.

- `database`: the tuning database file, and `apply_database_pass`, which builds run to
  apply it (only records that beat wasm-build's default schedule);
- `tasks`: the kernels a build makes, and which of them are worth searching;
- `harness`: candidates built into wasm reactors and timed in wasmtime;
- `tune`: `tune_model`, the search and its progress report;
- `logs`: meta-schedule's logging kept apart from the caller's.
"""

from __future__ import annotations

from .database import (
    DATABASE_FORMAT,
    SCHEDULED_ATTR,
    apply_database_pass,
    read_database,
    write_database,
)
from .harness import WasmBuilder, WasmHarness, WasmRunner
from .tasks import extract_tasks
from .tune import tune_model

__all__ = [
    "DATABASE_FORMAT",
    "SCHEDULED_ATTR",
    "WasmBuilder",
    "WasmHarness",
    "WasmRunner",
    "apply_database_pass",
    "extract_tasks",
    "read_database",
    "tune_model",
    "write_database",
]
