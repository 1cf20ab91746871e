"""Seeded random inputs, the same kind wherever a model is run on made-up data (smoke test,
profile, tests): floats standard normal, booleans 0/1; an input that indexes a table
(`compiler.input_values`) in [0, 8) and below the table's rows (a BERT's token types index a
table of 2); other 32- and 64-bit integers 0/1 (attention masks: OPT sums the mask into
positions, and a mask of 7s runs past its table of positions); 8- and 16-bit integers
(quantized data) in [0, 8)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..compiler.input_values import ValueRange

INTEGER_HIGH = 8


def random_array(
    shape: Sequence[int], dtype: str | np.dtype, rng: np.random.Generator, values: ValueRange | None = None
) -> np.ndarray:
    """`values`: the range the input may hold (its manifest's "values"), if it is limited."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(tuple(shape)).astype(dtype)
    if dtype.kind == "b":
        return rng.integers(0, 2, tuple(shape)).astype(dtype)
    if values is None and dtype.itemsize >= 4:
        return rng.integers(0, 2, tuple(shape)).astype(dtype)
    high = INTEGER_HIGH if values is None else min(INTEGER_HIGH, values.max + 1)
    low = 0 if values is None else min(max(values.min, 0), high - 1)
    return rng.integers(low, high, tuple(shape)).astype(dtype)
