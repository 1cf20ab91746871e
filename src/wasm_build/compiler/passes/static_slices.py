"""``relax.dynamic_strided_slice`` whose bounds are known at build time, as ``strided_slice``.

TVM's ONNX ``Slice`` converter emits a dynamic slice when starts/ends are computed in the
graph, and exporters compute them from ``Shape`` (torch's ``chunk``, ShuffleNet's channel
split). Its result has no static shape, so neither has anything after it: FoldConstant and
legalization then stop (``emit_te now only supports Tensor that has ShapeExpr shape``), and
TVM's own VM codegen fails on the ``R.concat`` of the halves.

When the sliced tensor has a static shape and the bounds depend only on constants and on
the shapes of static tensors, the bounds are evaluated (`shape_arith`, or TVM's FoldConstant
for operations it does not know) and the slice becomes static; the shapes after it are
inferred again as the function is rebuilt, so a later chunk of the sliced halves is static
too. A slice whose bounds depend on input values is left alone (the executor refuses it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tvm
from tvm import relax

from .analysis import calls_op
from .shape_arith import Evaluator, NotEvaluable

_DYNAMIC_SLICE = "relax.dynamic_strided_slice"


def _op_name(expr: Any) -> str:
    return expr.op.name if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op) else ""


def _static_shape(expr: relax.Expr) -> relax.ShapeExpr | None:
    """The shape of a tensor expression when every dimension is a constant."""
    ty = getattr(expr, "ty", None)
    if not isinstance(ty, relax.TensorType) or not isinstance(ty.shape, relax.ShapeExpr):
        return None
    if not all(isinstance(d, tvm.tirx.IntImm) for d in ty.shape.values):
        return None
    return ty.shape


@relax.expr_functor.mutator
class _StaticSlices(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        self.evaluator = Evaluator(self._definition)

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if _op_name(call) != _DYNAMIC_SLICE or _static_shape(call.args[0]) is None:
            return call
        try:
            begin, end, strides = (self._bound(arg) for arg in call.args[1:])
        except NotEvaluable:
            return call
        # Same canonicalization as the dynamic slice (negative indices, clamping); TVM's
        # Slice converter makes this very call when the bounds are constants in the model.
        return relax.op.strided_slice(call.args[0], list(range(len(begin))), begin, end, strides, assume_inbound=False)

    def _definition(self, var: relax.Var) -> relax.Expr:
        """What `var` (of the function being rebuilt) is bound to, `shape_of` a static tensor
        as its shape."""
        value = self.lookup_binding(var)
        if value is None:
            raise NotEvaluable(f"'{var.name}' is a parameter")  # the bound depends on an input
        if _op_name(value) == "relax.shape_of":
            shape = _static_shape(value.args[0])
            if shape is None:
                raise NotEvaluable("shape_of a tensor of unknown shape")
            return shape
        return value

    def _bound(self, expr: relax.Expr) -> list[int]:
        try:
            value = self.evaluator.evaluate(expr)
        except NotEvaluable:
            value = self._fold(expr)
        array = np.asarray(value)
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise NotEvaluable("bounds are not a vector of integers")
        return [int(v) for v in array]

    def _fold(self, expr: relax.Expr) -> np.ndarray:
        """`expr` folded by TVM: its bindings, back to constants and static shapes, copied
        into a function of no parameters."""
        order: list[relax.Var] = []
        self._collect(expr, order, set())
        builder = relax.BlockBuilder()
        copies: dict[Any, relax.Expr] = {}
        with builder.function("bound", []):
            with builder.dataflow():
                for var in order:
                    copies[var] = builder.emit(_Substitute(copies).visit_expr(self._definition(var)))
                result = builder.emit_output(_Substitute(copies).visit_expr(expr))
            builder.emit_func_output(result)
        body = relax.transform.FoldConstant()(builder.get())["bound"].body
        value = {b.var: b.value for block in body.blocks for b in block.bindings}.get(body.body, body.body)
        if not isinstance(value, tvm.ir.expr.GenericConst):
            raise NotEvaluable("not folded to a constant")
        return value.value.numpy()

    def _collect(self, expr: relax.Expr, order: list[relax.Var], seen: set) -> None:
        """The vars `expr` depends on, definitions first."""
        for var in relax.analysis.free_vars(expr):
            if var in seen:
                continue
            seen.add(var)
            definition = self._definition(var)
            if relax.analysis.contains_impure_call(definition):
                raise NotEvaluable("impure call")
            self._collect(definition, order, seen)
            order.append(var)


@relax.expr_functor.mutator
class _Substitute(relax.PyExprMutator):
    """Vars replaced by their copies in the function being folded."""

    def __init__(self, copies: dict[Any, relax.Expr]) -> None:
        super().__init__()
        self.copies = copies

    def visit_var_(self, var: relax.Var) -> relax.Expr:
        return self.copies.get(var, var)

    def visit_dataflow_var_(self, var: relax.DataflowVar) -> relax.Expr:
        return self.copies.get(var, var)


def static_slices_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmStaticSlices")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        if not calls_op(mod, _DYNAMIC_SLICE):
            return mod
        mutator = _StaticSlices(mod)
        for gvar, func in mod.functions_items():
            if isinstance(func, relax.Function):
                mutator.builder_.update_func(gvar, mutator.visit_expr(func))
        return relax.transform.DeadCodeElimination()(mutator.builder_.get())

    return _pass
