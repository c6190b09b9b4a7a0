"""The phases of the CUDA chunk kernel (:mod:`streamgru.kernels.cuda`) as device functions.

One GRU layer of a block's streams for one sample (both reset variants) and the head, in shared
memory; inlined into the kernel (``inline="always"``), so the kernel runs the same operations in
the same order as when they were written out in one function. Shared-memory layout, ``lanes``
and ``offs``: see :mod:`streamgru.kernels.cuda`. Imported by that module only (it imports
``numba.cuda``).
"""

from __future__ import annotations

import math

from numba import cuda

from .activations import ACT_RELU, ACT_SIGMOID, ACT_SOFTMAX, ACT_TANH
from .layout import META_HEADER, META_PER_HEAD, META_PER_LAYER


def _gate_functions(fdt):
    """``sigmoid(x)`` and ``activate(code, v)`` device functions for scalar type ``fdt``."""
    zero = fdt(0.0)
    one = fdt(1.0)

    @cuda.jit(device=True, inline="always")
    def sigmoid(x):
        if x >= zero:
            return one / (one + math.exp(-x))
        e = math.exp(x)
        return e / (one + e)

    @cuda.jit(device=True, inline="always")
    def activate(code, v):
        if code == ACT_RELU:
            return v if v > zero else zero
        if code == ACT_SIGMOID:
            return sigmoid(v)
        if code == ACT_TANH:
            return math.tanh(v)
        return v  # identity; softmax is applied over the whole vector afterwards

    return sigmoid, activate


def _unit_functions(spt, fdt):
    """Device functions for hidden unit ``j`` of this thread's ``spt`` streams in one layer.

    ``lay`` is ``(w_ih, w_hh, b_ih, b_hh, in_size, hs_off, in_off, in_stride)``: the layer's
    weight and bias offsets in ``params``, its input width, and where its state and input sit in
    shared memory; ``acc`` the four register accumulators ``(r, z, xn, hn)``.
    """
    sigmoid, _ = _gate_functions(fdt)

    @cuda.jit(device=True, inline="always")
    def input_sums(params, sh, acc, j, lay, hidden, first_local):
        """acc_r, acc_z, acc_xn = the biases + W_i{r,z,n} x for unit j."""
        acc_r, acc_z, acc_xn, _ = acc
        w_ih, _, b_ih, b_hh, in_size, _, in_off, in_stride = lay
        gates = 3 * hidden
        two_h = 2 * hidden
        for k in range(spt):
            acc_r[k] = params[b_ih + j] + params[b_hh + j]
            acc_z[k] = params[b_ih + hidden + j] + params[b_hh + hidden + j]
            acc_xn[k] = params[b_ih + two_h + j]
        for i in range(in_size):
            row = w_ih + i * gates + j
            wr = params[row]
            wz = params[row + hidden]
            wn = params[row + two_h]
            for k in range(spt):
                xi = sh[in_off + (first_local + k) * in_stride + i]
                acc_r[k] += wr * xi
                acc_z[k] += wz * xi
                acc_xn[k] += wn * xi

    @cuda.jit(device=True, inline="always")
    def unit_after(params, sh, acc, j, lay, hidden, first_local, hn_off):
        """Reset-after: the new h of unit j into hn (h is replaced once every thread read it)."""
        acc_r, acc_z, acc_xn, acc_hn = acc
        _, w_hh, _, b_hh, _, hs_off, _, _ = lay
        gates = 3 * hidden
        two_h = 2 * hidden
        for k in range(spt):
            acc_hn[k] = params[b_hh + two_h + j]
        for i in range(hidden):
            row = w_hh + i * gates + j
            wr = params[row]
            wz = params[row + hidden]
            wn = params[row + two_h]
            for k in range(spt):
                hi = sh[hs_off + (first_local + k) * hidden + i]
                acc_r[k] += wr * hi
                acc_z[k] += wz * hi
                acc_hn[k] += wn * hi
        for k in range(spt):
            at = (first_local + k) * hidden + j
            r = sigmoid(acc_r[k])
            z = sigmoid(acc_z[k])
            n = math.tanh(acc_xn[k] + r * acc_hn[k])
            sh[hn_off + at] = n + z * (sh[hs_off + at] - n)

    @cuda.jit(device=True, inline="always")
    def unit_before(params, sh, acc, j, lay, hidden, first_local, offs):
        """Reset-before, first half: r * h, z and W_in x + b_in of unit j into shared memory."""
        acc_r, acc_z, acc_xn, _ = acc
        _, w_hh, _, _, _, hs_off, _, _ = lay
        _, rh_off, zb_off, xn_off, _, _ = offs
        two_h = 2 * hidden
        for i in range(hidden):
            row = w_hh + i * two_h + j
            wr = params[row]
            wz = params[row + hidden]
            for k in range(spt):
                hi = sh[hs_off + (first_local + k) * hidden + i]
                acc_r[k] += wr * hi
                acc_z[k] += wz * hi
        for k in range(spt):
            at = (first_local + k) * hidden + j
            sh[rh_off + at] = sigmoid(acc_r[k]) * sh[hs_off + at]
            sh[zb_off + at] = sigmoid(acc_z[k])
            sh[xn_off + at] = acc_xn[k]

    return input_sums, unit_after, unit_before


