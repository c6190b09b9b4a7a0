"""GRU kernels for the CPU: one sample, a chunk of samples, and many streams.

Numba nopython only; no I/O, no Python objects, no allocation: the owning Python object
allocates ``state``, outputs and scratch once and the kernels write into them. The buffer
layouts are documented in :mod:`streamgru.kernels.layout`. Kernels never raise: their callers
validate shapes and dtypes; a non-finite input is reported through the return value and leaves
every state untouched.

Both reset variants run here, chosen per model by ``meta[4]`` (a runtime flag rather than two
compiled variants, because numba's cache keys on the function, not on closure options).

Entry points (float32 and float64, the dtype of ``params``/``state``/inputs must agree):

* :func:`gru_step` — one sample through all layers and the head, one stream;
* :func:`gru_chunk` — T samples, layer by layer, with each layer's input projection for the
  whole chunk done as one matrix product;
* :func:`gru_step_many` / :func:`gru_chunk_many` — B independent streams sharing weights, the
  recurrent products done as (B, H) x (H, 3H) matrix products.
"""

from __future__ import annotations

import math

import numpy as np
from numba import float32, float64, int64, njit, types

from .activations import apply_head_activation, sigmoid_f, tanh_f
from .layout import META_HEADER, META_PER_HEAD, META_PER_LAYER

_OPTS = {"nogil": True, "cache": True, "error_model": "numpy", "boundscheck": False}

# Weights and layout are read-only arrays (the stepper freezes them).
_P32 = types.Array(float32, 1, "C", readonly=True)
_P64 = types.Array(float64, 1, "C", readonly=True)
_META = types.Array(int64, 1, "C", readonly=True)


# --------------------------------------------------------------------------- one stream, one step
@njit(**_OPTS)
def _input_projection(params, w_off, b_off, in_size, gates, inp, gx):
    """gx (3H,) = b_ih + W_ih inp, with W_ih^T stored (in_size, 3H) at ``w_off``."""
    bias = params[b_off : b_off + gates]
    for j in range(gates):
        gx[j] = bias[j]
    for i in range(in_size):
        xi = inp[i]
        row = params[w_off + i * gates : w_off + (i + 1) * gates]
        for j in range(gates):
            gx[j] += xi * row[j]


@njit(**_OPTS)
def _recurrent_update(params, whh_off, bhh_off, hidden, reset_after, gx, h, gh, rh):
    """Advance one layer's hidden state ``h`` (H,) in place, given ``gx`` = b_ih + W_ih x (3H,).

    ``gh`` (3H,) and ``rh`` (H,) are scratch.
    """
    gates = 3 * hidden
    two_h = 2 * hidden
    bias = params[bhh_off : bhh_off + gates]
    if reset_after:
        for j in range(gates):
            gh[j] = bias[j]
        for k in range(hidden):
            hk = h[k]
            row = params[whh_off + k * gates : whh_off + (k + 1) * gates]
            for j in range(gates):
                gh[j] += hk * row[j]
        for j in range(hidden):
            r = sigmoid_f(gx[j] + gh[j])
            z = sigmoid_f(gx[hidden + j] + gh[hidden + j])
            n = tanh_f(gx[two_h + j] + r * gh[two_h + j])
            h[j] = n + z * (h[j] - n)
    else:
        for j in range(two_h):
            gh[j] = bias[j]
        for k in range(hidden):
            hk = h[k]
            row = params[whh_off + k * two_h : whh_off + (k + 1) * two_h]
            for j in range(two_h):
                gh[j] += hk * row[j]
        for j in range(hidden):
            rh[j] = sigmoid_f(gx[j] + gh[j]) * h[j]
        wn_off = whh_off + hidden * two_h
        gh_n = gh[two_h:gates]
        for j in range(hidden):
            gh_n[j] = bias[two_h + j]
        for k in range(hidden):
            rk = rh[k]
            row = params[wn_off + k * hidden : wn_off + (k + 1) * hidden]
            for j in range(hidden):
                gh_n[j] += rk * row[j]
        for j in range(hidden):
            z = sigmoid_f(gx[hidden + j] + gh[hidden + j])
            n = tanh_f(gx[two_h + j] + gh[two_h + j])
            h[j] = n + z * (h[j] - n)


