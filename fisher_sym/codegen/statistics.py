"""The layer kernels for inputs with a mean and a variance, printed from
``fisher.input_statistics_update``.

With input_mean μ and input_variance s², a unit's natural gradient is (docs/input_statistics.md)

    nat_w_j = Ā00·precision_j·(g_j − mean_j·g_b) + along_w·w_j,
    nat_b   = nat_b_std − Ā00·Σ scaled_mean·g_centered − along_w·Σ mean·w,

with Ā00, along_w and nat_b_std the standard unit's update at (r', b', w'·g'), which come
from the row sums. Everything specific to the statistics is printed here from the derivation:

- the per-layer columns (precision = 1/variance, scaled_mean = mean/variance);
- a ``row_passes.RowProgram``: the row sums and the entry written, as three-address steps,
  which ``row_passes.program_pass`` compiles into the vector loop over a row, and the same
  steps as scalar functions for the elements outside whole lines (and the float64 rows near
  overflow, and the GPU kernels);
- (r', b', w'·g') from the sums, nat_b, and a bound on every value the entry's steps form
  (for the overflow check: ``magnitude_bound``).

The layer kernel around them (``STATISTICS_TEMPLATE``) has the same structure as the
standard one (``layer_template``), which it leaves untouched.
"""

from __future__ import annotations

import textwrap
from string import Template

import sympy as sp

from fisher_sym import fisher
from fisher_sym.codegen.printer import (
    ProgramPrinter,
    print_assignments,
    print_code,
    print_program,
)
from fisher_sym.row_passes import RowProgram

#: The row sum the overflow bound needs besides the derivation's: Σ g² (|g_j| ≤ its root).
BOUND_SUM = ("sum_g_g", "g", "g")
#: The row's scalars, in the order the programs take them.
SCALAR_ORDER = (fisher.ABAR00, fisher.ALONG_W, fisher.GRAD_BIAS)

#: Symbols of ``magnitude_bound``'s maxima: |w_j| ≤ norm_w, |g_j| ≤ norm_g, |mean_j| ≤
#: mean_max, precision_j ≤ precision_max.
NORM_W, NORM_G, MEAN_MAX, PRECISION_MAX = sp.symbols(
    "norm_w norm_g mean_max precision_max", nonnegative=True
)


def magnitude_bound(expression: sp.Expr, maxima: dict[sp.Symbol, sp.Expr]) -> sp.Expr:
    """An upper bound on |expression| and on every partial sum and product it forms, whatever
    the order: a sum's bound is the sum of its terms' bounds, a product's the product of
    max(1, bound) of its factors."""
    if expression.is_Symbol:
        return maxima[expression]
    if expression.is_Add:
        return sp.Add(*(magnitude_bound(-term if term.could_extract_minus_sign() else term,
                                        maxima) for term in expression.args))
    if expression.is_Mul or expression.is_Pow:
        coefficient, factors = expression.as_coeff_mul()
        bound = sp.Integer(1)
        for factor in factors:
            base, exponent = factor.as_base_exp()
            bound *= sp.Max(sp.Float(1.0), magnitude_bound(base, maxima)) ** exponent
        return abs(coefficient) * bound
    raise ValueError(f"no bound for {expression}")


def _used(names, steps, pairs) -> tuple[str, ...]:
    """The names among ``names`` that the steps or the (left, right) pairs read."""
    read = {operand for step in steps for operand in step[2:]} | {
        operand for pair in pairs for operand in pair
    }
    return tuple(name for name in names if name in read)


def row_program(update: fisher.InputStatisticsUpdate) -> RowProgram:
    """The row sums (with ``BOUND_SUM``) and the entry of ``update`` as a RowProgram."""
    columns = [str(symbol) for symbol in update.columns]
    scalars = [str(symbol) for symbol in SCALAR_ORDER]
    summed = ProgramPrinter("s")
    summed.assign(str(fisher.G_CENTERED_J), update.centered_gradient)
    sums = [(str(row_sum), *summed.product(row_sum.summand)) for row_sum in update.row_sums]
    sums.append(BOUND_SUM)
    written = ProgramPrinter("e")
    written.assign(str(fisher.G_CENTERED_J), update.centered_gradient)
    written.assign("nat_w", update.entry)
    return RowProgram(
        sum_columns=_used(columns, summed.steps, [pair[1:] for pair in sums]),
        sum_scalars=_used(scalars, summed.steps, [pair[1:] for pair in sums]),
        sum_steps=tuple(summed.steps),
        sums=tuple(sums),
        write_columns=_used(columns, written.steps, []),
        write_scalars=_used(scalars, written.steps, []),
        write_steps=tuple(written.steps),
        result="nat_w",
    )


def _indented(lines: list[str], depth: int = 1) -> str:
    return "\n".join("    " * depth + line for line in lines)


def _unpack(names, source: str) -> list[str]:
    return [f"{name} = {source}[{index}]" for index, name in enumerate(names)]


def _program_literal(program: RowProgram) -> str:
    fields = []
    for field, value in program._asdict().items():
        if isinstance(value, tuple) and value and isinstance(value[0], tuple):
            rows = "".join(f"\n        {row!r}," for row in value)
            fields.append(f"    {field}=({rows}\n    ),")
        else:
            fields.append(f"    {field}={value!r},")
    return "row_passes.RowProgram(\n" + "\n".join(fields) + "\n)"


