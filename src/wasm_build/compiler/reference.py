"""The smoke test's native reference: the same Relax module through TVM's own pipeline and VM.

Only `static_slices` (and, for quantized models, the integer rewrite) runs first: TVM's own
pipeline cannot lower slices whose shape it left unknown (its VM codegen stops at the
`R.concat` after them), and the pass changes no arithmetic; onnxruntime and torch, the other
references, check it."""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax

from .passes import quantized_passes, static_slices_pass
from .passes.bilinear_sums import bilinear_sums_pass


class NativeReference:
    """The model compiled once by TVM's own pipeline for the host CPU, run by its VM: the
    smoke-test reference (for every size of a model with symbolic dimensions).

    A quantized model gets wasm-build's integer rewrite first (a no-op for float models): TVM
    alone would run its QDQ graph in float32, rounding each layer's output on its own, which
    drifts a step per few layers from onnxruntime's integer kernels (onnxruntime is the
    reference for the rewrite; this one checks the wasm kernels, which must agree exactly).
    Its linear resizes are then summed in onnxruntime's order too (`bilinear_sums`, as wasm
    builds do): TVM's order rounded ties at a resize's output a step apart from onnxruntime's,
    and a 7-bit quantized UNet carried that to 2 steps at its output, failing the smoke test of
    an artifact that matched onnxruntime exactly."""

    def __init__(self, module: Any) -> None:
        sliced = static_slices_pass()(module)
        module = quantized_passes()(sliced)
        if not module.same_as(sliced):
            module = bilinear_sums_pass()(module)
        executable = tvm.compile(module, tvm.target.Target({"kind": "llvm"}))
        self._vm = relax.VirtualMachine(executable, tvm.cpu())

    def __call__(self, inputs: list[Any]) -> list[Any]:
        result = self._vm["main"](*[tvm.runtime.tensor(np.ascontiguousarray(x)) for x in inputs])
        return [np.asarray(r.numpy()) for r in _flatten(result)]


def native_reference(module: Any, inputs: list[Any]) -> list[Any]:
    """Run the model with TVM's own pipeline and VM on the host CPU, once."""
    return NativeReference(module)(inputs)


def _flatten(value: Any):
    if isinstance(value, tvm.runtime.Tensor):
        yield value
    else:
        for item in value:
            yield from _flatten(item)