def _layer_function(spt, fdt):
    """``gru_layer(params, meta, sh, acc, layer, lanes, active, offs)``: one GRU layer of the
    block's streams for the current sample, in shared memory (both reset variants)."""
    input_sums, unit_after, unit_before = _unit_functions(spt, fdt)

    @cuda.jit(device=True, inline="always")
    def candidate_before(params, sh, acc_hn, lay, hidden, lanes, offs):
        """Reset-before, second half: n = tanh(W_in x + b_in + W_hn (r * h) + b_hn); each
        thread writes only its own units of h, which nobody else reads in this phase."""
        _, _, nu, u, _, _, _, first_local = lanes
        _, rh_off, zb_off, xn_off, _, _ = offs
        _, w_hh, _, b_hh, _, hs_off, _, _ = lay
        two_h = 2 * hidden
        w_n = w_hh + hidden * two_h
        for j in range(u, hidden, nu):
            for k in range(spt):
                acc_hn[k] = params[b_hh + two_h + j]
            for i in range(hidden):
                wn = params[w_n + i * hidden + j]
                for k in range(spt):
                    acc_hn[k] += wn * sh[rh_off + (first_local + k) * hidden + i]
            for k in range(spt):
                at = (first_local + k) * hidden + j
                n = math.tanh(sh[xn_off + at] + acc_hn[k])
                z = sh[zb_off + at]
                sh[hs_off + at] = n + z * (sh[hs_off + at] - n)

    @cuda.jit(device=True, inline="always")
    def gru_layer(params, meta, sh, acc, layer, lanes, active, offs):
        tid, nthreads, nu, u, ns, _, _, first_local = lanes
        hidden = meta[3]
        reset_after = meta[4] != 0
        per_layer = ns * hidden
        m = META_HEADER + META_PER_LAYER * layer
        b_ih = meta[m + 2]
        hs_off = layer * per_layer
        if layer == 0:
            in_off = offs[4]
            in_stride = meta[7]
        else:
            in_off = hs_off - per_layer
            in_stride = hidden
        lay = (
            meta[m],
            meta[m + 1],
            b_ih,
            b_ih + 3 * hidden,
            meta[m + 3],
            hs_off,
            in_off,
            in_stride,
        )
        if active:
            for j in range(u, hidden, nu):
                input_sums(params, sh, acc, j, lay, hidden, first_local)
                if reset_after:
                    unit_after(params, sh, acc, j, lay, hidden, first_local, offs[0])
                else:
                    unit_before(params, sh, acc, j, lay, hidden, first_local, offs)
        cuda.syncthreads()
        if reset_after:
            # every thread has read the old h: replace it
            hn_off = offs[0]
            for e in range(tid, per_layer, nthreads):
                sh[hs_off + e] = sh[hn_off + e]
        elif active:
            candidate_before(params, sh, acc[3], lay, hidden, lanes, offs)
        cuda.syncthreads()

    return gru_layer


def _head_function(spt, fdt):
    """``head_layers(params, meta, sh, acc_r, lanes, active, offs)``: the head of the block's
    streams for the current sample; returns where its output sits (offset, row stride)."""
    zero = fdt(0.0)
    _, activate = _gate_functions(fdt)

    @cuda.jit(device=True, inline="always")
    def softmax_rows(sh, dst_off, out_k, width, first_local):
        for k in range(spt):
            base = dst_off + (first_local + k) * width
            top = sh[base]
            for j in range(1, out_k):
                top = max(top, sh[base + j])
            total = zero
            for j in range(out_k):
                ex = math.exp(sh[base + j] - top)
                sh[base + j] = ex
                total += ex
            for j in range(out_k):
                sh[base + j] = sh[base + j] / total

    @cuda.jit(device=True, inline="always")
    def head_layers(params, meta, sh, acc_r, lanes, active, offs):
        _, _, nu, u, ns, _, _, first_local = lanes
        ba_off, bb_off = offs[4], offs[5]
        n_layers = meta[1]
        hidden = meta[3]
        width = meta[7]
        src_off = (n_layers - 1) * (ns * hidden)
        src_stride = hidden
        for kh in range(meta[5]):
            m = META_HEADER + META_PER_LAYER * n_layers + META_PER_HEAD * kh
            w_off = meta[m]
            b_off = meta[m + 1]
            in_k = meta[m + 2]
            out_k = meta[m + 3]
            act = meta[m + 4]
            dst_off = ba_off if kh % 2 == 0 else bb_off
            if active:
                for j in range(u, out_k, nu):
                    for k in range(spt):
                        acc_r[k] = params[b_off + j]
                    for i in range(in_k):
                        w = params[w_off + i * out_k + j]
                        for k in range(spt):
                            acc_r[k] += w * sh[src_off + (first_local + k) * src_stride + i]
                    for k in range(spt):
                        sh[dst_off + (first_local + k) * width + j] = activate(act, acc_r[k])
            cuda.syncthreads()
            if act == ACT_SOFTMAX:
                if active and u == 0:
                    softmax_rows(sh, dst_off, out_k, width, first_local)
                cuda.syncthreads()
            src_off = dst_off
            src_stride = width
        return src_off, src_stride

    return head_layers
