"""The contraction shape sweep: dense matmuls, 1x1 convs and attention products of many shapes
(ragged ones included), each a model of its own, in GMAC/s against the machine's measured
SIMD128 peak and against onnxruntime-web.

Every shape is built with default settings and timed inside wasm like the models
(`wasm_timing.time_artifact`); `wasm_build.wasm.peak` measures the peak in every round, right
before that round's shapes, and a shape's fraction of peak is the median over the rounds of its
fastest run in a round against that round's peak: the machine's speed drifts between rounds
(one session's peaks: 12.3 to 17.2 GMAC/s), and a shape set against the peak measured beside
it is steadier than its fastest run set against the best peak of the session. onnxruntime-web runs all shapes of
a round in one Node process; its times include a `session.run` call from JavaScript (tens of
microseconds: shapes below a few hundred microseconds flatter wasm-build).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from wasm_build.testing.models import GraphBuilder, random_inputs, save


@dataclass(frozen=True)
class Shape:
    kind: str  # "matmul" (x @ constant W), "conv1x1" (NCHW, constant weights), "Q·Kᵀ", "attention·V"
    dims: tuple[int, ...]  # matmul (M, K, N); conv1x1 (C_in, C_out, H, W); attention (heads, seq, head dim)

    @property
    def name(self) -> str:
        tag = {"matmul": "mm", "conv1x1": "conv", "Q·Kᵀ": "qk", "attention·V": "av"}[self.kind]
        return f"{tag}_{'x'.join(map(str, self.dims))}"

    @property
    def macs(self) -> int:
        if self.kind == "matmul":
            m, k, n = self.dims
            return m * k * n
        if self.kind == "conv1x1":
            c_in, c_out, h, w = self.dims
            return c_in * c_out * h * w
        heads, seq, dim = self.dims
        return heads * seq * seq * dim

    @property
    def label(self) -> str:
        if self.kind == "matmul":
            return "{} x {} @ {} x {}".format(self.dims[0], self.dims[1], self.dims[1], self.dims[2])
        if self.kind == "conv1x1":
            c_in, c_out, h, w = self.dims
            return f"{c_in} -> {c_out} channels, {h}x{w}"
        heads, seq, dim = self.dims
        return f"{heads} heads, {seq} tokens, head dim {dim}"

    @property
    def dense(self) -> bool:
        """Held to the dense goal (matmuls and 1x1 convs), else the attention one."""
        return self.kind in ("matmul", "conv1x1")

    def model(self) -> onnx.ModelProto:
        return _BUILDERS[self.kind](self.name, *self.dims)


# Whole tiles and ragged ones: token counts of ViT (197), CLIP's text (77), 7x7 planes (49),
# 50 classes, a K not a multiple of 4 (63), transformer and CNN shapes of the benchmark models.
SHAPES: tuple[Shape, ...] = (
    Shape("matmul", (64, 128, 512)),
    Shape("matmul", (128, 256, 256)),
    Shape("matmul", (256, 768, 768)),
    Shape("matmul", (196, 192, 768)),
    Shape("matmul", (197, 192, 576)),
    Shape("matmul", (197, 192, 768)),
    Shape("matmul", (197, 768, 192)),
    Shape("matmul", (128, 768, 3072)),
    Shape("matmul", (77, 512, 768)),
    Shape("matmul", (49, 512, 128)),
    Shape("matmul", (50, 256, 100)),
    Shape("matmul", (100, 63, 250)),
    Shape("matmul", (32, 32, 32)),
    Shape("conv1x1", (64, 64, 25, 20)),
    Shape("conv1x1", (96, 576, 14, 14)),
    Shape("conv1x1", (160, 960, 7, 7)),
    Shape("conv1x1", (32, 192, 28, 28)),
    Shape("Q·Kᵀ", (3, 197, 64)),
    Shape("attention·V", (3, 197, 64)),
    Shape("Q·Kᵀ", (12, 197, 64)),
    Shape("attention·V", (12, 197, 64)),
    Shape("Q·Kᵀ", (8, 77, 64)),
    Shape("attention·V", (8, 77, 64)),
    Shape("Q·Kᵀ", (4, 64, 32)),
    Shape("Q·Kᵀ", (16, 128, 64)),
    Shape("attention·V", (2, 512, 128)),
)


def _matmul(name: str, m: int, k: int, n: int) -> onnx.ModelProto:
    g = GraphBuilder(name, 0)
    x = g.input("x", [m, k])
    g.output(g.op("MatMul", [x, g.normal((k, n), 1 / np.sqrt(k))]), "y", [m, n])
    return g.build()


def _conv1x1(name: str, c_in: int, c_out: int, h: int, w: int) -> onnx.ModelProto:
    g = GraphBuilder(name, 0)
    x = g.input("x", [1, c_in, h, w])
    g.output(g.op("Conv", [x, g.normal((c_out, c_in, 1, 1), 1 / np.sqrt(c_in))]), "y", [1, c_out, h, w])
    return g.build()


def _scores(name: str, heads: int, seq: int, dim: int) -> onnx.ModelProto:
    g = GraphBuilder(name, 0)
    q, k = g.input("q", [1, heads, seq, dim]), g.input("k", [1, heads, dim, seq])
    g.output(g.op("MatMul", [q, k]), "y", [1, heads, seq, seq])
    return g.build()


def _context(name: str, heads: int, seq: int, dim: int) -> onnx.ModelProto:
    g = GraphBuilder(name, 0)
    a, v = g.input("a", [1, heads, seq, seq]), g.input("v", [1, heads, seq, dim])
    g.output(g.op("MatMul", [a, v]), "y", [1, heads, seq, dim])
    return g.build()


_BUILDERS: dict[str, Callable[..., onnx.ModelProto]] = {
    "matmul": _matmul, "conv1x1": _conv1x1, "Q·Kᵀ": _scores, "attention·V": _context,
}


@dataclass
class _Prepared:
    shape: Shape
    onnx_path: Path
    inputs: dict[str, np.ndarray]
    timer: Any  # wasm_timing.SteadyTimer
    times: list[float]
    web_times: list[float]
    round_min_ms: list[float]  # the fastest run of each round


def run_sweep(out: Path, rounds: int, build: Callable[[str, Path], Path], timer: Callable[[Path, list], Any], peers,
              log: Callable[[str], None], skip_web: bool) -> dict[str, Any]:
    """Build every shape of `SHAPES` (`build(name, onnx_path)` returns the artifact's directory),
    make its steady-state timer (`timer(directory, inputs in graph order)`), and time it in
    `rounds` rounds, onnxruntime-web (`peers`) too unless `skip_web`, the peak measured before
    each round."""
    from wasm_build.wasm.peak import measure_peak

    prepared = []
    for shape in SHAPES:
        model = shape.model()
        path = save(model, out / "sweep" / "models" / f"{shape.name}.onnx")
        inputs = random_inputs(model, seed=0)
        directory = build(shape.name, path)
        prepared.append(_Prepared(shape, path, inputs, timer(directory, [inputs[i.name] for i in model.graph.input]), [], [], []))
        log(f"sweep: built {shape.name}")
    peaks, notes = [], []
    for index in range(rounds):
        peaks.append(measure_peak())
        log(f"sweep: round {index + 1} of {rounds} (peak {peaks[-1].gmacs:.1f} GMAC/s)")
        for item in prepared:
            batch = item.timer.times(int(np.clip(1e8 / item.shape.macs, 5, 200)))  # ~5 ms a round
            item.times += batch
            item.round_min_ms.append(min(batch))
        if not skip_web:
            try:
                jobs = [peers.NodeJob(i.shape.name, i.onnx_path, i.inputs) for i in prepared]
                web, _ = peers.onnxruntime_web(jobs, out / "sweep" / "node", 20, 2.0)
            except peers.PeerUnavailable as exc:
                notes.append(f"onnxruntime-web skipped: {str(exc).splitlines()[0]}")
                skip_web = True
                continue
            for item in prepared:
                result = web.get(item.shape.name)
                if isinstance(result, peers.PeerTiming):
                    item.web_times += result.times_ms
    return {
        "peak_gmacs": max(p.gmacs for p in peaks),
        "peak_gbytes": max(p.gbytes for p in peaks),
        "peak_rounds_gmacs": [round(p.gmacs, 2) for p in peaks],
        "rounds": rounds,
        "notes": notes,
        "shapes": [_row(item) for item in prepared],
    }


def _row(item: _Prepared) -> dict[str, Any]:
    row = {
        "name": item.shape.name, "kind": item.shape.kind, "dims": list(item.shape.dims), "label": item.shape.label,
        "macs": item.shape.macs, "dense": item.shape.dense,
        "min_ms": min(item.times), "median_ms": statistics.median(item.times), "runs": len(item.times),
        "round_min_ms": item.round_min_ms,
    }
    if item.web_times:
        row.update(web_min_ms=min(item.web_times), web_median_ms=statistics.median(item.web_times))
    return row
