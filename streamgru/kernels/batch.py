"""Many streams sharing one model, through register-blocked products: the BatchStepper's kernel.

Every product of a layer (input projection, recurrent product, head) runs for a block of
streams through :func:`.batch_simd.tiled_affine_rows`, which keeps a tile of streams x output
vectors in registers while the inputs stream past, so each weight vector is loaded once per
tile of streams rather than once per stream. Narrow products (fewer than 4 outputs, e.g. a head
to one class) run vectorised across the streams of the block. The arithmetic per element,
products and gates, is exactly that of the single-stream step (``gru._affine``,
``gru._gates_reset_after``, ...), so each stream's outputs are bit for bit those of
:meth:`streamgru.Stepper.step`, whatever the number of streams, the block size, the split
over threads and the chunking in time.

Entry points (compiled without the NRT, one signature per dtype, on first use through
:func:`.nonrt.entry_point`; every float array shares the dtype)::

    first_nonfinite_rows(X) -> int64      # -1, or r * K + k of the first non-finite X[r, k]
    gru_rows(params, meta, hid, X, Y, work, plan) -> int64          # 0; X assumed finite

``plan`` (int64) is ``[B, T, start, stop, block]``: streams ``start..stop-1`` of B advance by T
samples, ``block`` streams at a time. ``hid`` is the stepper's flat (L * B * H,) hidden state,
layout (L, B, H); ``X`` (B * T, I) and ``Y`` (B * T, O) hold stream b's sample t at row
``b * T + t``; ``work`` (>= :func:`rows_work_size`) is scratch owned by the caller. Calls on
disjoint stream ranges, each with its own ``work``, may run at the same time on different
threads (``nogil``).
"""

from __future__ import annotations

import math

from numba import float32, float64, int64

from . import gru as _gru
from .activations import apply_head_activation, sigmoid_f, tanh_f
from .batch_simd import quad_partials_rows, tiled_affine_rows
from .gru import (
    _META,
    _P32,
    _P64,
    _X2_32,
    _X2_64,
    _affine,
    _head_views,
    _layer_views,
)
from .layout import META_HEADER, META_PER_HEAD, META_PER_LAYER
from .nonrt import clone_without_nrt
from .views import as_matrix

_OPTS = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}


def rows_work_size(meta, block: int) -> int:
    """Length of the ``work`` array one :func:`gru_rows` call needs for ``block`` streams."""
    hidden, width, output = int(meta[3]), int(meta[7]), int(meta[6])
    return block * (7 * hidden + 2 * width + output + 4 + width)


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


def _narrow_rows(w_t, bias, inp, out, scratch):
    """out (R, n < 4) = inp (R, m) @ w_t + bias with the arithmetic of ``gru._affine``'s narrow
    branch (four partial sums per output, then ``bias + ((s0 + s1) + (s2 + s3))``), several
    streams per vector through :func:`.batch_simd.quad_partials_rows` (partial sums in
    ``scratch`` (>= 4 R + m)) when ``inp``'s columns are contiguous."""
    rows = inp.shape[0]
    m = inp.shape[1]
    n = out.shape[1]
    acc = as_matrix(scratch[: 4 * rows], rows, 4)
    w_col = scratch[4 * rows : 4 * rows + m]
    whole = m // 4 * 4
    for j in range(n):
        zero = bias[j] - bias[j]
        for i in range(m):
            w_col[i] = w_t[i, j]
        for r in range(rows):
            for k in range(4):
                acc[r, k] = zero
        done = 0
        if inp.strides[1] == inp.itemsize:
            done = quad_partials_rows(w_col, inp, acc)
        for r in range(done, rows):
            for i in range(0, whole, 4):
                for k in range(4):
                    acc[r, k] += inp[r, i + k] * w_col[i + k]
        for r in range(rows):
            for i in range(whole, m):
                acc[r, 0] += inp[r, i] * w_col[i]
            out[r, j] = bias[j] + ((acc[r, 0] + acc[r, 1]) + (acc[r, 2] + acc[r, 3]))


