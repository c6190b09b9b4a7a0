"""The integer arithmetic of the generated fixed-point C, in numpy and numba: bit-exact with it.

:func:`run_fixed` takes raw float32 samples and returns what ``P_step`` of an int16 / int8
build writes, value for value. Each function names the C it mirrors (see :mod:`.gen_fixed`);
the tests compare the two exactly. Right shifts are arithmetic (floor), as gcc, clang and
arm-none-eabi-gcc compile ``>>`` on negative signed integers.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from ..kernels.sos import sos_filter_chunk
from .quantize import (
    ACT_FRAC,
    PRE_FRAC,
    SIGMOID_SHIFT,
    TANH_SHIFT,
    QAffine,
    QuantModel,
)
from .spec import Conditioning

_I32 = 2**31 - 1
_OPTS: dict[str, Any] = {"cache": True, "nogil": True, "error_model": "numpy", "boundscheck": False}


def condition(cond: Conditioning, X: np.ndarray) -> np.ndarray:
    """``P_condition`` over a block: X (T, C) float32 raw samples -> (T, C) float64 values.

    Biquads in double from the steady state of the first sample, rounded to float32, then
    ``(f - mean) * inv_std`` in double (the float32 stepper's conditioning before its last
    rounding).
    """
    X = np.ascontiguousarray(X, dtype=np.float32)
    if cond.n_sections:
        Y = X.astype(np.float64)
        zi = np.ascontiguousarray(cond.zi_unit[:, :, None] * Y[0][None, None, :])
        sos_filter_chunk(np.ascontiguousarray(cond.sos), zi, Y)
        F = Y.astype(np.float32).astype(np.float64)
    else:
        F = X.astype(np.float64)
    return (F - cond.mean) * cond.inv_std


def quantize_input(v: np.ndarray, frac: int) -> np.ndarray:
    """``P_quant_in``: round half away from zero of ``v * 2**frac``, saturated to int16."""
    t = v * float(2**frac)
    q = np.where(t >= 0, np.floor(t + 0.5), -np.floor(-t + 0.5))
    q = np.where(t >= 32767.0, 32767.0, np.where(t <= -32768.0, -32768.0, q))
    return q.astype(np.int64)


@njit(**_OPTS)
def _rshr(v, s):
    """``P_rshr``: (v + 2**(s-1)) >> s on int64."""
    return (v + (np.int64(1) << (s - 1))) >> s


@njit(**_OPTS)
def _sat32(v):
    if v > _I32:
        return np.int64(_I32)
    if v < -_I32:
        return np.int64(-_I32)
    return v


@njit(**_OPTS)
def _tanh_q(pre, table):
    """``P_tanh_q``: Q12 int32 -> Q15 in [-32767, 32767]."""
    a = -pre if pre < 0 else pre
    if a >= (8 << PRE_FRAC):
        v = np.int64(32767)
    else:
        i = a >> TANH_SHIFT
        f = a & ((1 << TANH_SHIFT) - 1)
        v = table[i] + (((table[i + 1] - table[i]) * f + (1 << (TANH_SHIFT - 1))) >> TANH_SHIFT)
    return -v if pre < 0 else v


@njit(**_OPTS)
def _sigmoid_q(pre, table):
    """``P_sigmoid_q``: Q12 int32 -> Q15 in [0, 32768]."""
    a = -pre if pre < 0 else pre
    if a >= (16 << PRE_FRAC):
        v = np.int64(32768)
    else:
        i = a >> SIGMOID_SHIFT
        f = a & ((1 << SIGMOID_SHIFT) - 1)
        v = table[i] + (
            ((table[i + 1] - table[i]) * f + (1 << (SIGMOID_SHIFT - 1))) >> SIGMOID_SHIFT
        )
    return 32768 - v if pre < 0 else v


@njit(**_OPTS)
def _affine(w, m, sh, b, a, out, row0, rows):
    """``P_affine`` on rows row0..row0+rows of (w, m, sh, b): out[r] = sat32(requant + b)."""
    for r in range(rows):
        acc = np.int64(0)
        for c in range(a.shape[0]):
            acc += w[row0 + r, c] * a[c]
        out[r] = _sat32(_rshr(acc * m[row0 + r], sh[row0 + r]) + b[row0 + r])


@njit(**_OPTS)
def _layer_seq(X, ih, hh, reset_after, tanh_t, sig_t):
    """``P_layer`` over a sequence: X (T, K) int64 -> hidden states (T, H) int64 (Q15)."""
    w_ih, m_ih, sh_ih, b_ih = ih
    w_hh, m_hh, sh_hh, b_hh = hh
    n_hidden = w_hh.shape[1]
    h = np.zeros(n_hidden, dtype=np.int64)
    rh = np.zeros(n_hidden, dtype=np.int64)
    gx = np.zeros(3 * n_hidden, dtype=np.int64)
    gh = np.zeros(3 * n_hidden, dtype=np.int64)
    out = np.zeros((X.shape[0], n_hidden), dtype=np.int64)
    for t in range(X.shape[0]):
        _affine(w_ih, m_ih, sh_ih, b_ih, X[t], gx, 0, 3 * n_hidden)
        if reset_after:
            _affine(w_hh, m_hh, sh_hh, b_hh, h, gh, 0, 3 * n_hidden)
        else:
            _affine(w_hh, m_hh, sh_hh, b_hh, h, gh, 0, 2 * n_hidden)
            for j in range(n_hidden):
                r = _sigmoid_q(_sat32(gx[j] + gh[j]), sig_t)
                rh[j] = _rshr(r * h[j], ACT_FRAC)
            _affine(w_hh, m_hh, sh_hh, b_hh, rh, gh[2 * n_hidden :], 2 * n_hidden, n_hidden)
        for j in range(n_hidden):
            z = _sigmoid_q(_sat32(gx[n_hidden + j] + gh[n_hidden + j]), sig_t)
            if reset_after:
                r = _sigmoid_q(_sat32(gx[j] + gh[j]), sig_t)
                pre_n = _sat32(gx[2 * n_hidden + j] + _rshr(r * gh[2 * n_hidden + j], ACT_FRAC))
            else:
                pre_n = _sat32(gx[2 * n_hidden + j] + gh[2 * n_hidden + j])
            n = _tanh_q(pre_n, tanh_t)
            h[j] = n + _rshr(z * (h[j] - n), ACT_FRAC)
        out[t] = h
    return out


@njit(**_OPTS)
def _dense_seq(A, w, m, sh, b, code, tanh_t, sig_t):
    """A head layer over a sequence: A (T, K) int64 -> (T, O) int64 (Q15 after tanh/sigmoid,
    Q12 after identity/relu). ``code``: 0 identity, 1 relu, 2 sigmoid, 3 tanh."""
    out = np.zeros((A.shape[0], w.shape[0]), dtype=np.int64)
    for t in range(A.shape[0]):
        _affine(w, m, sh, b, A[t], out[t], 0, w.shape[0])
        for j in range(w.shape[0]):
            v = out[t, j]
            if code == 1 and v < 0:
                out[t, j] = 0
            elif code == 2:
                out[t, j] = _sigmoid_q(v, sig_t)
            elif code == 3:
                out[t, j] = _tanh_q(v, tanh_t)
    return out


_CODES = {"identity": 0, "relu": 1, "sigmoid": 2, "tanh": 3}


def _tuple(a: QAffine) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return (a.w, a.m, a.sh, a.b)


def to_next_input(values: np.ndarray, activation: str, next_frac: int) -> np.ndarray:
    """``P_to_input``: a head layer's output as int16 ``Q(next_frac)`` input of the next."""
    if activation in ("sigmoid", "tanh"):
        return np.minimum(values, 32767)
    shift = PRE_FRAC - next_frac
    scaled = (values + (1 << (shift - 1))) >> shift if shift > 0 else values * (1 << -shift)
    return np.clip(scaled, -32768, 32767)


