"""Seeded random inputs, the same kind wherever a model is run on made-up data (smoke test,
profile, tests): floats standard normal, booleans 0/1, integers in [0, 8) so they are valid
indices for embeddings and gathers of any realistic size."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

INTEGER_HIGH = 8


def random_array(shape: Sequence[int], dtype: str | np.dtype, rng: np.random.Generator) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(tuple(shape)).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, tuple(shape)).astype(dtype)
    return rng.integers(0, INTEGER_HIGH, tuple(shape)).astype(dtype)
