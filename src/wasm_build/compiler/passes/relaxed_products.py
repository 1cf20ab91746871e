"""Integer convs and matmuls on relaxed SIMD's dot product, where their weights allow it.

``i32x4.relaxed_dot_i8x16_i7x16_add_s`` multiplies 16 int8 values by 16 values in [0, 127]
and adds them 4 by 4 into int32 lanes: 16 multiply-adds where `dot_i16x8` does 8 (34 G int8
MAC/s measured against 17). Outside [0, 127] its second operand is implementation-defined
(x86 hosts read it unsigned and saturate the pair sums), so it is only given values known to
lie there: weights, known at build time.

8-bit weights span 255 values; 7-bit ones (onnxruntime's ``reduce_range=True``, its advice for
x86 hosts: symmetric, [-64, 64]) span at most 129 per output channel. Per output channel ``n``
the weights are offset by their least value, ``b = W - low[n]``, and the activations read as
int8 ``s`` (uint8 ones shifted by -128, as ``x ^ 0x80`` would)::

    sum_k x[k] W[k, n] = sum_k s[k] b[k, n] + low[n] * sum_k s[k] + shift * sum_k W[k, n]

The first term is the relaxed product; the second a multiple of the activations' sum over the
reduction (a matmul row, a conv's window), computed by a product of ones over one vector of
lanes; the last a constant. Both corrections fuse into the product's epilogue. ``b``, ``low``
and ``shift * sum W`` are made from the int8 weights when the module is initialized
(`compiler.init_kernels`) where that makes the artifact smaller: the int8 weights then ship as
a build without relaxed SIMD ships them, and ``b``'s repeated channels (below) or the int32
values per output channel are not shipped; each kernel run at init costs code, about a
kilobyte (`_INIT_KERNEL_BYTES`). Where ``b``
reaches 128 (a channel holding both -64 and 64) it is taken down to 127 and the 1 multiplied
apart: the input channels that held such a weight are read a second time, at weight 1 for the
output channels concerned (`offset_weights`). Exact: every term is the integer sum it stands for.

Taken: the int32 matmuls (weights ``[K, N]``) and NHWC convs (groups 1) that
`integer_contractions` writes, 8-bit activations widened to int16 and constant int8 weights,
with a multiple of 4 input channels, and weights spanning at most 129 values per output
channel; others keep `dot_i16x8`. Convs padded over uint8 activations get the padding written
out at the shifted zero (-128). Runs after `winograd` (F(2x2)'s 2.25x fewer multiply-adds beat
the relaxed dot's faster ones), and only with ``relaxed-simd = true`` (the module then needs a
host with relaxed SIMD).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, te, tirx

from ..init_kernels import INIT_KERNEL_ATTR
from .analysis import mutate_functions
from .conv_rewrite import NHWC_LAYOUTS, OPAQUE, call_te_kernel, conv_layouts
from .qdq import bound, constant, dtype_of, flipped_bytes, op_name

# Reduction steps of one relaxed dot product (`schedules.dot_products.RELAXED_DOT`).
_DEPTH = 4
# The instruction's second operand: [0, 127].
_WINDOW = 127
# Input channels read a second time, at most, as a fraction of the reduction's: each one costs a
# reduction step, and the relaxed dot's 1.5-1.7x faster steps (measured) no longer pay past
# about 0.6 (a 1x1 conv over 12 channels had 16 to repeat).
_MAX_REPEATED = 0.5
# Code of a kernel run at init, about (36 of them made 39 KB of a wasm32 module): values are
# made at init only where the constants they replace are larger (`_RelaxedProducts._made_at_init`).
_INIT_KERNEL_BYTES = 1536


@dataclass(frozen=True)
class _Offsets:
    # uint8 in [0, 127]: W - low, in W's layout, with the reduction's repeated channels after
    # the others (see `offset_weights`).
    weights: np.ndarray
    low: np.ndarray  # int32 per output channel
    sums: np.ndarray  # int32 per output channel: W summed over everything but its channel
    # Input channels the product reads a second time, a multiple of 4 of them (or none): the
    # first `rows` hold a top weight, the others pad the group and are read at weight 0.
    repeated: np.ndarray
    rows: int


@dataclass(frozen=True)
class _Product:
    """A product the relaxed dot takes, as `_RelaxedProducts._product` reads it."""

    signed: relax.Expr  # the activation as int8
    shift: int  # what was taken from it: 128 for uint8, else 0
    weights: np.ndarray  # int8
    offsets: _Offsets
    # Whether the offset weights, lows and sums are made at init (`_made_at_init`).
    at_init: bool


def offset_weights(weights: np.ndarray, channel_axis: int, depth_axis: int) -> _Offsets | None:
    """Int8 weights as uint8 in [0, 127] less the least value of their output channel (along
    ``channel_axis``); None when a channel's weights span more than 129 values.

    A channel spanning 129 (7-bit weights: both -64 and 64) has its weights at the top taken
    down to 127, and the 1 taken off each multiplied apart: the input channels (along
    ``depth_axis``, the reduction's) that held one are read a second time, at weight 1 for the
    output channels they were taken from. That is a few more reduction steps for the whole
    product (channels in whole groups of the dot's depth, the extra ones of weight 0), where
    a second product would need its sums gathered to their channels after it."""
    if weights.dtype != np.int8:
        return None
    wide = weights.astype(np.int32)
    others = tuple(axis for axis in range(wide.ndim) if axis != channel_axis)
    low = wide.min(axis=others, keepdims=True)
    offset = wide - low
    if offset.max() > _WINDOW + 1:
        return None
    top = (offset > _WINDOW).astype(np.int32)
    rows = np.flatnonzero(top.any(axis=tuple(axis for axis in range(wide.ndim) if axis != depth_axis)))
    extra = -rows.size % _DEPTH
    repeated = np.concatenate([rows, np.full(extra, rows[0] if rows.size else 0)]).astype(np.int32)
    again = np.take(top, repeated, axis=depth_axis)
    if extra:  # the padding channels count for nothing
        index = [slice(None)] * wide.ndim
        index[depth_axis] = slice(rows.size, None)
        again[tuple(index)] = 0
    return _Offsets(
        weights=np.concatenate([offset - top, again], axis=depth_axis).astype(np.uint8),
        low=low.reshape(-1).astype(np.int32),
        sums=wide.sum(axis=others).astype(np.int32),
        repeated=repeated,
        rows=rows.size,
    )


def pays(offsets: _Offsets, channels: int) -> bool:
    """Whether the relaxed product is worth its repeated input channels (`_MAX_REPEATED`)."""
    return offsets.repeated.size <= _MAX_REPEATED * channels


def _over_channels(weights: te.Tensor, reducer, name: str, scale: int = 1) -> te.Tensor:
    """int32 per output channel (the last axis): ``reducer`` over all other axes of ``weights``
    (times ``scale``)."""
    axes = [te.reduce_axis((0, extent), name=f"r{i}") for i, extent in enumerate(weights.shape[:-1])]
    return te.compute(
        (weights.shape[-1],), lambda n: reducer(weights[(*axes, n)].astype("int32") * scale, axis=axes), name=name
    )


def channel_lows(weights: te.Tensor) -> te.Tensor:
    """`_Offsets.low` of ``[..., K, N]`` int8 weights, at init."""
    return _over_channels(weights, te.min, "relaxed_lows")


def channel_sums(weights: te.Tensor, shift: int) -> te.Tensor:
    """``shift * `_Offsets.sums``` of ``[..., K, N]`` int8 weights, at init."""
    return _over_channels(weights, te.sum, "relaxed_sums", shift)


def offset_filter(weights: te.Tensor, repeated: te.Tensor | None = None, rows: int = 0) -> te.Tensor:
    """`_Offsets.weights` of ``[..., K, N]`` int8 weights, at init: ``W - low`` at most 127,
    then the ``repeated`` input channels (the first ``rows`` of them real) at weight 1 where
    their channel was taken down from 128."""
    low = channel_lows(weights)
    depth = int(weights.shape[-2])
    extra = 0 if repeated is None else int(repeated.shape[0])

    def value(*index):
        *outer, k, n = index
        offset = tirx.min(weights[(*outer, k, n)].astype("int32") - low[n], _WINDOW)
        if repeated is None:
            return offset.astype("uint8")
        again = tirx.max(k - depth, 0)
        top = weights[(*outer, repeated[again], n)].astype("int32") - low[n] > _WINDOW
        taken = tirx.if_then_else(tirx.all(again < rows, top), 1, 0)
        return tirx.if_then_else(k < depth, offset, taken).astype("uint8")

    shape = (*weights.shape[:-2], depth + extra, weights.shape[-1])
    return te.compute(shape, value, name="relaxed_weights")


@relax.expr_functor.mutator
class _RelaxedProducts(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        # What several products of one activation share (a transformer's Q, K and V): its int8
        # form, padded form and sums, made once.
        self.made: dict[tuple, relax.Expr] = {}
        # The ``shift * sum W`` constants added to products, for `_joined_shift`.
        self.shifts: list[tvm.ir.expr.Constant] = []

    def visit_dataflow_block_(self, block: relax.DataflowBlock) -> relax.BindingBlock:
        self.made = {}  # what a block binds is out of scope in the next
        return super().visit_dataflow_block_(block)

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        for rule in (self._matmul, self._conv, self._joined_shift):
            rewritten = rule(call)
            if rewritten is not None:
                return rewritten
        return call

    def _matmul(self, call: relax.Call) -> relax.Expr | None:
        if op_name(call) != "relax.matmul" or str(call.attrs.out_dtype) != "int32":
            return None
        found = self._product(call, ndim=2, channel_axis=1, depth_axis=0)
        if found is None:
            return None
        signed = found.signed
        reads = self._repeating(signed, found.offsets.repeated, -1)
        product = self.builder_.emit(relax.op.matmul(reads, self._filter(found), out_dtype="int32"))

        def row_sums():
            ones = relax.const(np.ones((found.weights.shape[0], _DEPTH), np.uint8))
            return self._once(("rows", signed), lambda: self._sums(relax.op.matmul(signed, ones, out_dtype="int32"), -1))

        return self._corrected(product, row_sums, found)

    def _conv(self, call: relax.Call) -> relax.Expr | None:
        """An NHWC conv2d as the matmul above, its row sums each output pixel's window sums
        (the same conv over weights of ones). Padding of an activation read shifted (uint8) is
        written out at the shifted zero (-128)."""
        if op_name(call) != "relax.nn.conv2d" or str(call.attrs.out_dtype) != "int32":
            return None
        attrs = call.attrs
        if conv_layouts(call) != NHWC_LAYOUTS or int(attrs.groups) != 1:
            return None
        found = self._product(call, ndim=4, channel_axis=3, depth_axis=2)
        if found is None:
            return None
        signed = found.signed
        padding = tuple(int(p) for p in attrs.padding)  # top, left, bottom, right
        if found.shift and any(padding):
            top, left, bottom, right = padding
            width = [0, 0, top, bottom, left, right, 0, 0]
            signed = self._once(("pad", signed, padding), lambda: relax.op.nn.pad(signed, width, pad_value=-128.0))
            padding = (0, 0, 0, 0)
        geometry = {
            "strides": [int(v) for v in attrs.strides],
            "padding": list(padding),
            "dilation": [int(v) for v in attrs.dilation],
        }
        conv = dict(**geometry, data_layout="NHWC", kernel_layout="HWIO", out_layout="NHWC", out_dtype="int32")
        reads = self._repeating(signed, found.offsets.repeated, 3)
        product = self.builder_.emit(relax.op.nn.conv2d(reads, self._filter(found), **conv))

        def window_sums():
            ones = relax.const(np.ones((*found.weights.shape[:3], _DEPTH), np.uint8))
            return self._once(
                ("windows", signed, found.weights.shape[:2], *(tuple(v) for v in geometry.values())),
                lambda: self._sums(relax.op.nn.conv2d(signed, ones, **conv), 3),
            )

        return self._corrected(product, window_sums, found)

    def _corrected(self, product: relax.Expr, sums, found: _Product) -> relax.Expr:
        """``product`` plus ``low`` times the activations' ``sums()`` (a function: they are
        made only where some ``low`` is not 0) plus ``shift * sum W``."""
        offsets, weights, shift = found.offsets, found.weights, found.shift
        if np.any(offsets.low):
            lows = self._at_init(channel_lows, weights) if found.at_init else relax.const(offsets.low)
            product = relax.op.add(product, relax.op.multiply(sums(), lows))
        if shift:
            if found.at_init:
                shifted = self._at_init(channel_sums, weights, shift)
            else:
                shifted = relax.const(shift * offsets.sums)
                self.shifts.append(shifted)
            product = relax.op.add(product, shifted)
        return product

    def _joined_shift(self, call: relax.Call) -> relax.Expr | None:
        """A product's ``shift * sum W`` joined with the constant term after it, in int32
        (exact: wrapping sums reassociate), so it ships as no constant of its own: ``(x + c)
        + b`` (a static model's bias) as ``x + (c + b)``; ``(x + c) - z * S`` (a dynamically
        quantized model's zero-point correction, ``S = sum W``, ``c = shift * S``) as
        ``x + (shift - z) * S``; either with the crop of padded output channels between
        (`integer_contractions` pads them to whole vectors). The first sum is left unused
        (`DeadCodeElimination` after)."""
        if op_name(call) not in ("relax.add", "relax.subtract") or dtype_of(call) != "int32":
            return None
        shifted = self._shifted(call.args[0])
        if shifted is None:
            return None
        x, values = shifted
        if op_name(call) == "relax.add":
            term = constant(call.args[1], self.lookup_binding)
            if term is None or dtype_of(call.args[1]) != "int32":
                return None
            return relax.op.add(x, relax.const((values + term).astype(np.int32)))
        correction = bound(call.args[1], self.lookup_binding)
        if op_name(correction) != "relax.multiply":
            return None
        zero_point, sums = correction.args
        known = constant(sums, self.lookup_binding)
        if known is None or known.shape != values.shape or int(zero_point.ty.ndim) != 0 or not known.any():
            return None
        shift = int(values[known != 0][0] // known[known != 0][0])
        if not np.array_equal(values, shift * known.astype(np.int64)):
            return None
        return relax.op.add(x, relax.op.multiply(relax.op.subtract(relax.const(shift, "int32"), zero_point), sums))

    def _shifted(self, expr: relax.Expr) -> tuple[relax.Expr, np.ndarray] | None:
        """(``x``, ``c``) where ``expr`` is ``x + c`` with ``c`` one of `shifts`, or a crop of
        that sum's last axis from 0 (then ``x`` cropped, ``c`` too)."""
        value = bound(expr, self.lookup_binding)
        crop = None
        if op_name(value) == "relax.strided_slice":
            # Arguments: data, axes, begin, end[, strides], each a tuple of integers.
            axes, begin, end, *strides = ([int(f.value) for f in arg.fields] for arg in value.args[1:])
            ndim = int(value.ty.ndim)
            if [a % ndim for a in axes] != [ndim - 1] or begin != [0] or strides not in ([], [[1]]):
                return None
            crop, value = end[0], bound(value.args[0], self.lookup_binding)
        if op_name(value) != "relax.add" or not any(value.args[1].same_as(c) for c in self.shifts):
            return None
        x, values = value.args[0], value.args[1].value.numpy()
        if crop is None:
            return x, values
        return relax.op.strided_slice(x, axes=[-1], begin=[0], end=[crop]), values[..., :crop]

    def _filter(self, found: _Product) -> relax.Expr:
        """`_Offsets.weights`, as a constant or made at init."""
        offsets = found.offsets
        if not found.at_init:
            return relax.const(offsets.weights)
        if not offsets.repeated.size:
            return self._at_init(offset_filter, found.weights)
        return self._at_init(offset_filter, found.weights, relax.const(offsets.repeated), offsets.rows)

    @staticmethod
    def _made_at_init(weights: np.ndarray, offsets: _Offsets, shift: int) -> bool:
        """Whether a product's offset weights, lows and sums are made at init: where the
        constants that saves (the repeated channels' weights, int32 values per output
        channel) outweigh the kernels' code (`_INIT_KERNEL_BYTES`). All or none: made at
        init, they are made from the int8 weights, which the artifact then carries."""
        kernels = 1 + bool(np.any(offsets.low)) + bool(shift)
        saved = offsets.weights.nbytes - weights.nbytes + offsets.low.nbytes * (kernels - 1)
        return saved > kernels * _INIT_KERNEL_BYTES

    def _at_init(self, compute, weights: np.ndarray, *args) -> relax.Expr:
        """``compute`` over the int8 ``weights`` (`offset_filter`, `channel_lows`,
        `channel_sums`) as a kernel run at init (`compiler.init_kernels`)."""
        call = call_te_kernel(
            self.builder_, compute, relax.const(weights), *args, name=compute.__name__, pattern=OPAQUE,
            attrs={INIT_KERNEL_ATTR: True},
        )
        return self.builder_.emit(call)

    def _product(self, call: relax.Call, ndim: int, channel_axis: int, depth_axis: int) -> _Product | None:
        """``call`` as a product the relaxed dot takes, else None."""
        activation = self._narrow(call.args[0])
        weights = constant(call.args[1], self.lookup_binding)
        if activation is None or weights is None or weights.ndim != ndim or weights.shape[depth_axis] % _DEPTH:
            return None
        offsets = offset_weights(weights, channel_axis, depth_axis)
        if offsets is None or not pays(offsets, weights.shape[depth_axis]):
            return None
        signed, shift = self._signed(activation)
        return _Product(signed, shift, weights, offsets, self._made_at_init(weights, offsets, shift))

    def _narrow(self, expr: relax.Expr) -> relax.Expr | None:
        """The 8-bit tensor an int16 operand was widened from (``astype(x, int16)``, maybe
        transposed after: `nhwc_conv`'s layout change at a model's input), else None."""
        widened = bound(expr, self.lookup_binding)
        axes: tuple[int, ...] | None = None  # None: not transposed
        if op_name(widened) == "relax.permute_dims":
            ndim = int(widened.ty.ndim)
            given = widened.attrs.axes
            axes = tuple(reversed(range(ndim))) if given is None else tuple(int(a) for a in given)
            widened = bound(widened.args[0], self.lookup_binding)
        if op_name(widened) != "relax.astype" or dtype_of(widened) != "int16":
            return None
        narrow = widened.args[0]
        if dtype_of(narrow) not in ("int8", "uint8"):
            return None
        if axes is None:
            return narrow
        return self._once(("transposed", narrow, axes), lambda: relax.op.permute_dims(narrow, list(axes)))

    def _signed(self, activation: relax.Expr) -> tuple[relax.Expr, int]:
        """The activation as int8 and what was taken from it (128 for uint8, else 0)."""
        if dtype_of(activation) == "int8":
            return activation, 0
        return self._once(("signed", activation), lambda: flipped_bytes(activation)), 128

    def _repeating(self, activation: relax.Expr, channels: np.ndarray, axis: int) -> relax.Expr:
        """The activation with ``channels`` (along ``axis``) after its own (`offset_weights`)."""
        if not channels.size:
            return activation
        again = relax.op.take(activation, relax.const(channels), axis=axis, mode="clip")  # "fast" warns at every build
        return self.builder_.emit(relax.op.concat([activation, again], axis=axis))

    def _sums(self, ones_product: relax.Expr, axis: int) -> relax.Expr:
        """A product of ones over one vector of lanes (4 equal sums: the dot-product kernels
        take whole vectors), its first lane."""
        sums = self.builder_.emit(ones_product)
        axis = axis % int(sums.ty.ndim)
        return relax.op.strided_slice(sums, axes=[axis], begin=[0], end=[1])

    def _once(self, key: tuple, make) -> relax.Expr:
        if key not in self.made:
            self.made[key] = self.builder_.emit(make())
        return self.made[key]


def relaxed_products_pass() -> tvm.transform.Pass:
    @tvm.transform.module_pass(opt_level=0, name="WasmRelaxedProducts")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return mutate_functions(_RelaxedProducts(mod), mod)

    return _pass