def _column_lines(update: fisher.InputStatisticsUpdate, program: RowProgram) -> str:
    """The loop body of ``_statistics_columns``: each column from (mean, variance), each
    derived one checked finite, stored in the rows the program reads; the layer's maxima and
    whether the write columns are normal numbers of the dtype or zero."""
    definitions = {str(symbol): (symbol, value) for symbol, value in update.columns.items()}
    lines = [f"{fisher.MEAN_J} = input_mean[j]", f"{fisher.VARIANCE_J} = input_variance[j]"]
    for name in dict.fromkeys(program.sum_columns + program.write_columns):
        symbol, value = definitions[name]
        if value != symbol:
            lines.append(f"{name} = {print_code(value)}")
            lines.append(f"if not math.isfinite({name}):")
            lines.append("    finite = False")
    for row, name in enumerate(program.sum_columns):
        lines.append(f"columns[{row}, j] = {name}")
    for row, name in enumerate(program.write_columns):
        lines.append(f"columns64[{row}, j] = {name}")
        lines.append(f"write_columns[{row}, j] = {name}")
        lines.append(f"if not _normal_or_zero(np.float64(write_columns[{row}, j]), tiny, limit):")
        lines.append("    representable = False")
    lines.append(f"precision_max = max(precision_max, {fisher.PRECISION_J})")
    lines.append(f"mean_max = max(mean_max, abs({fisher.MEAN_J}))")
    return _indented(lines, 2)


def _bound_expression(update: fisher.InputStatisticsUpdate) -> sp.Expr:
    entry = update.entry.subs(fisher.G_CENTERED_J, update.centered_gradient)
    maxima = {
        fisher.W_J: NORM_W,
        fisher.G_J: NORM_G,
        fisher.MEAN_J: MEAN_MAX,
        fisher.PRECISION_J: PRECISION_MAX,
        **{symbol: sp.Abs(symbol) for symbol in SCALAR_ORDER},
    }
    return magnitude_bound(entry, maxima)


def render(update: fisher.InputStatisticsUpdate | None = None) -> str:
    """The statistics section of a generated module."""
    update = update or fisher.input_statistics_update()
    program = row_program(update)
    sum_names = [name for name, _, _ in program.sums]
    summed = "".join(f"\n        sums[{index}] + {left} * {right},"
                     for index, (_, left, right) in enumerate(program.sums))
    standardized = print_assignments(
        [str(symbol) for symbol in update.standardized],
        list(update.standardized.values()),
        prefix="u",
    )
    bias = print_assignments(["nat_b"], [update.bias], prefix="v")
    return STATISTICS_TEMPLATE.substitute(
        program=_program_literal(program),
        sum_names=", ".join(sum_names),
        bound_sum_index=sum_names.index(BOUND_SUM[0]),
        columns64_values=_tuple(f"columns64[{q}, j]"
                                for q in range(len(program.write_columns))),
        column_count=len(program.sum_columns),
        write_column_count=len(program.write_columns),
        column_names=repr(program.sum_columns),
        write_column_names=repr(program.write_columns),
        columns_body=_column_lines(update, program),
        sum_columns=_indented(_unpack(program.sum_columns, "columns")),
        sum_scalars=_indented(_unpack(program.sum_scalars, "scalars")),
        sum_steps=_indented(print_program(program.sum_steps)),
        summed=summed,
        write_columns=_indented(_unpack(program.write_columns, "columns")),
        write_scalars=_indented(_unpack(program.write_scalars, "scalars")),
        write_steps=_indented(print_program(program.write_steps)),
        result=program.result,
        write_scalar_tuple="(" + "".join(f"{name}, " for name in program.write_scalars) + ")",
        write_scalar_tuple_next="(" + "".join(f"{name}_next, " for name in program.write_scalars)
        + ")",
        zero_sums=_tuple(["0.0"] * len(program.sums)),
        standardized=_indented(standardized),
        bias=_indented(bias),
        bound="(" + "\n        ".join(textwrap.wrap(print_code(_bound_expression(update)), 88))
        + ")",
        entry=sp.sstr(update.entry),
        bias_formula=sp.sstr(update.bias),
        along_w=sp.sstr(update.along_w),
        standardized_bias_update=sp.sstr(update.standardized_bias_update),
    )


