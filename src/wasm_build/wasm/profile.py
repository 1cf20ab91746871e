"""Where a built model's time goes in wasmtime, kernel by kernel (`wasm-build profile`).

The model's archive is linked into a reactor with a driver (`drivers.PROFILE`,
``codegen/templates/drivers/profile.c.j2``) whose ``wb_call_kernel`` replaces the
runtime's weak one and times every kernel call with the WASI monotonic clock, inside the
module. The model then runs a number of times in wasmtime; each call position keeps its
fastest time, so the report is the least disturbed run of every kernel. Kernels are named
as `wasm-build tune` names them, ready for ``--kernels``.

Each kernel is also held against a roofline: its work as fused (multiply-adds, other float
operations and argument bytes, recorded by the build in the manifest's ``kernel_work``, see
`compiler.work`) against the machine's SIMD128 peaks measured in the same session
(`wasm.peak`). Its bound is the longest of the ideal times: multiply-adds at the peak rate,
other float operations at twice it (the peak is a vector multiply and a vector add in each
step), bytes at the in-cache bandwidth; ``roof`` is that bound over its time, so slow kernels
point at themselves. A kernel is rated by the work that bounds it: GMAC/s, GFLOP/s (an
activation's polynomial: GELU, sigmoid) or GB/s.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifact.assemble import read_manifest
from ..artifact.toolchain import find_toolchain
from ..compiler.input_values import ValueRange
from ..errors import WasmBuildError
from .drivers import PROFILE, link_with_model
from .host import WasmModel
from .inputs import random_array
from .peak import Peak, measure_peak

# Suffix TVM gives kernels whose constant weights it repacked at compile time.
_PREPACKED = "_prepacked"


@dataclass(frozen=True)
class KernelTime:
    kernel: str  # as `wasm-build tune` names it (and `--kernels` matches it)
    calls: int  # calls per run
    ms: float  # per run: the sum of its calls' fastest times
    macs: int | None = None  # multiply-adds per run, when the build recorded the kernel's work
    nbytes: int | None = None  # argument bytes per run, likewise
    flops: int = 0  # other float operations per run, likewise (0 in builds that did not count them)

    def _ideal_ms(self, peak: Peak) -> dict[str, float]:
        """Each kind of work at its peak rate, by the rate's unit."""
        return {
            "GMAC/s": self.macs / peak.gmacs / 1e6,
            "GFLOP/s": self.flops / (2 * peak.gmacs) / 1e6,
            "GB/s": self.nbytes / peak.gbytes / 1e6,
        }

    def bound_ms(self, peak: Peak) -> float | None:
        """The roofline's time for this work: the longest of its kinds at their peaks."""
        if self.macs is None or self.nbytes is None:
            return None
        return max(self._ideal_ms(peak).values())

    def bound_by(self, peak: Peak) -> str:
        """The unit of the work that bounds the kernel: GMAC/s, GFLOP/s or GB/s."""
        ideal = self._ideal_ms(peak)
        return max(ideal, key=ideal.get)

    def memory_bound(self, peak: Peak) -> bool:
        return self.bound_by(peak) == "GB/s"


@dataclass(frozen=True)
class Profile:
    name: str
    runs: int
    kernels: tuple[KernelTime, ...]  # slowest first
    peak: Peak | None = None  # the machine's, measured with the profile (None: no roofline)

    @property
    def total_ms(self) -> float:
        return sum(k.ms for k in self.kernels)

    @property
    def roofline(self) -> bool:
        return self.peak is not None and any(k.macs is not None for k in self.kernels)

    def table(self) -> str:
        total = self.total_ms
        width = max([len("kernel"), *(len(k.kernel) for k in self.kernels)])
        head, rule = f"{'kernel':<{width}}  calls   ms/run   share", f"{'-' * width}  -----  -------  ------"
        if self.roofline:
            head, rule = head + "          rate   roof", rule + "  ------------  -----"
        lines = [head, rule]
        for k in self.kernels:
            share = 100 * k.ms / total if total else 0.0
            line = f"{k.kernel:<{width}}  {k.calls:5d}  {k.ms:7.3f}  {share:5.1f}%"
            if self.roofline:
                line += _roof_columns(k, self.peak)
            lines.append(line)
        lines.append(f"{'all kernels':<{width}}  {sum(k.calls for k in self.kernels):5d}  {total:7.3f}")
        if self.roofline:
            lines.append(
                f"{self.peak.describe()}; rate: GMAC/s, or GFLOP/s for kernels bound by other float "
                "operations (at twice the multiply-add peak), or GB/s for kernels bound by memory; "
                "roof: their bound's time (work at those peaks) over their time"
            )
        return "\n".join(lines)


