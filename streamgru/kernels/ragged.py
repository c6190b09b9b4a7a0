"""Chunks of many streams of one model, each of its own length, in one compiled call.

The daemon's processing round has, for each stream that received samples, one block of its own
length. Streams that share a model keep their states in the rows of one array
(:class:`streamgru.stacked.StackedSteppers`); these kernels advance entry ``k`` — stream row
``rows[k]`` by the samples ``X[offsets[k]:offsets[k + 1]]`` — for every k, calling the very
kernel :meth:`streamgru.Stepper.step_chunk` calls (:func:`.gru.gru_chunk`, or
:func:`.fused.gru_chunk_conditioned` with the filter and normalisation), so each stream's outputs
and state are bit for bit those of its own Stepper.

Entry points (compiled without the NRT, one signature per dtype, on first use through
:func:`.nonrt.entry_point`)::

    gru_chunks(params, meta, states, plan, X, Y, work) -> int64
    gru_chunks_conditioned(params, meta, states, fbufs, plan, X, Y, work) -> int64

``states`` (S, n_state) and ``fbufs`` (S, n_fbuf) hold one stream per row; ``plan`` (2K + 2,)
int64 is ``[K, rows[0..K-1], offsets[0..K]]``; ``X`` (N, I) and ``Y`` (N, O) with
N = offsets[K]; ``work`` is the scratch of the longest entry. Every X row is checked first: the result is 0, or ``k + 1`` for
the first entry with a non-finite value, in which case nothing was advanced.
"""

from __future__ import annotations

import math

from numba import float32, float64, int64, njit

from .fused import gru_chunk_conditioned
from .gru import _META, _P32, _P64, _X2_32, _X2_64, gru_chunk
from .nonrt import lazy_njit

_OPTS = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}
_I1 = int64[::1]


@njit(**_OPTS)
def _first_bad(plan, X):
    n_entries, n_channels = plan[0], X.shape[1]
    offsets = plan[1 + n_entries :]
    for k in range(n_entries):
        for t in range(offsets[k], offsets[k + 1]):
            for c in range(n_channels):
                if not math.isfinite(X[t, c]):
                    return k + 1
    return 0


def _signatures(conditioned: bool) -> list:
    """The float32 and float64 signatures of the module docstring's entry points."""
    out = []
    for scalar, params, X in ((float32, _P32, _X2_32), (float64, _P64, _X2_64)):
        states = (scalar[:, ::1], float64[:, ::1]) if conditioned else (scalar[:, ::1],)
        out.append(int64(params, _META, *states, _I1, X, scalar[:, ::1], scalar[::1]))
    return out


@lazy_njit(_signatures(conditioned=False), **_OPTS)
def gru_chunks(params, meta, states, plan, X, Y, work):
    """Entry k: stream ``rows[k]`` by ``X[offsets[k]:offsets[k+1]]`` (see the module docstring)."""
    bad = _first_bad(plan, X)
    if bad:
        return bad
    n_entries = plan[0]
    rows, offsets = plan[1 : 1 + n_entries], plan[1 + n_entries :]
    for k in range(n_entries):
        a, b = offsets[k], offsets[k + 1]
        gru_chunk(params, meta, states[rows[k]], X[a:b], Y[a:b], work)
    return 0


@lazy_njit(_signatures(conditioned=True), **_OPTS)
def gru_chunks_conditioned(params, meta, states, fbufs, plan, X, Y, work):
    """As :func:`gru_chunks`, each stream filtered and normalised by its own ``fbufs`` row."""
    bad = _first_bad(plan, X)
    if bad:
        return bad
    n_entries = plan[0]
    rows, offsets = plan[1 : 1 + n_entries], plan[1 + n_entries :]
    for k in range(n_entries):
        a, b = offsets[k], offsets[k + 1]
        row = rows[k]
        gru_chunk_conditioned(params, meta, states[row], fbufs[row], X[a:b], Y[a:b], work)
    return 0