STATISTICS_TEMPLATE = Template('''\
# --- Inputs with a mean and a variance (input_mean, input_variance) ---------------------------
#
# x ~ N(μ, diag(s²)): the unit is the standard unit at r' = |s⊙w|, b' = μ·w + b, carried
# through the map T (docs/input_statistics.md), and the update is (G + damping_i·TᵀT)⁻¹ g with
# TᵀT = E[x*x*ᵀ]. Printed from fisher.input_statistics_update():
#     nat_w_j = $entry
#     nat_b   = $bias_formula
# with the standard unit's along_w = $along_w
# and nat_b_std = $standardized_bias_update, at (r_std, b_std, wg_std).

#: The row sums and the entry written, as three-address steps (row_passes.RowProgram); the
#: columns are rows of the arrays that ``_statistics_columns`` builds once per call.
_STATISTICS_PROGRAM = $program


@numba.njit(cache=True)
def _statistics_sum_terms(sums, w, g, columns, scalars):
    """``sums`` with one entry's products added, in float64: ``_STATISTICS_PROGRAM``'s sums on
    scalars (columns $column_names)."""
$sum_columns
$sum_scalars
$sum_steps
    return ($summed
    )


@numba.njit(cache=True)
def _statistics_entry(w, g, columns, scalars):
    """nat_w_j, ``_STATISTICS_PROGRAM``'s entry on scalars of one dtype (columns
    $write_column_names; scalars rounded to the dtype)."""
$write_columns
$write_scalars
$write_steps
    return $result


(_statistics_write_and_sum, _statistics_row_sums,
 _statistics_write_and_sum_pair) = row_passes.program_pass(
    _STATISTICS_PROGRAM, _statistics_sum_terms, _statistics_entry
)


@numba.njit(cache=True)
def _statistics_columns(input_mean, input_variance, like):
    """(columns, write_columns, columns64, layer, finite) from the (n,) float64 arrays of the
    input's mean and variance: the columns the sums read, float64, rows
    $column_names;
    those the writes read, rows $write_column_names, in the dtype of the array ``like``
    and in float64; the layer's (precision_max, mean_max, representable) for
    ``_statistics_row_update``; and whether every column is finite in float64."""
    n = input_mean.size
    columns = np.empty(($column_count, n))
    columns64 = np.empty(($write_column_count, n))
    write_columns = np.empty(($write_column_count, n), like.dtype)
    tiny, limit, _ = runtime.array_element_limits(like)
    precision_max = 0.0
    mean_max = 0.0
    finite = True
    representable = True
    for j in range(n):
$columns_body
    return columns, write_columns, columns64, (precision_max, mean_max, representable), finite


@numba.njit(cache=True)
def _standardized_unit(sums, b):
    """(r_std, b_std, wg_std) = (|s⊙w|, μ·w + b, w'·g') from a row's sums."""
    $sum_names = sums
$standardized
    return r_std, b_std, wg_std


@numba.njit(cache=True)
def _statistics_bias(sums, Abar00, along_w, nat_b_std):
    """nat_b from the standard unit's update and a row's sums."""
    $sum_names = sums
$bias
    return nat_b


@numba.njit(cache=True)
def _statistics_entry_bound(Abar00, along_w, g_b, norm_w, norm_g, mean_max, precision_max):
    """A bound on |nat_w_j| and on every value its steps form, from |w_j| ≤ norm_w,
    |g_j| ≤ norm_g, |mean_j| ≤ mean_max and precision_j ≤ precision_max."""
    return $bound


@numba.njit(cache=True)
def _statistics_row_head(sums, w_check, g_check, b_i, g_b, damping, lr, step, limits, layer):
    """``_row_head`` of a unit with input statistics, from its row sums (float64)."""
    code = _row_input_status(w_check, g_check, b_i, g_b)
    if code != _ROW_OK:
        return code, 0, 0.0, 0.0, 0.0
    r_std, b_std, wg_std = _standardized_unit(sums, b_i)
    coefficients = _coefficients(r_std, b_std, damping)
    return _statistics_row_update(r_std, coefficients, wg_std, sums, b_i, g_b, lr, step,
                                  limits, layer)


@numba.njit(cache=True)
def _statistics_row_update(r_std, coefficients, wg_std, sums, b_i, g_b, lr, step, limits,
                           layer):
    """``_row_update`` with input statistics: the standard unit's (Abar00, along_w, nat_b_std)
    at (r_std, wg_std), nat_b from them, and the mode from ``_statistics_entry_bound`` (with
    |w_j| ≤ r_std·√precision_max, |g_j| ≤ √Σ g²; for a step also
    |w| + max(1, |lr|)·bound).
    Mode 1 also needs the layer's write columns to be normal numbers of the dtype or zero
    (``layer`` = (precision_max, mean_max, representable))."""
    tiny, limit, cast_limit = limits
    precision_max, mean_max, representable_columns = layer
    Abar00, along_w, nat_b_std = _row_coefficients(r_std, coefficients, wg_std, g_b)
    nat_b = _statistics_bias(sums, Abar00, along_w, nat_b_std)
    norm_w = r_std * math.sqrt(precision_max)
    bound = _statistics_entry_bound(Abar00, along_w, g_b, norm_w, math.sqrt(sums[$bound_sum_index]),
                                    mean_max, precision_max)
    value_b = nat_b
    if step:
        bound = norm_w + max(1.0, abs(lr)) * bound
        value_b = b_i - lr * nat_b
    if not (math.isfinite(nat_b) and abs(value_b) < cast_limit):
        return _ROW_OVERFLOW, 0, 0.0, 0.0, 0.0
    representable = (representable_columns and _normal_or_zero(Abar00, tiny, limit)
                     and _normal_or_zero(along_w, tiny, limit)
                     and (not step or _normal_or_zero(lr, tiny, limit)))
    if bound <= limit and representable:  # False for NaN
        return _ROW_OK, 1, Abar00, along_w, value_b
    return _ROW_OK, 2, Abar00, along_w, value_b


@numba.njit(cache=True)
def _statistics_write_checked_row(w, g, lr, step, scalars, columns64, out):
    """``_write_checked_row`` with input statistics: the row in float64 (``_statistics_entry``
    on float64 values and columns), written rounded once if every entry is finite."""
    row = np.empty_like(w)
    finite = True
    for j in range(w.size):
        column = $columns64_values
        nat = _statistics_entry(np.float64(w[j]), np.float64(g[j]), column, scalars)
        if step:
            row[j] = np.float64(w[j]) - lr * nat
        else:
            row[j] = nat
        if not (math.isfinite(nat) and math.isfinite(row[j])):
            finite = False
    if finite:
        for j in range(w.size):  # a loop: ``out[:] = row`` compiles NumPy's broadcasting
            out[j] = row[j]
    return finite


@numba.njit(cache=True)
def _sums_are_finite(sums):
    for value in sums:
        if not math.isfinite(value):
            return False
    return True


@numba.njit(cache=True, inline="always")
def _statistics_head_of(i, sums, W, b, grad_W, grad_b, damping, unit_damping, lr, step, limits,
                        layer):
    """``_statistics_row_head`` of unit i from its row sums. A non-finite w_j or g_j makes
    Σ variance·w² or Σ g² non-finite; a row whose sums are not all finite is scanned for its
    inputs (``_first_non_finite``)."""
    w_check = 0.0
    g_check = 0.0
    if not _sums_are_finite(sums):
        bad = _first_non_finite(W[i], grad_W[i])
        if bad == _ROW_W_NOT_FINITE:
            w_check = math.nan
        elif bad == _ROW_GRAD_W_NOT_FINITE:
            g_check = math.nan
    damping_i = damping if unit_damping.size == 0 else unit_damping[i]
    return _statistics_row_head(sums, w_check, g_check, np.float64(b[i]),
                                np.float64(grad_b[i]), damping_i, lr, step, limits, layer)


@numba.njit(cache=True, inline="always")
def _statistics_store_bias(i, value_b, step, b, nat_b):
    if step:
        b[i] = value_b
    else:
        nat_b[i] = value_b


@numba.njit(cache=True, inline="always")
def _statistics_one_row(i, head, following, has_next, W, b, grad_W, grad_b, lr, step, nat_W,
                        nat_b, write, columns, write_columns, columns64, status):
    """Unit i written as its head says (mode 1 in the dtype, 2 in float64 and rounded once,
    0 not at all), in the loop that sums row ``following`` if ``has_next``: that row's sums
    (zeros otherwise)."""
    code, mode, Abar00, along_w, value_b = head
    status[i] = code
    g_b = np.float64(grad_b[i])
    out = W[i] if step else nat_W[i]
    next_scalars = (np.float64(grad_b[following]),)
    if mode == 1:
        sums = _statistics_write_and_sum(
            W[i], grad_W[i], out, W[following], grad_W[following], columns, write_columns,
            $write_scalar_tuple, next_scalars, lr, write, has_next,
        )
        _statistics_store_bias(i, value_b, step, b, nat_b)
        return sums
    if mode == 2:
        if _statistics_write_checked_row(W[i], grad_W[i], lr, step, $write_scalar_tuple,
                                         columns64, out):
            _statistics_store_bias(i, value_b, step, b, nat_b)
        else:
            status[i] = _ROW_OVERFLOW
    if not has_next:
        return $zero_sums
    return _statistics_row_sums(W[following], grad_W[following], columns, write_columns,
                                (0.0, 0.0, 0.0), next_scalars)


@numba.njit(cache=True)
def _statistics_run(W, b, grad_W, grad_b, damping, unit_damping, lr, step, nat_W, nat_b, first,
                    last, write, limits, columns, write_columns, columns64, layer, status):
    """Units first … last − 1 of ``_statistics_layer_kernel``, one after the other: each row
    written in the loop that sums the next (``_statistics_write_and_sum``). A non-finite w_j
    or g_j makes Σ variance·w² or Σ g² non-finite; a row whose sums are not all finite is
    scanned for its inputs (``_first_non_finite``)."""
    g_b = np.float64(grad_b[first])
    sums = _statistics_row_sums(W[first], grad_W[first], columns, write_columns,
                                (0.0, 0.0, g_b), (g_b,))
    for i in range(first, last):
        w_check = 0.0
        g_check = 0.0
        if not _sums_are_finite(sums):
            bad = _first_non_finite(W[i], grad_W[i])
            if bad == _ROW_W_NOT_FINITE:
                w_check = math.nan
            elif bad == _ROW_GRAD_W_NOT_FINITE:
                g_check = math.nan
        g_b = np.float64(grad_b[i])
        damping_i = damping if unit_damping.size == 0 else unit_damping[i]
        code, mode, Abar00, along_w, value_b = _statistics_row_head(
            sums, w_check, g_check, np.float64(b[i]), g_b, damping_i, lr, step, limits, layer,
        )
        status[i] = code
        w = W[i]
        g = grad_W[i]
        out = w if step else nat_W[i]
        has_next = i + 1 < last
        following = i + 1 if has_next else i
        next_scalars = (np.float64(grad_b[following]),)
        written = False
        if mode == 1:
            sums = _statistics_write_and_sum(
                w, g, out, W[following], grad_W[following], columns, write_columns,
                $write_scalar_tuple, next_scalars, lr, write, has_next,
            )
            written = True
        else:
            if mode == 2:
                written = _statistics_write_checked_row(
                    w, g, lr, step, $write_scalar_tuple, columns64, out
                )
                if not written:
                    status[i] = _ROW_OVERFLOW
            if has_next:
                sums = _statistics_row_sums(W[following], grad_W[following], columns,
                                            write_columns, (0.0, 0.0, 0.0), next_scalars)
        if written:
            if step:
                b[i] = value_b
            else:
                nat_b[i] = value_b
    if write == row_passes.STREAM:
        row_passes.fence()


@numba.njit(cache=True)
def _statistics_run_pairs(W, b, grad_W, grad_b, damping, unit_damping, lr, step, nat_W, nat_b,
                          first, last, write, limits, columns, write_columns, columns64, layer,
                          status):
    """``_statistics_run`` for long rows (``row_passes.PAIR_MIN_ROW_BYTES``), with the sums
    of the next two rows always known: two rows written in the loop that sums the two after
    them (``_statistics_write_and_sum_pair``, each column line loaded once for both) where
    both are written in the dtype from the same offset in a cache line; otherwise one row
    written in the loop that sums the row after the next (``_statistics_one_row``)."""
    g_b = np.float64(grad_b[first])
    sums = _statistics_row_sums(W[first], grad_W[first], columns, write_columns,
                                (0.0, 0.0, g_b), (g_b,))
    following = min(first + 1, last - 1)
    g_b_next = np.float64(grad_b[following])
    next_sums = _statistics_row_sums(W[following], grad_W[following], columns, write_columns,
                                     (0.0, 0.0, g_b_next), (g_b_next,))
    head = _statistics_head_of(first, sums, W, b, grad_W, grad_b, damping, unit_damping, lr,
                               step, limits, layer)
    i = first
    while i < last:
        if i + 1 == last:
            _statistics_one_row(i, head, i, False, W, b, grad_W, grad_b, lr, step, nat_W,
                                nat_b, write, columns, write_columns, columns64, status)
            break
        head_next = _statistics_head_of(i + 1, next_sums, W, b, grad_W, grad_b, damping,
                                        unit_damping, lr, step, limits, layer)
        out = W[i] if step else nat_W[i]
        out_next = W[i + 1] if step else nat_W[i + 1]
        has_next = i + 2 < last
        after = i + 2 if has_next else i
        if not (head[1] == 1 and head_next[1] == 1 and row_passes.write_head(out, write)
                == row_passes.write_head(out_next, write)):
            after_sums = _statistics_one_row(i, head, after, has_next, W, b, grad_W, grad_b,
                                             lr, step, nat_W, nat_b, write, columns,
                                             write_columns, columns64, status)
            i += 1
            sums, next_sums, head = next_sums, after_sums, head_next
            continue
        _, _, Abar00, along_w, value_b = head
        _, _, Abar00_next, along_w_next, value_b_next = head_next
        g_b = np.float64(grad_b[i])
        g_b_next = np.float64(grad_b[i + 1])
        after_next = i + 3 if i + 3 < last else after
        status[i] = head[0]
        status[i + 1] = head_next[0]
        sums, next_sums = _statistics_write_and_sum_pair(
            W[i], grad_W[i], out, W[i + 1], grad_W[i + 1], out_next, W[after], grad_W[after],
            W[after_next], grad_W[after_next], columns, write_columns, $write_scalar_tuple,
            $write_scalar_tuple_next, (np.float64(grad_b[after]),),
            (np.float64(grad_b[after_next]),), lr, write, has_next,
        )
        _statistics_store_bias(i, value_b, step, b, nat_b)
        _statistics_store_bias(i + 1, value_b_next, step, b, nat_b)
        i += 2
        if has_next:
            head = _statistics_head_of(i, sums, W, b, grad_W, grad_b, damping, unit_damping,
                                       lr, step, limits, layer)
    if write == row_passes.STREAM:
        row_passes.fence()


@numba.njit(parallel=True, cache=True)
def _statistics_layer_kernel(W, b, grad_W, grad_b, damping, unit_damping, lr, step, nat_W,
                             nat_b, streaming_min_bytes, runs, columns, write_columns, columns64,
                             layer):
    """``_layer_kernel`` for inputs with a mean and a variance: the same runs of consecutive
    units in parallel (``_statistics_run``, or ``_statistics_run_pairs`` for long rows), with
    the program's sums and entry and the columns of ``_statistics_columns``. Returns
    (argument_error, status) as ``_layer_kernel``."""
    argument_error = runtime.layer_argument_error(
        W, b, grad_W, grad_b, nat_W, nat_b, step, lr, damping, unit_damping
    )
    if argument_error:
        return argument_error, None
    limits = runtime.array_element_limits(W)
    write = row_passes.write_mode(nat_W, step, streaming_min_bytes)
    m = W.shape[0]
    status = np.empty(m, dtype=np.uint8)
    runs = min(m, runs)
    pairs = W.shape[1] * W.itemsize >= row_passes.PAIR_MIN_ROW_BYTES
    for run in numba.prange(runs):
        first, last = run * m // runs, (run + 1) * m // runs
        if pairs:
            _statistics_run_pairs(W, b, grad_W, grad_b, damping, unit_damping, lr, step, nat_W,
                                  nat_b, first, last, write, limits, columns, write_columns,
                                  columns64, layer, status)
        else:
            _statistics_run(W, b, grad_W, grad_b, damping, unit_damping, lr, step, nat_W,
                            nat_b, first, last, write, limits, columns, write_columns,
                            columns64, layer, status)
    for i in range(m):
        if status[i] != _ROW_OK:
            return 0, status
    return 0, None


def _statistics_layer_columns(input_mean, input_variance, W):
    """``_statistics_columns`` for checked statistics of a layer with weights W (any array
    with .shape and .dtype)."""
    mean, variance = runtime.check_input_statistics(input_mean, input_variance, W.shape[1])
    like = np.empty(0, np.dtype(W.dtype))  # the dtype of the writes
    columns, write_columns, columns64, layer, finite = _statistics_columns(mean, variance, like)
    if not finite:
        runtime.raise_for_input_statistics_overflow(mean, variance)
    return columns, write_columns, columns64, layer


def _statistics_natural_gradient(W, b, grad_W, grad_b, damping, out, input_mean,
                                 input_variance):
    """``natural_gradient`` with input_mean or input_variance given."""
    W, b, grad_W, grad_b = runtime.check_layer_shapes(W, b, grad_W, grad_b)
    damping, unit_damping = runtime.check_layer_damping(damping, W.shape[0])
    if out is None:
        nat_W = np.empty_like(W)
        nat_b = np.empty_like(b)
    else:
        nat_W, nat_b = runtime.check_out(out, W, b)
    columns = _statistics_layer_columns(input_mean, input_variance, W)
    argument_error, status = _statistics_layer_kernel(
        W, b, grad_W, grad_b, damping, unit_damping, 0.0, False, nat_W, nat_b,
        row_passes.STREAMING_MIN_BYTES, numba.config.NUMBA_NUM_THREADS, *columns,
    )
    if argument_error or status is not None:
        runtime.raise_for_layer_errors(
            argument_error, status, (W, b, grad_W, grad_b), out, damping=damping,
            input_statistics=True, unit_damping=unit_damping,
        )
    return nat_W, nat_b


def _statistics_natural_gradient_step(W, b, grad_W, grad_b, lr, damping, input_mean,
                                      input_variance):
    """``natural_gradient_step`` with input_mean or input_variance given."""
    lr = runtime.check_learning_rate(lr)
    W, b, grad_W, grad_b = runtime.check_step_arguments(W, b, grad_W, grad_b)
    damping, unit_damping = runtime.check_layer_damping(damping, W.shape[0])
    columns = _statistics_layer_columns(input_mean, input_variance, W)
    argument_error, status = _statistics_layer_kernel(
        W, b, grad_W, grad_b, damping, unit_damping, lr, True, W, b,
        row_passes.STREAMING_MIN_BYTES, numba.config.NUMBA_NUM_THREADS, *columns,
    )
    if argument_error or status is not None:
        runtime.raise_for_layer_errors(
            argument_error, status, (W, b, grad_W, grad_b), step=True, lr=lr, damping=damping,
            input_statistics=True, unit_damping=unit_damping,
        )
    return W, b
''')


