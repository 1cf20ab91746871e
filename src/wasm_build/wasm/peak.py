"""The machine's SIMD128 peaks as wasmtime runs them: the roofline `wasm-build profile` and the
bench hold kernels against.

A small reactor (`drivers.PEAK`, ``codegen/templates/drivers/peak.c.j2``) times, inside the
module, independent f32x4 multiplies and adds in registers (the multiply-add peak: a
multiply-add is one lane's multiply and add) and a v128 pass from one buffer into another that
both stay in cache (the bandwidth of kernels that move data rather than compute). Each is the
best of a few short trials: other work on the machine only ever slows a trial down.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..artifact.toolchain import Toolchain, find_toolchain
from .drivers import PEAK
from .engine import instantiate, load

# Multiply and add chains per trial (the driver's kernels); the fastest count wins.
_CHAINS = (4, 5, 6)
_ITERATIONS = 200_000
# Two buffers of this size: L2-resident on current cores, like most activations of a model.
_COPY_BYTES = 256 * 1024
_COPY_REPEATS = 64


@dataclass(frozen=True)
class Peak:
    gmacs: float  # billions of f32 multiply-adds a second
    gbytes: float  # GB/s read plus written by a vector pass over cached buffers

    def describe(self) -> str:
        return f"SIMD128 peak measured in wasmtime: {self.gmacs:.1f} GMAC/s, {self.gbytes:.1f} GB/s in cache"


def measure_peak(toolchain: Toolchain | None = None, trials: int = 7) -> Peak:
    """Compile the peak driver, run it in wasmtime, and return the best rates of ``trials``."""
    toolchain = toolchain or find_toolchain()
    with tempfile.TemporaryDirectory(prefix="wasm-build-peak-") as tmp:
        work = Path(tmp)
        driver = PEAK.compile(toolchain, work / "peak.o", ["-msimd128"])
        reactor = work / "peak.wasm"
        toolchain.link_reactor([driver], reactor, PEAK.exports)
        instance = instantiate(load(reactor))
    macs = max(
        4 * chains * _ITERATIONS / instance.call("wb_peak_macs", chains, _ITERATIONS)
        for _ in range(trials)
        for chains in _CHAINS
    )
    moved = 2 * _COPY_BYTES * _COPY_REPEATS
    instance.call("wb_peak_copy", _COPY_BYTES, 1)  # first touch of the pages
    gbytes = max(moved / instance.call("wb_peak_copy", _COPY_BYTES, _COPY_REPEATS) for _ in range(trials))
    return Peak(gmacs=macs, gbytes=gbytes)
