"""Non-temporal ("streaming") row writes for the CPU layer kernels.

A store that misses the cache first reads the line it is about to overwrite (a read for
ownership), so out = a·g + c·w over arrays larger than the caches moves four arrays' worth of
bytes, not three. A non-temporal store writes a whole 64-byte line to memory without reading
it, and leaves it out of the caches: the right store for a result too large to stay there.

numba has no such store, so ``_store_line`` emits one in LLVM IR: out[j : j + L] =
a·g[j : j + L] + c·w[j : j + L] for the L elements of one line, in the arrays' dtype with a
and c rounded to it, the same operations in the same order as the plain loop, so both writes
give identical bits. ``write_row`` peels the elements before the first 64-byte boundary of
``out`` and after its last one, and streams the lines between.
Non-temporal stores are weakly ordered, so a full fence (``fence``) must follow a writer's
streamed rows before anything else reads them: the layer kernels fence once per block of rows,
which lets one row's stores drain while the next row is computed (a fence after every row
cost 10 % at (1024, 1024) float64). Where the target has no non-temporal store, LLVM emits an
ordinary one.
"""

import numba
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

#: Bytes in a cache line, the unit of a non-temporal store.
LINE_BYTES = 64
#: Outputs at least this large are written with non-temporal stores. Below it, with the
#: inputs still in cache, plain stores were faster, the next read of the result included;
#: from 4 MiB on streaming was faster in every case measured (docs/benchmarks.md).
STREAMING_MIN_BYTES = 4 * 2**20


@numba.njit(cache=True)
def use_streaming_stores(out, min_bytes):
    """Whether a layer kernel writes ``out`` with non-temporal stores: from ``min_bytes`` on
    (``STREAMING_MIN_BYTES``, passed by the caller, as compiled code would freeze it)."""
    return out.nbytes >= min_bytes


@intrinsic
def _store_line(typingctx, out, j, w, g, a, c):
    """out[j : j + L] = a·g[j : j + L] + c·w[j : j + L] in out's dtype (a, c: float64 rounded to
    it), one non-temporal store of the line at out[j], which must be 64-byte aligned
    (L = 64 / itemsize)."""
    if not (out.dtype == w.dtype == g.dtype and out.dtype in (types.float32, types.float64)):
        return None

    def codegen(context, builder, signature, args):
        out_type, _, w_type, g_type, _, _ = signature.args
        out_value, index, w_value, g_value, a_value, c_value = args
        element = context.get_value_type(out_type.dtype)
        itemsize = context.get_abi_sizeof(element)
        lanes = LINE_BYTES // itemsize
        vector = ir.VectorType(element, lanes)
        narrow = out_type.dtype != types.float64

        def line_pointer(array_type, array_value):
            array = context.make_array(array_type)(context, builder, array_value)
            pointer = cgutils.get_item_pointer(
                context, builder, array_type, array, [index], wraparound=False
            )
            return builder.bitcast(pointer, vector.as_pointer())

        def load(array_type, array_value):
            return builder.load(line_pointer(array_type, array_value), align=itemsize)

        def splat(scalar):
            if narrow:
                scalar = builder.fptrunc(scalar, element)
            value = ir.Constant(vector, ir.Undefined)
            for lane in range(lanes):
                value = builder.insert_element(value, scalar, ir.Constant(ir.IntType(32), lane))
            return value

        result = builder.fadd(
            builder.fmul(splat(a_value), load(g_type, g_value)),
            builder.fmul(splat(c_value), load(w_type, w_value)),
        )
        store = builder.store(result, line_pointer(out_type, out_value), align=LINE_BYTES)
        one = ir.Constant(ir.IntType(32), 1)
        store.set_metadata("nontemporal", builder.module.add_metadata([one]))
        return context.get_dummy_value()

    return types.void(out, types.intp, w, g, types.float64, types.float64), codegen


@intrinsic
def fence(typingctx):
    """A sequentially consistent fence (mfence on x86): orders the non-temporal stores before it."""

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@numba.njit(cache=True)
def write_row(w, g, out, a, c):
    """out = a·g + c·w over one row (C-contiguous 1-d arrays of one dtype), in its dtype with a
    and c rounded to it; the whole lines of ``out`` with non-temporal stores, which the caller
    orders by ``fence()`` before the row is read."""
    n = out.size
    itemsize = out.itemsize
    lanes = LINE_BYTES // itemsize
    address = out.ctypes.data
    if address % itemsize == 0:
        head = min(n, (-address) % LINE_BYTES // itemsize)
        stop = head + (n - head) // lanes * lanes
    else:  # elements straddle lines: no aligned line to stream
        head = stop = n
    a_element = out.dtype.type(a)
    c_element = out.dtype.type(c)
    for j in range(head):
        out[j] = a_element * g[j] + c_element * w[j]
    for j in range(head, stop, lanes):
        _store_line(out, j, w, g, a, c)
    for j in range(stop, n):
        out[j] = a_element * g[j] + c_element * w[j]