def _tuple(items) -> str:
    items = list(items)
    return f"({items[0]},)" if len(items) == 1 else "(" + ", ".join(items) + ")"


def render_cuda(fast_rule: bool, update: fisher.InputStatisticsUpdate | None = None) -> str:
    """The GPU part of the statistics section: the per-row head (the fast rule's where the
    module has one) and the kernels."""
    update = update or fisher.input_statistics_update()
    program = row_program(update)
    count = len(program.sums)
    head = FAST_RULE_STATISTICS_HEAD if fast_rule else DIRECT_STATISTICS_HEAD
    return head + "\n\n" + STATISTICS_CUDA_TEMPLATE.substitute(
        count=count,
        checks=count + 2,
        w_check=count,
        g_check=count + 1,
        zeros=_tuple(["0.0"] * count),
        shared_sums=_tuple(f"sums[{q}, k]" for q in range(count)),
        sum_column_values=_tuple(f"columns[{q}, j]" for q in range(len(program.sum_columns))),
        columns64_values=_tuple(f"columns64[{q}, j]"
                                for q in range(len(program.write_columns))),
        write_column_values=_tuple(f"write_columns[{q}, j]"
                                   for q in range(len(program.write_columns))),
        row_sums=_tuple(f"sums[i, {q}]" for q in range(count)),
        write_scalars=_tuple({"Abar00": "a", "along_w": "c", "g_b": "G_b[i]"}[name]
                             for name in program.write_scalars),
        write_scalars64=_tuple({"Abar00": "Abar00", "along_w": "along_w",
                                "g_b": "np.float64(G_b[i])"}[name]
                               for name in program.write_scalars),
    )


