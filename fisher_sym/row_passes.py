"""The CPU layer kernels' passes over rows: each row's write in the same loop as the next
row's sums.

A unit's row can be written only once its sums (|w|², w·g, |g|²) are known, so a kernel that
sums a row and then writes it leaves memory idle during the write, which reads the row back
from cache. ``write_and_sum`` writes row i while it sums row i + 1 in one loop, so that the
reads from memory never stop. Against the earlier loop (sums of a block of rows, then their
writes), in same-run comparisons on the machine of docs/benchmarks.md, natural_gradient came
0.01–0.18 of the triad bound closer in 23 of 24 pairs, and the step 0.04–0.24 of an SGD step
faster in 14 of 16 pairs at n = 1024 and in float32; in float64 at n ≥ 4096, where two rows
no longer fit in L1, it was no faster.

numba's loops cannot do this and stay vectorised (the sums need reassociation, the write must
not have it), so the loop is emitted in LLVM IR, one 64-byte line of each array per step:

- sums: Σ w², Σ w·g, Σ g² in float64, one vector accumulator of SUM_LANES (8) lanes per
  sum (a float32 line widened and added in two halves, elements 0–7 then 8–15), products
  fused into the sums where the target has FMA, then the lanes added in order and the
  elements past the last whole line one by one. The order
  depends on the row length only, so every kernel gets the same sums bit for bit.
  NaN and ±inf propagate: a non-finite w_j or g_j always makes Σ w² or Σ w·g non-finite.
- writes, in the arrays' dtype with a, c and rate rounded to it, the same operations in the
  same order as ``write_element``, so the vector and scalar parts give identical bits:
  WRITE/STREAM: out = a·g + c·w;  STEP: out = w − rate·(a·g + c·w) (out is w for the step).

Each line summed also asks for the line PREFETCH_LINES ahead of the rows summed (a software
prefetch): with the hardware prefetcher alone, the core ran out of room for reads in flight
once a line's arithmetic grew (docs/benchmarks.md: the step came from 1.27–1.32 to
1.06–1.10 times an SGD step at n ≥ 1024); a loop that sums two rows asks half as far ahead
in each.

``program_pass`` builds the same loop for a ``RowProgram``: sums and an entry given as
three-address steps over the row's entries, per-column vectors and per-row scalars (printed
by the code generator from the derivation of inputs with a mean and a variance), for one row
or for two rows at once, which load each line of a column once for both (at n = 4096 the
columns come from L2, and in float64 their loads had cost about as much as the entry's
arithmetic).

STREAM writes whole 64-byte lines of ``out`` with non-temporal stores, which skip the read of
the line they overwrite and leave it out of the caches: the right store for a result too large
to stay there (``use_streaming_stores``). They are weakly ordered, so a writer fences
(``fence``) before anything else reads its rows. Where the target has no non-temporal store,
LLVM emits an ordinary one.
"""

from typing import NamedTuple

import numba
import numpy as np
from llvmlite import ir
from numba.core import cgutils, types
from numba.extending import intrinsic

#: Bytes in a cache line: one step of the loop, and the unit of a non-temporal store.
LINE_BYTES = 64
#: Outputs at least this large are written with non-temporal stores. Below it, with the
#: inputs still in cache, plain stores were faster, the next read of the result included;
#: from 4 MiB on streaming was faster in every case measured (docs/benchmarks.md).
STREAMING_MIN_BYTES = 4 * 2**20
#: Rows at least this long (bytes) are written in pairs by a program's kernel. A pair loop
#: reads each column line once for two rows, which paid at (4096, 4096) (float64 1.14 → 1.05
#: of the plain kernel); on short rows the two rows' heads in a row leave memory idle longer,
#: and pairs were slower (n = 1024 float32: 1.57 against 1.31 for single rows; n = 256
#: float64: 1.35 against 1.20; n = 1024 float64 about even) (docs/benchmarks.md).
PAIR_MIN_ROW_BYTES = 16 * 1024
#: How far ahead of the line it sums the loop asks for the rows it sums next (software
#: prefetches of next_w and next_g, in lines): the hardware prefetcher alone left the core
#: waiting on memory once a line's arithmetic grew (docs/benchmarks.md). A loop that sums
#: several rows asks PREFETCH_LINES // rows ahead in each, the same bytes in flight in all:
#: pairs 24 lines ahead were slower than 12 (float32 (4096, 4096) with statistics 1.12–1.27
#: against 1.09–1.19 of the plain kernel, docs/benchmarks.md).
PREFETCH_LINES = 24

