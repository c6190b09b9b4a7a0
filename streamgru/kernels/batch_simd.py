"""The many-stream affine product as a register-blocked micro-kernel (LLVM IR via an intrinsic).

``OUT[s] = bias + W INP[s]`` for every row s of ``INP`` (B, m), with W^T given as ``w_t`` (m, n).
A tile of ``STREAMS`` rows x ``VECTORS`` output vectors is held in registers while the m rows
of ``w_t`` stream past: each weight vector loaded once serves ``STREAMS`` streams (GEMM-like
reuse), and each output is written once.

The arithmetic per output is exactly that of :func:`.simd.tiled_affine` and the scalar loops of
``gru._affine`` (``bias``, then ``+= (x0 w0 + x1 w1) + (x2 w2 + x3 w3)`` per group of four rows,
then ``+= xi wi`` per leftover row; separate multiplies and adds, no fused multiply-add), so
every stream gets the bits a single-stream step gives, whatever the tiling over streams.

:func:`quad_partials_rows` does the same for a narrow output (fewer than 4, e.g. a head to one
class), whose single-stream arithmetic is four partial dot products: lane ``4 s + k`` of a
vector holds stream s's partial sum k, so 4 float32 (2 float64) streams run per vector.
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
        emit = _RowsEmitter(context, builder, signature, args)
        n_wide = builder.udiv(emit.n_vectors, emit.const(VECTORS))
        with cgutils.for_range(builder, emit.n_tiles) as tile_loop:
            row0 = builder.mul(tile_loop.index, emit.const(STREAMS))
            with cgutils.for_range(builder, n_wide) as col_loop:
                emit.block(row0, builder.mul(col_loop.index, emit.const(VECTORS)), VECTORS)
            done = builder.mul(n_wide, emit.const(VECTORS))
            with cgutils.for_range(builder, builder.sub(emit.n_vectors, done)) as col_loop:
                emit.block(row0, builder.add(done, col_loop.index), 1)
        rows_done = builder.mul(emit.n_tiles, emit.const(STREAMS))
        return builder.add(
            builder.shl(rows_done, emit.const(32)),
            builder.mul(emit.n_vectors, emit.const(emit.lanes)),
        )

    return sig, codegen


class _RowsEmitter:
    """The LLVM IR of :func:`tiled_affine_rows` for one call site: its arrays, types and
    constants, and one method per piece of the loop nest."""

    def __init__(self, context, builder, signature, args) -> None:
        self.builder = builder
        w_arr, self.b_arr, x_arr, o_arr = (
            make_array(ty)(context, builder, value) for ty, value in zip(signature.args, args)
        )
        dtype = signature.args[0].dtype
        self.scalar = context.get_data_type(dtype)
        self.element_bytes = dtype.bitwidth // 8
        self.lanes = VECTOR_BYTES // self.element_bytes
        self.vector = ir.VectorType(self.scalar, self.lanes)
        self.intp = context.get_value_type(types.intp)
        byte_ptr = ir.IntType(8).as_pointer()
        self.m, n = cgutils.unpack_tuple(builder, w_arr.shape, 2)
        n_rows = cgutils.unpack_tuple(builder, x_arr.shape, 2)[0]
        self.w_stride = cgutils.unpack_tuple(builder, w_arr.strides, 2)[0]
        self.x_rs, self.x_cs = cgutils.unpack_tuple(builder, x_arr.strides, 2)
        self.o_rs = cgutils.unpack_tuple(builder, o_arr.strides, 2)[0]
        self.w_bytes = builder.bitcast(w_arr.data, byte_ptr)
        self.x_bytes = builder.bitcast(x_arr.data, byte_ptr)
        self.o_bytes = builder.bitcast(o_arr.data, byte_ptr)
        # One copy of the inputs' base pointer per output vector of the tile, opaque to LLVM
        # (an empty inline asm): the loads of an input for different vectors are then not
        # merged into one broadcast kept in a register, and each folds into its multiply as an
        # embedded broadcast (``vmulps (mem){1to16}``), which costs no vector-unit operation
        # and no register; about 20 % faster on AMD Zen 4 than separate broadcasts.
        launder = ir.FunctionType(byte_ptr, [byte_ptr])
        self.x_bases = [
            builder.asm(launder, "", "=r,0", [self.x_bytes], side_effect=True)
            for _ in range(VECTORS)
        ]
        self.n_vectors = builder.udiv(n, self.const(self.lanes))
        self.n_groups = builder.udiv(self.m, self.const(4))
        self.n_tiles = builder.udiv(n_rows, self.const(STREAMS))

    def const(self, v):
        return ir.Constant(self.intp, v)

    def at(self, base, offset, ty):
        return self.builder.bitcast(self.builder.gep(base, [offset]), ty.as_pointer())

    def splat(self, value):
        builder, lanes = self.builder, self.lanes
        vec = builder.insert_element(ir.Constant(self.vector, None), value, self.const(0))
        mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
        return builder.shuffle_vector(vec, ir.Constant(self.vector, None), mask)

    def x_at(self, row, i):
        builder = self.builder
        off = builder.add(builder.mul(row, self.x_rs), builder.mul(i, self.x_cs))
        return builder.load(self.at(self.x_bytes, off, self.scalar))

    def x_at_k(self, row, i, k):
        """inp[row, i] loaded through the k-th opaque copy of its base pointer."""
        builder = self.builder
        off = builder.add(builder.mul(row, self.x_rs), builder.mul(i, self.x_cs))
        return builder.load(self.at(self.x_bases[k], off, self.scalar))

    def w_vec(self, i, col):
        builder = self.builder
        off = builder.add(
            builder.mul(i, self.w_stride), builder.mul(col, self.const(self.element_bytes))
        )
        return builder.load(self.at(self.w_bytes, off, self.vector), align=self.element_bytes)

    def block(self, row0, first_vector, width):
        """A tile of ``STREAMS`` rows x ``width`` vectors from ``row0`` / ``first_vector``."""
        builder = self.builder
        cols = [
            builder.mul(builder.add(first_vector, self.const(k)), self.const(self.lanes))
            for k in range(width)
        ]
        rows = [builder.add(row0, self.const(s)) for s in range(STREAMS)]
        slots = [[cgutils.alloca_once(builder, self.vector) for _ in cols] for _ in rows]
        for srow in slots:
            for slot, col in zip(srow, cols):
                ptr = builder.bitcast(builder.gep(self.b_arr.data, [col]), self.vector.as_pointer())
                builder.store(builder.load(ptr, align=self.element_bytes), slot)
        self._row_groups(rows, cols, slots)
        self._leftover_rows(rows, cols, slots)
        for s, row in enumerate(rows):
            for k, col in enumerate(cols):
                off = builder.add(
                    builder.mul(row, self.o_rs), builder.mul(col, self.const(self.element_bytes))
                )
                ptr = self.at(self.o_bytes, off, self.vector)
                builder.store(builder.load(slots[s][k]), ptr, align=self.element_bytes)

    def _row_groups(self, rows, cols, slots):
        """``+= (x0 w0 + x1 w1) + (x2 w2 + x3 w3)`` per group of four weight rows."""
        builder = self.builder
        with cgutils.for_range(builder, self.n_groups) as group_loop:
            i0 = builder.mul(group_loop.index, self.const(4))
            ks = [builder.add(i0, self.const(r)) for r in range(4)]
            for k, col in enumerate(cols):
                w = [self.w_vec(i, col) for i in ks]
                for s, row in enumerate(rows):
                    xs = [self.splat(self.x_at_k(row, i, k)) for i in ks]
                    left = builder.fadd(builder.fmul(xs[0], w[0]), builder.fmul(xs[1], w[1]))
                    right = builder.fadd(builder.fmul(xs[2], w[2]), builder.fmul(xs[3], w[3]))
                    slot = slots[s][k]
                    builder.store(builder.fadd(builder.load(slot), builder.fadd(left, right)), slot)

    def _leftover_rows(self, rows, cols, slots):
        """``+= xi wi`` for the weight rows after the last group of four."""
        builder = self.builder
        n_left = builder.sub(self.m, builder.mul(self.n_groups, self.const(4)))
        with cgutils.for_range(builder, n_left) as row_loop:
            i = builder.add(builder.mul(self.n_groups, self.const(4)), row_loop.index)
            for k, col in enumerate(cols):
                wi = self.w_vec(i, col)
                for s, row in enumerate(rows):
                    term = builder.fmul(self.splat(self.x_at(row, i)), wi)
                    slot = slots[s][k]
                    builder.store(builder.fadd(builder.load(slot), term), slot)


@intrinsic
def quad_partials_rows(typingctx, w_col, inp, acc):
    """acc[s, k] += inp[s, 4g + k] * w_col[4g + k] for g = 0, 1, ... in turn (m // 4 groups),
    for s < b, where b is the largest multiple of ``lanes // 4`` streams <= B; returns b.

    The four partial dot products of a narrow output (``gru._affine``'s ``n < 4`` branch)
    of ``lanes // 4`` streams at once (4 float32 streams per 16 lanes, 2 float64 per 8): lane
    ``4 s + k`` is stream s's partial sum k, each a multiply then an add, in the scalar order.
    ``w_col`` (m,) contiguous; ``inp`` (B, m) with unit column stride (element stride 1), any
    row stride; ``acc`` (B, 4) C-contiguous; one float dtype. Nothing is checked.
    """
    arrays = (w_col, inp, acc)
    if not all(isinstance(a, types.Array) and isinstance(a.dtype, types.Float) for a in arrays):
        return None
    if len({a.dtype for a in arrays}) != 1 or w_col.ndim != 1 or w_col.layout not in "CF":
        return None
    if inp.ndim != 2 or acc.ndim != 2 or acc.layout != "C":
        return None
    sig = types.int64(w_col, inp, acc)

    def codegen(context, builder, signature, args):
        emit = _QuadEmitter(context, builder, signature, args)
        with cgutils.for_range(builder, emit.n_tiles) as tile_loop:
            emit.tile(tile_loop.index)
        return builder.mul(emit.n_tiles, emit.const(emit.per_vector))

    return sig, codegen


class _QuadEmitter:
    """The LLVM IR of :func:`quad_partials_rows` for one call site."""

    def __init__(self, context, builder, signature, args) -> None:
        self.builder = builder
        w_arr, x_arr, a_arr = (
            make_array(ty)(context, builder, value) for ty, value in zip(signature.args, args)
        )
        dtype = signature.args[0].dtype
        self.scalar = context.get_data_type(dtype)
        self.element_bytes = dtype.bitwidth // 8
        lanes = VECTOR_BYTES // self.element_bytes
        self.per_vector = lanes // 4
        self.vector = ir.VectorType(self.scalar, lanes)
        self.quad = ir.VectorType(self.scalar, 4)
        self.intp = context.get_value_type(types.intp)
        byte_ptr = ir.IntType(8).as_pointer()
        n_rows, m = cgutils.unpack_tuple(builder, x_arr.shape, 2)
        self.x_rs = cgutils.unpack_tuple(builder, x_arr.strides, 2)[0]
        self.w_bytes = builder.bitcast(w_arr.data, byte_ptr)
        self.x_bytes = builder.bitcast(x_arr.data, byte_ptr)
        self.a_bytes = builder.bitcast(a_arr.data, byte_ptr)
        self.n_groups = builder.udiv(m, self.const(4))
        self.n_tiles = builder.udiv(n_rows, self.const(self.per_vector))

    def const(self, v):
        return ir.Constant(self.intp, v)

    def load(self, base, offset, ty):
        ptr = self.builder.bitcast(self.builder.gep(base, [offset]), ty.as_pointer())
        return self.builder.load(ptr, align=self.element_bytes)

    def concat(self, parts):
        """One vector of the quads ``parts`` side by side (2 or 4 of them)."""
        while len(parts) > 1:
            width = 2 * parts[0].type.count
            mask = ir.Constant(ir.VectorType(ir.IntType(32), width), list(range(width)))
            parts = [
                self.builder.shuffle_vector(a, b, mask) for a, b in zip(parts[::2], parts[1::2])
            ]
        return parts[0]

    def tile(self, index):
        """Streams ``index * per_vector ...`` : their partial sums in one vector."""
        builder, eb = self.builder, self.const(self.element_bytes)
        row0 = builder.mul(index, self.const(self.per_vector))
        a_off = builder.mul(builder.mul(row0, self.const(4)), eb)
        slot = cgutils.alloca_once(builder, self.vector)
        builder.store(self.load(self.a_bytes, a_off, self.vector), slot)
        x_rows = [
            builder.mul(builder.add(row0, self.const(s)), self.x_rs) for s in range(self.per_vector)
        ]
        with cgutils.for_range(builder, self.n_groups) as group_loop:
            col_off = builder.mul(builder.mul(group_loop.index, self.const(4)), eb)
            w4 = self.load(self.w_bytes, col_off, self.quad)
            lanes = self.vector.count
            mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [k % 4 for k in range(lanes)])
            w = builder.shuffle_vector(w4, ir.Constant(self.quad, None), mask)
            parts = [self.load(self.x_bytes, builder.add(r, col_off), self.quad) for r in x_rows]
            term = builder.fmul(self.concat(parts), w)
            builder.store(builder.fadd(builder.load(slot), term), slot)
        builder.store(
            builder.load(slot),
            builder.bitcast(builder.gep(self.a_bytes, [a_off]), self.vector.as_pointer()),
            align=self.element_bytes,
        )