def _project_rows(inp, w_t, bias, out, scratch):
    """out (R, n) = inp (R, m) @ w_t (m, n) + bias, each row as ``gru._affine`` computes it.

    ``inp`` any strides; ``out`` C-contiguous; ``scratch`` >= (4 + m) R elements.
    """
    n = out.shape[1]
    rows = inp.shape[0]
    if n < 4:
        _narrow_rows(w_t, bias, inp, out, scratch)
        return
    packed = tiled_affine_rows(w_t, bias, inp, out)
    rows_done = packed >> 32
    cols_done = packed & 0xFFFFFFFF
    if cols_done < n:
        for r in range(rows_done):
            _tail_columns(w_t, bias, inp[r], out[r], cols_done)
    for r in range(rows_done, rows):
        _affine(w_t, bias, inp[r], out[r])


def _gates_rows(gx, gh, h):
    """h (R, H) <- the reset-after update of ``gru._gates_reset_after`` for every row, given
    gx, gh (R, 3H); gh[:, :2H] is overwritten with the gates r and z.

    A row's sigmoids run first (in place into gh), then its candidate and update: each loop
    has short dependency chains, so more vectors of units are in flight than in one loop
    doing all three activations per unit (about 15 % faster). Same operations per element,
    in the same order, so the same bits."""
    rows = h.shape[0]
    hidden = h.shape[1]
    two_h = 2 * hidden
    for s in range(rows):
        for j in range(two_h):
            gh[s, j] = sigmoid_f(gx[s, j] + gh[s, j])
        for j in range(hidden):
            n = tanh_f(gx[s, two_h + j] + gh[s, j] * gh[s, two_h + j])
            h[s, j] = n + gh[s, hidden + j] * (h[s, j] - n)


def _recur_rows(params, meta, layer, gx, h, ghbuf, rh, scratch):
    """Advance one layer's hidden states h (R, H) in place given gx (R, 3H) = b_ih + W_ih x.

    ``ghbuf`` (>= 3 R H,) and ``rh`` (R, H) are scratch; the gates are those of
    ``gru._recurrent_update``.
    """
    rows = h.shape[0]
    hidden = meta[3]
    gates = 3 * hidden
    two_h = 2 * hidden
    _w_ih, w_hh, w_hn, _b_ih, b_hh = _layer_views(params, meta, layer)
    if meta[4] != 0:
        gh = as_matrix(ghbuf[: rows * gates], rows, gates)
        _project_rows(h, w_hh, b_hh, gh, scratch)
        _gates_rows(gx, gh, h)
        return
    gh_rz = as_matrix(ghbuf[: rows * two_h], rows, two_h)
    _project_rows(h, w_hh, b_hh[:two_h], gh_rz, scratch)
    for s in range(rows):
        for j in range(hidden):
            rh[s, j] = sigmoid_f(gx[s, j] + gh_rz[s, j]) * h[s, j]
    gh_n = as_matrix(ghbuf[rows * two_h : rows * gates], rows, hidden)
    _project_rows(rh, w_hn, b_hh[two_h:], gh_n, scratch)
    for s in range(rows):
        for j in range(hidden):
            z = sigmoid_f(gx[s, hidden + j] + gh_rz[s, hidden + j])
            n = tanh_f(gx[s, two_h + j] + gh_n[s, j])
            h[s, j] = n + z * (h[s, j] - n)


def _head_rows(params, meta, inp, yb, hbuf, scratch):
    """The head over R rows: inp (R, H) -> yb (R, O), layers ping-ponging through ``hbuf``."""
    rows = inp.shape[0]
    n_layers = meta[1]
    n_head = meta[5]
    width = meta[7]
    for k in range(n_head):
        m = META_HEADER + META_PER_LAYER * n_layers + META_PER_HEAD * k
        out_size = meta[m + 3]
        if k == n_head - 1:
            out = yb
        else:
            base = (k % 2) * rows * width
            out = as_matrix(hbuf[base : base + rows * out_size], rows, out_size)
        w_t, bias, act = _head_views(params, meta, k)
        _project_rows(inp, w_t, bias, out, scratch)
        for r in range(rows):
            apply_head_activation(act, out[r])
        inp = out


