"""The fixed-point scheme: integer weights with per-row scales, Q formats, activation tables.

Formats (``Qf`` = an integer holding ``value * 2**f``)
------------------------------------------------------
* input after conditioning: int16 ``Q(x_frac)``, ``x_frac`` calibrated so that 1.5 x the
  largest |value| seen fits (saturating beyond);
* hidden state, gates, tanh / sigmoid outputs: ``Q15`` (int16 storage; 1.0 = 32768 only in
  int32 temporaries);
* gate and head pre-activations: int32 ``Q12`` (:data:`PRE_FRAC`);
* weights: int16 (``|q| <= 32767``) or int8 (``|q| <= 127``), one real scale per output row
  ``s = max|w_row| / qmax``; biases int32 Q12.

An affine map ``b + W a`` with ``a`` in ``Q(fa)`` accumulates ``acc = sum q_rc * a_c`` exactly
(int32 for int8 weights, int64 for int16), then requantises to Q12 with the row's multiplier
``s * 2**(12 - fa) ~= m * 2**-sh`` (``m`` a 15-bit integer in [2**14, 2**15)):
``pre = sat32(((acc * m + 2**(sh-1)) >> sh) + b_q)``.

tanh and sigmoid read a 257-entry table with linear interpolation: tanh over [0, 8) in steps
of 1/32, sigmoid over [0, 16) in steps of 1/16, odd / complementary symmetry for x < 0, and
saturation beyond (max error of the tables 1.15e-4 for tanh, 6.6e-5 for sigmoid; tested
against bounds of 1.2e-4 and 7e-5).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UnsupportedModelError
from ..model.core import GRUModel

PRE_FRAC = 12
ACT_FRAC = 15
#: tanh table: step 2**-5 (Q12 index shift 7), 256 steps up to 8.0.
TANH_SHIFT = 7
#: sigmoid table: step 2**-4 (Q12 index shift 8), 256 steps up to 16.0.
SIGMOID_SHIFT = 8
TABLE_SIZE = 257
QMAX = {"int16": 32767, "int8": 127}
#: Max |table - exact| over every Q12 input (stated bounds; the tests check them).
TANH_TABLE_MAX_ERROR = 1.2e-4
SIGMOID_TABLE_MAX_ERROR = 7e-5
#: Longest dot product whose int32 (int8 weights) or int64 (int16) accumulator cannot overflow.
MAX_COLS = {"int8": 511, "int16": 1 << 20}


@dataclass(frozen=True)
class QAffine:
    """One quantised affine map ``b + W a``.

    Attributes
    ----------
    w : (rows, cols) int64 holding int8/int16 values
    m : (rows,) int64, multipliers in [2**14, 2**15]
    sh : (rows,) int64, right shifts in [1, 62]
    b : (rows,) int64, Q12 biases within int32
    """

    w: np.ndarray
    m: np.ndarray
    sh: np.ndarray
    b: np.ndarray


@dataclass(frozen=True)
class QDense:
    """A head layer: its affine map, activation, and the Q format of its output as the next
    layer's input (``next_frac``; 15 after tanh / sigmoid)."""

    affine: QAffine
    activation: str
    next_frac: int


@dataclass(frozen=True)
class QuantModel:
    """Everything the integer C code and :mod:`.fixed_reference` compute with."""

    dtype: str
    x_frac: int
    layers: tuple[tuple[QAffine, QAffine], ...]
    head: tuple[QDense, ...]
    tanh_table: np.ndarray
    sigmoid_table: np.ndarray


def tables() -> tuple[np.ndarray, np.ndarray]:
    """(tanh, sigmoid) tables, (257,) int64 each, Q15 values in [0, 32768] (tanh <= 32767)."""
    grid_t = np.arange(TABLE_SIZE) * 2.0 ** (TANH_SHIFT - PRE_FRAC)
    grid_s = np.arange(TABLE_SIZE) * 2.0 ** (SIGMOID_SHIFT - PRE_FRAC)
    tanh_t = np.minimum(np.round(np.tanh(grid_t) * 32768.0), 32767).astype(np.int64)
    sig_t = np.round(0.5 * (1.0 + np.tanh(0.5 * grid_s)) * 32768.0).astype(np.int64)
    return tanh_t, sig_t


