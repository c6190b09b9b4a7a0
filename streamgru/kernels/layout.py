"""Packing of a GRU stack and head into the flat buffers the kernels read (numpy only).

A kernel takes few arguments (each array argument costs about 45 ns per call from Python), so
all weights of a model live in one contiguous ``params`` array of the compute dtype, and an
int64 ``meta`` array says where each block starts.

``meta`` layout (int64)::

    [0] LAYOUT_VERSION   [1] L (layers)   [2] I (input size)   [3] H (hidden size)
    [4] reset_after (1 / 0)   [5] n_head (Linear layers)   [6] O (output size)
    [7] W: widest vector of the model, max(I, H, head widths)
    then per GRU layer l, 4 entries at 8 + 4 l:
        offset of W_ih^T (in_l, 3H) | offset of W_hh^T (see below) | offset of b_ih (3H)
        followed by b_hh (3H) | in_l
    then per head layer k, 5 entries at 8 + 4 L + 5 k:
        offset of W^T (in_k, out_k) | offset of b (out_k) | in_k | out_k | activation code

Matrices are stored transposed (inputs major, gate outputs minor) so the inner loop of a
matrix-vector product is an axpy over contiguous outputs, which LLVM vectorises without
fastmath (a row-by-row dot product does not). Gate column blocks are (r, z, n).

``W_hh^T`` is one (H, 3H) block for reset-after models. For reset-before models it is two
blocks, ``W_hh[r,z]^T`` (H, 2H) followed by ``W_hh[n]^T`` (H, H), because the n product is
taken over ``r * h`` after r is known, and batched kernels hand each block to BLAS as a
contiguous matrix.

Alignment: ``params``, ``state`` and the kernels' scratch arrays are allocated on 64-byte
boundaries (:func:`aligned_zeros`), and every block whose offset ``meta`` records starts at a
multiple of ``ALIGN`` (16) elements, with zeros in between. A matrix-vector product loads 16
floats per instruction; loads that straddle two cache lines made a step about 20 % slower,
depending on where numpy happened to put the arrays.

Single-stream ``state`` layout (compute dtype)::

    [0, L H)           hidden state, layer-major
    [L H, L H + O)     last output
    then, from scratch_offset = L H + O rounded up to a multiple of ALIGN:
                       gx (3H) | gh (3H) | rh (H) | a (W) | b (W)
"""

from __future__ import annotations

import numpy as np

from .activations import ACTIVATION_CODES

LAYOUT_VERSION = 2
ALIGN = 16  # elements: block offsets in params and the state's scratch start are multiples
ALIGN_BYTES = 64
META_HEADER = 8
META_PER_LAYER = 4
META_PER_HEAD = 5


def pack_model(layers, head, reset_after: bool, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Pack weights into ``(params, meta)``.

    Parameters
    ----------
    layers : sequence of objects with ``weight_ih`` (3H, I_l), ``weight_hh`` (3H, H),
        ``bias_ih`` (3H,), ``bias_hh`` (3H,) float64 arrays in (r, z, n) row order
    head : sequence of objects with ``weight`` (out, in), ``bias`` (out,), ``activation`` (str)
    reset_after : bool
    dtype : numpy float dtype of ``params`` (float32 or float64)

    Returns
    -------
    params : (n_params_packed,) ``dtype``, C-contiguous
    meta : (8 + 4 L + 5 n_head,) int64
    """
    dtype = np.dtype(dtype)
    n_layers = len(layers)
    hidden = int(layers[0].weight_hh.shape[1])
    gates = 3 * hidden
    input_size = int(layers[0].weight_ih.shape[1])
    widths = [input_size, hidden] + [int(d.weight.shape[0]) for d in head]
    output_size = int(head[-1].weight.shape[0]) if head else hidden

    meta = np.zeros(META_HEADER + META_PER_LAYER * n_layers + META_PER_HEAD * len(head), np.int64)
    meta[:META_HEADER] = [
        LAYOUT_VERSION,
        n_layers,
        input_size,
        hidden,
        1 if reset_after else 0,
        len(head),
        output_size,
        max(widths),
    ]
    blocks: list[np.ndarray] = []
    offset = 0

    def put(arr: np.ndarray, aligned: bool = True) -> int:
        """Append a block; ``aligned=False`` for one that must follow the previous directly."""
        nonlocal offset
        if aligned and offset % ALIGN:
            pad = ALIGN - offset % ALIGN
            blocks.append(np.zeros(pad))
            offset += pad
        start = offset
        flat = np.ascontiguousarray(arr, dtype=np.float64).ravel()
        blocks.append(flat)
        offset += flat.size
        return start

    for k, layer in enumerate(layers):
        base = META_HEADER + META_PER_LAYER * k
        meta[base + 0] = put(layer.weight_ih.T)
        if reset_after:
            meta[base + 1] = put(layer.weight_hh.T)
        else:
            meta[base + 1] = put(layer.weight_hh[: 2 * hidden].T)
            put(layer.weight_hh[2 * hidden :].T, aligned=False)
        meta[base + 2] = put(layer.bias_ih)
        put(layer.bias_hh, aligned=False)
        meta[base + 3] = int(layer.weight_ih.shape[1])
        assert layer.bias_ih.shape == (gates,)
    for k, dense in enumerate(head):
        base = META_HEADER + META_PER_LAYER * n_layers + META_PER_HEAD * k
        meta[base + 0] = put(dense.weight.T)
        meta[base + 1] = put(dense.bias)
        meta[base + 2] = int(dense.weight.shape[1])
        meta[base + 3] = int(dense.weight.shape[0])
        meta[base + 4] = ACTIVATION_CODES[dense.activation]
    params = aligned_zeros(offset, dtype)
    if blocks:
        params[:] = np.concatenate(blocks)
    params.setflags(write=False)
    meta.setflags(write=False)
    return params, meta


def aligned_zeros(n: int, dtype) -> np.ndarray:
    """A zeroed C-contiguous (n,) array of ``dtype`` whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    spare = ALIGN_BYTES // dtype.itemsize
    raw = np.zeros(n + spare, dtype=dtype)
    start = (-raw.ctypes.data % ALIGN_BYTES) // dtype.itemsize
    return raw[start : start + n]


def scratch_offset(meta: np.ndarray) -> int:
    """Where the scratch starts in ``state``: L H + O rounded up to a multiple of ``ALIGN``."""
    used = int(meta[1]) * int(meta[3]) + int(meta[6])
    return -(-used // ALIGN) * ALIGN


def state_size(meta: np.ndarray) -> int:
    """Length of the single-stream ``state`` array for ``meta`` (see the module docstring)."""
    hidden, width = int(meta[3]), int(meta[7])
    return scratch_offset(meta) + 3 * hidden + 3 * hidden + hidden + 2 * width


def chunk_work_size(meta: np.ndarray, n_samples: int) -> int:
    """Length of the scratch ``work`` array :func:`gru_chunk` needs for ``n_samples`` samples."""
    hidden, width = int(meta[3]), int(meta[7])
    return n_samples * (3 * hidden + 2 * width)


def many_work_size(meta: np.ndarray, n_streams: int) -> int:
    """Length of the scratch ``work`` the many-stream kernels need for ``n_streams`` (both kernels)."""
    hidden, width, input_size, output = int(meta[3]), int(meta[7]), int(meta[2]), int(meta[6])
    return n_streams * (3 * hidden + 3 * hidden + hidden + 2 * width + input_size + output)