#: How ``write_and_sum`` writes its row: not at all, out = a·g + c·w with plain or
#: non-temporal stores, or in place w = w − rate·(a·g + c·w).
NO_WRITE = 0
WRITE = 1
STREAM = 2
STEP = 3


def _prefetch(context, builder, array_type, array_value, index):
    """Ask for the cache line of element ``index`` of a 1-d array (llvm.prefetch: a read, kept
    in all levels). The address may lie past the array's end: a prefetch never faults."""
    array = context.make_array(array_type)(context, builder, array_value)
    address = builder.bitcast(builder.gep(array.data, [index]), ir.IntType(8).as_pointer())
    int32 = ir.IntType(32)
    function = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(ir.VoidType(), [address.type, int32, int32, int32]),
        "llvm.prefetch.p0i8",
    )
    builder.call(function, [address, ir.Constant(int32, 0), ir.Constant(int32, 3),
                            ir.Constant(int32, 1)])


#: Lanes of the row sums' float64 accumulators: one 64-byte vector. A float32 line (16
#: elements) adds its two halves to them in turn, so that a program's sums of two rows fit in
#: the registers.
SUM_LANES = LINE_BYTES // 8


def _widened_halves(builder, value, narrow):
    """A line as float64 vectors of SUM_LANES lanes: itself (float64), or its two halves,
    elements 0–7 and 8–15, widened (float32)."""
    if not narrow:
        return [value]
    wide = ir.VectorType(ir.DoubleType(), SUM_LANES)
    undefined = ir.Constant(value.type, ir.Undefined)
    halves = []
    for half in range(2):
        mask = ir.Constant(ir.VectorType(ir.IntType(32), SUM_LANES),
                           [half * SUM_LANES + lane for lane in range(SUM_LANES)])
        halves.append(builder.fpext(builder.shuffle_vector(value, undefined, mask), wide))
    return halves


def _lane_sum(builder, vector_value):
    """The lanes of a vector added in order, lane 0 first."""
    int32 = ir.IntType(32)
    result = builder.extract_element(vector_value, ir.Constant(int32, 0))
    for lane in range(1, vector_value.type.count):
        result = builder.fadd(result, builder.extract_element(vector_value,
                                                              ir.Constant(int32, lane)))
    return result