def _multiplier(real: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray]:
    """``real`` (rows,) > 0 as (m, sh) with ``real ~= m * 2**-sh``, m in [2**14, 2**15]."""
    mant, exp = np.frexp(real)
    m = np.round(mant * 32768.0).astype(np.int64)
    sh = (15 - exp).astype(np.int64)
    if (sh < 1).any() or (sh > 62).any():
        raise UnsupportedModelError(
            f"{what}: a weight scale is out of the fixed-point range (requantisation shift "
            f"expected in 1..62, got {int(sh.min())}..{int(sh.max())})"
        )
    return m, sh


def quantize_affine(
    weight: np.ndarray, bias: np.ndarray, in_frac: int, dtype: str, what: str
) -> QAffine:
    """Quantise ``bias + weight @ a`` for inputs ``a`` in ``Q(in_frac)``; see the module doc."""
    qmax = QMAX[dtype]
    cols = weight.shape[1]
    if cols > MAX_COLS[dtype]:
        raise UnsupportedModelError(
            f"{what}: {cols} inputs per row, at most {MAX_COLS[dtype]} fit a {dtype} accumulator"
        )
    peak = np.abs(weight).max(axis=1)
    scale = np.where(peak > 0, peak / qmax, 1.0)
    w_q = np.clip(np.round(weight / scale[:, None]), -qmax, qmax).astype(np.int64)
    m, sh = _multiplier(scale * 2.0 ** (PRE_FRAC - in_frac), what)
    b_q = np.round(np.asarray(bias, dtype=np.float64) * 2.0**PRE_FRAC)
    if (np.abs(b_q) > 2**31 - 1).any():
        raise UnsupportedModelError(f"{what}: a bias is too large for int32 Q{PRE_FRAC}")
    return QAffine(w=w_q, m=m, sh=sh, b=b_q.astype(np.int64))


def frac_for(peak: float, what: str) -> int:
    """The largest Q format in 0..15 holding ``1.5 * peak`` in int16."""
    if not np.isfinite(peak):
        raise UnsupportedModelError(f"{what}: the calibration values are not finite")
    if peak <= 0:
        return 15
    frac = int(np.floor(np.log2(32767.0 / (1.5 * peak))))
    if frac < 0:
        raise UnsupportedModelError(
            f"{what}: values up to {peak:.4g} do not fit int16 (expected |x| < 21845)"
        )
    return min(frac, ACT_FRAC)


def quantize_model(
    model: GRUModel, dtype: str, x_peak: float, head_peaks: list[float]
) -> QuantModel:
    """Quantise ``model`` for ``dtype`` ("int16" or "int8").

    ``x_peak`` is the largest |conditioned input| of the calibration data; ``head_peaks[k]``
    the largest |output| of head layer k (used where its activation is identity or relu and a
    further layer follows).
    """
    x_frac = frac_for(x_peak, "calibration input")
    layers = []
    for k, layer in enumerate(model.layers):
        in_frac = x_frac if k == 0 else ACT_FRAC
        ih = quantize_affine(layer.weight_ih, layer.bias_ih, in_frac, dtype, f"layer {k} ih")
        hh = quantize_affine(layer.weight_hh, layer.bias_hh, ACT_FRAC, dtype, f"layer {k} hh")
        layers.append((ih, hh))
    head = []
    in_frac = ACT_FRAC
    for k, dense in enumerate(model.head):
        aff = quantize_affine(dense.weight, dense.bias, in_frac, dtype, f"head layer {k}")
        if dense.activation in ("sigmoid", "tanh"):
            nxt = ACT_FRAC
        else:
            nxt = frac_for(head_peaks[k], f"head layer {k} output")
        head.append(QDense(affine=aff, activation=dense.activation, next_frac=nxt))
        in_frac = nxt
    tanh_t, sig_t = tables()
    return QuantModel(dtype, x_frac, tuple(layers), tuple(head), tanh_t, sig_t)
