"""GRU kernels for the CPU: one sample, a chunk of samples, and many streams.

Numba nopython only; no I/O, no Python objects, no allocation: the owning Python object
allocates ``state``, outputs and scratch once and the kernels write into them. The buffer
layouts are documented in :mod:`streamgru.kernels.layout`. Kernels never raise: their callers
validate shapes and dtypes; a non-finite input is reported through the return value and leaves
every state untouched.

Both reset variants run here, chosen per model by ``meta[4]`` (a runtime flag rather than two
compiled variants, because numba's cache keys on the function, not on closure options).

The helpers for one sample of one stream (``_step_core`` and what it calls) live here; the
per-sample entry points built from them, compiled without the NRT, are in
:mod:`streamgru.kernels.step`. Entry points here (float32 and float64, the dtype of
``params``/``state``/inputs must agree; each signature compiles on first use, through
:func:`.nonrt.entry_point`, not at import):

* :func:`gru_chunk` — T samples of one stream, layer by layer: each layer's input projection
  for the whole chunk first, then the recurrence. Every row takes exactly the arithmetic of a
  single step, so outputs do not depend on how a stream is cut into chunks (bit for bit);
* many streams sharing one model run in :mod:`streamgru.kernels.batch`, from the same helpers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import float32, float64, int64, njit, types

from .activations import apply_head_activation, sigmoid_f, tanh_f
from .layout import ALIGN, META_HEADER, META_PER_HEAD, META_PER_LAYER
from .nonrt import lazy_njit
from .simd import tiled_affine
from .views import as_matrix

_OPTS = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}

# Weights and layout are read-only arrays (the stepper freezes them).
_P32 = types.Array(float32, 1, "C", readonly=True)
_P64 = types.Array(float64, 1, "C", readonly=True)
_META = types.Array(int64, 1, "C", readonly=True)
# Input blocks are only read: read-only arrays (np.frombuffer, memory maps) are accepted.
_X2_32 = types.Array(float32, 2, "C", readonly=True)
_X2_64 = types.Array(float64, 2, "C", readonly=True)


# --------------------------------------------------------------------------- one stream, one step
# The helpers take 2-D weight views made once per layer: slicing inside an inner loop makes
# numba emit atomic reference-count updates per slice, which costs more than the arithmetic.
@njit(**_OPTS)
def _affine(w_t, bias, inp, out):
    """out (n,) = bias + W inp, with W^T given as ``w_t`` (len(inp), n).

    Outputs in whole vectors go through :func:`.simd.tiled_affine`, which keeps them in
    registers while the rows stream past; the few columns left over (n not a multiple of the
    vector width) take the loops below, four input rows per pass over ``out`` (a pass loads
    and stores every output, so taking rows one at a time is bound by the stores). Both do the
    same arithmetic in the same order.
    """
    n = out.shape[0]
    m = w_t.shape[0]
    if n < 4:
        # A narrow output (a head to one or a few classes): the passes over ``out`` would be
        # one long dependency chain; four partial dot products run side by side instead.
        for j in range(n):
            s0 = s1 = s2 = s3 = bias[j] - bias[j]
            i = 0
            while i + 4 <= m:
                s0 += inp[i] * w_t[i, j]
                s1 += inp[i + 1] * w_t[i + 1, j]
                s2 += inp[i + 2] * w_t[i + 2, j]
                s3 += inp[i + 3] * w_t[i + 3, j]
                i += 4
            while i < m:
                s0 += inp[i] * w_t[i, j]
                i += 1
            out[j] = bias[j] + ((s0 + s1) + (s2 + s3))
        return
    done = tiled_affine(w_t, bias, inp, out)
    if done == n:
        return
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
def _gates_reset_after(gx, gh, h):
    """h (H,) <- GRU update from gx = W_i x + b_i and gh = W_h h + b_h (both (3H,))."""
    hidden = h.shape[0]
    two_h = 2 * hidden
    for j in range(hidden):
        r = sigmoid_f(gx[j] + gh[j])
        z = sigmoid_f(gx[hidden + j] + gh[hidden + j])
        n = tanh_f(gx[two_h + j] + r * gh[two_h + j])
        h[j] = n + z * (h[j] - n)


@njit(**_OPTS)
def _recurrent_update(w_hh, w_hn, b_hh, gx, h, gh, rh, reset_after):
    """Advance one layer's hidden state ``h`` (H,) in place, given ``gx`` = b_ih + W_ih x (3H,).

    Reset-after: ``w_hh`` is W_hh^T (H, 3H) and ``w_hn`` is unused. Reset-before: ``w_hh`` is
    W_hh[r,z]^T (H, 2H) and ``w_hn`` is W_hh[n]^T (H, H). ``gh`` (3H,) and ``rh`` (H,) are scratch.
    """
    hidden = h.shape[0]
    two_h = 2 * hidden
    if reset_after:
        _affine(w_hh, b_hh, h, gh)
        _gates_reset_after(gx, gh, h)
        return
    gh_rz = gh[:two_h]
    gh_n = gh[two_h:]
    _affine(w_hh, b_hh[:two_h], h, gh_rz)
    for j in range(hidden):
        rh[j] = sigmoid_f(gx[j] + gh_rz[j]) * h[j]
    _affine(w_hn, b_hh[two_h:], rh, gh_n)
    for j in range(hidden):
        z = sigmoid_f(gx[hidden + j] + gh_rz[hidden + j])
        n = tanh_f(gx[two_h + j] + gh_n[j])
        h[j] = n + z * (h[j] - n)


@njit(**_OPTS)
def _scratch_offset(meta):
    """Start of the scratch in ``state``: L H + O rounded up to ``ALIGN`` (layout.scratch_offset)."""
    used = meta[1] * meta[3] + meta[6]
    return (used + ALIGN - 1) // ALIGN * ALIGN


@njit(**_OPTS)
def _layer_views(params, meta, layer):
    """(W_ih^T, W_hh^T or W_hh[r,z]^T, W_hh[n]^T or empty, b_ih, b_hh) views of one layer."""
    hidden = meta[3]
    gates = 3 * hidden
    m = META_HEADER + META_PER_LAYER * layer
    in_size = meta[m + 3]
    w_ih = as_matrix(params[meta[m] : meta[m] + in_size * gates], in_size, gates)
    whh_off = meta[m + 1]
    if meta[4] != 0:
        w_hh = as_matrix(params[whh_off : whh_off + hidden * gates], hidden, gates)
        w_hn = as_matrix(params[whh_off:whh_off], 0, hidden)
    else:
        two_h = 2 * hidden
        w_hh = as_matrix(params[whh_off : whh_off + hidden * two_h], hidden, two_h)
        n_off = whh_off + hidden * two_h
        w_hn = as_matrix(params[n_off : n_off + hidden * hidden], hidden, hidden)
    b_ih = params[meta[m + 2] : meta[m + 2] + gates]
    b_hh = params[meta[m + 2] + gates : meta[m + 2] + 2 * gates]
    return w_ih, w_hh, w_hn, b_ih, b_hh


@njit(**_OPTS)
def _head_views(params, meta, k):
    """(W^T (in, out), b (out,), activation code) of head layer k."""
    m = META_HEADER + META_PER_LAYER * meta[1] + META_PER_HEAD * k
    in_size = meta[m + 2]
    out_size = meta[m + 3]
    w_t = as_matrix(params[meta[m] : meta[m] + in_size * out_size], in_size, out_size)
    bias = params[meta[m + 1] : meta[m + 1] + out_size]
    return w_t, bias, meta[m + 4]


@njit(**_OPTS)
def _step_core(params, meta, state, x):
    """One finite sample ``x`` (I,) through all layers and the head; output written to state."""
    n_layers = meta[1]
    hidden = meta[3]
    reset_after = meta[4] != 0
    n_head = meta[5]
    output_size = meta[6]
    width = meta[7]
    gates = 3 * hidden
    y_off = n_layers * hidden
    gx_off = _scratch_offset(meta)
    gx = state[gx_off : gx_off + gates]
    gh = state[gx_off + gates : gx_off + 2 * gates]
    rh = state[gx_off + 2 * gates : gx_off + 2 * gates + hidden]
    a_off = gx_off + 2 * gates + hidden
    buf_a = state[a_off : a_off + width]
    buf_b = state[a_off + width : a_off + 2 * width]

    inp = x
    for layer in range(n_layers):
        w_ih, w_hh, w_hn, b_ih, b_hh = _layer_views(params, meta, layer)
        _affine(w_ih, b_ih, inp, gx)
        h = state[layer * hidden : (layer + 1) * hidden]
        _recurrent_update(w_hh, w_hn, b_hh, gx, h, gh, rh, reset_after)
        inp = h
    y = state[y_off : y_off + output_size]
    if n_head == 0:
        for j in range(hidden):
            y[j] = inp[j]
        return
    for k in range(n_head):
        w_t, bias, act = _head_views(params, meta, k)
        out = buf_a[: bias.shape[0]] if k % 2 == 0 else buf_b[: bias.shape[0]]
        _affine(w_t, bias, inp, out)
        apply_head_activation(act, out)
        inp = out
    for j in range(output_size):
        y[j] = inp[j]


# --------------------------------------------------------------------------- one stream, a chunk
@njit(**_OPTS)
def _first_nonfinite_2d(values):
    rows, cols = values.shape
    for t in range(rows):
        for i in range(cols):
            if not math.isfinite(values[t, i]):
                return t * cols + i
    return -1


# Products of at least ``blas_min_rows`` rows would go to BLAS (``np.dot``). The chunk kernel
# never uses BLAS (``ROWS_ALWAYS``): every row then takes exactly the arithmetic of a single
# step, so any chunking of a stream, and ``gru_step``, give bit-identical outputs (resuming a
# snapshot, or replaying a stream on another worker, repeats the same values).
ROWS_ALWAYS = 1 << 62


@njit(**_OPTS)
def _add_rows(mat, bias):
    """mat (R, n) += bias (n,) on every row."""
    for r in range(mat.shape[0]):
        row = mat[r]
        for j in range(bias.shape[0]):
            row[j] += bias[j]


@njit(**_OPTS)
def _project(inp, w_t, bias, out, blas_min_rows):
    """out (R, n) = inp (R, m) @ w_t (m, n) + bias (n,), all C-contiguous; BLAS from R rows."""
    if inp.shape[0] >= blas_min_rows:
        np.dot(inp, w_t, out)
        _add_rows(out, bias)
    else:
        for r in range(inp.shape[0]):
            _affine(w_t, bias, inp[r], out[r])


@njit(**_OPTS)
def _dense_rows(params, meta, k, inp, out, blas_min_rows):
    """out (T, out) = act(inp (T, in) @ W^T + b) for head layer k, activation row by row."""
    w_t, bias, act = _head_views(params, meta, k)
    _project(inp, w_t, bias, out, blas_min_rows)
    for t in range(out.shape[0]):
        apply_head_activation(act, out[t])


@lazy_njit(
    [
        int64(_P32, _META, float32[::1], _X2_32, float32[:, ::1], float32[::1]),
        int64(_P64, _META, float64[::1], _X2_64, float64[:, ::1], float64[::1]),
    ],
    **_OPTS,
)
def gru_chunk(params, meta, state, X, Y, work):
    """Advance one stream by T samples: ``Y[t]`` is bit for bit what ``gru_step`` gives for ``X[t]``.

    Layers run one after the other over the whole chunk (layer l at time t needs only layer
    l-1 at time t and itself at t-1), so each layer's input projection runs over the whole
    chunk in one tight loop and only the recurrent part stays sequential.

    Parameters
    ----------
    params, meta, state : as for :func:`streamgru.kernels.step.gru_step`
    X : (T, I) same dtype, C-contiguous
    Y : (T, O) same dtype, C-contiguous, written
    work : (>= layout.chunk_work_size(meta, T),) same dtype, scratch

    Returns
    -------
    int64 : 0 on success; ``t * I + i + 1`` for the first non-finite ``X[t, i]``, in which case
    nothing changed (state and Y untouched).
    """
    bad = _first_nonfinite_2d(X)
    if bad >= 0:
        return bad + 1
    n_samples = X.shape[0]
    if n_samples == 0:
        return 0
    n_layers = meta[1]
    hidden = meta[3]
    reset_after = meta[4] != 0
    n_head = meta[5]
    output_size = meta[6]
    width = meta[7]
    gates = 3 * hidden
    y_off = n_layers * hidden
    gx_off = _scratch_offset(meta)
    gh = state[gx_off + gates : gx_off + 2 * gates]
    rh = state[gx_off + 2 * gates : gx_off + 2 * gates + hidden]

    gx_all = work[: n_samples * gates].reshape((n_samples, gates))
    seq_a = work[n_samples * gates : n_samples * (gates + width)]
    seq_b = work[n_samples * (gates + width) : n_samples * (gates + 2 * width)]

    inp = X
    for layer in range(n_layers):
        w_ih, w_hh, w_hn, b_ih, b_hh = _layer_views(params, meta, layer)
        _project(inp, w_ih, b_ih, gx_all, ROWS_ALWAYS)
        out_seq = (seq_a if layer % 2 == 0 else seq_b)[: n_samples * hidden].reshape(
            (n_samples, hidden)
        )
        h = state[layer * hidden : (layer + 1) * hidden]
        for t in range(n_samples):
            _recurrent_update(w_hh, w_hn, b_hh, gx_all[t], h, gh, rh, reset_after)
            dst = out_seq[t]
            for j in range(hidden):
                dst[j] = h[j]
        inp = out_seq
    if n_head == 0:
        for t in range(n_samples):
            for j in range(hidden):
                Y[t, j] = inp[t, j]
    else:
        # Head layers ping-pong between the two sequence buffers, never overwriting their input.
        use_a = n_layers % 2 == 0
        for k in range(n_head):
            m = META_HEADER + META_PER_LAYER * n_layers + META_PER_HEAD * k
            out_size = meta[m + 3]
            if k == n_head - 1:
                out = Y
            elif use_a:
                out = seq_a[: n_samples * out_size].reshape((n_samples, out_size))
            else:
                out = seq_b[: n_samples * out_size].reshape((n_samples, out_size))
            _dense_rows(params, meta, k, inp, out, ROWS_ALWAYS)
            inp = out
            use_a = not use_a
    last = Y[n_samples - 1]
    for j in range(output_size):
        state[y_off + j] = last[j]
    return 0