@njit(**_OPTS)
def _dense(params, w_off, b_off, in_size, out_size, act, inp, out):
    """out (out_size,) = act(b + W inp), with W^T stored (in_size, out_size) at ``w_off``."""
    bias = params[b_off : b_off + out_size]
    for j in range(out_size):
        out[j] = bias[j]
    for i in range(in_size):
        xi = inp[i]
        row = params[w_off + i * out_size : w_off + (i + 1) * out_size]
        for j in range(out_size):
            out[j] += xi * row[j]
    apply_head_activation(act, out)


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
    gx_off = y_off + output_size
    gx = state[gx_off : gx_off + gates]
    gh = state[gx_off + gates : gx_off + 2 * gates]
    rh = state[gx_off + 2 * gates : gx_off + 2 * gates + hidden]
    a_off = gx_off + 2 * gates + hidden
    buf_a = state[a_off : a_off + width]
    buf_b = state[a_off + width : a_off + 2 * width]

    inp = x
    for layer in range(n_layers):
        m = META_HEADER + META_PER_LAYER * layer
        _input_projection(params, meta[m], meta[m + 2], meta[m + 3], gates, inp, gx)
        h = state[layer * hidden : (layer + 1) * hidden]
        _recurrent_update(params, meta[m + 1], meta[m + 2] + gates, hidden, reset_after, gx, h, gh, rh)
        inp = h
    top = state[(n_layers - 1) * hidden : n_layers * hidden]
    y = state[y_off : y_off + output_size]
    if n_head == 0:
        for j in range(hidden):
            y[j] = top[j]
        return
    cur = top
    for k in range(n_head):
        m = META_HEADER + META_PER_LAYER * n_layers + META_PER_HEAD * k
        out = buf_a[: meta[m + 3]] if k % 2 == 0 else buf_b[: meta[m + 3]]
        _dense(params, meta[m], meta[m + 1], meta[m + 2], meta[m + 3], meta[m + 4], cur, out)
        cur = out
    for j in range(output_size):
        y[j] = cur[j]


def _first_nonfinite(values):
    for i in range(values.shape[0]):
        if not math.isfinite(values[i]):
            return i
    return -1


_first_nonfinite = njit(**_OPTS)(_first_nonfinite)


@njit(
    [
        int64(_P32, _META, float32[::1], float32[::1]),
        int64(_P64, _META, float64[::1], float64[::1]),
    ],
    **_OPTS,
)
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
    int64 : 0 on success; ``i + 1`` when ``x[i]`` is NaN or Inf, in which case nothing changed.
    The output (O,) is at ``state[L*H : L*H + O]``.
    """
    bad = _first_nonfinite(x)
    if bad >= 0:
        return bad + 1
    _step_core(params, meta, state, x)
    return 0


# --------------------------------------------------------------------------- one stream, a chunk
@njit(**_OPTS)
def _first_nonfinite_2d(values):
    rows, cols = values.shape
    for t in range(rows):
        for i in range(cols):
            if not math.isfinite(values[t, i]):
                return t * cols + i
    return -1


@njit(**_OPTS)
def _dense_rows(params, w_off, b_off, in_size, out_size, act, inp, out):
    """out (T, out_size) = act(inp (T, in_size) @ W^T + b), row by row activation."""
    w = params[w_off : w_off + in_size * out_size].reshape((in_size, out_size))
    np.dot(inp, w, out)
    bias = params[b_off : b_off + out_size]
    for t in range(out.shape[0]):
        row = out[t]
        for j in range(out_size):
            row[j] += bias[j]
        apply_head_activation(act, row)


@njit(
    [
        int64(_P32, _META, float32[::1], float32[:, ::1], float32[:, ::1], float32[::1]),
        int64(_P64, _META, float64[::1], float64[:, ::1], float64[:, ::1], float64[::1]),
    ],
    **_OPTS,
)
def gru_chunk(params, meta, state, X, Y, work):
    """Advance one stream by T samples: ``Y[t]`` equals what ``gru_step`` returns for ``X[t]``.

    Layers run one after the other over the whole chunk (layer l at time t needs only layer
    l-1 at time t and itself at t-1), so each layer's input projection is one (T, in) x (in, 3H)
    matrix product and only the recurrent part stays sequential.

    Parameters
    ----------
    params, meta, state : as for :func:`gru_step`
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
    gx_off = y_off + output_size
    gh = state[gx_off + gates : gx_off + 2 * gates]
    rh = state[gx_off + 2 * gates : gx_off + 2 * gates + hidden]

    gx_all = work[: n_samples * gates].reshape((n_samples, gates))
    seq_a = work[n_samples * gates : n_samples * (gates + width)]
    seq_b = work[n_samples * (gates + width) : n_samples * (gates + 2 * width)]

    inp = X
    for layer in range(n_layers):
        m = META_HEADER + META_PER_LAYER * layer
        in_size = meta[m + 3]
        w_ih = params[meta[m] : meta[m] + in_size * gates].reshape((in_size, gates))
        np.dot(inp, w_ih, gx_all)
        b_off = meta[m + 2]
        bias = params[b_off : b_off + gates]
        for t in range(n_samples):
            row = gx_all[t]
            for j in range(gates):
                row[j] += bias[j]
        out_seq = (seq_a if layer % 2 == 0 else seq_b)[: n_samples * hidden].reshape((n_samples, hidden))
        h = state[layer * hidden : (layer + 1) * hidden]
        for t in range(n_samples):
            _recurrent_update(params, meta[m + 1], b_off + gates, hidden, reset_after, gx_all[t], h, gh, rh)
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
            _dense_rows(params, meta[m], meta[m + 1], meta[m + 2], out_size, meta[m + 4], inp, out)
            inp = out
            use_a = not use_a
    last = Y[n_samples - 1]
    for j in range(output_size):
        state[y_off + j] = last[j]
    return 0