def _lines(step, nontemporal):
    """An intrinsic (w, g, out, next_w, next_g, write_start, write_lines, sum_lines, a, c,
    rate) -> (Σ w², Σ w·g, Σ g²) of next_w, next_g over its first ``sum_lines`` lines, which
    writes ``write_lines`` lines of out from element ``write_start`` on (see the module)."""

    @intrinsic
    def lines(typingctx, w, g, out, next_w, next_g, write_start, write_lines, sum_lines, a, c,
              rate):
        arrays = (w, g, out, next_w, next_g)
        if not all(array.dtype == w.dtype for array in arrays) or w.dtype not in (
            types.float32, types.float64
        ):
            return None

        def codegen(context, builder, signature, args):
            w_value, g_value, out_value, next_w_value, next_g_value = args[:5]
            start, write_count, sum_count, a_value, c_value, rate_value = args[5:]
            element = context.get_value_type(w.dtype)
            itemsize = context.get_abi_sizeof(element)
            lanes = LINE_BYTES // itemsize
            vector = ir.VectorType(element, lanes)
            wide = ir.VectorType(ir.DoubleType(), SUM_LANES)
            narrow = w.dtype != types.float64
            index_type = start.type

            def line(array_type, array_value, index):
                array = context.make_array(array_type)(context, builder, array_value)
                pointer = cgutils.get_item_pointer(
                    context, builder, array_type, array, [index], wraparound=False
                )
                return builder.bitcast(pointer, vector.as_pointer())

            def splat(scalar):
                if narrow:
                    scalar = builder.fptrunc(scalar, element)
                value = ir.Constant(vector, ir.Undefined)
                for lane in range(lanes):
                    value = builder.insert_element(value, scalar, ir.Constant(ir.IntType(32), lane))
                return value

            a_lines, c_lines, rate_lines = splat(a_value), splat(c_value), splat(rate_value)
            sums = [cgutils.alloca_once_value(builder, ir.Constant(wide, [0.0] * SUM_LANES))
                    for _ in range(3)]

            def sum_line(k):
                at = builder.mul(k, ir.Constant(index_type, lanes))
                ahead = builder.add(at, ir.Constant(index_type, PREFETCH_LINES * lanes))
                _prefetch(context, builder, next_w, next_w_value, ahead)
                _prefetch(context, builder, next_g, next_g_value, ahead)
                x = builder.load(line(next_w, next_w_value, at), align=itemsize)
                y = builder.load(line(next_g, next_g_value, at), align=itemsize)
                for x_half, y_half in zip(_widened_halves(builder, x, narrow),
                                          _widened_halves(builder, y, narrow), strict=True):
                    pairs = ((x_half, x_half), (x_half, y_half), (y_half, y_half))
                    for total, (p, q) in zip(sums, pairs, strict=True):
                        product = builder.fmul(p, q, flags=("contract",))
                        builder.store(builder.fadd(builder.load(total), product,
                                                   flags=("contract",)), total)

            def write_line(k):
                at = builder.add(start, builder.mul(k, ir.Constant(index_type, lanes)))
                x = builder.load(line(w, w_value, at), align=itemsize)
                y = builder.load(line(g, g_value, at), align=itemsize)
                value = builder.fadd(builder.fmul(a_lines, y), builder.fmul(c_lines, x))
                if step:
                    value = builder.fsub(x, builder.fmul(rate_lines, value))
                store = builder.store(value, line(out, out_value, at),
                                      align=LINE_BYTES if nontemporal else itemsize)
                if nontemporal:
                    one = ir.Constant(ir.IntType(32), 1)
                    store.set_metadata("nontemporal", builder.module.add_metadata([one]))

            # Lines [0, both) in one loop; then whichever of the two has lines left. Each sum
            # adds its lines in order, whichever loop they fall in.
            both = builder.select(builder.icmp_signed("<", write_count, sum_count),
                                  write_count, sum_count)
            with cgutils.for_range(builder, both) as loop:
                sum_line(loop.index)
                write_line(loop.index)
            one = ir.Constant(index_type, 1)
            with cgutils.for_range_slice(builder, both, write_count, one) as (k, _):
                write_line(k)
            with cgutils.for_range_slice(builder, both, sum_count, one) as (k, _):
                sum_line(k)

            results = [_lane_sum(builder, builder.load(total)) for total in sums]
            return context.make_tuple(builder, signature.return_type, results)

        signature = types.UniTuple(types.float64, 3)(
            w, g, out, next_w, next_g, types.intp, types.intp, types.intp,
            types.float64, types.float64, types.float64,
        )
        return signature, codegen

    return lines


_write_lines = _lines(step=False, nontemporal=False)
_stream_lines = _lines(step=False, nontemporal=True)
_step_lines = _lines(step=True, nontemporal=False)


@numba.njit(cache=True)
def use_streaming_stores(out, min_bytes):
    """Whether a layer kernel writes ``out`` with non-temporal stores: from ``min_bytes`` on
    (``STREAMING_MIN_BYTES``, passed by the caller, as compiled code would freeze it)."""
    return out.nbytes >= min_bytes


