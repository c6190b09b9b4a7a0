"""Per-sample entry points: one sample through the model, compiled without the NRT.

These are what :meth:`streamgru.Stepper.step` calls once per sample, where the call itself is
most of the cost. They and every helper they reach are clones compiled with ``_nrt=False``
(:mod:`.nonrt`): no MemInfo per array argument, no atomic reference counts per slice. The
helpers are inlined into each entry point, and each entry point compiles (or loads from the
cache) a signature the first time a stepper of that dtype asks for it
(:func:`.nonrt.entry_point`). The chunk and many-stream kernels keep the NRT versions of the
same helpers.

Signatures (float32 and float64; ``params``, ``state``, ``x``, ``X`` and ``Y`` share the dtype)::

    gru_step(params, meta, state, x) -> int64
    gru_step_conditioned(params, meta, state, fbuf, x) -> int64
    gru_steps(params, meta, state, X, Y) -> int64                 # a short block, sample by sample
    gru_steps_conditioned(params, meta, state, fbuf, X, Y) -> int64

``x`` may be any 1-D array of the dtype (a strided view or read-only is fine; a length other
than I returns ``WRONG_SIZE`` and changes nothing); ``X`` (T, I) is
C-contiguous, possibly read-only; ``state`` and ``Y`` (T, O) are C-contiguous and written.
"""

from __future__ import annotations

import math

from numba import float32, float64, int64, types

from . import fused as _fused
from . import gru as _gru
from . import sos as _sos
from .activations import apply_head_activation
from .gru import _META, _P32, _P64, _X2_32, _X2_64
from .nonrt import clone_without_nrt

_OPTS = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}

# Status of the per-sample entry points when ``x`` does not hold input_size values; the
# caller's check of class, dtype and ndim is cheaper without comparing shape tuples.
WRONG_SIZE = -1

_X32 = types.Array(float32, 1, "A", readonly=True)
_X64 = types.Array(float64, 1, "A", readonly=True)


def _first_nonfinite(values):
    for i in range(values.shape[0]):
        if not math.isfinite(values[i]):
            return i
    return -1


def gru_step(params, meta, state, x):
    """Advance one stream by one sample.

    Parameters
    ----------
    params : (P,) float32|float64, packed weights (:func:`layout.pack_model`)
    meta : (M,) int64, packed layout
    state : (S,) same dtype, hidden state, last output and scratch (:func:`layout.state_size`)
    x : (I,) same dtype, one sample

    Returns
    -------
    int64 : 0 on success; ``i + 1`` when ``x[i]`` is NaN or Inf; ``WRONG_SIZE`` when ``x`` does
    not hold I values. Nothing changed unless 0. The output (O,) is at ``state[L*H : L*H + O]``.
    """
    if x.shape[0] != meta[2]:
        return WRONG_SIZE
    bad = _first_nonfinite(x)
    if bad >= 0:
        return bad + 1
    _step_core(params, meta, state, x)  # noqa: F821 - the clone's globals hold it
    return 0


def _condition_and_step(params, meta, state, x, fbuf):
    """Filter and normalise one finite sample ``x`` (C,) into scratch, then step it."""
    n_channels = x.shape[0]
    a_off = _scratch_offset(meta) + 7 * meta[3]  # noqa: F821
    xb = state[a_off : a_off + n_channels]  # the head's scratch, free until layer 0 has read it
    for c in range(n_channels):
        xb[c] = x[c]
    sos, zi, zi_unit, mean, inv_std = _unpack(fbuf)  # noqa: F821
    if fbuf[2] == 0.0:
        sos_init_steady(zi_unit, xb, zi)  # noqa: F821
        fbuf[2] = 1.0
    sos_filter_sample(sos, zi, xb)  # noqa: F821
    for c in range(n_channels):
        xb[c] = (xb[c] - mean[c]) * inv_std[c]
    _step_core(params, meta, state, xb)  # noqa: F821


def gru_step_conditioned(params, meta, state, fbuf, x):
    """Filter, normalise and step one sample ``x`` (C,) (read only; copied to scratch).

    ``fbuf`` (float64) is the packed conditioning of :mod:`.fused`. Returns 0, ``c + 1``
    when ``x[c]`` is NaN or Inf, or ``WRONG_SIZE`` (then nothing changed). The output is at
    ``state[L*H : L*H + O]`` as for :func:`gru_step`.
    """
    if x.shape[0] != meta[2]:
        return WRONG_SIZE
    bad = _first_nonfinite(x)
    if bad >= 0:
        return bad + 1
    _condition_and_step(params, meta, state, x, fbuf)
    return 0


def _copy_output(meta, state, y):
    y_off = meta[1] * meta[3]
    for j in range(y.shape[0]):
        y[j] = state[y_off + j]


def gru_steps(params, meta, state, X, Y):
    """Advance by the T samples of a short block ``X`` (T, I), one after the other.

    The per-sample path in one call, for blocks too short for the batched input projection of
    :func:`streamgru.kernels.gru.gru_chunk` to pay: ``Y`` (T, O) equals T calls of
    :func:`gru_step`. Returns 0, or ``t * I + i + 1`` for the first non-finite ``X[t, i]``
    (then nothing changed).
    """
    bad = _first_nonfinite_2d(X)  # noqa: F821
    if bad >= 0:
        return bad + 1
    for t in range(X.shape[0]):
        _step_core(params, meta, state, X[t])  # noqa: F821
        _copy_output(meta, state, Y[t])
    return 0


def gru_steps_conditioned(params, meta, state, fbuf, X, Y):
    """:func:`gru_steps` behind the filter and normalisation, as :func:`gru_step_conditioned`."""
    bad = _first_nonfinite_2d(X)  # noqa: F821
    if bad >= 0:
        return bad + 1
    for t in range(X.shape[0]):
        _condition_and_step(params, meta, state, X[t], fbuf)
        _copy_output(meta, state, Y[t])
    return 0


_ENTRY_SIGNATURES = {
    "gru_step": [
        int64(_P32, _META, float32[::1], _X32),
        int64(_P64, _META, float64[::1], _X64),
    ],
    "gru_step_conditioned": [
        int64(_P32, _META, float32[::1], float64[::1], _X32),
        int64(_P64, _META, float64[::1], float64[::1], _X64),
    ],
    "gru_steps": [
        int64(_P32, _META, float32[::1], _X2_32, float32[:, ::1]),
        int64(_P64, _META, float64[::1], _X2_64, float64[:, ::1]),
    ],
    "gru_steps_conditioned": [
        int64(_P32, _META, float32[::1], float64[::1], _X2_32, float32[:, ::1]),
        int64(_P64, _META, float64[::1], float64[::1], _X2_64, float64[:, ::1]),
    ],
}

_CLONES = clone_without_nrt(
    [
        _first_nonfinite,
        _gru._affine,
        _gru._gates_reset_after,
        _gru._recurrent_update,
        _gru._layer_views,
        _gru._head_views,
        _gru._step_core,
        _gru._scratch_offset,
        _gru._first_nonfinite_2d,
        apply_head_activation,
        _fused._unpack,
        _sos.sos_init_steady,
        _sos.sos_filter_sample,
        _condition_and_step,
        _copy_output,
        gru_step,
        gru_step_conditioned,
        gru_steps,
        gru_steps_conditioned,
    ],
    signatures=_ENTRY_SIGNATURES,
    **_OPTS,
)

gru_step = _CLONES["gru_step"]
gru_step_conditioned = _CLONES["gru_step_conditioned"]
gru_steps = _CLONES["gru_steps"]
gru_steps_conditioned = _CLONES["gru_steps_conditioned"]
