"""ONNX-to-ONNX rewrites applied before TVM's ONNX frontend imports a model.

Where TVM's frontend lacks a converter or gets one wrong, wasm-build rewrites the model
into operators it imports right, one rewrite per module. Each is a function
``ModelProto -> ModelProto`` that leaves models without its pattern untouched (so the
kernels of models that already build do not change). `apply` runs them in order on a copy:
the original model stays the reference onnxruntime runs in the smoke test.
"""

from __future__ import annotations

from typing import Callable

import onnx

from . import (
    constant_of_shape_scalar,
    expand_declared_shape,
    prelu_channel_slope,
    slice_attributes,
    static_sequences,
)

Rewrite = Callable[[onnx.ModelProto], onnx.ModelProto]

REWRITES: list[Rewrite] = [
    constant_of_shape_scalar.rewrite,
    prelu_channel_slope.rewrite,
    slice_attributes.rewrite,
    static_sequences.rewrite,
    expand_declared_shape.rewrite,
]


def apply(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` rewritten by every rewrite, in order; `model` itself is not changed."""
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)
    for rewrite in REWRITES:
        rewritten = rewrite(rewritten)
    return rewritten


__all__ = ["REWRITES", "Rewrite", "apply"]
