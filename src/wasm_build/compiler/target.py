"""The wasm32 target of a build: which wasm features kernels may use, and the algorithm choices
that change which kernels exist (so tuning sees the kernels a build makes)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import tvm

from ..config.settings import ModelSettings


@dataclass(frozen=True)
class TargetOptions:
    """How kernels are generated: the wasm features they may use and the algorithms chosen."""

    simd: bool = True
    relaxed_simd: bool = False
    # Memory Winograd convs' transformed weights may add, as a fraction of the weights counted as
    # float32 (compiler.passes.winograd).
    winograd_budget: float = ModelSettings.winograd_budget

    @classmethod
    def for_model(cls, model: ModelSettings) -> TargetOptions:
        return cls(simd=model.simd, relaxed_simd=model.relaxed_simd, winograd_budget=model.winograd_budget)

    @property
    def features(self) -> list[str]:
        features = []
        if self.simd or self.relaxed_simd:
            features.append("+simd128")
        if self.relaxed_simd:
            features.append("+relaxed-simd")
        return features

    @property
    def module_features(self) -> list[str]:
        """What the linked module needs of an engine: the kernels' features, and bulk memory (Wasm
        2.0, in every engine that has SIMD128): the executor's copies of inputs and outputs become
        `memory.copy`, which the engine runs as its own memmove, instead of calls to wasi-libc's
        memcpy, a C loop of 4-byte moves."""
        return ["+bulk-memory", *self.features]

    def tvm_target(self) -> Any:
        # vector-width: wasm SIMD is 128 bits (TVM guesses so anyway, with a warning on every build).
        spec: dict[str, Any] = {"kind": "llvm", "mtriple": "wasm32-unknown-unknown-wasm", "num-cores": 1, "vector-width": 128}
        if self.features:
            spec["mattr"] = self.features
        return tvm.target.Target(spec)

    def c_flags(self) -> list[str]:
        """clang's flags for the C linked with the kernels (executor, runtime shim, drivers):
        one ``-mFEATURE`` per feature of the module."""
        return [f"-m{feature.removeprefix('+')}" for feature in self.module_features]
