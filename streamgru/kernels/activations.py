"""Gate and head activations for the numba kernels, chosen per float type at compile time.

float64 uses libm (``math.tanh``): the reference precision path.

float32 uses a rational approximation of tanh (the one Eigen ships for float, max error a few
ULP on [-9, 9], saturating to +-1 beyond), built from +, *, / and min/max only, so LLVM
vectorises the gate loops without fastmath. ``math.tanh`` costs about 15 ns per element as a
scalar call, which at H = 64 is most of a step; the rational form runs 8 or 16 lanes at once.
The sigmoid is ``0.5 + 0.5 * tanh(x / 2)``: absolute error below 1e-7, which is what a gate
(multiplied by values of order one) needs.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, types
from numba.extending import overload

_F32 = np.float32
_CLAMP = _F32(7.90531110763549805)
_TINY = _F32(0.0004)
_A1 = _F32(4.89352455891786e-03)
_A3 = _F32(6.37261928875436e-04)
_A5 = _F32(1.48572235717979e-05)
_A7 = _F32(5.12229709037114e-08)
_A9 = _F32(-8.60467152213735e-11)
_A11 = _F32(2.00018790482477e-13)
_A13 = _F32(-2.76076847742355e-16)
_B0 = _F32(4.89352518554385e-03)
_B2 = _F32(2.26843463243900e-03)
_B4 = _F32(1.18534705686654e-04)
_B6 = _F32(1.19825839466702e-06)
_HALF32 = _F32(0.5)
_ONE32 = _F32(1.0)
_ZERO32 = _F32(0.0)


def tanh_f(x):  # pragma: no cover - replaced by the overload inside jitted code
    """tanh for a float32 or float64 scalar inside a kernel."""
    return math.tanh(x)


def sigmoid_f(x):  # pragma: no cover - replaced by the overload inside jitted code
    """Logistic function for a float32 or float64 scalar inside a kernel."""
    return 1.0 / (1.0 + math.exp(-x))


@overload(tanh_f)
def _tanh_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:

        def tanh32(x):
            xc = min(max(x, -_CLAMP), _CLAMP)
            x2 = xc * xc
            p = x2 * _A13 + _A11
            p = x2 * p + _A9
            p = x2 * p + _A7
            p = x2 * p + _A5
            p = x2 * p + _A3
            p = x2 * p + _A1
            p = xc * p
            q = x2 * _B6 + _B4
            q = x2 * q + _B2
            q = x2 * q + _B0
            r = p / q
            return x if abs(x) < _TINY else r

        return tanh32
    if isinstance(x, types.Float):
        return lambda x: math.tanh(x)
    return None


@overload(sigmoid_f)
def _sigmoid_overload(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:

        def sigmoid32(x):
            return _HALF32 + _HALF32 * tanh_f(_HALF32 * x)

        return sigmoid32
    if isinstance(x, types.Float):

        def sigmoid64(x):
            if x >= 0.0:
                return 1.0 / (1.0 + math.exp(-x))
            e = math.exp(x)
            return e / (1.0 + e)

        return sigmoid64
    return None


# Head activation codes, shared with the packing in layout.py.
ACT_IDENTITY = 0
ACT_RELU = 1
ACT_SIGMOID = 2
ACT_TANH = 3
ACT_SOFTMAX = 4

ACTIVATION_CODES = {
    "identity": ACT_IDENTITY,
    "relu": ACT_RELU,
    "sigmoid": ACT_SIGMOID,
    "tanh": ACT_TANH,
    "softmax": ACT_SOFTMAX,
}


@njit(nogil=True, cache=True, error_model="numpy")
def apply_head_activation(code, v):
    """Apply activation ``code`` in place to the 1-D vector ``v`` (float32 or float64)."""
    n = v.shape[0]
    if code == ACT_RELU:
        for j in range(n):
            if v[j] < 0:
                v[j] = 0
    elif code == ACT_SIGMOID:
        for j in range(n):
            v[j] = sigmoid_f(v[j])
    elif code == ACT_TANH:
        for j in range(n):
            v[j] = tanh_f(v[j])
    elif code == ACT_SOFTMAX:
        m = v[0]
        for j in range(1, n):
            if v[j] > m:
                m = v[j]
        s = v[0] - v[0]
        for j in range(n):
            v[j] = math.exp(v[j] - m)
            s += v[j]
        for j in range(n):
            v[j] = v[j] / s
