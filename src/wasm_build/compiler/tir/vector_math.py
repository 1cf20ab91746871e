"""Vectorizable float32 math: exp, erf, log, sigmoid, tanh and the activations built on them.

wasm has no vector ``expf``/``erff``/``logf``/``tanhf``; TVM lowers ``exp``, ``erf``, ``log``,
``sigmoid`` and ``tanh`` to a libm call per lane, which serializes the whole fused kernel (the
GELU matmul took 85% of the transformer's time).  :func:`vector_math_pass` rewrites those Relax
calls, and the activations that legalize to them (softmax, log-softmax, SiLU, GELU in both forms), into
TE kernels made of mul/add/min/max/floor/shift/select, which vectorize to f32x4.  It runs
before legalization, so FuseOps still fuses them into the producing matmul or conv.
"""

from __future__ import annotations

import math

from tvm import tirx

from .magic_rounding import MAGIC, MAGIC_BITS

# exp(r) ~ 1 + r + r^2 * P(r) on [-ln2/2, ln2/2], least-squares fit of the
# relative error (max 1.2e-7 over the float32 range, measured).
_EXP_P = (0.49999991059303284, 0.16666541993618011, 0.04166920855641365,
          0.008366136811673641, 0.0013752976665273309)
# Cody-Waite split of ln 2: n * _LN2_HI is exact for |n| < 2^9.
_LN2_HI, _LN2_LO = 0.693359375, -2.12194440e-4
# erf(x) ~ x * P(x^2) / Q(x^2) on |x| <= 3.92 (erf rounds to +-1 beyond),
# least-squares fit of the relative error (max 3.9e-7 in float32, measured).
_ERF_P = (1.128379225730896, 0.1851212978363037, 0.05420829728245735, 0.0038338028825819492,
          0.0003752750635612756, 4.568814347294392e-06, -1.258375270651868e-08)
_ERF_Q = (1.0, 0.497392863035202, 0.11383805423974991, 0.01541501097381115,
          0.0012985803186893463, 6.202101212693378e-05)
_ERF_CLAMP = 3.92
# tanh(x) ~ x + x^3 * P(x^2) for |x| < 0.625, least-squares fit of the relative error
# (max 7.9e-8 in float32, measured); beyond, 1 - 2 / (exp(2|x|) + 1) loses nothing to
# cancellation (max 2.2e-7 relative).
_TANH_P = (-0.3333328436401063, 0.13331515502133323, -0.05374612512883394,
           0.020660434796172376, -0.005729010681205597)
_TANH_SMALL = 0.625
# log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172 for m in [sqrt(1/2), sqrt(2)):
# the series 2 s (1 + s^2/3 + s^4/5 + ...) to s^9 is exact to float32 (next term 2e-9).
_LOG_SERIES = (1.0, 1.0 / 3.0, 1.0 / 5.0, 1.0 / 7.0, 1.0 / 9.0)
_SMALLEST_NORMAL = 1.1754943508222875e-38


def _f32(value: float) -> tirx.PrimExpr:
    return tirx.const(value, "float32")


def _let(value: tirx.PrimExpr, body) -> tirx.PrimExpr:
    """``body(v)`` with ``v`` bound once to ``value`` (no duplicated subtrees)."""
    var = tirx.Var("v", value.ty)
    return tirx.Let(var, value, body(var))


def _horner(x: tirx.PrimExpr, coefficients) -> tirx.PrimExpr:
    result = _f32(coefficients[-1])
    for c in reversed(coefficients[:-1]):
        result = result * x + _f32(c)
    return result


def _pow2(exponent: tirx.PrimExpr) -> tirx.PrimExpr:
    """2**exponent for an int32 exponent in the normal float32 range."""
    biased = tirx.shift_left(exponent + tirx.const(127, "int32"), tirx.const(23, "int32"))
    return tirx.reinterpret("float32", biased)


def _exp_parts(xv: tirx.PrimExpr, scaled) -> tirx.PrimExpr:
    """``scaled(p, n)`` for ``exp(x) = p * 2**n``, ``p = exp(r)``, ``|r| <= ln 2 / 2``.

    n = round(x / ln 2) is left in the low mantissa bits of x / ln 2 + 1.5 * 2^23, as
    `magic_rounding` does for requantizes: an add and an integer subtract, where floor and
    ``i32x4.trunc_sat_f32x4_s`` cost about eight x86 instructions in Cranelift."""
    rounded = tirx.reinterpret("int32", xv * _f32(1.4426950408889634) + _f32(MAGIC))

    def with_n(ni):
        nv = tirx.Cast("float32", ni)
        r = xv - nv * _f32(_LN2_HI) - nv * _f32(_LN2_LO)
        return _let(r, lambda rv: scaled(rv * rv * _horner(rv, _EXP_P) + rv + _f32(1.0), ni))

    return _let(rounded - tirx.const(MAGIC_BITS, "int32"), with_n)


