"""Winograd convolution F(m x m, 3 x 3) for stride-1 3x3 convs with constant weights.

A 3x3 conv computes each ``m x m`` block of outputs from an ``a x a`` input tile
(``a = m + 2``).  Winograd's minimal filtering algorithm does it with ``a * a``
multiplications per input/output channel pair instead of ``9 * m * m``::

    Y = A^T [ (G g G^T) (.) (B^T d B) ] A

``U = G g G^T`` is computed from the constant weights by a kernel that runs once, at
init (:func:`filter_transform`, `compiler.init_kernels`; the artifact keeps ``g``); the
conv's kernel transforms input tiles (``V = B^T d B``), runs one matrix product per
tile position (``M[e, n] = V[e, n] @ U[e, n]``, the contraction rule's register
tiles do it) and transforms back.  With ``m = 4`` that is 36 instead of 144
multiply-adds per 4x4 outputs, with ``m = 2`` 16 instead of 36 per 2x2; the price
is weights held ``(a / 3)^2`` times larger in memory (4x, 16/9), so :func:`winograd_pass`
only rewrites convs whose output planes reuse every weight many times, within a
budget of extra memory (:func:`winograd_pass`), choosing each conv's ``m`` (see :func:`_choose`).

Each transform is two passes of 1-D transforms (rows, then columns) with the
matrix coefficients written into the expression (zeros dropped, +-1 without a
multiplication); `compiler.schedules.winograd_transforms.WinogradTransforms` unrolls the tile loops so every
coefficient selection folds to a constant.

Integer convs (`integer_contractions`' int8 x int8 -> int32 products) take F(2x2, 3x3)
exactly: its ``B^T`` and ``A^T`` hold only 0 and +-1, and G's halves go into the weights as
``(2G) g (2G)^T = 4U``, int16 (at most 9 x 128).  Input tiles of 8-bit values (or values
minus a zero point) stay within int16, the products (``i32x4.dot_i16x8_s`` on int16 pairs)
sum in int32, and the output transform gives exactly 4x the conv, shifted back.  Whether
every sum fits int32 is checked per conv from its weights and a bound on its activations
(`qdq.magnitude`).  F(4x4)'s matrices (coefficients 1/24 ... 8, inputs times up to 100)
would not stay within int16.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

import tvm
from tvm import relax, te, tirx, topi

from ..init_kernels import INIT_KERNEL_ATTR
from ..tiles import PACKED_ROWS, WINOGRAD_STAGE_ATTR
from .analysis import bindings
from .conv_rewrite import (
    NHWC_LAYOUTS,
    OPAQUE,
    call_te_kernel,
    conv_layouts,
    emit_conv_kernel,
    is_plain_nhwc_conv,
    padding_rows,
    rewrite_calls,
    static_float32_shape,
)
from .qdq import Lookup, dtype_of, magnitude, static_shape

logger = logging.getLogger(__name__)


# Interpolation points 0, 1, -1, 2, -2 (and infinity): Lavin & Gray, "Fast
# Algorithms for Convolutional Neural Networks" (2016), F(4x4, 3x3) and F(2x2, 3x3).
_F = Fraction
_MATRICES = {
    2: (
        [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
        [[1, 0, 0], [_F(1, 2), _F(1, 2), _F(1, 2)], [_F(1, 2), _F(-1, 2), _F(1, 2)], [0, 0, 1]],
        [[1, 1, 1, 0], [0, 1, -1, -1]],
    ),
    4: (
        [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
         [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
        [[_F(1, 4), 0, 0], [_F(-1, 6), _F(-1, 6), _F(-1, 6)], [_F(-1, 6), _F(1, 6), _F(-1, 6)],
         [_F(1, 24), _F(1, 12), _F(1, 6)], [_F(1, 24), _F(-1, 12), _F(1, 6)], [0, 0, 1]],
        [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
    ),
}

# Below these, the transforms cost more than the multiplications they save.
_MIN_CHANNELS = 16
_MIN_TILES = 16
# The tile size integer convs take, the only one exact in int16 (module doc).
_INTEGER_M = 2
_INTEGER_ACTIVATIONS = ("int8", "uint8", "int16")
_INT16_MAX = 2**15 - 1
_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Transform:
    """The three matrices of F(m x m, 3 x 3), as exact fractions."""

    m: int

    @property
    def alpha(self) -> int:
        return self.m + 2

    def matrices(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """B^T (a x a), G (a x 3), A^T (m x a) as float64 arrays."""
        return tuple(np.array([[float(v) for v in row] for row in mat]) for mat in _MATRICES[self.m])

    def integer_filter(self, weight_hwio: np.ndarray) -> np.ndarray:
        """4U = (2G) g (2G)^T of integer weights, exactly: ``[a, a, CI, CO]`` int64."""
        _, g, _ = _MATRICES[self.m]
        doubled = np.array([[int(2 * v) for v in row] for row in g], np.int64)
        if np.any(doubled != 2 * np.array([[float(v) for v in row] for row in g])):
            raise ValueError(f"F({self.m}x{self.m}, 3x3) has no integer form")
        return np.einsum("ek,nl,klio->enio", doubled, doubled, weight_hwio.astype(np.int64))

    def integer_sums_fit(self, filter_4u: np.ndarray, activation_bound: int) -> bool:
        """Whether an integer conv over activations within ``+-activation_bound`` and
        ``filter_4u`` (:meth:`integer_filter`) keeps its input tiles within int16 and every
        product sum and output transform within int32."""
        bt, _, at = (np.abs(np.array([[float(v) for v in row] for row in mat])) for mat in _MATRICES[self.m])
        tile_bound = int(bt.sum(axis=1).max() ** 2) * activation_bound
        if tile_bound > _INT16_MAX or np.abs(filter_4u).max(initial=0) > _INT16_MAX:
            return False
        products = tile_bound * np.abs(filter_4u).sum(axis=2)  # [a, a, CO]
        outputs = np.einsum("ia,jb,abo->ijo", at, at, products)
        return max(products.max(initial=0), outputs.max(initial=0)) <= _INT32_MAX


def _combination(row, term, dtype: str) -> tirx.PrimExpr:
    """sum_k row[k] * term(k) in ``dtype``: zero coefficients dropped, +-1 as add/subtract."""
    result = None
    for k, coefficient in enumerate(row):
        if coefficient == 0:
            continue
        value = term(k)
        if abs(coefficient) != 1:
            # (Integer ones only in the integer filter transform, where they are 2G's 2s.)
            factor = float(abs(coefficient)) if dtype.startswith("float") else int(abs(coefficient))
            value = value * tirx.const(factor, dtype)
        if result is None:
            result = value if coefficient > 0 else -value
        else:
            result = result + value if coefficient > 0 else result - value
    return result


def _select_row(matrix, index, term, dtype: str = "float32") -> tirx.PrimExpr:
    """``sum_k matrix[index][k] * term(k)`` for a symbolic ``index`` (folds once unrolled)."""
    expr = _combination(matrix[-1], term, dtype)
    for i in range(len(matrix) - 2, -1, -1):
        expr = tirx.Select(index == i, _combination(matrix[i], term, dtype), expr)
    return expr


def _two_pass(name: str, matrix, source, shape) -> te.Tensor:
    """``out[i, j] = sum_a sum_b M[i, a] M[j, b] source[a, b]`` over the first two axes,
    as a pass over rows then one over columns."""
    rows_shape = (len(matrix), shape[1], *shape[2:])
    rows = te.compute(
        rows_shape,
        lambda i, b, *rest: _select_row(matrix, i, lambda a: source(a, b, *rest)),
        name=f"{name}_rows",
        attrs={WINOGRAD_STAGE_ATTR: "rows"},
    )
    return te.compute(
        (len(matrix), len(matrix), *shape[2:]),
        lambda i, j, *rest: _select_row(matrix, j, lambda b: rows(i, b, *rest)),
        name=f"{name}_cols",
        attrs={WINOGRAD_STAGE_ATTR: "cols"},
    )


def conv2d_nhwc(data: te.Tensor, filter_u: te.Tensor, padding, m: int) -> te.Tensor:
    """3x3 stride-1 conv of NHWC ``data`` with transformed weights ``filter_u``
    (``[a, a, CI, CO]``, from :func:`filter_transform`); ``padding`` is (top, left, bottom, right).
    With int16 weights (4U of int8 ones), an integer conv: int16 input tiles, int32 products
    and outputs."""
    integer = filter_u.dtype == "int16"
    transform = Transform(m)
    bt, _, at = _MATRICES[m]
    alpha = transform.alpha
    batch, height, width, in_channels = (int(x) for x in data.shape)
    out_channels = int(filter_u.shape[3])
    top, left, bottom, right = padding
    out_h, out_w = height + top + bottom - 2, width + left + right - 2
    tiles_h, tiles_w = -(-out_h // m), -(-out_w // m)
    tiles = batch * tiles_h * tiles_w
    padded = topi.nn.pad(
        data,
        (0, top, left, 0),
        (0, tiles_h * m + 2 - height - top, tiles_w * m + 2 - width - left, 0),
        name="winograd_pad",
        attrs={WINOGRAD_STAGE_ATTR: "pad"},
    )


    # The product's rows are tile positions: a whole number of 4-row register tiles lets it
    # read them as packed rows (49 tiles of 14x14 or 28x28 planes become 52).  The extra
    # tiles repeat the last one and are never transformed back.
    product_rows = tiles + (padding_rows(tiles, PACKED_ROWS) or 0)

    def input_tile(a, b, p, c):
        p = te.min(p, tiles - 1) if product_rows > tiles else p
        n, q = p // (tiles_h * tiles_w), p % (tiles_h * tiles_w)
        value = padded[n, (q // tiles_w) * m + a, (q % tiles_w) * m + b, c]
        return value.astype("int16") if integer else value

    packed = _two_pass("winograd_input", bt, input_tile, (alpha, alpha, product_rows, in_channels))
    c = te.reduce_axis((0, in_channels), name="c")
    if integer:  # int32(A) * int32(W): what `schedules.integer_contraction` takes to dot products

        def multiply(e, n, p, o):
            return packed[e, n, p, c].astype("int32") * filter_u[e, n, c, o].astype("int32")
    else:

        def multiply(e, n, p, o):
            return packed[e, n, p, c] * filter_u[e, n, c, o]

    product = te.compute(
        (alpha, alpha, product_rows, out_channels),
        lambda e, n, p, o: te.sum(multiply(e, n, p, o), axis=c),
        name="winograd_product",
    )
    inverse = _two_pass("winograd_output", at, product, (alpha, alpha, tiles, out_channels))

    def output(n, h, w, o):
        value = inverse[h % m, w % m, n * tiles_h * tiles_w + (h // m) * tiles_w + w // m, o]
        # Integer weights are 4U: the sums are exactly 4x the conv's, and shift back exactly.
        return tirx.shift_right(value, tirx.const(2, "int32")) if integer else value

    return te.compute((batch, out_h, out_w, out_channels), output, name="conv2d_winograd")


# --------------------------------------------------------------------------
# Relax pass: which convs become Winograd convs
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _Option:
    """Running one conv as F(m x m, 3 x 3): the multiply-adds it saves and the weight bytes it adds."""

    m: int
    saved_macs: int
    extra_bytes: int


def _options(call: relax.Call, lookup: Lookup) -> list[_Option]:
    """The tile sizes ``call`` may run with as a Winograd conv (none: not a conv it can run)."""
    if is_plain_nhwc_conv(call):
        sizes, weight_bytes = sorted(_MATRICES), {m: 4 * (m + 2) ** 2 for m in _MATRICES}
        out_shape = static_float32_shape(call)
    elif _is_integer_conv(call, lookup):
        sizes, weight_bytes = [_INTEGER_M], {_INTEGER_M: 2 * (_INTEGER_M + 2) ** 2}
        out_shape = static_shape(call)
    else:
        return []
    kh, kw, in_channels, out_channels = call.args[1].value.shape
    if (kh, kw) != (3, 3) or in_channels < _MIN_CHANNELS or out_channels < _MIN_CHANNELS:
        return []
    batch, out_h, out_w, _ = out_shape
    pairs = in_channels * out_channels
    direct_macs = batch * out_h * out_w * 9 * pairs
    direct_bytes = 9 * pairs * _bytes_per_value(call.args[1])
    options = []
    for m in sizes:
        # The last tiles of a plane that is not a multiple of m are computed whole, then cropped.
        tiles = batch * -(-out_h // m) * -(-out_w // m)
        if tiles < _MIN_TILES:
            continue
        alpha = m + 2
        options.append(_Option(m, direct_macs - tiles * alpha * alpha * pairs, weight_bytes[m] * pairs - direct_bytes))
    return options


def _bytes_per_value(constant: tvm.ir.expr.Constant) -> int:
    return tvm.DataType(constant.value.dtype).bits // 8


def _is_integer_conv(call: relax.Call, lookup: Lookup) -> bool:
    """A stride-1, undilated, ungrouped NHWC conv of 8-bit (or widened) activations with
    constant HWIO int8 weights into int32, static shapes, an even number of input channels
    (``dot_i16x8`` takes channel pairs), and sums that F(2x2) keeps within int32."""
    if not (isinstance(call.op, tvm.ir.Op) and call.op.name == "relax.nn.conv2d"):
        return False
    attrs = call.attrs
    if conv_layouts(call) != NHWC_LAYOUTS or str(attrs.out_dtype) != "int32":
        return False
    if any(int(v) != 1 for v in (*attrs.strides, *attrs.dilation)) or int(attrs.groups) != 1:
        return False
    data, weight = call.args
    if not isinstance(weight, tvm.ir.expr.Constant) or weight.value.dtype != "int8":
        return False
    if dtype_of(data) not in _INTEGER_ACTIVATIONS or static_shape(data) is None or static_shape(call) is None:
        return False
    kh, kw, in_channels, _ = weight.value.shape
    if (kh, kw) != (3, 3) or in_channels % 2:
        return False
    activation_bound = magnitude(data, lookup)
    transform = Transform(_INTEGER_M)
    return activation_bound is not None and transform.integer_sums_fit(
        transform.integer_filter(weight.value.numpy()), activation_bound
    )


def _choose(candidates: list[tuple[relax.Call, list[_Option]]], limit: float) -> dict[relax.Call, int]:
    """A tile size per conv, within ``limit`` extra bytes: greedily the step (direct -> F(2x2),
    direct or F(2x2) -> F(4x4)) that saves the most multiply-adds per added byte.
    F(2x2) does 16 multiply-adds per 2x2 outputs and channel pair (36 direct) for 7/9 more
    weight bytes, F(4x4) 36 per 4x4 (144 direct) for 27/9 more: a budget goes further as
    F(2x2) on many planes, and 7x7 planes (4 tiles of 4x4) can only take F(2x2)."""
    chosen: dict[int, _Option] = {}
    spent = 0
    while True:
        best = None
        for index, (_, options) in enumerate(candidates):
            current = chosen.get(index)
            for option in options:
                saved = option.saved_macs - (current.saved_macs if current else 0)
                extra = option.extra_bytes - (current.extra_bytes if current else 0)
                if saved <= 0 or extra <= 0 or spent + extra > limit:
                    continue
                # Ties go to the earlier conv, then the smaller tile: the order is reproducible.
                if best is None or saved * best[2] > best[1] * extra:
                    best = (index, saved, extra, option)
        if best is None:
            return {candidates[i][0]: option.m for i, option in chosen.items()}
        index, _, extra, option = best
        chosen[index] = option
        spent += extra


def filter_transform(weight: te.Tensor, m: int) -> te.Tensor:
    """The kernel that transforms HWIO weights at init: ``[a, a, CI, CO]`` U = G g G^T of
    float32 weights (in float32 arithmetic), or 4U = (2G) g (2G)^T of int8 ones in int16
    (:meth:`Transform.integer_filter`, exactly: `_is_integer_conv` let only convs through
    whose 4U fits int16)."""
    _, g, _ = _MATRICES[m]
    integer = weight.dtype == "int8"
    matrix = [[int(2 * v) for v in row] for row in g] if integer else g
    alpha = Transform(m).alpha
    _, _, in_channels, out_channels = (int(x) for x in weight.shape)

    dtype = "int32" if integer else "float32"

    def value(e, n, c, o):
        def tap(k):
            return _select_row(matrix, n, lambda l: weight[k, l, c, o].astype(dtype), dtype)

        u = _select_row(matrix, e, tap, dtype)
        return u.astype("int16") if integer else u

    return te.compute((alpha, alpha, in_channels, out_channels), value, name="winograd_filter")


def _emit(builder: relax.BlockBuilder, call: relax.Call, m: int) -> relax.Expr:
    # The transform runs at init (`init_kernels`): the artifact keeps the conv's weights,
    # not U (16/9 their values, and int16 for int8 weights: 32/9 their bytes).
    filter_u = builder.emit(
        call_te_kernel(
            builder, filter_transform, call.args[1], m, name="winograd_filter", pattern=OPAQUE,
            attrs={INIT_KERNEL_ATTR: True},
        )
    )
    padding = tuple(int(x) for x in call.attrs.padding)
    return emit_conv_kernel(builder, conv2d_nhwc, call.args[0], filter_u, padding, m, name="conv2d_winograd")


def winograd_pass(budget: float) -> tvm.transform.Pass:
    """Rewrite eligible 3x3 convs as Winograd F(2x2, 3x3) or F(4x4, 3x3) (see :func:`_choose`),
    while the transformed weights (made at init) add at most ``budget`` times the memory of the
    module's constants as float32 values: a quantized model may spend what its float32 twin
    could (int8 ResNet-18 at the default 0.5: 42.7 -> 36.6 ms, its int16 transforms 25 MB beside
    11.7 MB of weights, where the float32 weights alone are 47 MB)."""

    @tvm.transform.module_pass(opt_level=0, name="WasmWinogradConv")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        if budget <= 0:
            return mod
        candidates, float32_bytes = [], 0
        bound = bindings(mod)

        def visit(expr):
            nonlocal float32_bytes
            if isinstance(expr, tvm.ir.expr.Constant) and isinstance(expr.value, tvm.runtime.Tensor):
                float32_bytes += 4 * int(np.prod(expr.value.shape, dtype=np.int64))
            elif isinstance(expr, relax.Call):
                options = _options(expr, bound.get)
                if options:
                    candidates.append((expr, options))

        for _, func in mod.functions_items():
            if isinstance(func, relax.Function):
                relax.analysis.post_order_visit(func, visit)
        tile_sizes = _choose(candidates, budget * float32_bytes)
        logger.debug("Winograd tile sizes of %d eligible convs: %s", len(candidates), sorted(tile_sizes.values()))
        if not tile_sizes:
            return mod

        def tile_size(call: relax.Call) -> int | None:
            return next((m for chosen, m in tile_sizes.items() if call.same_as(chosen)), None)

        return rewrite_calls(mod, tile_size, _emit)

    return _pass
