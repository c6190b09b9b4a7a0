"""The recurrent matrix-vector product with explicit vectors, its partial sums kept in registers.

``out = bias + W inp`` for W^T given as ``w_t`` (m, n) is most of a GRU step. Written as loops in
numba, LLVM vectorises the loop over the n outputs but keeps ``out`` in memory: each pass over
a few rows of ``w_t`` loads and stores every output again, and the loads, not the arithmetic,
bound the step. LLVM does not keep such partial sums in registers by itself, and numba gives
no vector types, so :func:`tiled_affine` emits the LLVM IR itself: the outputs are taken in
tiles of ``TILE`` vectors held in registers while all m rows stream past, so the weights are
read once and the outputs written once.

The arithmetic per output is exactly that of the scalar loops in :mod:`.gru` (``bias``, then
``+= (x0 w0 + x1 w1) + (x2 w2 + x3 w3)`` per group of four rows, then ``+= xi wi`` per leftover
row; separate multiplies and adds, no fused multiply-add), so every path that calls
``_affine`` gives the same bits with or without it.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array

# 512 bits: LLVM splits the vectors into halves where only 256-bit registers exist.
VECTOR_BYTES = 64
# vectors per register tile: 4 x 16 float32 (or 4 x 8 float64) outputs at a time
TILE = 4


def _lanes(dtype: types.Float) -> int:
    return VECTOR_BYTES // (dtype.bitwidth // 8)


@intrinsic
def tiled_affine(typingctx, w_t, bias, inp, out):
    """out[:k] = bias[:k] + (inp @ w_t)[:k] for the largest k <= n that is a multiple of the
    vector width (16 float32 or 8 float64); returns k. The caller does columns k..n-1.

    ``w_t`` (m, n) C-contiguous, ``bias`` (n,) and ``out`` (n,) contiguous, ``inp`` (m,) any
    stride, one float dtype for all; ``out`` must not overlap the others. Nothing is checked.
    """
    arrays = (w_t, bias, inp, out)
    if not all(isinstance(a, types.Array) and isinstance(a.dtype, types.Float) for a in arrays):
        return None
    if len({a.dtype for a in arrays}) != 1 or w_t.ndim != 2 or w_t.layout != "C":
        return None
    if bias.ndim != 1 or inp.ndim != 1 or out.ndim != 1:
        return None
    if bias.layout not in "CF" or out.layout not in "CF":
        return None
    sig = types.intp(w_t, bias, inp, out)

    def codegen(context, builder, signature, args):
        w_arr, b_arr, x_arr, o_arr = (
            make_array(ty)(context, builder, value) for ty, value in zip(signature.args, args)
        )
        dtype = signature.args[0].dtype
        scalar = context.get_data_type(dtype)
        lanes = _lanes(dtype)
        element_bytes = dtype.bitwidth // 8
        vector = ir.VectorType(scalar, lanes)
        intp = context.get_value_type(types.intp)
        m, n = cgutils.unpack_tuple(builder, w_arr.shape, 2)
        row_stride = cgutils.unpack_tuple(builder, w_arr.strides, 2)[0]  # bytes
        x_stride = cgutils.unpack_tuple(builder, x_arr.strides, 1)[0]
        zero = ir.Constant(intp, 0)
        four = ir.Constant(intp, 4)
        lanes_c = ir.Constant(intp, lanes)
        n_vectors = builder.udiv(n, lanes_c)
        n_groups = builder.udiv(m, four)
        w_bytes = builder.bitcast(w_arr.data, ir.IntType(8).as_pointer())
        x_bytes = builder.bitcast(x_arr.data, ir.IntType(8).as_pointer())

        def x_at(i):
            ptr = builder.gep(x_bytes, [builder.mul(i, x_stride)])
            return builder.load(builder.bitcast(ptr, scalar.as_pointer()))

        def splat(value):
            vec = builder.insert_element(ir.Constant(vector, None), value, zero)
            return builder.shuffle_vector(
                vec,
                ir.Constant(vector, None),
                ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes),
            )

        def load_vector(base, index):
            ptr = builder.gep(base, [index])
            vec_ptr = builder.bitcast(ptr, vector.as_pointer())
            return builder.load(vec_ptr, align=element_bytes)

        def w_row(i):
            row = builder.gep(w_bytes, [builder.mul(i, row_stride)])
            return builder.bitcast(row, scalar.as_pointer())

        def tiles(first_vector, n_tiles, width):
            """Columns [first_vector*lanes, +n_tiles*width*lanes), ``width`` vectors a tile."""
            with cgutils.for_range(builder, n_tiles) as tile_loop:
                col0 = builder.mul(
                    builder.add(
                        first_vector, builder.mul(tile_loop.index, ir.Constant(intp, width))
                    ),
                    lanes_c,
                )
                cols = [builder.add(col0, ir.Constant(intp, k * lanes)) for k in range(width)]
                slots = [cgutils.alloca_once(builder, vector) for _ in range(width)]
                for slot, col in zip(slots, cols):
                    builder.store(load_vector(b_arr.data, col), slot)
                with cgutils.for_range(builder, n_groups) as group_loop:
                    i0 = builder.mul(group_loop.index, four)
                    rows = [builder.add(i0, ir.Constant(intp, r)) for r in range(4)]
                    xs = [splat(x_at(i)) for i in rows]
                    bases = [w_row(i) for i in rows]
                    for slot, col in zip(slots, cols):
                        w = [load_vector(base, col) for base in bases]
                        left = builder.fadd(builder.fmul(xs[0], w[0]), builder.fmul(xs[1], w[1]))
                        right = builder.fadd(builder.fmul(xs[2], w[2]), builder.fmul(xs[3], w[3]))
                        builder.store(
                            builder.fadd(builder.load(slot), builder.fadd(left, right)), slot
                        )
                n_left = builder.sub(m, builder.mul(n_groups, four))
                with cgutils.for_range(builder, n_left) as row_loop:
                    i = builder.add(builder.mul(n_groups, four), row_loop.index)
                    xi = splat(x_at(i))
                    base = w_row(i)
                    for slot, col in zip(slots, cols):
                        term = builder.fmul(xi, load_vector(base, col))
                        builder.store(builder.fadd(builder.load(slot), term), slot)
                for slot, col in zip(slots, cols):
                    ptr = builder.bitcast(builder.gep(o_arr.data, [col]), vector.as_pointer())
                    builder.store(builder.load(slot), ptr, align=element_bytes)

        n_wide = builder.udiv(n_vectors, ir.Constant(intp, TILE))
        tiles(zero, n_wide, TILE)
        done = builder.mul(n_wide, ir.Constant(intp, TILE))
        tiles(done, builder.sub(n_vectors, done), 1)
        return builder.mul(n_vectors, lanes_c)

    return sig, codegen
