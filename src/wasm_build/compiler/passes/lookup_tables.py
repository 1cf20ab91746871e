"""Elementwise functions of one 8-bit tensor as 256-entry lookup tables.

onnxruntime's quantizer requantizes after every operator, so a QDQ model's activations are
chains of ``dequantize -> float ops -> quantize`` (GELU's five operators, HardSwish, Mish,
SiLU), which `qdq_arithmetic` has written as elementwise arithmetic by the time this pass
runs: each value pays for every operator and every requantize in between, transcendental
functions included. When everything such a chain reads is one 8-bit tensor (and constants
that are the same at every position), its 8-bit result has only 256 possible values: the
chain is ``table[x]``. The table is the chain run at build time on the 256 values of ``x``'s
dtype, by TVM's own kernels for the host; the run then does a byte load per value.

Chains compose: the pass visits calls in post order, so a chain that reads an earlier
lookup's output reads it as a function of that lookup's input, and one table replaces both
(a whole graph of activations of one tensor becomes one lookup). Only the tables still read
at the end are computed, all in one build. A chain that reads two different tensors (a
residual add), a per-channel constant or a non-elementwise operator is left as it was; so
is a chain of a few integer operations (a maximum of 8-bit values), which vectorized
arithmetic does 16 values at a time. A requantize alone (a division, a rounding, a clamp and
two conversions) already costs more than a byte load per value: a requantized LeakyReLU over
64 x 32 x 32 values took 102 us as arithmetic fused with its neighbours, 71 us as a lookup.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, te

from .analysis import mutate_functions
from .conv_rewrite import INJECTIVE, call_te_kernel
from .qdq import INT_RANGES, Lookup, bound, dtype_of, op_name

# Operators that compute each output value from the values at the same position of their
# arguments (broadcast scalars), with no other state.
_ELEMENTWISE = frozenset(
    f"relax.{name}"
    for name in (
        "abs acos acosh asin asinh atan atanh ceil cos cosh erf exp floor log negative round "
        "rsqrt sigmoid sign sin sinh sqrt square tan tanh trunc isnan isinf isfinite logical_not "
        "add subtract multiply divide power maximum minimum floor_divide floor_mod mod atan2 "
        "log_add_exp equal not_equal greater greater_equal less less_equal logical_and logical_or "
        "where clip astype ewise_fma nn.relu nn.gelu nn.gelu_tanh nn.silu nn.leakyrelu nn.selu "
        "nn.softplus"
    ).split()
)
# Operators whose float32 arithmetic takes a dozen or more vector operations (polynomials,
# `vector_math`, or a division); the others take one.
_EXPENSIVE = frozenset(
    f"relax.{name}"
    for name in (
        "acos acosh asin asinh atan atanh cos cosh erf exp log rsqrt sigmoid sin sinh sqrt tan "
        "tanh power divide atan2 log_add_exp nn.gelu nn.gelu_tanh nn.silu nn.selu nn.softplus"
    ).split()
)
_EXPENSIVE_COST = 12
# A chain that costs less than this (in those operations) stays arithmetic: a few integer
# operations on 16 lanes at a time beat a byte load per value; a requantize costs 18.
_LOOKUP_COST = 16
_TABLE_DTYPES = ("int8", "uint8")
_TABLE_SIZE = 256

logger = logging.getLogger(__name__)


# What a table expression reads in place of its root: the 256 values of the root's dtype,
# given when the tables are computed (as a parameter: FuseOps fuses each expression into a
# kernel or a few, where constants would be folded one operator at a time).
_ROOT_VALUES = {dtype: relax.Var(f"{dtype}_values", relax.TensorType((_TABLE_SIZE,), dtype)) for dtype in _TABLE_DTYPES}


class _NotATable(Exception):
    """The expression is not an elementwise function of one 8-bit tensor."""


def table_values(dtype: str) -> np.ndarray:
    """Every value of an 8-bit dtype, in table order (a value's index is value - low)."""
    low, _high = INT_RANGES[dtype]
    return np.arange(low, low + _TABLE_SIZE).astype(dtype)


def lookup_kernel(table: te.Tensor, x: te.Tensor) -> te.Tensor:
    """``table[x - low]`` for every value of the 8-bit tensor ``x``."""
    low, _high = INT_RANGES[str(x.dtype)]
    return te.compute(x.shape, lambda *i: table[x(*i).astype("int32") - low], name="lookup")


def _is_tensor(expr: relax.Expr) -> bool:
    return isinstance(expr, (relax.Var, relax.Call, relax.Tuple)) or (
        isinstance(expr, tvm.ir.expr.Constant) and hasattr(expr.value, "numpy")
    )


def _broadcast_value(array: np.ndarray) -> relax.Expr:
    """A constant that is the same at every position, as a one-element vector (FoldConstant
    and the legalized kernels treat 0-d tensors apart); else the chain is not elementwise."""
    flat = array.reshape(-1)
    if flat.size == 0 or not np.all(flat == flat[0]):
        raise _NotATable("a constant that differs by position")
    return relax.const(flat[:1])


@dataclass(frozen=True)
class _Pending:
    """A lookup emitted before its table is computed: the table's expression (over its root's
    256 values, `_ROOT_VALUES`), the tensor it reads and the placeholder the kernel call holds
    meanwhile."""

    expression: relax.Expr
    root: relax.Expr
    placeholder: relax.Expr


class _Chain:
    """A call rebuilt over the 256 values of the one 8-bit tensor it reads (its *root*):
    variables replaced by the expressions bound to them, the root by its dtype's values,
    an earlier lookup's output by that lookup's table expression."""

    def __init__(self, lookup: Lookup, pending: dict[relax.Var, _Pending], rebuilt: dict):
        self.lookup = lookup
        self.pending = pending
        # variable -> (its rebuilt expression, root, cost), shared by every chain: a value
        # read at several places (``x`` in ``x * sigmoid(x)``) is one node of the table's
        # expression and is counted once.
        self.rebuilt = rebuilt
        self.seen: set = set()
        self.root: relax.Expr | None = None
        self.cost = 0

    def _reads(self, tensor: relax.Expr) -> None:
        if self.root is None:
            self.root = tensor
        elif not self.root.same_as(tensor):
            raise _NotATable("it reads two tensors")

    def _rebuild_var(self, var: relax.Var) -> relax.Expr:
        if dtype_of(var) in _TABLE_DTYPES:
            self._reads(var)
            return _ROOT_VALUES[dtype_of(var)]
        value = self.lookup(var)
        if value is None:
            raise _NotATable("it reads a parameter")
        if var not in self.rebuilt:
            inner = _Chain(self.lookup, self.pending, self.rebuilt)
            try:
                self.rebuilt[var] = (inner.rebuild(value), inner.root, inner.cost)
            except _NotATable:
                self.rebuilt[var] = None
        if self.rebuilt[var] is None:
            raise _NotATable("it reads a value that is not one")
        rebuilt, root, cost = self.rebuilt[var]
        if root is not None:
            self._reads(root)
        if var not in self.seen:
            self.seen.add(var)
            self.cost += cost
        return rebuilt

    def _earlier_lookup(self, expr: relax.Expr) -> _Pending | None:
        while isinstance(expr, relax.Var):
            if expr in self.pending:
                return self.pending[expr]
            expr = self.lookup(expr)
        return None

    def rebuild(self, expr: relax.Expr) -> relax.Expr:
        if not _is_tensor(expr):
            return expr  # a clip's bounds, an astype's dtype
        earlier = self._earlier_lookup(expr)
        if earlier is not None:
            self._reads(earlier.root)
            return earlier.expression
        if isinstance(expr, relax.Var):
            return self._rebuild_var(expr)
        value = expr
        if isinstance(value, tvm.ir.expr.Constant):
            return _broadcast_value(value.value.numpy())
        name = op_name(value)
        slope = bound(value.args[1], self.lookup) if name == "relax.nn.prelu" else None
        if isinstance(slope, tvm.ir.expr.Constant):
            # One slope for every channel: a leaky ReLU, which TVM computes the same way.
            alpha = float(_broadcast_value(slope.value.numpy()).value.numpy()[0])
            self.cost += 1
            return relax.op.nn.leakyrelu(self.rebuild(value.args[0]), alpha)
        if name not in _ELEMENTWISE:
            raise _NotATable(f"it reads {name or type(value).__name__}")
        self.cost += _EXPENSIVE_COST if name in _EXPENSIVE else 1
        return relax.Call(value.op, [self.rebuild(arg) for arg in value.args], value.attrs, value.ty_args)


def _emit_shared(builder: relax.BlockBuilder, expr: relax.Expr, emitted: dict) -> relax.Expr:
    """``expr`` emitted one binding per distinct call (tables share their subexpressions:
    emitted as a tree they could double at every level)."""
    if not isinstance(expr, relax.Call):
        return expr
    if expr not in emitted:
        args = [_emit_shared(builder, arg, emitted) for arg in expr.args]
        emitted[expr] = builder.emit(relax.Call(expr.op, args, expr.attrs, expr.ty_args))
    return emitted[expr]


def compute_tables(expressions: list[relax.Expr]) -> list[np.ndarray]:
    """The values of table expressions, computed together by one build of TVM's kernels for
    the host (its legalization: the arithmetic the kernels would have done)."""
    builder = relax.BlockBuilder()
    params = list(_ROOT_VALUES.values())
    emitted: dict = {}
    with builder.function("tables", params):
        with builder.dataflow():
            out = builder.emit_output(relax.Tuple([_emit_shared(builder, e, emitted) for e in expressions]))
        builder.emit_func_output(out)
    with tvm.target.Target("llvm"):
        executable = tvm.compile(builder.get(), target="llvm")
    machine = relax.VirtualMachine(executable, tvm.cpu())
    values = [tvm.runtime.tensor(table_values(str(param.ty.dtype))) for param in params]
    return [table.numpy() for table in machine["tables"](*values)]


@relax.expr_functor.mutator
class _FindChains(relax.PyExprMutator):
    """Each chain becomes a lookup kernel call whose table is a placeholder (`pending`)."""

    def __init__(self, mod: tvm.IRModule):
        super().__init__(mod)
        self.pending: dict[relax.Var, _Pending] = {}
        self.rebuilt: dict = {}

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if dtype_of(call) not in _TABLE_DTYPES or op_name(call) not in _ELEMENTWISE:
            return call
        chain = _Chain(self.lookup_binding, self.pending, self.rebuilt)
        try:
            expression = chain.rebuild(call)
        except _NotATable:
            return call
        if chain.root is None or chain.cost < _LOOKUP_COST or not _same_shape(call, chain.root):
            return call
        placeholder = relax.const(np.zeros(_TABLE_SIZE, dtype_of(call)))
        lookup = call_te_kernel(self.builder_, lookup_kernel, placeholder, chain.root, name="lookup", pattern=INJECTIVE)
        var = self.builder_.emit(lookup, "lookup")
        self.pending[var] = _Pending(expression, chain.root, placeholder)
        return var


@relax.expr_functor.mutator
class _FillTables(relax.PyExprMutator):
    """Each placeholder replaced by its computed table."""

    def __init__(self, mod: tvm.IRModule, tables: dict[relax.Expr, np.ndarray]):
        super().__init__(mod)
        self.tables = tables

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        if op_name(call) != "relax.call_tir" or not isinstance(call.args[1], relax.Tuple):
            return call
        fields = list(call.args[1].fields)
        if not fields or fields[0] not in self.tables:
            return call
        fields[0] = relax.const(self.tables[fields[0]])
        return relax.Call(call.op, [call.args[0], relax.Tuple(fields), *call.args[2:]], call.attrs, call.ty_args)


def _placeholders_read(mod: tvm.IRModule) -> set:
    read = set()

    def visit(expr):
        if isinstance(expr, tvm.ir.expr.Constant):
            read.add(expr)

    for _, func in mod.functions_items():
        if isinstance(func, relax.Function):
            relax.analysis.post_order_visit(func, visit)
    return read


def _same_shape(a: relax.Expr, b: relax.Expr) -> bool:
    shape_a, shape_b = a.ty.shape, b.ty.shape
    if shape_a is None or shape_b is None:
        return False
    try:
        tvm.ir.assert_structural_equal(shape_a, shape_b)
    except ValueError:
        return False
    return True


def lookup_tables_pass() -> tvm.transform.Pass:
    """Elementwise chains over one 8-bit tensor -> ``table[x]`` (module doc)."""

    @tvm.transform.module_pass(opt_level=0, name="WasmLookupTables")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        finder = _FindChains(mod)
        found = mutate_functions(finder, mod)
        if not finder.pending:
            return mod
        found = relax.transform.DeadCodeElimination()(found)
        read = _placeholders_read(found)
        kept = [pending for pending in finder.pending.values() if pending.placeholder in read]
        try:
            tables = compute_tables([pending.expression for pending in kept])
        except (RuntimeError, ValueError, TypeError) as error:  # TVM's errors derive from these
            # Chains left as arithmetic are slower, never wrong: the build goes on.
            logger.warning("lookup tables: TVM could not compute them for the host (%s); chains stay arithmetic", error)
            return mod
        return mutate_functions(_FillTables(found, {pending.placeholder: table for pending, table in zip(kept, tables)}), found)

    return _pass
