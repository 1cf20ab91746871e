"""Time a wasm-build artifact in wasmtime with as little host overhead as possible.

A call from Python into a wasmtime export costs tens of microseconds
(wasmtime-py checks the function type on every call): that is noise for
ResNet-18 and a third of the time of a small MLP. So the steady state is
timed *inside* wasm: `link_timing_harness` links the model's own `libNAME.a`
with a small C loop (`wasm_build.wasm.drivers.RUN_TIMER`) that calls `NAME_run`
n times and reads the WASI monotonic clock around each call. The Python-to-wasm
call cost is measured anyway (on `NAME_num_inputs`, which does nothing) and
reported.

Start-up is timed on the shipped `NAME.wasm`, following the host protocol of
`wasm_build.host`: Cranelift compile (once per machine: wasmtime can cache or
precompile it), then from the precompiled module in a `.cwasm` file: deserialize, instantiate,
`_initialize` + `NAME_init`, first run.
"""

from __future__ import annotations

import statistics
import struct
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from wasm_build.artifact.assemble import read_manifest
from wasm_build.artifact.toolchain import find_toolchain
from wasm_build.wasm import engine as wasm_engine
from wasm_build.wasm.drivers import RUN_TIMER, link_with_model

[HARNESS_EXPORT] = RUN_TIMER.exports  # the timing loop's export


@dataclass
class WasmTiming:
    compile_ms: float
    startup_ms: float  # deserialize + instantiate + _initialize/init + first run
    phases_ms: dict[str, float]
    median_ms: float
    min_ms: float
    runs: int
    timed_in: str  # "wasm" (clock inside the module) or "python" (per export call)
    call_overhead_us: float
    outputs: list[np.ndarray] = field(repr=False)
    times_ms: list[float] = field(default_factory=list, repr=False)  # every timed run


def link_timing_harness(artifact_dir: Path, output: Path) -> Path:
    """Link `artifact_dir/libNAME.a` with the timing loop (`RUN_TIMER`) into a reactor at `output`."""
    manifest = read_manifest(artifact_dir)
    output.parent.mkdir(parents=True, exist_ok=True)
    return link_with_model(find_toolchain(), RUN_TIMER, artifact_dir, manifest, output, ["-std=gnu11"])


class _Instance:
    """One instantiated reactor with the model's buffers placed once."""

    def __init__(self, engine, module, manifest: dict, inputs: list[np.ndarray], phases: dict[str, float]) -> None:
        import wasmtime

        self.name = manifest["name"]
        start = time.perf_counter_ns()
        self.store = wasmtime.Store(engine)
        wasi = wasmtime.WasiConfig()
        wasi.inherit_stderr()
        self.store.set_wasi(wasi)
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        self.exports = linker.instantiate(self.store, module).exports(self.store)
        phases["instantiate"] = _ms(start)

        start = time.perf_counter_ns()
        if "_initialize" in self.exports:
            self.exports["_initialize"](self.store)
        status = self.exports[f"{self.name}_init"](self.store)
        phases["init"] = _ms(start)
        self.check("init", status)

        self.memory = self.exports["memory"]
        self.outputs_meta = manifest["outputs"]
        in_bytes = [np.ascontiguousarray(x).tobytes() for x in inputs]
        out_sizes = [o["nbytes"] for o in self.outputs_meta]
        self.out_ptrs = [self.place(bytes(size)) for size in out_sizes]
        self.out_sizes = out_sizes
        self.args = (
            self.pointers([self.place(b) for b in in_bytes]),
            self.pointers([len(b) for b in in_bytes]),
            self.pointers(self.out_ptrs),
            self.pointers(out_sizes),
        )

    def place(self, data: bytes) -> int:
        address = self.exports["malloc"](self.store, max(len(data), 1))
        if address == 0:
            raise MemoryError(f"{self.name}: malloc({len(data)}) failed inside the wasm module")
        self.memory.write(self.store, data, address)
        return address

    def pointers(self, values: list[int]) -> int:
        return self.place(struct.pack(f"<{max(len(values), 1)}I", *(values or [0])))

    def run(self) -> None:
        self.check("run", self.exports[f"{self.name}_run"](self.store, *self.args))

    def read_outputs(self) -> list[np.ndarray]:
        return [
            np.frombuffer(bytes(self.memory.read(self.store, ptr, ptr + size)), dtype=o["dtype"]).reshape(o["shape"])
            for ptr, size, o in zip(self.out_ptrs, self.out_sizes, self.outputs_meta)
        ]

    def loop(self, n: int) -> list[float]:
        """`n` runs timed inside wasm; milliseconds each."""
        times = self.place(bytes(8 * n))
        try:
            self.check("run", self.exports[HARNESS_EXPORT](self.store, n, *self.args, times))
            raw = bytes(self.memory.read(self.store, times, times + 8 * n))
        finally:
            self.exports["free"](self.store, times)
        return [ns / 1e6 for ns in struct.unpack(f"<{n}q", raw)]

    def call_overhead_us(self, calls: int = 2000) -> float:
        noop = self.exports[f"{self.name}_num_inputs"]
        start = time.perf_counter_ns()
        for _ in range(calls):
            noop(self.store)
        return (time.perf_counter_ns() - start) / calls / 1e3

    def check(self, function: str, status: int) -> None:
        if status == 0:
            return
        address = self.exports[f"{self.name}_last_error"](self.store)
        end = min(address + 512, self.memory.data_len(self.store))
        message = bytes(self.memory.read(self.store, address, end)).split(b"\0", 1)[0].decode("utf-8", "replace")
        raise RuntimeError(f"{self.name}_{function} returned {status}: {message}")