def vector_exp(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """exp(x) in float32 from mul/add/min/max/shift only; 0 below -104, finite above 88.7."""
    clamped = tirx.max(tirx.min(x, _f32(88.72283)), _f32(-104.0))

    def scaled(poly, ni):
        # 2**n as two factors, so n in [-150, 128] stays a normal float32.
        return _let(tirx.shift_right(ni, tirx.const(1, "int32")),
                    lambda half: poly * _pow2(half) * _pow2(ni - half))

    return _let(clamped, lambda xv: _exp_parts(xv, scaled))


def normal_exp(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """exp(x) for x in [ln(FLT_MIN), 0] (the caller clamps): 2**n in one factor, no clamp."""
    return _exp_parts(x, lambda poly, ni: poly * _pow2(ni))


def vector_erf(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """erf(x) in float32 as a rational function of the clamped argument."""
    clamped = tirx.max(tirx.min(x, _f32(_ERF_CLAMP)), _f32(-_ERF_CLAMP))
    return _let(clamped, lambda xv: _let(
        xv * xv, lambda z: xv * _horner(z, _ERF_P) / _horner(z, _ERF_Q)))


def vector_log(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """log(x) in float32: exponent and mantissa split with integer ops, then a short series;
    -inf at 0, NaN below 0 and for NaN, +inf at +inf, subnormals scaled first."""
    i32 = "int32"

    def with_x(xv):
        subnormal = xv < _f32(_SMALLEST_NORMAL)
        bias = tirx.Select(subnormal, tirx.const(127 + 23, i32), tirx.const(127, i32))

        def with_bits(bits):
            # Mantissa in [1, 2), then halved above sqrt(2) so that it lies around 1.
            one_to_two = tirx.reinterpret("float32", tirx.bitwise_or(
                tirx.bitwise_and(bits, tirx.const(0x007FFFFF, i32)), tirx.const(0x3F800000, i32)))
            exponent = tirx.shift_right(bits, tirx.const(23, i32)) - bias

            def with_m(mv):
                high = mv > _f32(math.sqrt(2.0))
                m = tirx.Select(high, mv * _f32(0.5), mv)
                e = tirx.Cast("float32", exponent + tirx.Select(high, tirx.const(1, i32), tirx.const(0, i32)))

                def log_m(sv):  # log(m) = 2 atanh(s)
                    return _let(sv * sv, lambda z: _f32(2.0) * sv * _horner(z, _LOG_SERIES))

                s = (m - _f32(1.0)) / (m + _f32(1.0))
                return _let(e, lambda ev: ev * _f32(_LN2_HI) + (ev * _f32(_LN2_LO) + _let(s, log_m)))

            return _let(one_to_two, with_m)

        finite = _let(tirx.reinterpret(i32, tirx.Select(subnormal, xv * _f32(2.0**23), xv)), with_bits)
        special = tirx.Select(xv == _f32(0.0), _f32(-math.inf),
                              tirx.Select(xv == _f32(math.inf), _f32(math.inf), _f32(math.nan)))
        return tirx.Select(tirx.all(xv > _f32(0.0), xv < _f32(math.inf)), finite, special)

    return _let(x, with_x)


def vector_sigmoid(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """1 / (1 + exp(-x)): within 2.5e-7 of sigmoid, relative, where it is a normal float32."""
    return _f32(1.0) / (_f32(1.0) + vector_exp(-x))


def vector_tanh(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """tanh(x) in float32: an odd polynomial near 0, through vector_exp elsewhere."""

    def with_x(xv, magnitude):
        small = _let(xv * xv, lambda z: xv + xv * z * _horner(z, _TANH_P))
        large = _f32(1.0) - _f32(2.0) / (vector_exp(magnitude * _f32(2.0)) + _f32(1.0))
        # Bound once: vector_exp's Let variables must not appear twice in the tree.
        signed = _let(large, lambda lv: tirx.Select(xv < _f32(0.0), -lv, lv))
        return tirx.Select(magnitude < _f32(_TANH_SMALL), small, signed)

    return _let(x, lambda xv: _let(tirx.abs(xv), lambda magnitude: with_x(xv, magnitude)))


def vector_silu(x: tirx.PrimExpr) -> tirx.PrimExpr:
    return _let(x, lambda xv: xv * vector_sigmoid(xv))


def vector_gelu(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """x * Phi(x), Phi through erf (Relax's ``nn.gelu``, PyTorch's default GELU)."""
    return _let(x, lambda xv: _f32(0.5) * xv * (_f32(1.0) + vector_erf(xv * _f32(1.0 / math.sqrt(2.0)))))


def vector_gelu_tanh(x: tirx.PrimExpr) -> tirx.PrimExpr:
    """GELU's tanh approximation (Relax's ``nn.gelu_tanh``, PyTorch's ``approximate="tanh"``)."""

    def with_x(xv):
        inner = _f32(math.sqrt(2.0 / math.pi)) * (xv + _f32(0.044715) * xv * xv * xv)
        return _f32(0.5) * xv * (_f32(1.0) + vector_tanh(inner))

    return _let(x, with_x)












# Relax op -> elementwise float32 function replacing it.




