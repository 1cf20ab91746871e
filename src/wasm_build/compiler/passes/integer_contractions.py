"""Quantized convs and matmuls as integer products with a fused requantize epilogue.

TVM's ONNX frontend imports a QDQ conv as ``quantize(conv2d(dequantize(x), dequantize(W)) +
dequantize(bias))``: a float32 conv whose weights ``FoldConstant`` would turn into float32
constants. This pass rewrites it as onnxruntime's ``QLinearConv`` computes it::

    acc = conv2d(x, W, out_dtype=int32)                  # int8/uint8 x int8, exact
    q   = saturate(round(float(acc + offset) * m) + zy)  # offset: bias - zx * sum(W), per channel
                                                         # m = sx * sw / sy, per channel

``m`` is computed in float32 in onnxruntime's order, so results match it exactly (and stay
within one quantization step of the float graph TVM imports). The epilogue is elementwise
Relax arithmetic, which FuseOps fuses into the product's kernel. ``MatMulInteger``
(``quantize_dynamic``'s form, imported as an int32 matmul of widened operands) keeps its int8
operands the same way, its activation zero point (a run-time value) corrected in the epilogue.

Rules, applied in one walk over each function (a float reconstruction of every integer
product is emitted too, so anything no rule matches still computes the same value, and dead
code elimination removes what nothing reads):

* ``conv2d`` / ``conv1d`` / ``matmul`` of a per-tensor dequantized activation and constant
  int8 weights with zero points 0 (symmetric, per tensor or per output channel) becomes the
  integer product, tracked as an `Accumulation` (a ``conv1d`` as a 2-D conv over planes one
  row high, squeezed after its epilogue);
* ``add`` of a tracked accumulation and a dequantized int32 constant bias at its scale joins
  the bias to the offset;
* ReLU / Clip / maximum / minimum by constants on a tracked accumulation narrow its clamp;
* ``quantize`` of a tracked accumulation becomes the requantize epilogue.

Zero padding of an activation whose zero point is not 0 would add the wrong value: such
activations are read as the other 8-bit type when that makes the zero point 0 (uint8 zero
point 0 is int8 -128: the usual case after a ReLU), else widened to int16 minus the zero point.
The activations of dense products are read as int16 in any case: the dot-product kernels
(`schedules.dot_products`) multiply int16 pairs, and a tensor widened once where it is made
saves the kernel a widening per row at every reduction step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import tvm
from tvm import relax, tirx

from .analysis import mutate_functions
from .qdq import (
    INT_RANGES,
    QUANTIZE,
    Dequantized,
    as_dequantize,
    bound,
    channel_shape,
    constant,
    dtype_of,
    flipped_bytes,
    op_name,
    saturate,
    static_shape,
)
from .scalar_clamp import scalar_clamp_op

# Output channels of one vector of int32 accumulators (`schedules.dot_products.LANES`).
_LANES = 4

_ACTIVATIONS = ("int8", "uint8")
# Dense convs over an odd number of input channels (an RGB stem) get a zero-weight channel
# (`_paired_channels`): `i32x4.dot_i16x8_s` multiplies channel pairs. Kept in float, the stem's
# quantize rounded a few values a step away from the reference's (a different summation order),
# and the integer layers after it amplified that past the smoke test's step (int8 MobileNetV2:
# 2 steps at the logits).
# Depthwise convs (one channel per group) stay 8-bit: `paired_taps` widens their activations
# where it pairs window taps (and `tir.narrow_products` multiplies those it cannot pair in 16
# bits, which int16 activations would rule out: they ran 1.6x slower).


def _whole_lane_vectors(weights: np.ndarray, axis: int) -> np.ndarray:
    """``weights`` with zero output channels (along ``axis``) up to a whole number of 4-lane
    vectors: the dot-product tiles (`schedules.integer_contraction`) take only whole vectors, and
    a conv or matmul with 6, 10 or 110 output channels (SE blocks, GhostNet) otherwise ran as a
    plain loop at a tenth of their rate. The product's extra channels are cropped after it."""
    extra = -weights.shape[axis] % _LANES
    if not extra:
        return weights
    shape = list(weights.shape)
    shape[axis] = extra
    return np.concatenate([weights, np.zeros(shape, weights.dtype)], axis=axis)


