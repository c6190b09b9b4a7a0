"""Biquad cascade (second-order sections) kernels: numba only, no I/O, no Python objects.

The arithmetic is scipy's direct form II transposed, section by section, exactly as
:func:`scipy.signal.sosfilt` does it (``sos`` row ``[b0, b1, b2, 1, a1, a2]``)::

    y  = b0 * x + z0
    z0 = b1 * x - a1 * y + z1
    z1 = b2 * x - a2 * y

so float64 results equal scipy's for any chunking (in practice bit for bit; the tests allow 1e-12).

Layouts (all C-contiguous)
--------------------------
sos : (n_sections, 6) float64, ``a0 == 1`` in every row (the Python wrappers check it)
zi : (n_sections, 2, n_channels) float64, scipy's ``zi`` for ``sosfilt(sos, X, axis=0, zi=zi)``
    on ``X`` of shape (T, n_channels). The filter state is float64 whatever the sample dtype.
zi_unit : (n_sections, 2) float64, ``scipy.signal.sosfilt_zi(sos)``: the state of each section
    in steady state under a constant input of 1. All zeros gives a zero start.
started : (1,) uint8, 0 while the filter waits for its first sample, 1 after it.
x : (n_channels,) float32 or float64, one sample; X : (T, n_channels), a block, row per sample.

In-place contract
-----------------
Every kernel overwrites its sample array (``x`` or ``X``) with the filter output and updates
``zi`` (and ``started``) in place; nothing is allocated per sample and nothing is returned but a
status. Float32 samples are widened to float64, run through the whole cascade in float64 and
rounded once when written back. Kernels never raise: the ``*_with_start`` kernels scan their
input first and, on a NaN or Inf, return its position and leave every state array untouched.

All kernels are ``@njit(cache=True, nogil=True)`` (fastmath off) with explicit signatures that
compile on first use, not at import (:func:`.nonrt.lazy_njit`: a process filtering float32
samples never compiles the float64 variants), and callable from other njit code (the fused
filter + GRU kernel calls :func:`sos_filter_sample` per sample). ``sos`` and ``zi_unit`` are
declared read-only (a FilterChain's are); writable ones work too, compiled as their own variant.
"""

from __future__ import annotations

import numpy as np
from numba import types

from .nonrt import lazy_njit

_F64 = types.float64
_SOS = types.Array(_F64, 2, "C", readonly=True)
_ZI = types.Array(_F64, 3, "C")
_ZI_UNIT = types.Array(_F64, 2, "C", readonly=True)
_STARTED = types.Array(types.uint8, 1, "C")
_SAMPLE_DTYPES = (types.float32, types.float64)


def _sample(dtype):
    return types.Array(dtype, 1, "C")


def _block(dtype):
    return types.Array(dtype, 2, "C")


_SIG_SAMPLE = [types.void(_SOS, _ZI, _sample(dt)) for dt in _SAMPLE_DTYPES]
_SIG_CHUNK = [types.void(_SOS, _ZI, _block(dt)) for dt in _SAMPLE_DTYPES]
_SIG_INIT = [
    types.void(_ZI_UNIT, types.Array(dt, 1, "C", readonly=True), _ZI) for dt in _SAMPLE_DTYPES
]
_SIG_SAMPLE_START = [
    types.int64(_SOS, _ZI, _ZI_UNIT, _STARTED, _sample(dt)) for dt in _SAMPLE_DTYPES
]
_SIG_CHUNK_START = [types.int64(_SOS, _ZI, _ZI_UNIT, _STARTED, _block(dt)) for dt in _SAMPLE_DTYPES]


@lazy_njit(_SIG_SAMPLE, cache=True, nogil=True)
def sos_filter_sample(sos, zi, x):
    """Filter one multi-channel sample through the cascade, in place.

    Parameters
    ----------
    sos : (n_sections, 6) float64, C-contiguous (read only)
    zi : (n_sections, 2, n_channels) float64, C-contiguous; updated in place
    x : (n_channels,) float32 or float64, C-contiguous; overwritten with the output

    No check is made: the caller guarantees the shapes and finite input. A NaN that gets in
    poisons ``zi`` for good (restore a snapshot or reset).
    """
    n_sections = sos.shape[0]
    for c in range(x.shape[0]):
        value = np.float64(x[c])
        for s in range(n_sections):
            y = sos[s, 0] * value + zi[s, 0, c]
            zi[s, 0, c] = sos[s, 1] * value - sos[s, 4] * y + zi[s, 1, c]
            zi[s, 1, c] = sos[s, 2] * value - sos[s, 5] * y
            value = y
        x[c] = value