@numba.njit(cache=True)
def write_mode(out, step, min_bytes):
    """How a layer kernel writes its rows: STEP in place, else STREAM where ``out`` is large
    enough for non-temporal stores (``use_streaming_stores``), else WRITE."""
    if step:
        return STEP
    if use_streaming_stores(out, min_bytes):
        return STREAM
    return WRITE


@intrinsic
def fence(typingctx):
    """A sequentially consistent fence (mfence on x86): orders the non-temporal stores before it."""

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.void(), codegen


@numba.njit(cache=True, inline="always")
def write_element(w, g, out, j, a, c, rate, write):
    """out[j] = a·g[j] + c·w[j], or w[j] − rate·(a·g[j] + c·w[j]) for STEP (a, c, rate already
    in the dtype)."""
    if write == STEP:
        out[j] = w[j] - rate * (a * g[j] + c * w[j])
    else:
        out[j] = a * g[j] + c * w[j]


@numba.njit(cache=True)
def write_head(out, write):
    """How many elements of ``out`` a row pass writes one by one before its first whole line:
    for STREAM those before the first 64-byte boundary (all of them if ``out`` is not aligned
    to its itemsize), else none."""
    if write != STREAM:
        return 0
    address = out.ctypes.data
    if address % out.itemsize != 0:
        return out.size
    return min(out.size, (-address) % LINE_BYTES // out.itemsize)


@numba.njit(cache=True)
def write_and_sum(w, g, out, next_w, next_g, a, c, rate, write, sum_next):
    """Write one row as ``write`` says (NO_WRITE, WRITE, STREAM or STEP, with coefficients a, c
    and learning rate ``rate``, rounded to the dtype) and, if ``sum_next``, return the sums
    (Σ w², Σ w·g, Σ g²) of next_w, next_g in float64, in one loop ((0, 0, 0) otherwise).

    All rows are C-contiguous 1-d arrays of one dtype, float32 or float64; out is w for STEP.
    A STREAM caller fences (``fence``) before its rows are read.
    """
    n = w.size
    lanes = LINE_BYTES // w.itemsize
    head = write_head(out, write)
    write_lines = (n - head) // lanes if write != NO_WRITE else 0
    sum_lines = next_w.size // lanes if sum_next else 0
    if write == STREAM:
        ww, wg, gg = _stream_lines(w, g, out, next_w, next_g, head, write_lines, sum_lines,
                                   a, c, rate)
    elif write == STEP:
        ww, wg, gg = _step_lines(w, g, out, next_w, next_g, head, write_lines, sum_lines,
                                 a, c, rate)
    else:
        ww, wg, gg = _write_lines(w, g, out, next_w, next_g, head, write_lines, sum_lines,
                                  a, c, rate)
    if sum_next:
        for j in range(sum_lines * lanes, next_w.size):
            x = np.float64(next_w[j])
            y = np.float64(next_g[j])
            ww += x * x
            wg += x * y
            gg += y * y
    if write != NO_WRITE:
        a_element = w.dtype.type(a)
        c_element = w.dtype.type(c)
        rate_element = w.dtype.type(rate)
        for j in range(head):
            write_element(w, g, out, j, a_element, c_element, rate_element, write)
        for j in range(head + write_lines * lanes, n):
            write_element(w, g, out, j, a_element, c_element, rate_element, write)
    return ww, wg, gg


@numba.njit(cache=True)
def row_sums(w, g):
    """(Σ w², Σ w·g, Σ g²) over one row in float64, the sums of ``write_and_sum``."""
    return write_and_sum(w, g, w, w, g, 0.0, 0.0, 0.0, NO_WRITE, True)


# --- Rows with per-column terms: a program printed from the derivation --------------------------


class RowProgram(NamedTuple):
    """Straight-line arithmetic on one entry of a row, for ``program_pass``.

    Steps are (result, operator, left, right), operator "+", "-" or "*"; an operand names an
    entry of the row ("w", "g"), a column (a row of the column array), a scalar of the row, or
    an earlier result. The sums' steps run in float64 (float32 entries widened) and end in
    ``sums``, (name, left, right): name += left·right; the write's steps run in the arrays'
    dtype (scalars rounded to it) and give ``result``, the entry written.
    """

    sum_columns: tuple[str, ...]
    sum_scalars: tuple[str, ...]
    sum_steps: tuple[tuple[str, str, str, str], ...]
    sums: tuple[tuple[str, str, str], ...]
    write_columns: tuple[str, ...]
    write_scalars: tuple[str, ...]
    write_steps: tuple[tuple[str, str, str, str], ...]
    result: str


_OPERATORS = {"+": "fadd", "-": "fsub", "*": "fmul"}


def _program_lines(program, step, nontemporal, rows):
    """``_lines`` for a ``RowProgram`` over ``rows`` rows at once: an intrinsic (ws, gs, outs,
    next_ws, next_gs, sum_columns, write_columns, write_start, write_lines, sum_lines,
    write_scalars, sum_scalars, rate) -> per next row, the program's sums over its first
    ``sum_lines`` lines (float64 column rows ``sum_columns[k]``, that row's scalars
    ``sum_scalars[r]``), writing ``write_lines`` lines of each out from element ``write_start``
    on (dtype column rows ``write_columns[k]``, scalars ``write_scalars[r]`` rounded to the
    dtype). The row arguments are tuples of ``rows`` arrays, the scalars tuples of float64
    tuples; each line of a column is loaded once for all the rows. As in ``_lines``, the sums'
    products are fused into them where the target has FMA, and nothing else is contracted."""
    count = len(program.sums)

    @intrinsic
    def lines(typingctx, ws, gs, outs, next_ws, next_gs, sum_columns, write_columns, write_start,
              write_lines, sum_lines, write_scalars, sum_scalars, rate):
        groups = (ws, gs, outs, next_ws, next_gs)
        if not all(isinstance(group, types.UniTuple) and group.count == rows
                   for group in groups):
            return None
        w = ws.dtype
        arrays = [group.dtype for group in groups] + [write_columns]
        if not all(array.dtype == w.dtype for array in arrays) or w.dtype not in (
            types.float32, types.float64
        ) or sum_columns.dtype != types.float64:
            return None
        for scalars, names in ((write_scalars, program.write_scalars),
                               (sum_scalars, program.sum_scalars)):
            if scalars != types.UniTuple(types.UniTuple(types.float64, len(names)), rows):
                return None

        def codegen(context, builder, signature, args):
            (ws_value, gs_value, outs_value, next_ws_value, next_gs_value, sum_columns_value,
             write_columns_value, start, write_count, sum_count, write_scalar_values,
             sum_scalar_values, rate_value) = args
            element = context.get_value_type(w.dtype)
            itemsize = context.get_abi_sizeof(element)
            lanes = LINE_BYTES // itemsize
            vector = ir.VectorType(element, lanes)
            wide = ir.VectorType(ir.DoubleType(), SUM_LANES)
            halves = lanes // SUM_LANES
            narrow = w.dtype != types.float64
            index_type = start.type

            def members(group_value):
                return [builder.extract_value(group_value, r) for r in range(rows)]

            w_rows, g_rows, out_rows = members(ws_value), members(gs_value), members(outs_value)
            next_w_rows, next_g_rows = members(next_ws_value), members(next_gs_value)

            def pointer(array_type, array_value, indices, vector_type):
                array = context.make_array(array_type)(context, builder, array_value)
                item = cgutils.get_item_pointer(context, builder, array_type, array, indices,
                                                wraparound=False)
                return builder.bitcast(item, vector_type.as_pointer())

            def splat(scalar, vector_type):
                value = ir.Constant(vector_type, ir.Undefined)
                for lane in range(vector_type.count):
                    value = builder.insert_element(value, scalar, ir.Constant(ir.IntType(32), lane))
                return value

            def scalars(names, values, narrowed):
                found = {}
                for index, name in enumerate(names):
                    scalar = builder.extract_value(values, index)
                    if narrowed:
                        scalar = builder.fptrunc(scalar, element)
                    found[name] = splat(scalar, vector if narrowed else wide)
                return found

            write_constants = [scalars(program.write_scalars, value, narrow)
                               for value in members(write_scalar_values)]
            sum_constants = [scalars(program.sum_scalars, value, False)
                             for value in members(sum_scalar_values)]
            rate_lines = scalars(("rate",), context.make_tuple(
                builder, types.UniTuple(types.float64, 1), [rate_value]), narrow)["rate"]
            totals = [[cgutils.alloca_once_value(builder, ir.Constant(wide, [0.0] * SUM_LANES))
                       for _ in range(count)] for _ in range(rows)]

            def run(steps, values):
                for result, operator, left, right in steps:
                    values[result] = getattr(builder, _OPERATORS[operator])(values[left],
                                                                            values[right])
                return values

            def sum_line(k):
                at = builder.mul(k, ir.Constant(index_type, lanes))
                ahead = builder.add(at, ir.Constant(index_type, PREFETCH_LINES // rows * lanes))
                for r in range(rows):
                    _prefetch(context, builder, next_ws.dtype, next_w_rows[r], ahead)
                    _prefetch(context, builder, next_gs.dtype, next_g_rows[r], ahead)
                columns = [{} for _ in range(halves)]
                for half in range(halves):
                    at_half = builder.add(at, ir.Constant(index_type, half * SUM_LANES))
                    for row, name in enumerate(program.sum_columns):
                        column = pointer(sum_columns, sum_columns_value,
                                         [ir.Constant(index_type, row), at_half], wide)
                        columns[half][name] = builder.load(column, align=8)
                for r in range(rows):
                    x = builder.load(pointer(next_ws.dtype, next_w_rows[r], [at], vector),
                                     align=itemsize)
                    y = builder.load(pointer(next_gs.dtype, next_g_rows[r], [at], vector),
                                     align=itemsize)
                    for half, (x_half, y_half) in enumerate(zip(
                        _widened_halves(builder, x, narrow), _widened_halves(builder, y, narrow),
                        strict=True,
                    )):
                        values = run(program.sum_steps, {"w": x_half, "g": y_half,
                                                         **sum_constants[r], **columns[half]})
                        for total, (_, left, right) in zip(totals[r], program.sums, strict=True):
                            product = builder.fmul(values[left], values[right],
                                                   flags=("contract",))
                            builder.store(builder.fadd(builder.load(total), product,
                                                       flags=("contract",)), total)

            def write_line(k):
                at = builder.add(start, builder.mul(k, ir.Constant(index_type, lanes)))
                columns = {}
                for row, name in enumerate(program.write_columns):
                    column = pointer(write_columns, write_columns_value,
                                     [ir.Constant(index_type, row), at], vector)
                    columns[name] = builder.load(column, align=itemsize)
                for r in range(rows):
                    x = builder.load(pointer(ws.dtype, w_rows[r], [at], vector), align=itemsize)
                    y = builder.load(pointer(gs.dtype, g_rows[r], [at], vector), align=itemsize)
                    values = {"w": x, "g": y, **write_constants[r], **columns}
                    value = run(program.write_steps, values)[program.result]
                    if step:
                        value = builder.fsub(x, builder.fmul(rate_lines, value))
                    store = builder.store(value, pointer(outs.dtype, out_rows[r], [at], vector),
                                          align=LINE_BYTES if nontemporal else itemsize)
                    if nontemporal:
                        one = ir.Constant(ir.IntType(32), 1)
                        store.set_metadata("nontemporal", builder.module.add_metadata([one]))

            both = builder.select(builder.icmp_signed("<", write_count, sum_count),
                                  write_count, sum_count)
            with cgutils.for_range(builder, both) as loop:
                sum_line(loop.index)
                write_line(loop.index)
            one = ir.Constant(index_type, 1)
            with cgutils.for_range_slice(builder, both, write_count, one) as (k, _):
                write_line(k)
            with cgutils.for_range_slice(builder, both, sum_count, one) as (k, _):
                sum_line(k)

            results = [
                context.make_tuple(builder, types.UniTuple(types.float64, count),
                                   [_lane_sum(builder, builder.load(total)) for total in row])
                for row in totals
            ]
            return context.make_tuple(builder, signature.return_type, results)

        signature = types.UniTuple(types.UniTuple(types.float64, count), rows)(
            ws, gs, outs, next_ws, next_gs, sum_columns, write_columns, types.intp, types.intp,
            types.intp, write_scalars, sum_scalars, types.float64,
        )
        return signature, codegen

    return lines


@intrinsic
def _rounded(typingctx, values, like):
    """A tuple of float64 values rounded to the dtype of the array ``like``."""
    dtype = like.dtype

    def codegen(context, builder, signature, args):
        element = context.get_value_type(dtype)
        rounded = []
        for index in range(values.count):
            value = builder.extract_value(args[0], index)
            rounded.append(value if dtype == types.float64 else builder.fptrunc(value, element))
        return context.make_tuple(builder, signature.return_type, rounded)

    return types.UniTuple(dtype, values.count)(values, like), codegen


def program_pass(program, sum_terms, entry):
    """(write_and_sum, row_sums, write_and_sum_pair) for a ``RowProgram``: ``write_and_sum``
    as above, with the program's entry and sums instead of a·g + c·w and (Σ w², Σ w·g, Σ g²),
    and the columns and scalars the program names as arguments; ``row_sums`` its sums alone;
    ``write_and_sum_pair`` the same for two rows written and two summed in one loop, which
    loads each line of a column once for both.

    ``sum_terms(sums, w, g, columns, scalars)`` (the sums with one entry's products added)
    and ``entry(w, g, columns, scalars)`` are the same programs on scalars, jitted; they give the
    elements outside whole lines, so every element of a row gets the same operations in the
    same order, vector or scalar, alone or in a pair. Both functions are closures over the
    program (so they are compiled, not cached, where a cached caller is not loaded from the
    cache).
    """
    passes = {
        (rows, write): _program_lines(program, step=write == STEP,
                                      nontemporal=write == STREAM, rows=rows)
        for rows in (1, 2) for write in (WRITE, STREAM, STEP)
    }
    single_write, single_stream, single_step = (passes[1, WRITE], passes[1, STREAM],
                                                passes[1, STEP])
    pair_write, pair_stream, pair_step = passes[2, WRITE], passes[2, STREAM], passes[2, STEP]

    @numba.njit(inline="always")
    def _sum_tail(sums, next_w, next_g, start, sum_columns, sum_scalars):
        for j in range(start, next_w.size):
            sums = sum_terms(sums, np.float64(next_w[j]), np.float64(next_g[j]),
                             sum_columns[:, j], sum_scalars)
        return sums

    @numba.njit(inline="always")
    def _write_tail(w, g, out, head, start, write_columns, write_scalars, rate, write):
        scalars = _rounded(write_scalars, w)
        rate_element = w.dtype.type(rate)
        for j in range(head):
            _write_entry(w, g, out, j, write_columns, scalars, rate_element, write)
        for j in range(start, w.size):
            _write_entry(w, g, out, j, write_columns, scalars, rate_element, write)

    @numba.njit(inline="always")
    def _write_entry(w, g, out, j, write_columns, scalars, rate, write):
        value = entry(w[j], g[j], write_columns[:, j], scalars)
        if write == STEP:
            out[j] = w[j] - rate * value
        else:
            out[j] = value

    @numba.njit
    def write_and_sum(w, g, out, next_w, next_g, sum_columns, write_columns, write_scalars,
                      sum_scalars, rate, write, sum_next):
        """Write one row as ``write`` says (the program's entry, or w − rate·entry for STEP)
        and, if ``sum_next``, return the program's sums over next_w, next_g (float64; zeros
        otherwise), in one loop. ``write_scalars`` and ``sum_scalars`` are float64 tuples (the
        write rounds them to the dtype); the columns are 2-D, C-contiguous, a row per name."""
        lanes = LINE_BYTES // w.itemsize
        head = write_head(out, write)
        write_count = (w.size - head) // lanes if write != NO_WRITE else 0
        sum_count = next_w.size // lanes if sum_next else 0
        arguments = ((w,), (g,), (out,), (next_w,), (next_g,), sum_columns, write_columns, head,
                     write_count, sum_count, (write_scalars,), (sum_scalars,), rate)
        if write == STREAM:
            (sums,) = single_stream(*arguments)
        elif write == STEP:
            (sums,) = single_step(*arguments)
        else:
            (sums,) = single_write(*arguments)
        if sum_next:
            sums = _sum_tail(sums, next_w, next_g, sum_count * lanes, sum_columns, sum_scalars)
        if write != NO_WRITE:
            _write_tail(w, g, out, head, head + write_count * lanes, write_columns,
                        write_scalars, rate, write)
        return sums

    @numba.njit
    def write_and_sum_pair(w0, g0, out0, w1, g1, out1, next_w0, next_g0, next_w1, next_g1,
                           sum_columns, write_columns, write_scalars0, write_scalars1,
                           sum_scalars0, sum_scalars1, rate, write, sum_next):
        """``write_and_sum`` for rows 0 and 1 (WRITE, STREAM or STEP) in one loop that also
        sums next rows 0 and 1 if ``sum_next``: (sums0, sums1), each what ``write_and_sum``
        gives for its row; two one-row passes where out0 and out1 have different
        ``write_head``s."""
        lanes = LINE_BYTES // w0.itemsize
        head = write_head(out0, write)
        if write_head(out1, write) != head:
            return (write_and_sum(w0, g0, out0, next_w0, next_g0, sum_columns, write_columns,
                                  write_scalars0, sum_scalars0, rate, write, sum_next),
                    write_and_sum(w1, g1, out1, next_w1, next_g1, sum_columns, write_columns,
                                  write_scalars1, sum_scalars1, rate, write, sum_next))
        write_count = (w0.size - head) // lanes
        sum_count = next_w0.size // lanes if sum_next else 0
        arguments = ((w0, w1), (g0, g1), (out0, out1), (next_w0, next_w1), (next_g0, next_g1),
                     sum_columns, write_columns, head, write_count, sum_count,
                     (write_scalars0, write_scalars1), (sum_scalars0, sum_scalars1), rate)
        if write == STREAM:
            sums0, sums1 = pair_stream(*arguments)
        elif write == STEP:
            sums0, sums1 = pair_step(*arguments)
        else:
            sums0, sums1 = pair_write(*arguments)
        if sum_next:
            start = sum_count * lanes
            sums0 = _sum_tail(sums0, next_w0, next_g0, start, sum_columns, sum_scalars0)
            sums1 = _sum_tail(sums1, next_w1, next_g1, start, sum_columns, sum_scalars1)
        start = head + write_count * lanes
        _write_tail(w0, g0, out0, head, start, write_columns, write_scalars0, rate, write)
        _write_tail(w1, g1, out1, head, start, write_columns, write_scalars1, rate, write)
        return sums0, sums1

    @numba.njit
    def row_sums(w, g, sum_columns, write_columns, write_scalars, sum_scalars):
        """The program's sums over one row (float64), those of ``write_and_sum``."""
        return write_and_sum(w, g, w, w, g, sum_columns, write_columns, write_scalars,
                             sum_scalars, 0.0, NO_WRITE, True)

    return write_and_sum, row_sums, write_and_sum_pair
