"""A 2-D view of a 1-D block of the packed weights, made inline.

``vec.reshape((rows, cols))`` in nopython mode calls a C helper that works out strides for any
layout (about 20 ns a call, four calls per step). A block of ``params`` is always C-contiguous
and its shape is known, so the view is just the same data pointer with new shape and strides.
"""

from __future__ import annotations

from numba import types
from numba.core import cgutils
from numba.core.imputils import impl_ret_borrowed
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array


@intrinsic
def as_matrix(typingctx, vec, rows, cols):
    """View a C-contiguous 1-D array of ``rows * cols`` elements as (rows, cols), C order.

    The caller guarantees ``vec.shape[0] == rows * cols``; nothing is checked.
    """
    if not (isinstance(vec, types.Array) and vec.ndim == 1 and vec.layout == "C"):
        return None
    if not (isinstance(rows, types.Integer) and isinstance(cols, types.Integer)):
        return None
    matrix = vec.copy(ndim=2, layout="C")
    sig = matrix(vec, rows, cols)

    def codegen(context, builder, signature, args):
        vec_value, n_rows, n_cols = args
        src = make_array(signature.args[0])(context, builder, vec_value)
        dst = make_array(signature.return_type)(context, builder)
        n_rows = context.cast(builder, n_rows, signature.args[1], types.intp)
        n_cols = context.cast(builder, n_cols, signature.args[2], types.intp)
        itemsize = src.itemsize
        shape = cgutils.pack_array(builder, [n_rows, n_cols])
        strides = cgutils.pack_array(builder, [builder.mul(n_cols, itemsize), itemsize])
        populate_array(
            dst,
            data=src.data,
            shape=shape,
            strides=strides,
            itemsize=itemsize,
            meminfo=src.meminfo,
            parent=src.parent,
        )
        return impl_ret_borrowed(context, builder, signature.return_type, dst._getvalue())

    return sig, codegen


@intrinsic
def from_pointer(typingctx, ptr, length, read_only, any_layout):
    """View ``length`` elements at ``ptr`` as a 1-D array, without the NRT (no owner).

    ``read_only`` and ``any_layout`` (literal booleans) choose the array type: read-only or
    not, layout "A" or "C" (the data is contiguous either way). Lets a ``cfunc`` handed raw
    pointers call a kernel compiled for those exact argument types, so the kernel is linked
    rather than compiled again. (``numba.carray`` needs the NRT.)
    """
    if not (isinstance(ptr, types.CPointer) and isinstance(length, types.Integer)):
        return None
    if not all(isinstance(flag, types.BooleanLiteral) for flag in (read_only, any_layout)):
        return None
    layout = "A" if any_layout.literal_value else "C"
    array = types.Array(ptr.dtype, 1, layout, readonly=read_only.literal_value)
    sig = array(ptr, length, read_only, any_layout)

    def codegen(context, builder, signature, args):
        data, n = args[0], context.cast(builder, args[1], signature.args[1], types.intp)
        dst = make_array(signature.return_type)(context, builder)
        itemsize = context.get_constant(
            types.intp, context.get_abi_sizeof(context.get_data_type(signature.return_type.dtype))
        )
        populate_array(
            dst,
            data=data,
            shape=cgutils.pack_array(builder, [n]),
            strides=cgutils.pack_array(builder, [itemsize]),
            itemsize=itemsize,
            meminfo=None,
        )
        return dst._getvalue()

    return sig, codegen
