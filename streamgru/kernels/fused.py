"""Filter + normalisation + GRU + head in one compiled call (a chunk; per sample: :mod:`.step`).

The input conditioning a model was trained behind (a biquad cascade from
:mod:`streamgru.kernels.sos`, then per-channel ``(x - mean) / std``) runs inside the same call
as the GRU, so a conditioned step costs one dispatch from Python.

``fbuf`` (float64, C-contiguous) packs the conditioning and its state, owned by the stepper::

    [0] n_sections   [1] C (channels = input size)   [2] started (0 / 1)
    then sos (n_sections * 6) | zi (n_sections * 2 * C) | zi_unit (n_sections * 2)
         | mean (C) | inv_std (C)

``zi`` is scipy's state layout (n_sections, 2, C); ``zi_unit = sosfilt_zi(sos)`` gives the
steady-state start from the first sample (all zeros for a zero start). ``n_sections = 0`` is a
pass-through filter (normalisation only).
"""

from __future__ import annotations

import math

import numpy as np
from numba import float32, float64, int64, njit

from .gru import _META, _P32, _P64, _X2_32, _X2_64, gru_chunk
from .nonrt import lazy_njit
from .sos import sos_filter_chunk, sos_init_steady

_OPTS = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}
FBUF_HEADER = 3


def fbuf_size(n_sections: int, n_channels: int) -> int:
    """Length of ``fbuf`` for a cascade of ``n_sections`` over ``n_channels``."""
    return (
        FBUF_HEADER + 6 * n_sections + 2 * n_sections * n_channels + 2 * n_sections + 2 * n_channels
    )


def pack_conditioning(sos, zi_unit, mean, std, n_channels: int) -> np.ndarray:
    """Build ``fbuf`` (not started) from sos (n, 6), zi_unit (n, 2), mean (C,), std (C,)."""
    sos = np.ascontiguousarray(sos, dtype=np.float64).reshape(-1, 6)
    n_sections = sos.shape[0]
    fbuf = np.zeros(fbuf_size(n_sections, n_channels), dtype=np.float64)
    fbuf[0], fbuf[1], fbuf[2] = n_sections, n_channels, 0
    views = fbuf_views(fbuf)
    views["sos"][:] = sos
    views["zi_unit"][:] = np.asarray(zi_unit, dtype=np.float64).reshape(n_sections, 2)
    views["mean"][:] = np.broadcast_to(np.asarray(mean, dtype=np.float64), (n_channels,))
    views["inv_std"][:] = 1.0 / np.broadcast_to(np.asarray(std, dtype=np.float64), (n_channels,))
    return fbuf


def fbuf_views(fbuf: np.ndarray) -> dict[str, np.ndarray]:
    """Named numpy views into ``fbuf`` (for Python-side snapshot, restore and inspection)."""
    n_sections, n_channels = int(fbuf[0]), int(fbuf[1])
    o = FBUF_HEADER
    sos = fbuf[o : o + 6 * n_sections].reshape(n_sections, 6)
    o += 6 * n_sections
    zi = fbuf[o : o + 2 * n_sections * n_channels].reshape(n_sections, 2, n_channels)
    o += 2 * n_sections * n_channels
    zi_unit = fbuf[o : o + 2 * n_sections].reshape(n_sections, 2)
    o += 2 * n_sections
    return {
        "sos": sos,
        "zi": zi,
        "zi_unit": zi_unit,
        "mean": fbuf[o : o + n_channels],
        "inv_std": fbuf[o + n_channels : o + 2 * n_channels],
    }


@njit(**_OPTS)
def _unpack(fbuf):
    n_sections = int(fbuf[0])
    n_channels = int(fbuf[1])
    o = FBUF_HEADER
    sos = fbuf[o : o + 6 * n_sections].reshape((n_sections, 6))
    o += 6 * n_sections
    zi = fbuf[o : o + 2 * n_sections * n_channels].reshape((n_sections, 2, n_channels))
    o += 2 * n_sections * n_channels
    zi_unit = fbuf[o : o + 2 * n_sections].reshape((n_sections, 2))
    o += 2 * n_sections
    mean = fbuf[o : o + n_channels]
    inv_std = fbuf[o + n_channels : o + 2 * n_channels]
    return sos, zi, zi_unit, mean, inv_std


@lazy_njit(
    [
        int64(_P32, _META, float32[::1], float64[::1], _X2_32, float32[:, ::1], float32[::1]),
        int64(_P64, _META, float64[::1], float64[::1], _X2_64, float64[:, ::1], float64[::1]),
    ],
    **_OPTS,
)
def gru_chunk_conditioned(params, meta, state, fbuf, X, Y, work):
    """Filter, normalise and run T samples ``X`` (T, C) (read only) into ``Y`` (T, O).

    ``work`` needs ``layout.chunk_work_size(meta, T) + T * C`` elements. Returns 0, or
    ``t * C + c + 1`` for the first non-finite ``X[t, c]`` (then nothing changed).
    """
    n_samples, n_channels = X.shape
    for t in range(n_samples):
        for c in range(n_channels):
            if not math.isfinite(X[t, c]):
                return t * n_channels + c + 1
    if n_samples == 0:
        return 0
    # the filtered block after gru_chunk's own scratch, which starts (aligned) at work[0]
    base = n_samples * (3 * meta[3] + 2 * meta[7])  # layout.chunk_work_size
    xs = work[base : base + n_samples * n_channels].reshape((n_samples, n_channels))
    for t in range(n_samples):
        for c in range(n_channels):
            xs[t, c] = X[t, c]
    sos, zi, zi_unit, mean, inv_std = _unpack(fbuf)
    if fbuf[2] == 0.0:
        sos_init_steady(zi_unit, xs[0], zi)
        fbuf[2] = 1.0
    sos_filter_chunk(sos, zi, xs)
    for t in range(n_samples):
        row = xs[t]
        for c in range(n_channels):
            row[c] = (row[c] - mean[c]) * inv_std[c]
    return gru_chunk(params, meta, state, xs, Y, work[:base])