def run_fixed(qm: QuantModel, cond: Conditioning, reset_after: bool, X: np.ndarray) -> np.ndarray:
    """What the fixed-point ``P_step`` returns for the raw samples X (T, C) float32.

    Returns
    -------
    (T, output_size) float32
    """
    xq = quantize_input(condition(cond, X), qm.x_frac)
    seq = xq
    for ih, hh in qm.layers:
        seq = _layer_seq(seq, _tuple(ih), _tuple(hh), reset_after, qm.tanh_table, qm.sigmoid_table)
    if not qm.head:
        return (seq.astype(np.float32) / np.float32(32768.0)).astype(np.float32)
    vals = seq
    for k, dense in enumerate(qm.head):
        a = dense.affine
        vals = _dense_seq(
            seq, a.w, a.m, a.sh, a.b, _CODES[dense.activation], qm.tanh_table, qm.sigmoid_table
        )
        if k + 1 < len(qm.head):
            seq = to_next_input(vals, dense.activation, dense.next_frac)
    last = qm.head[-1].activation
    denom = np.float32(2.0**ACT_FRAC if last in ("sigmoid", "tanh") else 2.0**PRE_FRAC)
    return vals.astype(np.float32) / denom


@njit(**_OPTS)
def _map_table(pre, table, sigmoid):
    out = np.empty_like(pre)
    for i in range(pre.shape[0]):
        out[i] = _sigmoid_q(pre[i], table) if sigmoid else _tanh_q(pre[i], table)
    return out


def activation_q(name: str, pre: np.ndarray, qm: QuantModel) -> np.ndarray:
    """``P_tanh_q`` / ``P_sigmoid_q`` on Q12 values pre (n,) int64 (within +-(2**31 - 1)):
    (n,) int64 in Q15."""
    pre = np.ascontiguousarray(pre, dtype=np.int64)
    if name == "sigmoid":
        return _map_table(pre, qm.sigmoid_table, True)
    return _map_table(pre, qm.tanh_table, False)