DIRECT_STATISTICS_HEAD = '''\
@numba.njit(cache=True)
def _device_statistics_row_head(sums, w_check, g_check, b_i, g_b, damping, lr, step, limits,
                                layer, table):
    """``_statistics_row_head``, in the fused GPU kernel (``table`` unused)."""
    return _statistics_row_head(sums, w_check, g_check, b_i, g_b, damping, lr, step, limits,
                                layer)'''

FAST_RULE_STATISTICS_HEAD = '''\
@numba.njit(cache=True)
def _device_statistics_row_head(sums, w_check, g_check, b_i, g_b, damping, lr, step, limits,
                                layer, table):
    """``_statistics_row_head`` by the fast rule alone at (r_std, b_std), as
    ``_device_row_head``: status _ROW_DEFERRED where it refuses the unit."""
    code = _row_input_status(w_check, g_check, b_i, g_b)
    if code != _ROW_OK:
        return code, 0, 0.0, 0.0, 0.0
    r_std, b_std, wg_std = _standardized_unit(sums, b_i)
    accepted, moments = runtime.trapezoid_moments(r_std, b_std, table, STEP_LIMITS)
    if not accepted:
        return _ROW_DEFERRED, 0, 0.0, 0.0, 0.0
    A00, m1, v, q = moments
    coefficients = _coefficients_of_moments(A00, m1, v, q, damping)
    return _statistics_row_update(r_std, coefficients, wg_std, sums, b_i, g_b, lr, step,
                                  limits, layer)'''