class SteadyTimer:
    """A model's timing harness instantiated once, its buffers placed once: `times(n)` runs it
    `n` more times, timed inside wasm (for measurements taken in rounds, like the sweep's)."""

    def __init__(self, artifact_dir: Path, inputs: list[np.ndarray], harness: Path) -> None:
        import wasmtime

        engine = wasm_engine.engine()
        self._instance = _Instance(engine, wasmtime.Module.from_file(engine, str(harness)), read_manifest(artifact_dir),
                                   inputs, {})
        self._instance.run()  # warm, like the shipped module's first run

    def times(self, n: int) -> list[float]:
        return self._instance.loop(n)

    def outputs(self) -> list[np.ndarray]:
        return self._instance.read_outputs()


def _ms(start: int) -> float:
    return (time.perf_counter_ns() - start) / 1e6


def time_artifact(
    artifact_dir: Path, inputs: list[np.ndarray], repeat: int, max_seconds: float, harness: Path | None
) -> WasmTiming:
    """Start-up phases of `NAME.wasm` and the steady-state median of `repeat`
    runs (fewer once `max_seconds` have passed, never fewer than 3), timed in
    `harness` when given, else per Python call."""
    import wasmtime

    manifest = read_manifest(artifact_dir)
    if manifest["weights"]["mode"] != "embed":
        raise ValueError(f"{artifact_dir}: the bench builds with embedded weights, not {manifest['weights']['mode']!r}")
    wasm_path = artifact_dir / f"{manifest['name']}.wasm"
    engine = wasm_engine.engine()

    start = time.perf_counter_ns()
    precompiled = wasmtime.Module.from_file(engine, str(wasm_path)).serialize()
    compile_ms = _ms(start)

    phases: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="wasm-build-bench-") as tmp:
        # As hosts deploy precompiled modules (`wasmtime compile`, Spin, wasmCloud): from a
        # file, which wasmtime maps, weights included, instead of copying it into memory.
        cwasm = Path(tmp) / f"{manifest['name']}.cwasm"
        cwasm.write_bytes(precompiled)
        begin = time.perf_counter_ns()
        module = wasmtime.Module.deserialize_file(engine, str(cwasm))
        phases["deserialize"] = _ms(begin)
        instance = _Instance(engine, module, manifest, inputs, phases)
        start = time.perf_counter_ns()
        instance.run()
        phases["first run"] = _ms(start)
        startup_ms = _ms(begin)
    outputs = instance.read_outputs()
    call_overhead_us = instance.call_overhead_us()

    if harness is not None:
        timed = _Instance(engine, wasmtime.Module.from_file(engine, str(harness)), manifest, inputs, {})
        timed.run()  # warm, like the shipped module's first run
        # Chunks of about 0.25 s, so the time budget is checked between them.
        per_chunk = max(1, min(repeat, int(250 / max(phases["first run"], 1e-3))))
        times: list[float] = []
        deadline = time.perf_counter() + max_seconds
        while len(times) < repeat and (len(times) < 3 or time.perf_counter() < deadline):
            times += timed.loop(min(per_chunk, repeat - len(times)))
        timed_in = "wasm"
    else:
        times = []
        deadline = time.perf_counter() + max_seconds
        while len(times) < repeat and (len(times) < 3 or time.perf_counter() < deadline):
            start = time.perf_counter_ns()
            instance.run()
            times.append(_ms(start))
        timed_in = "python"

    return WasmTiming(
        compile_ms, startup_ms, phases, statistics.median(times), min(times), len(times), timed_in, call_overhead_us, outputs,
        times,
    )
