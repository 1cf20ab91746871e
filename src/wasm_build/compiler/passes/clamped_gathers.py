"""Gathers whose indices are computed at run time read inside their table.

TVM's frontends import ONNX `Gather` and PyTorch's embeddings as ``take(..., mode="fast")``,
which reads whatever lies at an index past the table: in WebAssembly another tensor's bytes,
or a trap past the end of memory. Indices straight from an input are checked by the executor
(`compiler.input_values`); indices the model computes (OPT's positions are a running sum of
the attention mask, plus 2) cannot be. Such gathers take ``mode="clip"``: an index past the
table reads its last row, an index below it the first, for one compare per index. Gathers of
constant indices (checked when the build folds them) keep their mode.
"""

from __future__ import annotations

import tvm
from tvm import relax

from .analysis import mutate_functions


@relax.expr_functor.mutator
class _ClampedGathers(relax.PyExprMutator):
    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.take" and str(call.attrs.mode) == "fast"):
            return call
        table, indices = call.args
        if isinstance(indices, tvm.ir.expr.Constant):
            return call
        axis = None if call.attrs.axis is None else int(call.attrs.axis)
        return relax.op.take(table, indices, axis, mode="clip")


def clamped_gathers_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmClampedGathers")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return mutate_functions(_ClampedGathers(mod), mod)

    return _pass
