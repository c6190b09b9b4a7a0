"""numba.cuda kernels for many streams: filter + GRU stack + head for B streams, T samples.

Imported lazily (by :mod:`streamgru.cuda_engine` only), never at package import: importing
this module imports ``numba.cuda`` (the ``numba-cuda`` package, the ``cuda`` extra). The same
code runs under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) and on a GPU.

Mapping
-------
One thread block advances a group of ``ns`` streams through all T samples in one launch (the
loop over time is inside the kernel), so the hidden states are read from global memory once per
launch and live in shared memory in between. Inside a block, thread ``tid`` is split into

* a unit lane ``u = tid % nu``, ``nu = min(H, blockDim.x)``: it owns the hidden units (and
  head outputs) ``j = u, u + nu, ...``; neighbouring lanes read neighbouring weight columns
  of the transposed layout (coalesced loads);
* a stream group ``g = tid // nu``: it owns ``spt`` streams of the block (``spt``, streams per
  thread, is a compile-time constant of the kernel), whose accumulators sit in registers, so
  each weight loaded from global memory serves ``spt`` streams.

so ``ns = (blockDim.x // nu) * spt`` and the grid is ``ceil(B / ns)`` blocks (the last block
may be partly empty; its spare streams compute on zeros and are never written back).

Weights stay in global memory (read-only, cached in L1/L2), packed exactly as for the CPU
(:mod:`streamgru.kernels.layout`): transposed matrices, gates (r, z, n), both reset variants.

Shared memory (dynamic, one array of the compute dtype; :func:`shared_elements`), per block::

    hs  (L, ns, H)    hidden states of the block's streams, all layers
    hn  (ns, H)       new hidden state of the current layer (reset-after), before it replaces hs
    rh  (ns, H)       r * h            (reset-before)
    zb  (ns, H)       update gate z    (reset-before)
    xn  (ns, H)       W_in x + b_in    (reset-before)
    ba  (ns, W)       layer-0 input of the current sample, then head layer 0, 2, ... outputs
    bb  (ns, W)       head layer 1, 3, ... outputs

Filter stage (optional, per stream and channel, float64 like :mod:`streamgru.kernels.sos`):
``fparams`` = ``[sos (n_sections, 6) | zi_unit (n_sections, 2)]`` flattened, float64;
``fstate`` = ``[zi (n_sections, 2, B * C) | started (B,)]`` flattened, float64, where column
``s * C + c`` is channel c of stream s (C = I) and ``started[s]`` is 0.0 until the stream's
first sample set its state to ``zi_unit * x0`` (steady start; zeros for a zero start).
Zero-length ``fparams`` means no filter. The thread that loads ``X[s, t, c]`` is the same for
every t, so it alone touches column ``s * C + c`` of ``zi``.

Kernels never check their input (the owner does, on the host) and never raise.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numba import cuda, types

from .cuda_phases import _head_function, _layer_function

#: Shared-memory buffers of (ns, H) besides ``hs`` (see the module docstring).
N_SCRATCH_H = 4
#: Shared-memory buffers of (ns, W).
N_SCRATCH_W = 2
#: Filter parameters per section in ``fparams``: 6 sos coefficients + 2 zi_unit values.
FPARAMS_PER_SECTION = 8


def shared_elements(meta: np.ndarray, streams_per_block: int) -> int:
    """Elements of the dynamic shared array one block needs (multiply by the itemsize)."""
    n_layers, hidden, width = int(meta[1]), int(meta[3]), int(meta[7])
    return streams_per_block * ((n_layers + N_SCRATCH_H) * hidden + N_SCRATCH_W * width)


def kernel_signature(dtype):
    """The numba signature of the chunk kernel for compute ``dtype`` (for ``compile_ptx``)."""
    ft = types.float32 if np.dtype(dtype) == np.float32 else types.float64
    return types.void(
        types.Array(ft, 1, "C"),
        types.Array(types.int64, 1, "C"),
        types.Array(ft, 1, "C"),
        types.Array(ft, 3, "C"),
        types.Array(ft, 3, "C"),
        types.Array(types.float64, 1, "C"),
        types.Array(types.float64, 1, "C"),
    )


def chunk_kernel_source(streams_per_thread: int, dtype):
    """Build the Python function of the chunk kernel (not yet ``cuda.jit``-ed).

    Kept apart from :func:`get_chunk_kernel` so that ``cuda.compile_ptx`` can check the same
    function for the real target on a machine with the CUDA toolkit but no GPU. The phases of
    one sample are device functions inlined into it (``inline="always"``): the same operations
    in the same order as one long kernel, split only to be read.
    """
    spt = int(streams_per_thread)
    dtype = np.dtype(dtype)
    fdt = np.float32 if dtype == np.float32 else np.float64  # scalar type, for casts
    sdt = np.dtype(fdt)  # dtype instance, for arrays (what the simulator needs)
    load_states, load_sample, write_outputs, store_states = _io_functions(fdt)
    gru_layer = _layer_function(spt, fdt)
    head_layers = _head_function(spt, fdt)

    def gru_chunk_many(params, meta, hid, X, Y, fparams, fstate):
        """Advance B streams by T samples: filter, GRU stack and head, all in one launch.

        params : (P,) compute dtype, packed weights (layout.pack_model)
        meta : (M,) int64, packed layout
        hid : (L * B * H,) compute dtype, hidden states, layout (L, B, H); updated
        X : (B, T, I) compute dtype, C-contiguous; read
        Y : (B, T, O) compute dtype, C-contiguous; written
        fparams : (8 * n_sections,) float64; empty: no filter
        fstate : (2 * n_sections * B * I + B,) float64; updated (empty without a filter)
        """
        n_streams = X.shape[0]
        n_samples = X.shape[1]
        n_layers = meta[1]
        hidden = meta[3]
        width = meta[7]

        tid = cuda.threadIdx.x
        nthreads = cuda.blockDim.x
        nu = min(hidden, nthreads)
        groups = nthreads // nu
        u = tid % nu
        g = tid // nu
        active = g < groups
        ns = groups * spt
        s0 = cuda.blockIdx.x * ns
        nvalid = min(ns, n_streams - s0)
        first_local = g * spt  # this thread's streams: first_local .. first_local + spt - 1

        sh = cuda.shared.array(0, dtype=sdt)
        hn_off = n_layers * ns * hidden
        rh_off = hn_off + ns * hidden
        zb_off = rh_off + ns * hidden
        xn_off = zb_off + ns * hidden
        ba_off = xn_off + ns * hidden
        bb_off = ba_off + ns * width
        lanes = (tid, nthreads, nu, u, ns, s0, nvalid, first_local)
        offs = (hn_off, rh_off, zb_off, xn_off, ba_off, bb_off)

        acc = (
            cuda.local.array(spt, dtype=sdt),  # r (and the head's sums)
            cuda.local.array(spt, dtype=sdt),  # z
            cuda.local.array(spt, dtype=sdt),  # W_in x + b_in
            cuda.local.array(spt, dtype=sdt),  # W_hn h + b_hn
        )

        load_states(hid, sh, meta, n_streams, lanes)
        cuda.syncthreads()
        for t in range(n_samples):
            load_sample(X, sh, fparams, fstate, t, meta, lanes, offs)
            cuda.syncthreads()
            for layer in range(n_layers):
                gru_layer(params, meta, sh, acc, layer, lanes, active, offs)
            src_off, src_stride = head_layers(params, meta, sh, acc[0], lanes, active, offs)
            write_outputs(Y, sh, t, meta, src_off, src_stride, lanes)
            cuda.syncthreads()  # ba is overwritten by the next sample
        store_states(hid, sh, fstate, fparams, meta, n_streams, n_samples, lanes)

    return gru_chunk_many


@cuda.jit(device=True, inline="always")
def filter_value(fparams, fstate, n_sec, n_cols, col, started_at, first, x):
    """Filter one value of column ``col`` through the cascade; returns float64."""
    value = np.float64(x)
    if first and fstate[started_at] == 0.0:
        unit = n_sec * 6
        for sec in range(n_sec):
            fstate[(2 * sec) * n_cols + col] = fparams[unit + 2 * sec] * value
            fstate[(2 * sec + 1) * n_cols + col] = fparams[unit + 2 * sec + 1] * value
    for sec in range(n_sec):
        c = sec * 6
        z0 = (2 * sec) * n_cols + col
        z1 = z0 + n_cols
        y = fparams[c] * value + fstate[z0]
        fstate[z0] = fparams[c + 1] * value - fparams[c + 4] * y + fstate[z1]
        fstate[z1] = fparams[c + 2] * value - fparams[c + 5] * y
        value = y
    return value


def _io_functions(fdt):
    """Device functions moving data between global and shared memory: the hidden states in and
    out (and the filter marked started), one sample of every stream in (filtered), its outputs
    out. ``lanes`` is ``(tid, nthreads, nu, u, ns, s0, nvalid, first_local)``."""
    zero = fdt(0.0)

    @cuda.jit(device=True, inline="always")
    def load_states(hid, sh, meta, n_streams, lanes):
        tid, nthreads, _, _, ns, s0, nvalid, _ = lanes
        n_layers = meta[1]
        hidden = meta[3]
        per_layer = ns * hidden
        for e in range(tid, n_layers * per_layer, nthreads):
            layer = e // per_layer
            rest = e - layer * per_layer
            sl = rest // hidden
            if sl < nvalid:
                sh[e] = hid[(layer * n_streams + s0) * hidden + rest]
            else:
                sh[e] = zero

    @cuda.jit(device=True, inline="always")
    def load_sample(X, sh, fparams, fstate, t, meta, lanes, offs):
        tid, nthreads, _, _, ns, s0, nvalid, _ = lanes
        ba_off = offs[4]
        in_size0 = meta[2]
        width = meta[7]
        n_sec = fparams.shape[0] // FPARAMS_PER_SECTION
        n_cols = X.shape[0] * in_size0
        started_base = 2 * n_sec * n_cols
        for e in range(tid, ns * in_size0, nthreads):
            sl = e // in_size0
            c = e - sl * in_size0
            value = zero
            if sl < nvalid:
                s = s0 + sl
                value = X[s, t, c]
                if n_sec > 0:
                    value = fdt(
                        filter_value(
                            fparams,
                            fstate,
                            n_sec,
                            n_cols,
                            s * in_size0 + c,
                            started_base + s,
                            t == 0,
                            value,
                        )
                    )
            sh[ba_off + sl * width + c] = value

    @cuda.jit(device=True, inline="always")
    def write_outputs(Y, sh, t, meta, src_off, src_stride, lanes):
        tid, nthreads, _, _, _, s0, nvalid, _ = lanes
        out_size = meta[6]
        for e in range(tid, nvalid * out_size, nthreads):
            sl = e // out_size
            j = e - sl * out_size
            Y[s0 + sl, t, j] = sh[src_off + sl * src_stride + j]

    @cuda.jit(device=True, inline="always")
    def store_states(hid, sh, fstate, fparams, meta, n_streams, n_samples, lanes):
        tid, nthreads, _, _, ns, s0, nvalid, _ = lanes
        n_layers = meta[1]
        hidden = meta[3]
        per_layer = ns * hidden
        for e in range(tid, n_layers * per_layer, nthreads):
            layer = e // per_layer
            rest = e - layer * per_layer
            sl = rest // hidden
            if sl < nvalid:
                hid[(layer * n_streams + s0) * hidden + rest] = sh[e]
        n_sec = fparams.shape[0] // FPARAMS_PER_SECTION
        started_base = 2 * n_sec * (n_streams * meta[2])
        if n_sec > 0 and n_samples > 0:
            for sl in range(tid, nvalid, nthreads):
                fstate[started_base + s0 + sl] = 1.0

    return load_states, load_sample, write_outputs, store_states


@cache
def get_chunk_kernel(streams_per_thread: int, dtype_name: str):
    """The compiled-on-first-launch chunk kernel for ``streams_per_thread`` and a dtype name.

    Built by a factory (the streams per thread size the register arrays), so it is not cached
    on disk: numba's cache keys on the function, and factory variants would share one entry.
    """
    return cuda.jit(chunk_kernel_source(streams_per_thread, dtype_name))


@cuda.jit
def reset_streams(meta, hid, fstate, mask):
    """Zero the hidden state (and restart the filter) of every stream s with ``mask[s] != 0``.

    meta : (M,) int64; hid : (L * B * H,) compute dtype, layout (L, B, H); fstate : the filter
    state (see the module docstring; empty without a filter); mask : (B,) uint8.
    Launch with any 1-D grid (grid-stride loop).
    """
    n_streams = mask.shape[0]
    hidden = meta[3]
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for e in range(start, hid.shape[0], stride):
        if mask[(e // hidden) % n_streams] != 0:
            hid[e] = 0
    if fstate.shape[0] > 0:
        n_zi = fstate.shape[0] - n_streams
        n_cols = n_streams * meta[2]  # zi is (n_sections, 2, B * C), C = I
        for e in range(start, n_zi, stride):
            if mask[(e % n_cols) // meta[2]] != 0:
                fstate[e] = 0.0
        for s in range(start, n_streams, stride):
            if mask[s] != 0:
                fstate[n_zi + s] = 0.0
