"""What the graph passes that replace a conv2d with a kernel of their own share
(:mod:`wasm_build.winograd`, :mod:`wasm_build.pixel_rows`, :mod:`wasm_build.patch_rows`):
which convs they may take, how the replacement is emitted, and the pass around it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

import tvm
from tvm import relax, tirx

# TVM's OpPatternKind values a rewrite gives the kernels it writes (`call_te_kernel`), and
# `epilogue_transposes` reads.
ELEMWISE = 0
BROADCAST = 1
INJECTIVE = 2
OUT_ELEMWISE_FUSABLE = 4  # elementwise consumers fuse into the kernel's output
OPAQUE = 8  # fuses with nothing
# Zero rows a rewrite may add to reach whole tile rows, as a fraction of the pixels
# (49 -> 52: 0.06; 25 -> 28 is too many).
_MAX_PADDING_FRACTION = 1 / 16


def padding_rows(pixels: int, rows: int) -> int | None:
    """The zero rows that pad ``pixels`` to a multiple of ``rows``; None when they would be
    over 1/16 of the pixels."""
    padding = -pixels % rows
    return padding if padding <= pixels * _MAX_PADDING_FRACTION else None


def static_float32_shape(expr: relax.Expr) -> tuple[int, ...] | None:
    """The static shape of a float32 tensor expression, else None."""
    return static_shape(expr, ("float32",))


def static_shape(expr: relax.Expr, dtypes: tuple[str, ...]) -> tuple[int, ...] | None:
    """The static shape of a tensor expression of one of ``dtypes``, else None."""
    ty = expr.ty
    if not isinstance(ty, relax.TensorType) or ty.dtype not in dtypes or ty.shape is None:
        return None
    dims = list(ty.shape.values) if hasattr(ty.shape, "values") else None
    if dims is None or not all(isinstance(d, tirx.IntImm) for d in dims):
        return None
    return tuple(int(d) for d in dims)


# Data, kernel and output layouts of the convs `nhwc_conv` leaves, which the rewrites after it take.
NHWC_LAYOUTS = ("NHWC", "HWIO", "NHWC")


def conv_layouts(call: relax.Call) -> tuple[str, str, str]:
    """A conv-like call's data, kernel and output layouts (the output's is the data's when unset)."""
    attrs = call.attrs
    return str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout) or str(attrs.data_layout)


@dataclass(frozen=True)
class ConstantConv:
    """A conv-like call with constant weights and static shapes: float32, or an integer product
    (8- or 16-bit operands into int32, `integer_contractions`)."""

    constant: tvm.ir.expr.Constant  # the weights
    data_shape: tuple[int, ...]
    out_shape: tuple[int, ...]

    @property
    def weight(self) -> np.ndarray:
        return self.constant.value.numpy()


_FLOAT_OUTPUTS = ("None", "", "void", "float32")
_INTEGERS = ("int8", "uint8", "int16")


def constant_conv(call: relax.Call, op_name: str, layouts: tuple[str, str, str], *, integer: bool = False) -> ConstantConv | None:
    """``call`` as a :class:`ConstantConv` when it calls ``op_name`` with ``layouts`` (data,
    kernel, output), constant weights and static shapes, all float32 (with ``integer``: 8- or
    16-bit data and weights, an int32 output); else None."""
    if not (isinstance(call.op, tvm.ir.Op) and call.op.name == op_name):
        return None
    attrs = call.attrs
    if conv_layouts(call) != layouts:
        return None
    if str(attrs.out_dtype) not in (("int32",) if integer else _FLOAT_OUTPUTS):
        return None
    data, weight = call.args
    operands = _INTEGERS if integer else ("float32",)
    if not isinstance(weight, tvm.ir.expr.Constant) or weight.value.dtype not in operands:
        return None
    data_shape, out_shape = static_shape(data, operands), static_shape(call, ("int32",) if integer else ("float32",))
    if data_shape is None or out_shape is None:
        return None
    return ConstantConv(weight, data_shape, out_shape)


def is_plain_nhwc_conv(call: relax.Call, *, strided: bool = False, integer: bool = False) -> bool:
    """A stride-1 (any stride when ``strided``), undilated, ungrouped conv2d of NHWC float32
    activations with constant HWIO float32 weights (with ``integer``: an integer product, see
    `constant_conv`), its input and output shapes static."""
    if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.nn.conv2d"):
        return False
    attrs = call.attrs
    if any(int(v) != 1 for v in (*([] if strided else attrs.strides), *attrs.dilation)) or int(attrs.groups) != 1:
        return False
    return constant_conv(call, "relax.nn.conv2d", NHWC_LAYOUTS, integer=integer) is not None


def call_te_kernel(
    builder: relax.BlockBuilder, compute, *args, name: str, pattern: int, attrs: dict[str, Any] | None = None
) -> relax.Expr:
    """``builder.call_te(compute, *args)``, its kernel given the fusion pattern ``pattern``
    (TVM's analysis would call a multi-stage kernel, or one loading indices, opaque) and
    the function attributes ``attrs``."""
    call = builder.call_te(compute, *args, primfunc_name_hint=name)
    gvar = call.args[0]
    func = builder.get()[gvar].with_attr("op_pattern", pattern)
    for key, value in (attrs or {}).items():
        func = func.with_attr(key, value)
    builder.update_func(gvar, func)
    return call


def emit_conv_kernel(builder: relax.BlockBuilder, compute, *args, name: str) -> relax.Expr:
    """``builder.call_te(compute, *args)``, the kernel marked fusable with its epilogue (bias,
    residual add, ReLU) like the conv it replaces."""
    return call_te_kernel(builder, compute, *args, name=name, pattern=OUT_ELEMWISE_FUSABLE)


def nbytes(tensor: tvm.runtime.Tensor) -> int:
    """Size of a constant from its shape and dtype (no copy of its data)."""
    return int(np.prod(tensor.shape, dtype=np.int64)) * tvm.DataType(tensor.dtype).bits // 8


def rewrite_calls(
    mod: tvm.IRModule,
    choose: Callable[[relax.Call], Any],
    emit: Callable[[relax.BlockBuilder, relax.Call, Any], relax.Expr],
) -> tvm.IRModule:
    """``mod`` with every call for which ``choose`` returns a choice (not None) replaced by
    ``emit(builder, call, choice)``; ``mod`` itself when nothing changed. The choice is made
    on the call as written (its rewritten arguments no longer carry the constants); ``emit``
    gets the call with its arguments rewritten."""
    mutator = _CallRewriter(mod, choose, emit)
    changed = False
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            new = mutator.visit_expr(func)
            if not new.same_as(func):
                mutator.builder_.update_func(gvar, new)
                changed = True
    return mutator.builder_.get() if changed else mod


def conv_rewrite_pass(
    name: str,
    eligible: Callable[[relax.Call], bool],
    emit: Callable[[relax.BlockBuilder, relax.Call], relax.Expr],
) -> tvm.transform.Pass:
    """A module pass replacing every call that ``eligible`` accepts by what ``emit`` builds
    from it (see :func:`rewrite_calls`)."""

    @tvm.transform.module_pass(opt_level=0, name=name)
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return rewrite_calls(
            mod, lambda call: True if eligible(call) else None, lambda builder, call, _chosen: emit(builder, call)
        )

    return _pass


@relax.expr_functor.mutator
class _CallRewriter(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule, choose, emit):
        super().__init__(mod)
        self.choose = choose
        self.emit = emit

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        choice = self.choose(call)
        call = super().visit_call_(call)
        return call if choice is None else self.emit(self.builder_, call, choice)