@lazy_njit(_SIG_CHUNK, cache=True, nogil=True)
def sos_filter_chunk(sos, zi, X):
    """Filter a block of samples through the cascade, in place, sample after sample.

    Parameters
    ----------
    sos : (n_sections, 6) float64, C-contiguous (read only)
    zi : (n_sections, 2, n_channels) float64, C-contiguous; updated in place
    X : (T, n_channels) float32 or float64, C-contiguous; overwritten with the output

    The numbers are those of :func:`sos_filter_sample` applied to ``X[0], X[1], ...``, bit for
    bit. One channel runs sample by sample with the value in a register; several channels are
    updated together per section (a contiguous inner loop over ``zi[s, k, :]``), which measured
    faster from 2 channels on. No check is made.
    """
    n_samples, n_channels = X.shape
    n_sections = sos.shape[0]
    if n_channels == 1:
        for t in range(n_samples):
            value = np.float64(X[t, 0])
            for s in range(n_sections):
                y = sos[s, 0] * value + zi[s, 0, 0]
                zi[s, 0, 0] = sos[s, 1] * value - sos[s, 4] * y + zi[s, 1, 0]
                zi[s, 1, 0] = sos[s, 2] * value - sos[s, 5] * y
                value = y
            X[t, 0] = value
        return
    values = np.empty(n_channels, dtype=np.float64)
    for t in range(n_samples):
        for c in range(n_channels):
            values[c] = X[t, c]
        for s in range(n_sections):
            b0 = sos[s, 0]
            b1 = sos[s, 1]
            b2 = sos[s, 2]
            a1 = sos[s, 4]
            a2 = sos[s, 5]
            for c in range(n_channels):
                value = values[c]
                y = b0 * value + zi[s, 0, c]
                zi[s, 0, c] = b1 * value - a1 * y + zi[s, 1, c]
                zi[s, 1, c] = b2 * value - a2 * y
                values[c] = y
        for c in range(n_channels):
            X[t, c] = values[c]


@lazy_njit(_SIG_INIT, cache=True, nogil=True)
def sos_init_steady(zi_unit, x0, zi):
    """Set the state to the steady state for a constant input: ``zi[:, :, c] = zi_unit * x0[c]``.

    Parameters
    ----------
    zi_unit : (n_sections, 2) float64, ``scipy.signal.sosfilt_zi(sos)`` (zeros: a zero start)
    x0 : (n_channels,) float32 or float64, the first sample (read only)
    zi : (n_sections, 2, n_channels) float64; overwritten
    """
    for s in range(zi.shape[0]):
        for k in range(2):
            unit = zi_unit[s, k]
            for c in range(zi.shape[2]):
                zi[s, k, c] = unit * np.float64(x0[c])


@lazy_njit(_SIG_SAMPLE_START, cache=True, nogil=True)
def sos_filter_sample_with_start(sos, zi, zi_unit, started, x):
    """Check, start if needed, and filter one sample in place.

    Parameters
    ----------
    sos : (n_sections, 6) float64 (read only)
    zi : (n_sections, 2, n_channels) float64; updated in place
    zi_unit : (n_sections, 2) float64 (read only), the steady state per unit input
    started : (1,) uint8; 0 → the state is first set from ``x`` by :func:`sos_init_steady`
        and the flag becomes 1
    x : (n_channels,) float32 or float64; overwritten with the output

    Returns
    -------
    int64
        -1 when the sample was filtered; otherwise the channel of the first NaN/Inf in ``x``,
        in which case ``x``, ``zi`` and ``started`` are unchanged.
    """
    for c in range(x.shape[0]):
        if not np.isfinite(x[c]):
            return c
    if started[0] == 0:
        sos_init_steady(zi_unit, x, zi)
        started[0] = 1
    sos_filter_sample(sos, zi, x)
    return -1


@lazy_njit(_SIG_CHUNK_START, cache=True, nogil=True)
def sos_filter_chunk_with_start(sos, zi, zi_unit, started, X):
    """Check, start if needed, and filter a block in place.

    Parameters are those of :func:`sos_filter_sample_with_start`, with
    ``X : (T, n_channels)`` float32 or float64 in place of ``x``.

    Returns
    -------
    int64
        -1 when the block was filtered; otherwise the flat index ``t * n_channels + c`` of the
        first NaN/Inf in ``X``, in which case ``X``, ``zi`` and ``started`` are unchanged.
        An empty block returns -1 and changes nothing.
    """
    n_samples, n_channels = X.shape
    for t in range(n_samples):
        for c in range(n_channels):
            if not np.isfinite(X[t, c]):
                return t * n_channels + c
    if n_samples == 0:
        return -1
    if started[0] == 0:
        sos_init_steady(zi_unit, X[0], zi)
        started[0] = 1
    sos_filter_chunk(sos, zi, X)
    return -1