STATISTICS_CUDA_TEMPLATE = Template('''\
@numba.njit(cache=True)
def _statistics_row_heads_kernel(sums, b, grad_b, damping, unit_damping, lr, step, limits,
                                 layer, heads, status):
    """``_row_heads_kernel`` with input statistics (``sums`` per row: the program's sums, then
    the two finiteness checks), one unit after the other: it serves the units the fused
    kernel leaves to the host and the two-kernel fallback, and a parallel loop would cost its
    compilation (seconds) for each dtype and activation."""
    for i in range(sums.shape[0]):
        damping_i = damping if unit_damping.size == 0 else unit_damping[i]
        code, mode, Abar00, along_w, value_b = _statistics_row_head(
            $row_sums, sums[i, $w_check], sums[i, $g_check],
            np.float64(b[i]), np.float64(grad_b[i]), damping_i, lr, step, limits, layer,
        )
        status[i] = code
        heads[i, 0] = Abar00
        heads[i, 1] = along_w
        heads[i, 2] = mode
        heads[i, 3] = value_b


def _cuda_build_statistics():
    """The GPU kernels with input statistics (once per process): those of ``_cuda_build`` with
    the program's sums (per thread ``_statistics_sum_terms``, then a tree in shared memory)
    and entry (``_statistics_entry``) instead of |w|², w·g, |g|² and a·g + c·w."""
    if _CUDA.get("statistics_kernels") is not None:
        return _CUDA["statistics_kernels"]
    cuda, _, _, _, threads = _cuda_build()
    float64 = numba.float64
    row_head = cuda.jit(device=True)(_device_statistics_row_head.py_func)

    @cuda.jit(device=True)
    def block_reduce(sums, count, k, tx, width):
        s = width // 2
        while s > 0:
            if tx < s:
                for q in range(count):
                    sums[q, k] += sums[q, k + s]
            _cuda.syncthreads()
            s //= 2

    @cuda.jit(device=True)
    def row_sums(W, G, G_b, columns, i, tx, width, sums, k):
        totals = $zeros
        w_check = g_check = 0.0
        if i < W.shape[0]:
            scalars = (np.float64(G_b[i]),)
            for j in range(tx, W.shape[1], width):
                x = np.float64(W[i, j])
                y = np.float64(G[i, j])
                column = $sum_column_values
                totals = _statistics_sum_terms(totals, x, y, column, scalars)
                w_check += x * 0.0
                g_check += y * 0.0
        for q in range($count):
            sums[q, k] = totals[q]
        sums[$w_check, k] = w_check
        sums[$g_check, k] = g_check
        _cuda.syncthreads()
        block_reduce(sums, $checks, k, tx, width)

    @cuda.jit(device=True)
    def finish_rows(W, b, G, G_b, lr, step, cast_limit, nat_W, nat_b, status, head, sums, i,
                    ty, tx, k, width, write_columns, columns64):
        m, n = W.shape
        mode = head[2, ty] if i < m else 0.0
        Abar00 = head[0, ty]
        along_w = head[1, ty]
        if _cuda.syncthreads_or(1 if mode == 2.0 else 0):
            bad = 0.0
            if mode == 2.0:
                scalars = $write_scalars64
                for j in range(tx, n, width):
                    x = np.float64(W[i, j])
                    column = $columns64_values
                    nat = _statistics_entry(x, np.float64(G[i, j]), column, scalars)
                    value = x - lr * nat if step else nat
                    if not (math.isfinite(nat) and abs(value) < cast_limit):
                        bad = 1.0
            sums[0, k] = bad
            _cuda.syncthreads()
            block_reduce(sums, 1, k, tx, width)
            if tx == 0 and mode == 2.0:
                if sums[0, k] == 0.0:
                    head[2, ty] = 1.0
                else:
                    head[2, ty] = 0.0
                    status[i] = _ROW_OVERFLOW
            _cuda.syncthreads()
            mode = head[2, ty] if i < m else 0.0
        if mode == 1.0:
            if tx == 0:
                if step:
                    b[i] = head[3, ty]
                else:
                    nat_b[i] = head[3, ty]
            rate = W.dtype.type(lr)
            a = W.dtype.type(Abar00)
            c = W.dtype.type(along_w)
            scalars = $write_scalars
            for j in range(tx, n, width):
                x = W[i, j]
                column = $write_column_values
                nat = _statistics_entry(x, G[i, j], column, scalars)
                if step:
                    W[i, j] = x - rate * nat
                else:
                    nat_W[i, j] = nat

    @cuda.jit
    def fused(W, b, G, G_b, damping, unit_damping, lr, step, limits, nat_W, nat_b, status,
              table, deferred_sums, columns, write_columns, columns64, layer):
        sums = _cuda.shared.array(($checks, threads), float64)
        head = _cuda.shared.array((4, threads), float64)
        tx = _cuda.threadIdx.x
        ty = _cuda.threadIdx.y
        width = _cuda.blockDim.x
        i = _cuda.blockIdx.x * _cuda.blockDim.y + ty
        k = ty * width + tx
        row_sums(W, G, G_b, columns, i, tx, width, sums, k)
        if tx == 0 and i < W.shape[0]:
            row = $shared_sums
            damping_i = damping if unit_damping.shape[0] == 0 else unit_damping[i]
            code, mode, Abar00, along_w, value_b = row_head(
                row, sums[$w_check, k], sums[$g_check, k],
                np.float64(b[i]), np.float64(G_b[i]), damping_i, lr, step, limits, layer, table,
            )
            status[i] = code
            if code == _ROW_DEFERRED:
                for q in range($checks):
                    deferred_sums[i, q] = sums[q, k]
            head[0, ty] = Abar00
            head[1, ty] = along_w
            head[2, ty] = mode
            head[3, ty] = value_b
        _cuda.syncthreads()
        finish_rows(W, b, G, G_b, lr, step, limits[2], nat_W, nat_b, status, head, sums, i, ty,
                    tx, k, width, write_columns, columns64)

    @cuda.jit
    def sums_only(W, G, G_b, columns, out):
        sums = _cuda.shared.array(($checks, threads), float64)
        tx = _cuda.threadIdx.x
        ty = _cuda.threadIdx.y
        width = _cuda.blockDim.x
        i = _cuda.blockIdx.x * _cuda.blockDim.y + ty
        k = ty * width + tx
        row_sums(W, G, G_b, columns, i, tx, width, sums, k)
        if tx == 0 and i < W.shape[0]:
            for q in range($checks):
                out[i, q] = sums[q, k]

    @cuda.jit
    def apply(W, b, G, G_b, heads, lr, step, limits, nat_W, nat_b, status, write_columns,
              columns64):
        sums = _cuda.shared.array((1, threads), float64)
        head = _cuda.shared.array((4, threads), float64)
        tx = _cuda.threadIdx.x
        ty = _cuda.threadIdx.y
        width = _cuda.blockDim.x
        i = _cuda.blockIdx.x * _cuda.blockDim.y + ty
        k = ty * width + tx
        if tx == 0 and i < W.shape[0]:
            for q in range(4):
                head[q, ty] = heads[i, q]
        _cuda.syncthreads()
        finish_rows(W, b, G, G_b, lr, step, limits[2], nat_W, nat_b, status, head, sums, i, ty,
                    tx, k, width, write_columns, columns64)

    _CUDA["statistics_kernels"] = (fused, sums_only, apply)
    return _CUDA["statistics_kernels"]


def _cuda_run_statistics(W, b, grad_W, grad_b, damping, unit_damping, lr, step, nat_W, nat_b,
                         statistics):
    """``_cuda_run`` with input statistics: ``statistics`` = (columns, write_columns, columns64,
    layer) of ``_statistics_columns``, on the host."""
    cuda = _cuda_build()[0]
    fused, sums_only, apply = _cuda_build_statistics()
    m, n = W.shape
    limits = runtime.element_limits(np.dtype(W.dtype))
    if m == 0:
        return np.empty(0, dtype=np.uint8)
    host_columns, host_write_columns, host_columns64, layer = statistics
    columns, write_columns, columns64 = (
        cuda.to_device(array) for array in (host_columns, host_write_columns, host_columns64)
    )
    grid, block = _cuda_launch_shape(m, n, _CUDA["threads"])
    finish = (apply, (grid, block), (W, b, grad_W, grad_b, nat_W, nat_b), damping,
              unit_damping, lr, step, limits, layer, write_columns, columns64)
    if _CUDA["device_coefficients"] is not False:
        status = cuda.device_array(m, dtype=np.uint8)
        deferred_sums = cuda.device_array((m if _DEVICE_TABLE is not None else 1, $checks))
        try:
            fused[grid, block](W, b, grad_W, grad_b, damping, _cuda_unit_damping(unit_damping),
                               lr, step, limits, nat_W, nat_b, status, _cuda_device_table(),
                               deferred_sums, columns, write_columns, columns64, layer)
            _CUDA["device_coefficients"] = True
        except (numba.core.errors.NumbaError, TypeError) as error:
            import warnings

            _CUDA["device_coefficients"] = False
            warnings.warn(
                "the per-unit coefficients do not compile for the GPU "
                f"({type(error).__name__}: {str(error).splitlines()[0]}); using the two-kernel "
                "path with the coefficients on the host (one extra read of W and grad_W)",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            host_status = status.copy_to_host()
            deferred = np.flatnonzero(host_status == _ROW_DEFERRED)
            if deferred.size == 0:
                return host_status
            return _cuda_finish_statistics(*finish, host_status, deferred, deferred_sums)
    sums = cuda.device_array((m, $checks), dtype=np.float64)
    sums_only[grid, block](W, grad_W, grad_b, columns, sums)
    return _cuda_finish_statistics(*finish, np.empty(m, dtype=np.uint8), np.arange(m), sums)


def _cuda_finish_statistics(apply, launch, arrays, damping, unit_damping, lr, step, limits,
                            layer, write_columns, columns64, host_status, deferred,
                            deferred_sums):
    """``_cuda_finish_deferred`` with input statistics."""
    W, b, grad_W, grad_b, nat_W, nat_b = arrays
    heads = np.zeros((W.shape[0], 4))
    part_heads = np.empty((deferred.size, 4))
    part_status = np.empty(deferred.size, dtype=np.uint8)
    _statistics_row_heads_kernel(
        deferred_sums.copy_to_host()[deferred], b.copy_to_host()[deferred],
        grad_b.copy_to_host()[deferred], damping, _unit_damping_of(unit_damping, deferred), lr,
        step, limits, layer, part_heads, part_status,
    )
    heads[deferred] = part_heads
    host_status[deferred] = part_status
    status = _cuda.to_device(host_status)
    grid, block = launch
    apply[grid, block](W, b, grad_W, grad_b, _cuda.to_device(heads), lr, step, limits, nat_W,
                       nat_b, status, write_columns, columns64)
    return status.copy_to_host()


def _cuda_statistics_of(input_mean, input_variance, W):
    """``_statistics_layer_columns`` for a GPU call whose weights are W (host or device), or
    None when both statistics are None."""
    if input_mean is None and input_variance is None:
        return None
    return _statistics_layer_columns(input_mean, input_variance, W)
''')
