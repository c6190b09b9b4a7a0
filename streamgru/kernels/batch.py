"""Many streams, one sample each, through register-blocked products: the BatchStepper's step.

Every product of a layer (input projection, recurrent product, head) runs for a block of
streams through :func:`.batch_simd.tiled_affine_rows`, which keeps a tile of streams x output
vectors in registers while the inputs stream past, so each weight vector is loaded once per
tile of streams rather than once per stream. The arithmetic per element, products and gates,
is exactly that of the single-stream step (``gru._affine``, ``gru._gates_reset_after``, ...),
so each stream's outputs are bit for bit those of :meth:`streamgru.Stepper.step`, whatever the
number of streams and however they are split into blocks (``threads=``).

Entry points (float32 and float64; every float array shares the dtype)::

    first_nonfinite_many(X) -> int64            # -1, or b * I + i of the first non-finite X[b, i]
    gru_step_block(params, meta, hid, X, Y, work) -> int64   # 0; X assumed finite

``hid`` is a (L, B_block, H) view (any stride across layers, rows contiguous) of the stepper's
(L, B, H) hidden state; ``work`` (>= layout.many_work_size(meta, B_block),) is scratch owned by
the block. Disjoint blocks may run at the same time on different threads (``nogil``).
"""

from __future__ import annotations

import math

from numba import float32, float64, int64, njit, types

from .activations import apply_head_activation, sigmoid_f, tanh_f
from .batch_simd import tiled_affine_rows
from .gru import (
    _META,
    _P32,
    _P64,
    _X2_32,
    _X2_64,
    _affine,
    _gates_reset_after,
    _head_views,
    _layer_views,
)
from .layout import META_HEADER, META_PER_HEAD, META_PER_LAYER

_OPTS = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}


@njit(**_OPTS)
def _tail_columns(w_t, bias, inp, out, done):
    """Columns done..n-1 of out (n,) = bias + W inp, the scalar arithmetic of ``gru._affine``."""
    n = out.shape[0]
    m = w_t.shape[0]
    for j in range(done, n):
        out[j] = bias[j]
    i = 0
    while i + 4 <= m:
        x0 = inp[i]
        x1 = inp[i + 1]
        x2 = inp[i + 2]
        x3 = inp[i + 3]
        for j in range(done, n):
            out[j] += (x0 * w_t[i, j] + x1 * w_t[i + 1, j]) + (
                x2 * w_t[i + 2, j] + x3 * w_t[i + 3, j]
            )
        i += 4
    while i < m:
        xi = inp[i]
        for j in range(done, n):
            out[j] += xi * w_t[i, j]
        i += 1


@njit(**_OPTS)
def _project_rows(inp, w_t, bias, out):
    """out (R, n) = inp (R, m) @ w_t (m, n) + bias, each row as ``gru._affine`` computes it."""
    n = out.shape[0 + 1]
    rows = inp.shape[0]
    if n < 4:
        for r in range(rows):
            _affine(w_t, bias, inp[r], out[r])
        return
    packed = tiled_affine_rows(w_t, bias, inp, out)
    rows_done = packed >> 32
    cols_done = packed & 0xFFFFFFFF
    if cols_done < n:
        for r in range(rows_done):
            _tail_columns(w_t, bias, inp[r], out[r], cols_done)
    for r in range(rows_done, rows):
        _affine(w_t, bias, inp[r], out[r])


