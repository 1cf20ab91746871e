"""The TIR pipeline wasm-build compiles kernels with: TVM's default one, then its own steps."""

from __future__ import annotations

import tvm
from tvm.tirx import compilation_pipeline

from .lane_shuffle import shuffle_packed_rows
from .magic_rounding import magic_rounding
from .nan_propagation import propagate_nan
from .narrow_conversions import narrow_conversions
from .nan_tests import vectorizable_nan_tests
from .narrow_products import narrow_products
from .overlapping_tails import overlapping_tails
from .pair_shuffle import shuffle_activation_pairs
from .presplat_pairs import presplat_activation_pairs
from .presplat_rows import presplat_packed_rows
from .registers import bind_through_registers
from .rounding import vectorizable_rounding
from .transpose_shuffle import shuffle_transposed_blocks

PIPELINE = "wasm_build"


def tir_pipeline() -> str:
    """Name of the TIR pipeline to pass to ``tvm.tirx.build`` (registered on first use)."""

    def factory():
        lower, finalize_host, finalize_device = compilation_pipeline.get_tir_pipeline("default")
        steps = tvm.transform.Sequential(
            [
                magic_rounding(), narrow_conversions(), vectorizable_rounding(), vectorizable_nan_tests(), overlapping_tails(), lower, presplat_packed_rows(), shuffle_packed_rows(), presplat_activation_pairs(), shuffle_activation_pairs(), shuffle_transposed_blocks(),
                propagate_nan(), narrow_products(), bind_through_registers(),
            ]
        )
        return steps, finalize_host, finalize_device

    compilation_pipeline.register_tir_pipeline(PIPELINE, factory)
    return PIPELINE
