"""Bounded dynamic dimensions (issue 21): a run at length L against an artifact pinned at L.

    python bench/dims.py [--length 16] [--max-len 128] [--rounds 10] [--runs 200]

For a BERT-style encoder (`input_ids` and `attention_mask` [1, seq]) and a causal decoder
(`ids` [1, seq]), both from `tests/support/torch_models.py` at a realistic width, it builds
two artifacts from the same seeded weights: one with `seq` in 1..MAX_LEN (torch.export `Dim`),
one exported at length L (static shapes). Both are timed inside wasm (`NAME_run_dims` at L
and `NAME_run`, each in a C loop reading the WASI clock, no host call per run) in
alternating rounds on one wasmtime engine, and their outputs are compared. It prints a
Markdown table; the numbers go to docs/performance-journal.md by hand.
"""

from __future__ import annotations

import os

os.environ["TVM_NUM_THREADS"] = "1"  # before TVM is imported: its thread pool reads it once

import argparse
import platform
import statistics
import struct
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
for _path in (HERE.parent, HERE.parent / "src"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

import numpy as np  # noqa: E402

from wasm_build.artifact.assemble import read_manifest  # noqa: E402
from wasm_build.artifact.toolchain import find_toolchain  # noqa: E402
from wasm_build.wasm import engine as wasm_engine  # noqa: E402
from wasm_build.wasm.drivers import RUN_DIMS_TIMER, RUN_TIMER, link_with_model  # noqa: E402


@dataclass(frozen=True)
class BenchModel:
    """One model of the comparison: how to make it, its inputs' names and their values at a length."""

    name: str
    inputs: tuple[str, ...]
    vocab: int


MODELS = (
    BenchModel("encoder", ("input_ids", "attention_mask"), 1000),
    BenchModel("decoder", ("ids",), 1000),
)


def _module(model: BenchModel, max_len: int) -> Any:
    import torch

    from tests.support import torch_models

    torch.manual_seed(0)  # the same weights for the dynamic and the pinned export
    if model.name == "encoder":
        return torch_models.Encoder(vocab=model.vocab, d=128, heads=4, ffn=512, layers=2, max_len=max_len).eval()
    return torch_models.Decoder(vocab=model.vocab, d=128, heads=4, max_len=max_len).eval()


def _inputs(model: BenchModel, length: int) -> list[np.ndarray]:
    rng = np.random.default_rng(length)
    ids = rng.integers(0, model.vocab, (1, length)).astype(np.int64)
    return [ids, np.ones((1, length), np.int64)] if len(model.inputs) == 2 else [ids]


def export(model: BenchModel, path: Path, length: int, max_len: int, dynamic: bool) -> Path:
    import torch

    example = tuple(torch.from_numpy(x) for x in _inputs(model, length))
    shapes = None
    if dynamic:
        seq = torch.export.Dim("seq", min=1, max=max_len)
        shapes = {name: {1: seq} for name in model.inputs}
    program = torch.export.export(_module(model, max_len), example, dynamic_shapes=shapes)
    torch.export.save(program, str(path))
    return path


def build(model: BenchModel, out: Path, length: int, max_len: int, dynamic: bool) -> Path:
    from tests.support import build as build_model

    name = f"{model.name}_{'dyn' if dynamic else f'pin{length}'}"
    source = export(model, out / f"{name}.pt2", length, max_len, dynamic)
    # torch.export names the symbol s0, s1...: the build names it through the first input.
    inputs = {model.inputs[0]: {"shape": [1, "seq"]}} if dynamic else {}
    result = build_model(source, name, out, inputs=inputs, smoke_test=False)
    return result.directory


class Timed:
    """A reactor of `libNAME.a` and a timing loop, its buffers placed once."""

    def __init__(self, directory: Path, inputs: list[np.ndarray], work: Path) -> None:
        import wasmtime

        manifest = read_manifest(directory)
        self.name, self.dynamic = manifest["name"], bool(manifest.get("dims"))
        driver = RUN_DIMS_TIMER if self.dynamic else RUN_TIMER
        harness = link_with_model(find_toolchain(), driver, directory, manifest, work / f"{self.name}_timed.wasm")
        engine = wasm_engine.engine()
        self.store = wasmtime.Store(engine)
        self.store.set_wasi(wasmtime.WasiConfig())
        linker = wasmtime.Linker(engine)
        linker.define_wasi()
        self.exports = linker.instantiate(self.store, wasmtime.Module.from_file(engine, str(harness))).exports(self.store)
        if "_initialize" in self.exports:
            self.exports["_initialize"](self.store)
        self.memory = self.exports["memory"]
        self.check(self.exports[f"{self.name}_init"](self.store))
        sizes = [o.get("max_nbytes", o.get("nbytes")) for o in manifest["outputs"]]  # static outputs have nbytes
        self.outputs = [(self.place(bytes(size)), size) for size in sizes]
        self.output_ranks = [len(o["shape"]) for o in manifest["outputs"]]
        data = [np.ascontiguousarray(x).tobytes() for x in inputs]
        args = [self.words([self.place(d) for d in data]), self.words([len(d) for d in data])]
        if self.dynamic:  # NAME_run_dims(inputs, input_shapes, input_sizes, outputs, output_shapes, output_sizes)
            shapes = self.place(struct.pack(f"<{sum(x.ndim for x in inputs)}q", *[d for x in inputs for d in x.shape]))
            self.output_shapes = self.place(bytes(8 * sum(self.output_ranks)))
            args = [args[0], shapes, args[1], self.words([p for p, _ in self.outputs]), self.output_shapes]
        else:
            args.append(self.words([p for p, _ in self.outputs]))
        self.args = (*args, self.words(sizes))
        self.loop_export = self.exports[driver.exports[0]]

    def place(self, data: bytes) -> int:
        address = self.exports["malloc"](self.store, max(len(data), 1))
        self.memory.write(self.store, data, address)
        return address

    def words(self, values: list[int]) -> int:
        return self.place(struct.pack(f"<{len(values)}I", *values))

    def check(self, status: int) -> None:
        if status != 0:
            address = self.exports[f"{self.name}_last_error"](self.store)
            message = bytes(self.memory.read(self.store, address, address + 300)).split(b"\0")[0].decode()
            raise RuntimeError(f"{self.name}: status {status}: {message}")

    def loop(self, runs: int) -> list[float]:
        """`runs` runs timed inside wasm, milliseconds each."""
        times = self.place(bytes(8 * runs))
        self.check(self.loop_export(self.store, runs, *self.args, times))
        raw = bytes(self.memory.read(self.store, times, times + 8 * runs))
        self.exports["free"](self.store, times)
        return [ns / 1e6 for ns in struct.unpack(f"<{runs}q", raw)]

    def read_outputs(self) -> list[np.ndarray]:
        shapes: list[tuple[int, ...]] = []
        if self.dynamic:
            flat = struct.unpack(f"<{sum(self.output_ranks)}q", bytes(self.memory.read(
                self.store, self.output_shapes, self.output_shapes + 8 * sum(self.output_ranks))))
            for rank in self.output_ranks:
                shapes.append(tuple(flat[:rank]))
                flat = flat[rank:]
        arrays = []
        for i, (address, size) in enumerate(self.outputs):
            raw = np.frombuffer(bytes(self.memory.read(self.store, address, address + size)), np.float32)
            arrays.append(raw[: int(np.prod(shapes[i]))].reshape(shapes[i]) if shapes else raw)
        return arrays


@dataclass(frozen=True)
class Result:
    model: str
    dynamic_median: float
    dynamic_min: float
    pinned_median: float
    pinned_min: float
    max_error: float  # of either artifact's outputs against PyTorch's


def measure(model: BenchModel, out: Path, length: int, max_len: int, rounds: int, runs: int) -> Result:
    inputs = _inputs(model, length)
    dynamic = Timed(build(model, out, length, max_len, True), inputs, out)
    pinned = Timed(build(model, out, length, max_len, False), inputs, out)
    times: dict[bool, list[float]] = {True: [], False: []}
    dynamic.loop(20), pinned.loop(20)  # warm caches and the arena
    for r in range(rounds):  # alternating, so load from elsewhere lands on both
        for timed in (dynamic, pinned) if r % 2 == 0 else (pinned, dynamic):
            times[timed.dynamic] += timed.loop(runs)
    return Result(model.name, statistics.median(times[True]), min(times[True]), statistics.median(times[False]),
                  min(times[False]), max(_max_error(model, inputs, max_len, t.read_outputs()) for t in (dynamic, pinned)))


def _max_error(model: BenchModel, inputs: list[np.ndarray], max_len: int, got: list[np.ndarray]) -> float:
    """Largest difference of `got` from PyTorch's outputs on the same inputs."""
    import torch

    with torch.no_grad():
        want = _module(model, max_len)(*(torch.from_numpy(x) for x in inputs))
    want = want if isinstance(want, tuple) else (want,)
    return max(float(np.abs(g.reshape(-1) - w.numpy().reshape(-1)).max()) for g, w in zip(got, want))


def table(results: list[Result], length: int, max_len: int) -> str:
    lines = [
        f"| model | dynamic (seq 1..{max_len}) at {length}: median / min ms | pinned at {length}: median / min ms "
        "| ratio of medians | ratio of minima | max error vs PyTorch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.model} | {r.dynamic_median:.3f} / {r.dynamic_min:.3f} | {r.pinned_median:.3f} / {r.pinned_min:.3f} "
            f"| {r.dynamic_median / r.pinned_median:.3f} | {r.dynamic_min / r.pinned_min:.3f} | {r.max_error:.2g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/dims.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--length", type=int, default=16, help="the length timed (default 16)")
    parser.add_argument("--max-len", type=int, default=128, help="the dynamic artifact's upper bound (default 128)")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds per model (default 10)")
    parser.add_argument("--runs", type=int, default=200, help="timed runs per round and artifact (default 200)")
    parser.add_argument("--models", nargs="+", default=[m.name for m in MODELS], choices=[m.name for m in MODELS])
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="wasm-build-bench-dims-") as tmp:
        results = [
            measure(m, Path(tmp), args.length, args.max_len, args.rounds, args.runs) for m in MODELS if m.name in args.models
        ]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores; "
          f"{args.rounds} rounds x {args.runs} runs each, timed inside wasm (wasmtime {_wasmtime_version()})")
    print(table(results, args.length, args.max_len))
    return 0


def _wasmtime_version() -> str:
    from importlib.metadata import version

    return version("wasmtime")


if __name__ == "__main__":
    sys.exit(main())