# --------------------------------------------------------------------------- many streams
@njit(**_OPTS)
def _many_core(params, meta, hid, X, Y, work):
    """One finite sample per stream: X (B, I) -> Y (B, O); hid (L*B*H,) updated in place."""
    n_streams = X.shape[0]
    n_layers = meta[1]
    hidden = meta[3]
    reset_after = meta[4] != 0
    n_head = meta[5]
    width = meta[7]
    gates = 3 * hidden
    two_h = 2 * hidden
    gx = work[: n_streams * gates].reshape((n_streams, gates))
    gh = work[n_streams * gates : 2 * n_streams * gates].reshape((n_streams, gates))
    o = 2 * n_streams * gates
    rh = work[o : o + n_streams * hidden].reshape((n_streams, hidden))
    o += n_streams * hidden
    buf_a = work[o : o + n_streams * width]
    buf_b = work[o + n_streams * width : o + 2 * n_streams * width]

    inp = X
    for layer in range(n_layers):
        m = META_HEADER + META_PER_LAYER * layer
        in_size = meta[m + 3]
        w_ih = params[meta[m] : meta[m] + in_size * gates].reshape((in_size, gates))
        np.dot(inp, w_ih, gx)
        b_off = meta[m + 2]
        bh_off = b_off + gates
        h = hid[layer * n_streams * hidden : (layer + 1) * n_streams * hidden].reshape((n_streams, hidden))
        if reset_after:
            w_hh = params[meta[m + 1] : meta[m + 1] + hidden * gates].reshape((hidden, gates))
            np.dot(h, w_hh, gh)
            for s in range(n_streams):
                gxs = gx[s]
                ghs = gh[s]
                hs = h[s]
                for j in range(hidden):
                    r = sigmoid_f(gxs[j] + params[b_off + j] + ghs[j] + params[bh_off + j])
                    z = sigmoid_f(
                        gxs[hidden + j] + params[b_off + hidden + j] + ghs[hidden + j] + params[bh_off + hidden + j]
                    )
                    n = tanh_f(
                        gxs[two_h + j]
                        + params[b_off + two_h + j]
                        + r * (ghs[two_h + j] + params[bh_off + two_h + j])
                    )
                    hs[j] = n + z * (hs[j] - n)
        else:
            w_rz = params[meta[m + 1] : meta[m + 1] + hidden * two_h].reshape((hidden, two_h))
            w_n_off = meta[m + 1] + hidden * two_h
            w_n = params[w_n_off : w_n_off + hidden * hidden].reshape((hidden, hidden))
            gh_rz = gh.ravel()[: n_streams * two_h].reshape((n_streams, two_h))
            np.dot(h, w_rz, gh_rz)
            for s in range(n_streams):
                for j in range(hidden):
                    r = sigmoid_f(gx[s, j] + params[b_off + j] + gh_rz[s, j] + params[bh_off + j])
                    rh[s, j] = r * h[s, j]
            zbuf = buf_a[: n_streams * hidden].reshape((n_streams, hidden))
            for s in range(n_streams):
                for j in range(hidden):
                    zbuf[s, j] = sigmoid_f(
                        gx[s, hidden + j] + params[b_off + hidden + j] + gh_rz[s, hidden + j] + params[bh_off + hidden + j]
                    )
            gh_n = buf_b[: n_streams * hidden].reshape((n_streams, hidden))
            np.dot(rh, w_n, gh_n)
            for s in range(n_streams):
                for j in range(hidden):
                    n = tanh_f(gx[s, two_h + j] + params[b_off + two_h + j] + gh_n[s, j] + params[bh_off + two_h + j])
                    h[s, j] = n + zbuf[s, j] * (h[s, j] - n)
        inp = h
    if n_head == 0:
        for s in range(n_streams):
            for j in range(hidden):
                Y[s, j] = inp[s, j]
        return
    use_a = True
    for k in range(n_head):
        m = META_HEADER + META_PER_LAYER * n_layers + META_PER_HEAD * k
        out_size = meta[m + 3]
        if k == n_head - 1:
            out = Y
        elif use_a:
            out = buf_a[: n_streams * out_size].reshape((n_streams, out_size))
        else:
            out = buf_b[: n_streams * out_size].reshape((n_streams, out_size))
        _dense_rows(params, meta[m], meta[m + 1], meta[m + 2], out_size, meta[m + 4], inp, out)
        inp = out
        use_a = not use_a


