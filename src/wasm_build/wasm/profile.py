"""Where a built model's time goes in wasmtime, kernel by kernel (`wasm-build profile`).

The model's archive is linked into a reactor with a driver (`drivers.PROFILE`,
``codegen/templates/drivers/profile.c.j2``) whose ``wb_call_kernel`` replaces the
runtime's weak one and times every kernel call with the WASI monotonic clock, inside the
module. The model then runs a number of times in wasmtime; each call position keeps its
fastest time, so the report is the least disturbed run of every kernel. Kernels are named
as `wasm-build tune` names them, ready for ``--kernels``.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..artifact.assemble import read_manifest
from ..artifact.toolchain import find_toolchain
from ..errors import WasmBuildError
from .drivers import PROFILE, link_with_model
from .host import WasmModel
from .inputs import random_array

# Suffix TVM gives kernels whose constant weights it repacked at compile time.
_PREPACKED = "_prepacked"


@dataclass(frozen=True)
class KernelTime:
    kernel: str  # as `wasm-build tune` names it (and `--kernels` matches it)
    calls: int  # calls per run
    ms: float  # per run: the sum of its calls' fastest times


@dataclass(frozen=True)
class Profile:
    name: str
    runs: int
    kernels: tuple[KernelTime, ...]  # slowest first

    @property
    def total_ms(self) -> float:
        return sum(k.ms for k in self.kernels)

    def table(self) -> str:
        total = self.total_ms
        width = max([len("kernel"), *(len(k.kernel) for k in self.kernels)])
        lines = [f"{'kernel':<{width}}  calls   ms/run   share", f"{'-' * width}  -----  -------  ------"]
        for k in self.kernels:
            share = 100 * k.ms / total if total else 0.0
            lines.append(f"{k.kernel:<{width}}  {k.calls:5d}  {k.ms:7.3f}  {share:5.1f}%")
        lines.append(f"{'all kernels':<{width}}  {sum(k.calls for k in self.kernels):5d}  {total:7.3f}")
        return "\n".join(lines)


def profile_artifact(directory: str | Path, runs: int = 20, seed: int = 0) -> Profile:
    """Time every kernel of the model built into `directory` (``OUT/NAME/``) over `runs`
    runs on random inputs; the fastest time of each call counts."""
    directory = Path(directory)
    manifest = read_manifest(directory)
    name = manifest["name"]
    if runs < 1:
        raise WasmBuildError(f"--runs {runs}: profiling needs at least one run", fix="e.g. --runs 20")
    with tempfile.TemporaryDirectory(prefix="wasm-build-profile-") as tmp:
        reactor = link_with_model(find_toolchain(), PROFILE, directory, manifest, Path(tmp) / f"{name}_profile.wasm")
        weights = directory / f"{name}.weights" if manifest["weights"]["mode"] == "file" else None
        model = _ProfiledModel(reactor, weights=weights, name=name)
        positions = model.time_calls(runs, np.random.default_rng(seed))
    totals: dict[str, list[float]] = {}
    for kernel, ms in positions:
        totals.setdefault(_tuning_name(kernel, name), []).append(ms)
    kernels = sorted((KernelTime(k, len(v), sum(v)) for k, v in totals.items()), key=lambda k: -k.ms)
    return Profile(name, runs, tuple(kernels))


def _tuning_name(kernel: str, model: str) -> str:
    """``kws_fused_conv2d_add_relu_prepacked`` -> ``fused_conv2d_add_relu``."""
    if kernel.startswith(f"{model}_"):
        kernel = kernel[len(model) + 1 :]
    return kernel[: -len(_PREPACKED)] if kernel.endswith(_PREPACKED) else kernel


class _ProfiledModel(WasmModel):
    def time_calls(self, runs: int, rng: np.random.Generator) -> list[tuple[str, float]]:
        """(kernel, fastest ms) for each kernel call of a run, in call order."""
        inputs = [random_array(info.shape, info.dtype, rng).tobytes() for info in self.inputs]
        exports = self._exports
        for _ in range(runs):
            exports["wb_profile_begin_run"](self._store)
            self.run_bytes(inputs)
        count = exports["wb_profile_count"](self._store)
        return [
            (self._c_string(exports["wb_profile_name"](self._store, i)), exports["wb_profile_ms"](self._store, i))
            for i in range(count)
        ]
