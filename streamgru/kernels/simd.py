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
        emit = _AffineEmitter(context, builder, signature, args)
        n_wide = builder.udiv(emit.n_vectors, ir.Constant(emit.intp, TILE))
        emit.tiles(emit.zero, n_wide, TILE)
        done = builder.mul(n_wide, ir.Constant(emit.intp, TILE))
        emit.tiles(done, builder.sub(emit.n_vectors, done), 1)
        return builder.mul(emit.n_vectors, emit.lanes_c)

    return sig, codegen


class _AffineEmitter:
    """The LLVM IR of :func:`tiled_affine` for one call site: its arrays, types and constants,
    and one method per piece of the loop nest."""

    def __init__(self, context, builder, signature, args) -> None:
        self.builder = builder
        w_arr, self.b_arr, x_arr, self.o_arr = (
            make_array(ty)(context, builder, value) for ty, value in zip(signature.args, args)
        )
        dtype = signature.args[0].dtype
        self.scalar = context.get_data_type(dtype)
        self.lanes = _lanes(dtype)
        self.element_bytes = dtype.bitwidth // 8
        self.vector = ir.VectorType(self.scalar, self.lanes)
        self.intp = intp = context.get_value_type(types.intp)
        self.m, n = cgutils.unpack_tuple(builder, w_arr.shape, 2)
        self.row_stride = cgutils.unpack_tuple(builder, w_arr.strides, 2)[0]  # bytes
        self.x_stride = cgutils.unpack_tuple(builder, x_arr.strides, 1)[0]
        self.zero = ir.Constant(intp, 0)
        self.four = ir.Constant(intp, 4)
        self.lanes_c = ir.Constant(intp, self.lanes)
        self.n_vectors = builder.udiv(n, self.lanes_c)
        self.n_groups = builder.udiv(self.m, self.four)
        self.w_bytes = builder.bitcast(w_arr.data, ir.IntType(8).as_pointer())
        self.x_bytes = builder.bitcast(x_arr.data, ir.IntType(8).as_pointer())

    def x_at(self, i):
        builder = self.builder
        ptr = builder.gep(self.x_bytes, [builder.mul(i, self.x_stride)])
        return builder.load(builder.bitcast(ptr, self.scalar.as_pointer()))

    def splat(self, value):
        vec = self.builder.insert_element(ir.Constant(self.vector, None), value, self.zero)
        return self.builder.shuffle_vector(
            vec,
            ir.Constant(self.vector, None),
            ir.Constant(ir.VectorType(ir.IntType(32), self.lanes), [0] * self.lanes),
        )

    def load_vector(self, base, index):
        ptr = self.builder.gep(base, [index])
        vec_ptr = self.builder.bitcast(ptr, self.vector.as_pointer())
        return self.builder.load(vec_ptr, align=self.element_bytes)

    def w_row(self, i):
        row = self.builder.gep(self.w_bytes, [self.builder.mul(i, self.row_stride)])
        return self.builder.bitcast(row, self.scalar.as_pointer())

    def tiles(self, first_vector, n_tiles, width):
        """Columns [first_vector*lanes, +n_tiles*width*lanes), ``width`` vectors a tile."""
        builder, intp, lanes = self.builder, self.intp, self.lanes
        with cgutils.for_range(builder, n_tiles) as tile_loop:
            col0 = builder.mul(
                builder.add(first_vector, builder.mul(tile_loop.index, ir.Constant(intp, width))),
                self.lanes_c,
            )
            cols = [builder.add(col0, ir.Constant(intp, k * lanes)) for k in range(width)]
            slots = [cgutils.alloca_once(builder, self.vector) for _ in range(width)]
            for slot, col in zip(slots, cols):
                builder.store(self.load_vector(self.b_arr.data, col), slot)
            self._row_groups(slots, cols)
            self._leftover_rows(slots, cols)
            for slot, col in zip(slots, cols):
                ptr = builder.bitcast(builder.gep(self.o_arr.data, [col]), self.vector.as_pointer())
                builder.store(builder.load(slot), ptr, align=self.element_bytes)

    def _row_groups(self, slots, cols):
        """``+= (x0 w0 + x1 w1) + (x2 w2 + x3 w3)`` per group of four rows."""
        builder = self.builder
        with cgutils.for_range(builder, self.n_groups) as group_loop:
            i0 = builder.mul(group_loop.index, self.four)
            rows = [builder.add(i0, ir.Constant(self.intp, r)) for r in range(4)]
            xs = [self.splat(self.x_at(i)) for i in rows]
            bases = [self.w_row(i) for i in rows]
            for slot, col in zip(slots, cols):
                w = [self.load_vector(base, col) for base in bases]
                left = builder.fadd(builder.fmul(xs[0], w[0]), builder.fmul(xs[1], w[1]))
                right = builder.fadd(builder.fmul(xs[2], w[2]), builder.fmul(xs[3], w[3]))
                builder.store(builder.fadd(builder.load(slot), builder.fadd(left, right)), slot)

    def _leftover_rows(self, slots, cols):
        """``+= xi wi`` for the rows after the last group of four."""
        builder = self.builder
        done = builder.mul(self.n_groups, self.four)
        n_left = builder.sub(self.m, done)
        with cgutils.for_range(builder, n_left) as row_loop:
            i = builder.add(builder.mul(self.n_groups, self.four), row_loop.index)
            xi = self.splat(self.x_at(i))
            base = self.w_row(i)
            for slot, col in zip(slots, cols):
                term = builder.fmul(xi, self.load_vector(base, col))
                builder.store(builder.fadd(builder.load(slot), term), slot)