def _block_time_step(params, meta, hid, X, Y, work, where):
    """Streams s0..s0+rows-1 by their sample t, ``where`` = (s0, rows, t): rows ``b * T + t``
    of X and Y."""
    s0, rows, t = where
    n_streams = hid.shape[0] // (meta[1] * meta[3])
    n_samples = X.shape[0] // n_streams
    n_layers = meta[1]
    hidden = meta[3]
    gates = 3 * hidden
    width = meta[7]
    out_size = meta[6]
    gx = as_matrix(work[: rows * gates], rows, gates)
    o = rows * gates
    ghbuf = work[o : o + rows * gates]
    o += rows * gates
    rh = as_matrix(work[o : o + rows * hidden], rows, hidden)
    o += rows * hidden
    yb = as_matrix(work[o : o + rows * out_size], rows, out_size)
    o += rows * out_size
    hbuf = work[o : o + 2 * rows * width]
    o += 2 * rows * width
    scratch = work[o : o + (4 + width) * rows]
    first = s0 * n_samples + t
    x_rows = X[first : first + rows * n_samples : n_samples]
    h = as_matrix(hid[s0 * hidden : (s0 + rows) * hidden], rows, hidden)
    for layer in range(n_layers):
        base = (layer * n_streams + s0) * hidden
        h_next = as_matrix(hid[base : base + rows * hidden], rows, hidden)
        w_ih, _w_hh, _w_hn, b_ih, _b_hh = _layer_views(params, meta, layer)
        if layer == 0:
            _project_rows(x_rows, w_ih, b_ih, gx, scratch)
        else:
            _project_rows(h, w_ih, b_ih, gx, scratch)
        _recur_rows(params, meta, layer, gx, h_next, ghbuf, rh, scratch)
        h = h_next
    if meta[5] == 0:
        for r in range(rows):
            for j in range(hidden):
                Y[first + r * n_samples, j] = h[r, j]
        return
    _head_rows(params, meta, h, yb, hbuf, scratch)
    for r in range(rows):
        for j in range(out_size):
            Y[first + r * n_samples, j] = yb[r, j]


def gru_rows(params, meta, hid, X, Y, work, plan):
    """Advance streams plan[2]..plan[3]-1 of plan[0] by plan[1] finite samples each.

    Parameters
    ----------
    params, meta : packed model (:func:`layout.pack_model`)
    hid : (L * B * H,) same dtype, hidden states, layout (L, B, H), updated in place
    X : (B * T, I) same dtype, C-contiguous, all finite (checked by the caller); row b T + t
    Y : (B * T, O) same dtype, C-contiguous, written for the streams of the range
    work : (>= rows_work_size(meta, block),) same dtype, scratch
    plan : (5,) int64 [B, T, start, stop, block]

    Returns
    -------
    int64 : 0
    """
    n_samples = plan[1]
    stop = plan[3]
    block = plan[4]
    for s0 in range(plan[2], stop, block):
        rows = min(block, stop - s0)
        for t in range(n_samples):
            _block_time_step(params, meta, hid, X, Y, work, (s0, rows, t))
    return 0


def first_nonfinite_rows(X):
    """-1 when X (R, K) is all finite, else r * K + k of the first non-finite X[r, k]."""
    rows, cols = X.shape
    flat = X.reshape(rows * cols)
    n_bad = 0
    for i in range(rows * cols):  # a count first: no early exit, so it runs as vector compares
        n_bad += not math.isfinite(flat[i])
    if n_bad == 0:
        return -1
    for r in range(rows):
        for k in range(cols):
            if not math.isfinite(X[r, k]):
                return r * cols + k
    return -1


_PLAN = int64[::1]
_ENTRY_SIGNATURES = {
    "gru_rows": [
        int64(_P32, _META, float32[::1], _X2_32, float32[:, ::1], float32[::1], _PLAN),
        int64(_P64, _META, float64[::1], _X2_64, float64[:, ::1], float64[::1], _PLAN),
    ],
    "first_nonfinite_rows": [int64(_X2_32), int64(_X2_64)],
}

_CLONES = clone_without_nrt(
    [
        _gru._affine,
        _gru._layer_views,
        _gru._head_views,
        apply_head_activation,
        _tail_columns,
        _narrow_rows,
        _project_rows,
        _gates_rows,
        _recur_rows,
        _head_rows,
        _block_time_step,
        gru_rows,
        first_nonfinite_rows,
    ],
    signatures=_ENTRY_SIGNATURES,
    **_OPTS,
)

gru_rows = _CLONES["gru_rows"]
first_nonfinite_rows = _CLONES["first_nonfinite_rows"]