@njit(**_OPTS)
def gru_step_many(params, meta, hid, X, Y, work):
    """Advance B streams by one sample each.

    Parameters
    ----------
    params, meta : packed model (:func:`layout.pack_model`)
    hid : (L * B * H,) same dtype, hidden states, layout (L, B, H)
    X : (B, I) same dtype, C-contiguous
    Y : (B, O) same dtype, C-contiguous, written
    work : (>= layout.many_work_size(meta, B),) same dtype, scratch

    Returns
    -------
    int64 : 0, or ``b * I + i + 1`` for the first non-finite ``X[b, i]`` (nothing changed).
    """
    bad = _first_nonfinite_2d(X)
    if bad >= 0:
        return bad + 1
    _many_core(params, meta, hid, X, Y, work)
    return 0


@njit(**_OPTS)
def gru_chunk_many(params, meta, hid, X, Y, work):
    """Advance B streams by T samples each: X (B, T, I) -> Y (B, T, O).

    Same buffers as :func:`gru_step_many`; ``work`` needs ``many_work_size(meta, B)`` plus
    B * (I + O) elements for the per-time-step input and output slices.

    Returns
    -------
    int64 : 0, or ``flat_index + 1`` of the first non-finite value of X (nothing changed).
    """
    n_streams, n_samples, input_size = X.shape
    for s in range(n_streams):
        for t in range(n_samples):
            for i in range(input_size):
                if not math.isfinite(X[s, t, i]):
                    return (s * n_samples + t) * input_size + i + 1
    output_size = Y.shape[2]
    base = work.shape[0] - n_streams * (input_size + output_size)
    xt = work[base : base + n_streams * input_size].reshape((n_streams, input_size))
    yt = work[base + n_streams * input_size : base + n_streams * (input_size + output_size)].reshape(
        (n_streams, output_size)
    )
    inner = work[:base]
    for t in range(n_samples):
        for s in range(n_streams):
            for i in range(input_size):
                xt[s, i] = X[s, t, i]
        _many_core(params, meta, hid, xt, yt, inner)
        for s in range(n_streams):
            for j in range(output_size):
                Y[s, t, j] = yt[s, j]
    return 0
