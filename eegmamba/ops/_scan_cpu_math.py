"""Scalar math for the fused CPU scan (:mod:`eegmamba.ops._scan_cpu`), written so that LLVM
vectorises it: no libm calls, no branches, only arithmetic, compares/selects and bit casts.

Each helper is a numba ``overload`` with one implementation per dtype, chosen at compile time:

* float32 — inline polynomials, the fast path;
* float64 — libm (``math.exp`` / ``math.log1p``): exact, slower; the gradient-check tests use it.

:func:`decay` is the scan's ``exp(Δ·A)``. For float32 the caller passes ``Δ·A·log2(e)``
(``A`` is pre-scaled once per call by the caller) and it returns ``2**x`` as
``2**k · p(f)``: ``k = round(x)`` by the 1.5·2**23 "magic number" trick, ``f = x - k`` in
[-0.5, 0.5] (exact), ``p`` a degree-5 minimax polynomial (relative error 6.8e-8 ≈ 1.1·2**-24 on
[-0.5, 0.5]; with the rounding of its evaluation, measured ≤ 2.2 ulp against float64 ``exp2``
for x in [-126, 0], see the tests),
and ``2**k`` built in the exponent bits. ``x < -126.5`` gives exactly 0 (the exact results there
are denormals below 2**-126.5); ``x >= 127.5`` gives inf (float32 overflows from 128); NaN stays
NaN. For float64 the caller does not scale ``A`` and ``decay`` is ``math.exp``.
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload, register_jitable

f32 = np.float32
LOG2E = 1.4426950408889634
_MAGIC = f32(12582912.0)  # 1.5 * 2**23: x + MAGIC rounds x to an integer in the low mantissa bits
_LO, _HI = f32(-127.0), f32(128.0)
_BIAS = np.int32(127 << 23)
# minimax 2**f = 1 + f (R1 + f (R2 + ...)) on [-0.5, 0.5], fitted in float64, rounded to float32
_R1, _R2, _R3 = f32(0.6931465864181519), f32(0.24022166430950165), f32(0.055510472506284714)
_R4, _R5 = f32(0.009674952365458012), f32(0.0013202981790527701)
_ONE, _TWO, _ZERO = f32(1.0), f32(2.0), f32(0.0)
_ELO, _EHI = f32(-88.0), f32(88.5)  # exp range kept normal / finite (softplus, sigmoid)
_LN2_HI, _LN2_LO = f32(0.693359375), f32(-2.12194440e-4)
_P0, _P1, _P2 = f32(1.9875691500e-4), f32(1.3981999507e-3), f32(8.3334519073e-3)
_P3, _P4, _P5 = f32(4.1665795894e-2), f32(1.6666665459e-1), f32(5.0000001201e-1)
_TWENTY = f32(20.0)  # softplus(x) = x above it: torch's and mamba-ssm's threshold
# log1p(e) = 2 atanh(s), s = e / (2 + e) in (0, 1/3] for e in (0, 1]: 2 s (1 + s²/3 + s⁴/5 + ...);
# the first term left out, s**14 / 15 <= 1.4e-8 relative, is below float32 rounding
_T = tuple(f32(1.0 / (2 * i + 1)) for i in range(1, 7))


@intrinsic
def _bits_to_f32(typingctx, i):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return types.float32(types.int32), codegen


@intrinsic
def _f32_to_bits(typingctx, x):
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))

    return types.int32(types.float32), codegen


@register_jitable
def _exp2_f32(x):
    xc = _LO if x < _LO else x  # selects, not max/min: NaN passes through
    xc = _HI if xc > _HI else xc
    t = xc + _MAGIC
    f = xc - (t - _MAGIC)
    p = ((((_R5 * f + _R4) * f + _R3) * f + _R2) * f + _R1) * f + _ONE
    return p * _bits_to_f32((_f32_to_bits(t) << np.int32(23)) + _BIAS)


@register_jitable
def _exp_f32(x):
    """``exp(x)`` to ~1 ulp: Cody-Waite reduction ``x = k ln2 + r`` (ln2 in two parts, so
    ``r`` is exact), then Cephes' expf polynomial for ``exp(r)``. Used where ``x`` is an input,
    not a product: softplus and sigmoid."""
    xc = _ELO if x < _ELO else x
    xc = _EHI if xc > _EHI else xc
    t = xc * f32(LOG2E) + _MAGIC
    k = t - _MAGIC
    r = (xc - k * _LN2_HI) - k * _LN2_LO
    p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
    p = (p * (r * r) + r) + _ONE
    return p * _bits_to_f32((_f32_to_bits(t) << np.int32(23)) + _BIAS)


def _softplus_f32(x):
    ax = -x if x < _ZERO else x
    e = _exp_f32(-ax)  # exp(-|x|) in (0, 1]
    s = e / (e + _TWO)
    w = s * s
    p = (((((_T[5] * w + _T[4]) * w + _T[3]) * w + _T[2]) * w + _T[1]) * w + _T[0]) * w + _ONE
    r = (x if x > _ZERO else _ZERO) + _TWO * s * p
    return x if x > _TWENTY else r


def _sigmoid_f32(x):
    ax = -x if x < _ZERO else x
    e = _exp_f32(-ax)
    r = _ONE / (_ONE + e)
    return r if x >= _ZERO else e * r


def _dsilu_f32(z, sg):
    return sg * (_ONE + z * (_ONE - sg))


def _dsilu_f64(z, sg):
    return sg * (1.0 + z * (1.0 - sg))


def _softplus_f64(x):
    return x if x > 20.0 else max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _sigmoid_f64(x):
    e = math.exp(-abs(x))
    return 1.0 / (1.0 + e) if x >= 0.0 else e / (1.0 + e)


def decay(x):
    """``2**x`` (float32, ``x = Δ·A·log2 e``) or ``exp(x)`` (float64, ``x = Δ·A``)."""
    raise NotImplementedError("numba-only")


def softplus(x):
    """``log(1 + exp(x))`` (``x`` itself above 20, as torch and mamba-ssm), stable for every x."""
    raise NotImplementedError("numba-only")


def sigmoid(x):
    """``1 / (1 + exp(-x))``, stable for every ``x``."""
    raise NotImplementedError("numba-only")


def dsilu(z, sg):
    """d silu(z) / dz given ``sg = sigmoid(z)``."""
    raise NotImplementedError("numba-only")


def _pick(x, f32_impl, f64_impl):
    return f32_impl if x == types.float32 else f64_impl if x == types.float64 else None


def _by_dtype(f32_impl, f64_impl):
    """A numba overload typing function: the implementation for ``x``'s dtype."""
    return lambda x: _pick(x, f32_impl, f64_impl)


def _by_dtype2(f32_impl, f64_impl):
    return lambda z, sg: _pick(z, f32_impl, f64_impl)


overload(decay)(_by_dtype(_exp2_f32, lambda x: math.exp(x)))
overload(softplus)(_by_dtype(_softplus_f32, _softplus_f64))
overload(sigmoid)(_by_dtype(_sigmoid_f32, _sigmoid_f64))

overload(dsilu)(_by_dtype2(_dsilu_f32, _dsilu_f64))