@dataclass(frozen=True)
class Accumulation:
    """An integer product whose real value is ``(product + offset) * scale``, clamped to
    [low, high] by the activations met between the product and its quantize."""

    product: relax.Var  # int32
    offset: np.ndarray  # int32 per output channel, or one value
    scale: np.ndarray  # float32 per output channel, or one value
    axis: int  # output channel axis
    ndim: int  # of the value the graph reads
    low: float = -math.inf
    high: float = math.inf
    # A 1-D conv's product keeps the plane's row axis (2) until its epilogue is done: a squeeze
    # between the conv and its epilogue would keep FuseOps from fusing them.
    planar: bool = False

    def finished(self, value: relax.Expr) -> relax.Expr:
        """``value``, computed over the product's shape, in the shape the graph reads."""
        return relax.op.squeeze(value, axis=[2]) if self.planar else value


@dataclass(frozen=True)
class _Weights:
    values: np.ndarray  # int8, in the layout the call reads
    scale: np.ndarray  # float32 per output channel, or one value
    channel_axis: int  # output channel axis of `values`

    def along(self, axis: int) -> bool:
        """Whether the scales are per tensor or per channel along ``axis`` (TVM imports a
        per-tensor dequantize with axis 1, whatever the operator's channel axis)."""
        return self.scale.size == 1 or self.channel_axis == axis