@njit(**_OPTS)
def _layer_block(params, meta, layer, inp, h, work):
    """Advance one layer for a block of streams: inp (R, in_l), h (R, H) updated in place."""
    rows = h.shape[0]
    hidden = meta[3]
    gates = 3 * hidden
    two_h = 2 * hidden
    w_ih, w_hh, w_hn, b_ih, b_hh = _layer_views(params, meta, layer)
    gx = work[: rows * gates].reshape((rows, gates))
    gh = work[rows * gates : 2 * rows * gates].reshape((rows, gates))
    o = 2 * rows * gates
    rh = work[o : o + rows * hidden].reshape((rows, hidden))
    _project_rows(inp, w_ih, b_ih, gx)
    if meta[4] != 0:
        _project_rows(h, w_hh, b_hh, gh)
        for s in range(rows):
            _gates_reset_after(gx[s], gh[s], h[s])
        return
    gh_rz = gh.ravel()[: rows * two_h].reshape((rows, two_h))
    _project_rows(h, w_hh, b_hh[:two_h], gh_rz)
    for s in range(rows):
        for j in range(hidden):
            rh[s, j] = sigmoid_f(gx[s, j] + gh_rz[s, j]) * h[s, j]
    gh_n = gh.ravel()[rows * two_h : rows * gates].reshape((rows, hidden))
    _project_rows(rh, w_hn, b_hh[two_h:], gh_n)
    for s in range(rows):
        for j in range(hidden):
            z = sigmoid_f(gx[s, hidden + j] + gh_rz[s, hidden + j])
            n = tanh_f(gx[s, two_h + j] + gh_n[s, j])
            h[s, j] = n + z * (h[s, j] - n)


@njit(**_OPTS)
def _head_block(params, meta, inp, Y, work):
    """The head over a block: inp (R, H) -> Y (R, O), layers ping-ponging through ``work``."""
    rows = inp.shape[0]
    n_layers = meta[1]
    n_head = meta[5]
    width = meta[7]
    buf_a = work[: rows * width]
    buf_b = work[rows * width : 2 * rows * width]
    for k in range(n_head):
        m = META_HEADER + META_PER_LAYER * n_layers + META_PER_HEAD * k
        out_size = meta[m + 3]
        if k == n_head - 1:
            out = Y
        elif k % 2 == 0:
            out = buf_a[: rows * out_size].reshape((rows, out_size))
        else:
            out = buf_b[: rows * out_size].reshape((rows, out_size))
        w_t, bias, act = _head_views(params, meta, k)
        _project_rows(inp, w_t, bias, out)
        for r in range(rows):
            apply_head_activation(act, out[r])
        inp = out


_H32 = types.Array(float32, 3, "A")
_H64 = types.Array(float64, 3, "A")


@njit(
    [
        int64(_P32, _META, _H32, _X2_32, float32[:, ::1], float32[::1]),
        int64(_P64, _META, _H64, _X2_64, float64[:, ::1], float64[::1]),
    ],
    **_OPTS,
)
def gru_step_block(params, meta, hid, X, Y, work):
    """Advance a block of R streams by one finite sample each.

    Parameters
    ----------
    params, meta : packed model (:func:`layout.pack_model`)
    hid : (L, R, H) same dtype, hidden states (rows contiguous), updated in place
    X : (R, I) same dtype, C-contiguous, all finite (checked by the caller)
    Y : (R, O) same dtype, C-contiguous, written
    work : (>= layout.many_work_size(meta, R),) same dtype, scratch

    Returns
    -------
    int64 : 0
    """
    n_layers = meta[1]
    hidden = meta[3]
    rows = X.shape[0]
    inp = hid[0]
    for layer in range(n_layers):
        h = hid[layer]
        if layer == 0:
            _layer_block(params, meta, layer, X, h, work)
        else:
            _layer_block(params, meta, layer, inp, h, work)
        inp = h
    if meta[5] == 0:
        for s in range(rows):
            for j in range(hidden):
                Y[s, j] = inp[s, j]
        return 0
    _head_block(params, meta, inp, Y, work)
    return 0


@njit([int64(_X2_32), int64(_X2_64)], **_OPTS)
def first_nonfinite_many(X):
    """-1 when X (B, I) is all finite, else b * I + i of the first non-finite X[b, i]."""
    rows, cols = X.shape
    for b in range(rows):
        for i in range(cols):
            if not math.isfinite(X[b, i]):
                return b * cols + i
    return -1