def _roof_columns(kernel: KernelTime, peak: Peak) -> str:
    bound = kernel.bound_ms(peak)
    if bound is None or kernel.ms <= 0:
        return ""
    unit = kernel.bound_by(peak)
    work = {"GMAC/s": kernel.macs, "GFLOP/s": kernel.flops, "GB/s": kernel.nbytes}[unit]
    rate = f"{work / kernel.ms / 1e6:5.1f} {unit}"
    return f"  {rate:>12}  {100 * bound / kernel.ms:4.0f}%"


def profile_artifact(
    directory: str | Path, runs: int = 20, seed: int = 0, peak: Peak | None = None, sizes: dict[str, int] | None = None
) -> Profile:
    """Time every kernel of the model built into `directory` (``OUT/NAME/``) over `runs`
    runs on random inputs; the fastest time of each call counts. The roofline's peak is
    measured now unless given (none for a build that recorded no kernel work). A model with
    symbolic dimensions runs with them at `sizes` (name -> size; others at their upper bounds)."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    name = manifest["name"]
    if runs < 1:
        raise WasmBuildError(f"--runs {runs}: profiling needs at least one run", fix="e.g. --runs 20")
    toolchain = find_toolchain()
    with tempfile.TemporaryDirectory(prefix="wasm-build-profile-") as tmp:
        reactor = link_with_model(toolchain, PROFILE, directory, manifest, Path(tmp) / f"{name}_profile.wasm")
        weights = directory / f"{name}.weights" if manifest["weights"]["mode"] == "file" else None
        model = _ProfiledModel(reactor, weights=weights, name=name)
        values = [ValueRange.of(tensor) for tensor in manifest["inputs"]]
        positions = model.time_calls(runs, np.random.default_rng(seed), sizes or {}, values)
    work = manifest.get("kernel_work", {})
    if work and peak is None:
        peak = measure_peak(toolchain)
    calls: dict[str, list[tuple[str, float]]] = {}
    for kernel, ms in positions:
        calls.setdefault(_tuning_name(kernel, name), []).append((kernel, ms))
    kernels = sorted((_kernel_time(k, v, work) for k, v in calls.items()), key=lambda k: -k.ms)
    return Profile(name, runs, tuple(kernels), peak if work else None)


def _kernel_time(kernel: str, calls: list[tuple[str, float]], work: dict) -> KernelTime:
    """One kernel's calls in a run, its work summed over them (if the build recorded it)."""
    known = [work.get(symbol) for symbol, _ in calls]
    macs = nbytes = None
    flops = 0
    if all(known):
        macs, nbytes = sum(w["macs"] for w in known), sum(w["bytes"] for w in known)
        flops = sum(w.get("flops", 0) for w in known)
    return KernelTime(kernel, len(calls), sum(ms for _, ms in calls), macs, nbytes, flops)


def _tuning_name(kernel: str, model: str) -> str:
    """``kws_fused_conv2d_add_relu_prepacked`` -> ``fused_conv2d_add_relu``."""
    if kernel.startswith(f"{model}_"):
        kernel = kernel[len(model) + 1 :]
    return kernel[: -len(_PREPACKED)] if kernel.endswith(_PREPACKED) else kernel


class _ProfiledModel(WasmModel):
    def time_calls(
        self, runs: int, rng: np.random.Generator, sizes: dict[str, int], values: list[ValueRange | None]
    ) -> list[tuple[str, float]]:
        """(kernel, fastest ms) for each kernel call of a run, in call order; `values`: the range
        of each input that indexes a table."""
        unknown = set(sizes) - {d.name for d in self.dims}
        if unknown:
            raise WasmBuildError(
                f"{self.name} has no symbolic dimension {', '.join(sorted(unknown))}",
                fix=f"its symbolic dimensions are: {', '.join(d.name for d in self.dims) or 'none'}",
            )
        sizes = {d.name: sizes.get(d.name, d.max) for d in self.dims}
        shapes = [tuple(d if isinstance(d, int) else sizes[d] for d in info.shape) for info in self.inputs]
        arrays = [random_array(shape, info.dtype, rng, v) for info, shape, v in zip(self.inputs, shapes, values)]
        inputs = [array.tobytes() for array in arrays]
        exports = self._exports
        for _ in range(runs):
            exports["wb_profile_begin_run"](self._store)
            if self.dynamic:
                self.run(arrays)
            else:
                self.run_bytes(inputs)
        count = exports["wb_profile_count"](self._store)
        return [
            (self._c_string(exports["wb_profile_name"](self._store, i)), exports["wb_profile_ms"](self._store, i))
            for i in range(count)
        ]