@relax.expr_functor.mutator
class _IntegerContractions(relax.PyExprMutator):
    def __init__(self, mod: tvm.IRModule) -> None:
        super().__init__(mod)
        self.mod = mod
        self.accumulations: dict[relax.Var, Accumulation] = {}

    # -- dispatch ------------------------------------------------------------------------

    def visit_call_(self, call: relax.Call) -> relax.Expr:
        call = super().visit_call_(call)
        name = op_name(call)
        rewritten = None
        if name in ("relax.nn.conv2d", "relax.nn.conv1d", "relax.matmul"):
            for rule in (self._product, self._activation_product, self._matmul_integer, self._conv_integer):
                rewritten = rule(call)
                if rewritten is not None:
                    break
        elif name == "relax.add":
            rewritten = self._bias(call)
        elif name == QUANTIZE:
            rewritten = self._requantize(call)
        else:
            rewritten = self._clamp(call)
        return call if rewritten is None else rewritten

    def _tracked(self, expr: relax.Expr) -> Accumulation | None:
        for _ in range(64):
            if not isinstance(expr, relax.Var):
                return None
            if expr in self.accumulations:
                return self.accumulations[expr]
            expr = self.lookup_binding(expr)
        return None

    def _track(self, acc: Accumulation) -> relax.Var:
        """Emit the float value of ``acc`` (what the float graph computed) and track it."""
        total = acc.product
        if np.any(acc.offset):
            total = relax.op.add(total, self._channel_const(acc.offset, acc, "int32"))
        value = relax.op.multiply(relax.op.astype(total, "float32"), self._channel_const(acc.scale, acc, "float32"))
        var = self.builder_.emit(acc.finished(value))
        self.accumulations[var] = acc
        return var

    @staticmethod
    def _channel_const(values: np.ndarray, acc: Accumulation, dtype: str) -> relax.Expr:
        flat = np.asarray(values).reshape(-1).astype(dtype)
        if flat.size == 1:
            return relax.const(flat[0], dtype)
        return relax.const(flat.reshape(channel_shape(acc.ndim + acc.planar, acc.axis, flat.size)), dtype)

    # -- products ------------------------------------------------------------------------

    def _product(self, call: relax.Call) -> relax.Expr | None:
        """``conv2d``/``matmul`` of a dequantized activation and dequantized constant weights."""
        if str(call.attrs.out_dtype) not in ("", "None", "void", "float32"):
            return None
        data = as_dequantize(call.args[0], self.lookup_binding)
        weights = self._weights(call.args[1])
        out_shape = static_shape(call)
        if data is None or weights is None or out_shape is None or not data.per_tensor:
            return None
        if dtype_of(data.tensor) not in _ACTIVATIONS:
            return None
        if op_name(call) in ("relax.nn.conv2d", "relax.nn.conv1d"):
            attrs = call.attrs
            layouts = (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout))
            if layouts not in (("NCHW", "OIHW", "NCHW"), ("NCW", "OIW", "NCW")) or not weights.along(0):
                return None
            activation, zero_point = self._activation(data, padded=any(int(p) for p in attrs.padding))
            product = self._conv_product(activation, weights.values, attrs)
            axis = 1
            sums = weights.values.astype(np.int64).sum(axis=tuple(range(1, weights.values.ndim)))
        else:
            if weights.values.ndim != 2 or not weights.along(1) or len(out_shape) < 1:
                return None
            activation, zero_point = self._widened_activation(data.tensor), int(data.zero_point.reshape(-1)[0])
            axis, padded = len(out_shape) - 1, _whole_lane_vectors(weights.values, 1)
            product = relax.op.matmul(activation, relax.const(padded), out_dtype="int32")
            product = self._cropped(product, axis, weights.values.shape[1], padded.shape[1])
            sums = weights.values.astype(np.int64).sum(axis=0)
        scale = np.float32(data.scale.reshape(-1)[0]) * weights.scale
        acc = Accumulation(
            product=product,
            offset=(-zero_point * sums).astype(np.int32),
            scale=scale.astype(np.float32),
            axis=axis,
            ndim=len(out_shape),
            planar=op_name(call) == "relax.nn.conv1d",
        )
        return self._track(acc)

    def _conv_product(self, activation: relax.Expr, kernel: np.ndarray, attrs) -> relax.Var:
        """The int32 conv of ``activation`` and the int8 ``kernel`` (emitted). A 1-D conv is
        computed as a 2-D one over planes one row high, as `conv1d_planes` does for float ones
        (which runs after this pass): the integer conv2d schedules and `paired_taps` take it, where
        a conv1d would have run in TVM's scalar kernel (int8 TCNs, wav2vec2's feature encoder).
        Its product keeps the row axis (`Accumulation.planar`)."""
        dense = int(attrs.groups) == 1
        if dense:  # depthwise products stay 8-bit (`tir.narrow_products`)
            activation = self._widened_activation(activation)
            if kernel.shape[1] % 2:
                activation, kernel = self._paired_channels(activation, kernel)
        planar = kernel.ndim == 3
        strides, padding, dilation = (tuple(int(v) for v in getattr(attrs, key)) for key in ("strides", "padding", "dilation"))
        if planar:
            activation = self.builder_.emit(relax.op.expand_dims(activation, axis=2))
            kernel = kernel[:, :, None, :]
            strides, padding, dilation = (1, *strides), (0, padding[0], 0, padding[1]), (1, *dilation)
        padded = _whole_lane_vectors(kernel, 0) if dense else kernel
        product = relax.op.nn.conv2d(activation, relax.const(padded), strides, padding, dilation,
                                     int(attrs.groups), "NCHW", "OIHW", "NCHW", "int32")
        return self._cropped(product, 1, kernel.shape[0], padded.shape[0])

    def _activation_product(self, call: relax.Call) -> relax.Expr | None:
        """``matmul`` of two per-tensor dequantized 8-bit activations (a statically quantized
        transformer's Q Kᵀ and scores x V): both widened to int16 minus their zero points
        (exact, and zero padding then adds nothing) and multiplied in int32, the right operand
        repacked per call by its kernel (`schedules.integer_contraction`). Its columns are padded
        to whole 4-lane vectors (79 keys to 80) and cropped after it; an odd reduction (scores
        x V over 79 keys) is padded to pairs by the kernel: a zero column padded here is fused
        into the softmax making the scores, whose exponentials then ran lane by lane."""
        if str(call.attrs.out_dtype) not in ("", "None", "void", "float32"):
            return None
        lhs, rhs = (as_dequantize(arg, self.lookup_binding) for arg in call.args)
        out_shape = static_shape(call)
        if lhs is None or rhs is None or out_shape is None or not (lhs.per_tensor and rhs.per_tensor):
            return None
        if constant(rhs.tensor, self.lookup_binding) is not None:
            return None  # weights: `_product`'s
        shapes = static_shape(lhs.tensor), static_shape(rhs.tensor)
        if any(shape is None or len(shape) < 2 for shape in shapes):
            return None
        if dtype_of(lhs.tensor) not in _ACTIVATIONS or dtype_of(rhs.tensor) not in _ACTIVATIONS:
            return None
        columns = shapes[1][-1]
        extra_columns = -columns % _LANES
        operands = [self._centered(operand.tensor, int(operand.zero_point.reshape(-1)[0])) for operand in (lhs, rhs)]
        if extra_columns:
            padding = [0, 0] * (len(shapes[1]) - 1) + [0, extra_columns]
            operands[1] = self.builder_.emit(relax.op.nn.pad(operands[1], padding))
        product = self._cropped(relax.op.matmul(*operands, out_dtype="int32"), len(out_shape) - 1, columns, columns + extra_columns)
        scale = np.float32(lhs.scale.reshape(-1)[0]) * np.float32(rhs.scale.reshape(-1)[0])
        return self._track(Accumulation(product=product, offset=np.zeros(1, np.int32), scale=np.array([scale], np.float32),
                                        axis=len(out_shape) - 1, ndim=len(out_shape)))

    def _weights(self, expr: relax.Expr) -> _Weights | None:
        """Dequantized constant int8 (or uint8) weights with zero points 0 (symmetric), maybe
        transposed (Gemm's transB): their values, scales and output channel axis."""
        expr = bound(expr, self.lookup_binding)
        if op_name(expr) == "relax.permute_dims":
            inner = self._weights(expr.args[0])
            if inner is None:
                return None
            axes = [int(a) for a in expr.attrs.axes] if expr.attrs.axes is not None else None
            axes = axes or list(reversed(range(inner.values.ndim)))
            return _Weights(np.transpose(inner.values, axes), inner.scale, axes.index(inner.channel_axis))
        dq = as_dequantize(expr, self.lookup_binding)
        if dq is None or not dq.static:
            return None
        values = constant(dq.tensor, self.lookup_binding)
        if values is None or values.dtype not in (np.int8, np.uint8):
            return None
        zero_point = dq.zero_point.reshape(-1)
        if values.dtype == np.uint8:  # the same weights as int8, zero points shifted with them
            values, zero_point = (values.astype(np.int16) - 128).astype(np.int8), zero_point - 128
        if np.any(zero_point):
            return None  # asymmetric weights would need the activations' window sums
        scale = dq.scale.reshape(-1)
        axis = dq.axis % values.ndim
        if scale.size not in (1, values.shape[axis]):
            return None
        return _Weights(values, scale.astype(np.float32), axis)

    def _activation(self, data: Dequantized, padded: bool) -> tuple[relax.Expr, int]:
        """The activation as the product reads it and its zero point. Padding adds zeros,
        which must be the zero point's value: an int8 tensor with zero point -128 is read as
        uint8 with 0, a uint8 one with 128 as int8 with 0, others widened to int16 minus it."""
        tensor, zero_point = data.tensor, int(data.zero_point.reshape(-1)[0])
        if not padded or zero_point == 0:
            return tensor, zero_point
        if (dtype_of(tensor), zero_point) in (("int8", -128), ("uint8", 128)):
            return self.builder_.emit(flipped_bytes(tensor)), 0
        return self._centered(tensor, zero_point), 0

    def _centered(self, tensor: relax.Expr, zero_point: relax.Expr | int) -> relax.Var:
        """``int16(tensor) - zero_point`` (emitted): an 8-bit activation's real steps, exact in
        int16, whose zero padding pads the zero point."""
        if isinstance(zero_point, int):
            zero_point = relax.const(zero_point, "int16")
        return self.builder_.emit(relax.op.subtract(relax.op.astype(tensor, "int16"), zero_point))

    def _paired_channels(self, activation: relax.Expr, kernel: np.ndarray) -> tuple[relax.Expr, np.ndarray]:
        """A dense conv over an odd number of input channels (an RGB stem) with one more, of
        zero weights: the dot-product kernels multiply channel pairs. Its activations are
        padded with zeros (which the zero weights ignore, whatever the zero point)."""
        channels = np.zeros((kernel.shape[0], 1, *kernel.shape[2:]), kernel.dtype)
        padding = [0, 0, 0, 1] + [0, 0] * (len(kernel.shape) - 2)
        return self.builder_.emit(relax.op.nn.pad(activation, padding)), np.concatenate([kernel, channels], axis=1)

    def _cropped(self, product: relax.Expr, axis: int, channels: int, padded: int) -> relax.Var:
        """The product (emitted), its ``channels`` real output channels when the weights were
        padded to ``padded`` (`_whole_lane_vectors`)."""
        product = self.builder_.emit(product)
        if padded == channels:
            return product
        return self.builder_.emit(relax.op.strided_slice(product, axes=[axis], begin=[0], end=[channels]))

    def _widened_activation(self, tensor: relax.Expr) -> relax.Expr:
        """8-bit activations of a dense product as int16 (same values), widened once where they
        are made (FuseOps puts the cast in the producer's kernel) rather than at every use."""
        if dtype_of(tensor) == "int16":
            return tensor
        return self.builder_.emit(relax.op.astype(tensor, "int16"))

    def _matmul_integer(self, call: relax.Call) -> relax.Expr | None:
        """``MatMulInteger`` as imported: ``matmul(int32(x) - zx, int32(W) - zw, int32)``, with
        W a constant int8 matrix, zw = 0 and zx a run-time value (DynamicQuantizeLinear's)."""
        if op_name(call) != "relax.matmul" or str(call.attrs.out_dtype) != "int32":
            return None
        lhs, rhs = self._widened(call.args[0]), self._widened(call.args[1])
        if lhs is None or rhs is None or dtype_of(lhs[0]) not in _ACTIVATIONS:
            return None
        weights = constant(rhs[0], self.lookup_binding)
        weight_zero = np.zeros(1) if rhs[1] is None else constant(rhs[1], self.lookup_binding)
        if weights is None or weights.ndim != 2 or weight_zero is None:
            return None
        weight_zero = weight_zero.astype(np.int64).reshape(-1)
        if weights.dtype == np.uint8:
            weights, weight_zero = (weights.astype(np.int16) - 128).astype(np.int8), weight_zero - 128
        if weights.dtype != np.int8 or np.any(weight_zero):
            return None
        padded = _whole_lane_vectors(weights, 1)
        product = relax.op.matmul(self._widened_activation(lhs[0]), relax.const(padded), out_dtype="int32")
        product = self._cropped(product, int(call.ty.ndim) - 1, weights.shape[1], padded.shape[1])
        if lhs[1] is None:
            return product
        # sum((x - zx) W) = x W - zx sum(W): one multiply-add per output.
        sums = relax.const(weights.astype(np.int64).sum(axis=0).astype(np.int32))
        zero_point = lhs[1] if dtype_of(lhs[1]) == "int32" else relax.op.astype(lhs[1], "int32")
        return relax.op.subtract(product, relax.op.multiply(zero_point, sums))

    def _conv_integer(self, call: relax.Call) -> relax.Expr | None:
        """``ConvInteger`` as `frontends.onnx_rewrites.quantized_operators` writes it:
        ``conv2d(dequantize(x, 1, zx), dequantize(W, 1, 0))`` (cast to int32 after) with W
        constant int8 and zx a run-time value. The activation is widened to int16 minus its zero
        point (zero padding then pads the zero point, as ConvInteger does) and multiplied by W
        in int32; the float the graph reads is that sum's (exact, where float accumulation is
        exact only below 2**24)."""
        conv = call
        if op_name(conv) != "relax.nn.conv2d" or str(conv.attrs.out_dtype) not in ("", "None", "void", "float32"):
            return None
        attrs = conv.attrs
        if (str(attrs.data_layout), str(attrs.kernel_layout), str(attrs.out_layout)) != ("NCHW", "OIHW", "NCHW"):
            return None
        data, weights = as_dequantize(conv.args[0], self.lookup_binding), self._weights(conv.args[1])
        if data is None or weights is None or dtype_of(data.tensor) not in _ACTIVATIONS:
            return None
        unit = [np.asarray(v) for v in (data.scale, weights.scale) if isinstance(v, np.ndarray)]
        if len(unit) != 2 or any(np.any(v != 1) for v in unit):
            return None
        zero_point = data.zero_point
        if isinstance(zero_point, np.ndarray):
            if zero_point.size != 1:
                return None
            zero_point = int(zero_point.reshape(-1)[0])
        elif static_shape(zero_point) not in ((), (1,)):
            return None
        else:
            zero_point = relax.op.astype(zero_point, "int16")
        activation = self._centered(data.tensor, zero_point)
        product = self.builder_.emit(relax.op.nn.conv2d(activation, relax.const(weights.values), attrs.strides, attrs.padding,
                                                        attrs.dilation, int(attrs.groups), "NCHW", "OIHW", "NCHW", "int32"))
        return relax.op.astype(product, "float32")

    def _widened(self, expr: relax.Expr) -> tuple[relax.Expr, relax.Expr | None] | None:
        """``int32(q) - int32(zp)`` or ``int32(q)``: (q, zp or None)."""
        expr = bound(expr, self.lookup_binding)
        zero_point = None
        if op_name(expr) == "relax.subtract":
            expr, zero_point = bound(expr.args[0], self.lookup_binding), expr.args[1]
            narrow = bound(zero_point, self.lookup_binding)
            if op_name(narrow) == "relax.astype" and dtype_of(narrow.args[0]) in (*_ACTIVATIONS, "int32"):
                zero_point = narrow.args[0]
            if constant(zero_point, self.lookup_binding) is not None:
                zero_point = relax.const(constant(zero_point, self.lookup_binding))
            if static_shape(zero_point) not in ((), (1,)):
                return None
        if op_name(expr) != "relax.astype" or str(expr.attrs.dtype) != "int32":
            return None
        return expr.args[0], zero_point

    # -- epilogue ------------------------------------------------------------------------

    def _bias(self, call: relax.Call) -> relax.Expr | None:
        """``acc + dequantize(bias)``: an int32 bias quantized at the product's scale."""
        for tracked, other in ((call.args[0], call.args[1]), (call.args[1], call.args[0])):
            acc = self._tracked(tracked)
            if acc is None:
                continue
            bias = self._bias_values(other, acc)
            if bias is not None:
                return self._track(replace(acc, offset=(acc.offset.astype(np.int64) + bias).astype(np.int32)))
        return None

    def _bias_values(self, expr: relax.Expr, acc: Accumulation) -> np.ndarray | None:
        shape = static_shape(expr)
        channels = acc.scale.size if acc.scale.size > 1 else None
        expr = bound(expr, self.lookup_binding)
        if op_name(expr) == "relax.reshape":
            expr = expr.args[0]
        dq = as_dequantize(expr, self.lookup_binding)
        values = None if dq is None or not dq.static else constant(dq.tensor, self.lookup_binding)
        if values is None or values.dtype != np.int32 or np.any(dq.zero_point) or shape is None:
            return None
        if len(shape) > acc.ndim or any(s != 1 for i, s in enumerate(shape) if i != len(shape) - acc.ndim + acc.axis):
            return None
        size = values.size
        if channels is not None and size not in (1, channels):
            return None
        scale = np.broadcast_to(dq.scale.reshape(-1), (size,)).astype(np.float32)
        if not np.allclose(scale, np.broadcast_to(acc.scale, (size,)), rtol=1e-6, atol=0):
            return None  # not quantized at the product's scale: stays a float add
        return values.reshape(-1).astype(np.int64)

    def _clamp(self, call: relax.Call) -> relax.Expr | None:
        """ReLU, Clip, or maximum/minimum by a scalar constant, on a tracked accumulation."""
        name = op_name(call)
        low, high = -math.inf, math.inf
        if name == "relax.nn.relu":
            source, low = call.args[0], 0.0
        elif name == "relax.clip":
            source, low, high = call.args[0], float(call.args[1].value), float(call.args[2].value)
        elif name in ("relax.maximum", "relax.minimum", "relax.call_tir"):
            if name == "relax.call_tir":
                func = self.mod[call.args[0]] if call.args[0] in self.mod.functions else None
                op = scalar_clamp_op(func) if isinstance(func, tirx.PrimFunc) else None
                if op is None:
                    return None
                source, bound_value = call.args[1].fields
                name = "relax.maximum" if op is relax.op.maximum else "relax.minimum"
            else:
                source, bound_value = call.args
            value = constant(bound_value, self.lookup_binding)
            if value is None or value.size != 1:
                return None
            low, high = (float(value.reshape(-1)[0]), math.inf) if name == "relax.maximum" else (-math.inf, float(value.reshape(-1)[0]))
        else:
            return None
        acc = self._tracked(source)
        if acc is None:
            return None
        var = self.builder_.emit(call)
        self.accumulations[var] = replace(acc, low=max(acc.low, low), high=min(acc.high, high))
        return var

    def _requantize(self, call: relax.Call) -> relax.Expr | None:
        """``quantize(acc)`` as onnxruntime's requantization: round(float(acc + offset) * m) + zy,
        m = (sx * sw) / sy in float32, saturated to the output type and the activations' clamps."""
        acc = self._tracked(call.args[0])
        out_dtype = str(call.attrs.out_dtype)
        scale, zero_point = constant(call.args[1], self.lookup_binding), constant(call.args[2], self.lookup_binding)
        if acc is None or out_dtype not in INT_RANGES or scale is None or zero_point is None:
            return None
        if scale.size != 1 or zero_point.size != 1:
            return None
        out_scale, out_zero = np.float32(scale.reshape(-1)[0]), int(zero_point.reshape(-1)[0])
        low, high = INT_RANGES[out_dtype]
        if acc.low > -math.inf:
            low = max(low, out_zero + int(np.round(np.float32(acc.low) / out_scale)))
        if acc.high < math.inf:
            high = min(high, out_zero + int(np.round(np.float32(acc.high) / out_scale)))
        multiplier = (acc.scale / out_scale).astype(np.float32)
        total = acc.product
        if np.any(acc.offset):
            total = relax.op.add(total, self._channel_const(acc.offset, acc, "int32"))
        scaled = relax.op.multiply(relax.op.astype(total, "float32"), self._channel_const(multiplier, acc, "float32"))
        rounded = relax.op.add(relax.op.round(scaled), relax.const(float(out_zero), "float32"))
        return acc.finished(saturate(rounded, float(low), float(high), out_dtype))


def integer_contractions_pass() -> tvm.transform.Pass:
    """Rewrite quantized convs and matmuls as integer products (module doc)."""

    @tvm.transform.module_pass(opt_level=0, name="WasmIntegerContractions")
    def _pass(mod: tvm.IRModule, _ctx: tvm.transform.PassContext) -> tvm.IRModule:
        return mutate_functions(_IntegerContractions(mod), mod)

    return _pass
