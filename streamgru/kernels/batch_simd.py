"""The many-stream affine product as a register-blocked micro-kernel (LLVM IR via an intrinsic).

``OUT[s] = bias + W INP[s]`` for every row s of ``INP`` (B, m), with W^T given as ``w_t`` (m, n).
A tile of ``STREAMS`` rows x ``VECTORS`` output vectors is held in registers while the m rows
of ``w_t`` stream past: each weight vector loaded once serves ``STREAMS`` streams (GEMM-like
reuse), and each output is written once.

The arithmetic per output is exactly that of :func:`.simd.tiled_affine` and the scalar loops of
``gru._affine`` (``bias``, then ``+= (x0 w0 + x1 w1) + (x2 w2 + x3 w3)`` per group of four rows,
then ``+= xi wi`` per leftover row; separate multiplies and adds, no fused multiply-add), so
every stream gets the bits a single-stream step gives, whatever the tiling over streams.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

from .simd import VECTOR_BYTES

STREAMS = 4  # rows (streams) per register tile
VECTORS = 4  # output vectors per register tile: 4 x 4 accumulators of 16 float32 / 8 float64


def _ok(w_t, bias, inp, out) -> bool:
    arrays = (w_t, bias, inp, out)
    if not all(isinstance(a, types.Array) and isinstance(a.dtype, types.Float) for a in arrays):
        return False
    if len({a.dtype for a in arrays}) != 1 or w_t.ndim != 2 or w_t.layout != "C":
        return False
    return bias.ndim == 1 and bias.layout in "CF" and inp.ndim == 2 and out.ndim == 2


@intrinsic
def tiled_affine_rows(typingctx, w_t, bias, inp, out):
    """out[s, :k] = bias[:k] + (inp[s] @ w_t)[:k] for s < b, where b is the largest multiple of
    ``STREAMS`` <= B and k the largest multiple of the vector width <= n; returns b * 2**32 + k.
    The caller does rows b..B-1 and columns k..n-1.

    ``w_t`` (m, n) C-contiguous; ``bias`` (n,) contiguous; ``inp`` (B, m) any strides;
    ``out`` (B, n) with contiguous rows (unit element stride), any row stride; one float dtype;
    ``out`` must not overlap the others. Nothing is checked.
    """
    if not _ok(w_t, bias, inp, out):
        return None
    sig = types.int64(w_t, bias, inp, out)

    def codegen(context, builder, signature, args):
        w_arr, b_arr, x_arr, o_arr = (
            make_array(ty)(context, builder, value) for ty, value in zip(signature.args, args)
        )
        dtype = signature.args[0].dtype
        scalar = context.get_data_type(dtype)
        element_bytes = dtype.bitwidth // 8
        lanes = VECTOR_BYTES // element_bytes
        vector = ir.VectorType(scalar, lanes)
        intp = context.get_value_type(types.intp)
        byte_ptr = ir.IntType(8).as_pointer()

        def const(v):
            return ir.Constant(intp, v)

        m, n = cgutils.unpack_tuple(builder, w_arr.shape, 2)
        n_rows = cgutils.unpack_tuple(builder, x_arr.shape, 2)[0]
        w_stride = cgutils.unpack_tuple(builder, w_arr.strides, 2)[0]
        x_rs, x_cs = cgutils.unpack_tuple(builder, x_arr.strides, 2)
        o_rs = cgutils.unpack_tuple(builder, o_arr.strides, 2)[0]
        w_bytes = builder.bitcast(w_arr.data, byte_ptr)
        x_bytes = builder.bitcast(x_arr.data, byte_ptr)
        o_bytes = builder.bitcast(o_arr.data, byte_ptr)
        n_vectors = builder.udiv(n, const(lanes))
        n_groups = builder.udiv(m, const(4))
        n_tiles = builder.udiv(n_rows, const(STREAMS))

        def at(base, offset, ty):
            return builder.bitcast(builder.gep(base, [offset]), ty.as_pointer())

        def splat(value):
            vec = builder.insert_element(ir.Constant(vector, None), value, const(0))
            mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
            return builder.shuffle_vector(vec, ir.Constant(vector, None), mask)

        def x_at(row, i):
            off = builder.add(builder.mul(row, x_rs), builder.mul(i, x_cs))
            return builder.load(at(x_bytes, off, scalar))

        def w_vec(i, col):
            off = builder.add(builder.mul(i, w_stride), builder.mul(col, const(element_bytes)))
            return builder.load(at(w_bytes, off, vector), align=element_bytes)

        def block(row0, first_vector, width):
            cols = [
                builder.mul(builder.add(first_vector, const(k)), const(lanes)) for k in range(width)
            ]
            rows = [builder.add(row0, const(s)) for s in range(STREAMS)]
            slots = [[cgutils.alloca_once(builder, vector) for _ in cols] for _ in rows]
            for srow in slots:
                for slot, col in zip(srow, cols):
                    ptr = builder.bitcast(builder.gep(b_arr.data, [col]), vector.as_pointer())
                    builder.store(builder.load(ptr, align=element_bytes), slot)
            with cgutils.for_range(builder, n_groups) as group_loop:
                i0 = builder.mul(group_loop.index, const(4))
                ks = [builder.add(i0, const(r)) for r in range(4)]
                for k, col in enumerate(cols):
                    w = [w_vec(i, col) for i in ks]
                    for s, row in enumerate(rows):
                        xs = [splat(x_at(row, i)) for i in ks]
                        left = builder.fadd(builder.fmul(xs[0], w[0]), builder.fmul(xs[1], w[1]))
                        right = builder.fadd(builder.fmul(xs[2], w[2]), builder.fmul(xs[3], w[3]))
                        slot = slots[s][k]
                        builder.store(
                            builder.fadd(builder.load(slot), builder.fadd(left, right)), slot
                        )
            n_left = builder.sub(m, builder.mul(n_groups, const(4)))
            with cgutils.for_range(builder, n_left) as row_loop:
                i = builder.add(builder.mul(n_groups, const(4)), row_loop.index)
                for k, col in enumerate(cols):
                    wi = w_vec(i, col)
                    for s, row in enumerate(rows):
                        term = builder.fmul(splat(x_at(row, i)), wi)
                        slot = slots[s][k]
                        builder.store(builder.fadd(builder.load(slot), term), slot)
            for s, row in enumerate(rows):
                for k, col in enumerate(cols):
                    off = builder.add(builder.mul(row, o_rs), builder.mul(col, const(element_bytes)))
                    builder.store(
                        builder.load(slots[s][k]), at(o_bytes, off, vector), align=element_bytes
                    )

        n_wide = builder.udiv(n_vectors, const(VECTORS))
        with cgutils.for_range(builder, n_tiles) as tile_loop:
            row0 = builder.mul(tile_loop.index, const(STREAMS))
            with cgutils.for_range(builder, n_wide) as col_loop:
                block(row0, builder.mul(col_loop.index, const(VECTORS)), VECTORS)
            done = builder.mul(n_wide, const(VECTORS))
            with cgutils.for_range(builder, builder.sub(n_vectors, done)) as col_loop:
                block(row0, builder.add(done, col_loop.index), 1)
        rows_done = builder.mul(n_tiles, const(STREAMS))
        packed = builder.add(
            builder.shl(rows_done, const(32)), builder.mul(n_vectors, const(lanes))
        )
        return packed

    return sig, codegen
