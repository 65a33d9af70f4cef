"""The mean-field section of a generated module: ``mean_field(tau)`` from ``expectations.py``.

Each of E[φ(τv)] and E[φ(τv)²] becomes one jitted function whose body is printed from its
``Expectation``: a constant, a polynomial in τ (Horner form), the Gaussian terms of f summed
like those of φ'² (``cpu._moments_body`` at r = τ, b = 0), a closed form after its stable
rewrite, or the numerical path's adaptive quadrature of the even part f_e; the closed forms
that cancel near τ = 0 are preceded by their Taylor series there. E[φ'(τv)²] is the module's
own A00 at r = τ, b = 0.
"""

from __future__ import annotations

import textwrap
from string import Template

import sympy as sp

from fisher_sym.codegen.printer import print_assignments, print_code
from fisher_sym.expectations import TAU, Expectation, MeanFieldPlan, Series
from fisher_sym.stable import T_POSITIVE

#: Series with more nonzero coefficients than this are summed from a table, not inline.
INLINE_SERIES_TERMS = 6

SECTION = Template('''\
# --- the mean field: E[φ(τv)], E[φ(τv)²], E[φ'(τv)²] for v ~ N(0, 1) --------------------------

# How E[φ(τv)] and E[φ(τv)²] are computed (fisher_sym.expectations): "constant", "polynomial",
# "gaussian terms", "closed form" or "numerical".
MEAN_FIELD_KINDS = $kinds
$tables
@numba.njit(cache=True, error_model="numpy")
def _activation_mean(tau):
$mean_doc
$mean_body


@numba.njit(cache=True, error_model="numpy")
def _activation_second_moment(tau):
$second_doc
$second_body


@numba.njit(cache=True)
def _mean_field_kernel(tau):
    out = np.empty((3, tau.size))
    for i in range(tau.size):
        out[0, i] = _activation_mean(tau[i])
        out[1, i] = _activation_second_moment(tau[i])
        out[2, i] = _tilted_moments(tau[i], 0.0)[0]
    return out


def mean_field(tau):
    """(E[φ(τv)], E[φ(τv)²], E[φ'(τv)²]) for v ~ N(0, 1), as float64.

    ``tau`` ≥ 0, the standard deviation of a unit's pre-activation u = τv, broadcasts like a
    NumPy ufunc; a scalar gives floats. At tau = 0: (φ(0), φ(0)², the mean of the one-sided
    limits of φ'(0)²). E[φ'(τv)²] is A00 of ``fisher_blocks`` at r = tau, b = 0. Raises
    TypeError or ValueError, before any work, for tau that is not real, finite and ≥ 0, and
    FloatingPointError naming the tau at which a result is not a finite double.
    """
    tau = mean_field_runtime.check_tau(tau)
    out = _mean_field_kernel(tau.ravel())
    mean_field_runtime.raise_for_non_finite(out, tau.ravel())
    return _shaped(tuple(out), tau.shape)
''')

NUMERICAL = Template('''
# The numerical path (mean_field_runtime): E[f(τv)] = 2∫_0^40 f_e(τz) φ(z) dz for the even
# part f_e(u) = (f(u) + f(−u))/2, by adaptive Gauss–Legendre quadrature in z with panels from
# the kinks of f_e on u > 0 (MEAN_FIELD_KINKS) and u = 0 on the scale 1/τ, and the Gaussian's.
MEAN_FIELD_KINKS = $kinks


@numba.njit(cache=True, error_model="numpy")
def _even_part(u, component):
    """f_e(u) at u ≥ 0 for f = φ (component 0) or f = φ² (component 1), in a form that
    neither overflows nor cancels (t = exp(−u))."""
$even_body


@numba.njit(cache=True)
def _even_part_panel(tau, component, lower, upper):
    """Gauss–Legendre sums over z ∈ [lower, upper] of 2 f_e(τz) φ(z) and of its |·|."""
    nodes, weights = mean_field_runtime.panel_nodes(lower, upper)
    total = magnitude = 0.0
    for k in range(nodes.size):
        value = weights[k] * _even_part(tau * nodes[k], component)
        total += value
        magnitude += abs(value)
    return total, magnitude


@numba.njit(cache=True)
def _even_part_integral(tau, component):
    """E[f(τv)] = 2∫_0^40 f_e(τz) φ(z) dz (tau > 0): each panel is split in two until its halves
    agree with it to MEAN_FIELD_TOLERANCE of the summed |integrand|. NaN where that fails, or
    where the integrand has not decayed by z = 40 (mean_field then raises)."""
    edges = mean_field_runtime.panel_edges(tau, MEAN_FIELD_KINKS)
    limit = mean_field_runtime.MEAN_FIELD_MAX_PANELS
    lower = np.empty(limit)
    upper = np.empty(limit)
    sums = np.empty(limit)
    magnitude = last = 0.0
    for i in range(edges.size - 1):
        sums[i], last = _even_part_panel(tau, component, edges[i], edges[i + 1])
        lower[i], upper[i] = edges[i], edges[i + 1]
        magnitude += last
    tolerance = mean_field_runtime.MEAN_FIELD_TOLERANCE * magnitude
    if last > 1e-3 * tolerance:
        return math.nan
    size = edges.size - 1
    total = 0.0
    while size > 0:
        size -= 1
        a, c, whole = lower[size], upper[size], sums[size]
        middle = 0.5 * (a + c)
        left, _ = _even_part_panel(tau, component, a, middle)
        right, _ = _even_part_panel(tau, component, middle, c)
        if abs(left + right - whole) <= tolerance or middle == a or middle == c:
            total += left + right
        elif size + 2 > limit:
            return math.nan
        else:
            lower[size], upper[size], sums[size] = a, middle, left
            lower[size + 1], upper[size + 1], sums[size + 1] = middle, c, right
            size += 2
    return total

''')


def _number(value: sp.Expr) -> str:
    """A constant as a correctly rounded float literal."""
    return repr(float(sp.N(value, 30)))


def _series_lines(series: Series, name: str) -> tuple[list[str], list[str]]:
    """(module-level table lines, function-body lines returning the series at tau)."""
    powers = [k for k, c in enumerate(series.coefficients) if c != 0]
    if not powers:
        return [], ["return 0.0"]
    if len(powers) <= INLINE_SERIES_TERMS:
        polynomial = sum(sp.Float(float(sp.N(series.coefficients[k], 30))) * TAU**k for k in powers)
        return [], [f"return {print_code(sp.horner(polynomial, TAU))}"]
    lowest = powers[0]
    differences = {b - a for a, b in zip(powers[:-1], powers[1:], strict=True)}
    step = 2 if all(d % 2 == 0 for d in differences) else 1
    table = [_number(series.coefficients[k]) for k in range(lowest, powers[-1] + 1, step)]
    lines = [f"{name} = np.array(["] + [f"    {value}," for value in table] + ["])"]
    return lines, [f"return mean_field_runtime.power_series({name}, tau, {lowest}, {step})"]


def _how(expectation: Expectation) -> str:
    """One line for the function's docstring."""
    series = expectation.series
    near_zero = (
        f"; below tau = {series.limit:g} its Taylor series in tau ({len(series.coefficients)} "
        "coefficients), where the closed form's terms cancel"
        if series is not None and series.limit != float("inf")
        else ""
    )
    if expectation.kind == "constant":
        return f"{sp.sstr(expectation.closed_form)} for every tau ({expectation.reason})"
    if expectation.kind == "polynomial":
        return f"{sp.sstr(expectation.closed_form)}, exactly ({expectation.reason})"
    if expectation.kind == "gaussian terms":
        return "the sum of the closed forms of f's Gaussian terms" + near_zero
    if expectation.kind == "closed form":
        return f"the closed form of {expectation.reason}" + near_zero
    return "adaptive quadrature of the even part f_e (``_even_part_integral``)"


def _docstring(text: str) -> str:
    """A function docstring, wrapped at 96 characters."""
    wrapped = textwrap.fill(
        '"""' + text + '"""', 96, initial_indent="    ", subsequent_indent="    "
    )
    return wrapped


def _body(expectation: Expectation, component: int, name: str) -> tuple[str, list[str]]:
    """(the function body, module-level table lines) for one expectation."""
    from fisher_sym.codegen.cpu import _moments_body

    lines, tables = [], []
    at_zero = f"if tau == 0.0:\n    return {_number(expectation.at_zero)}"
    if expectation.kind == "constant":
        lines.append(f"return {_number(expectation.closed_form)}")
    elif expectation.kind == "polynomial":
        tables, body = _series_lines(expectation.series, name)
        lines += body
    elif expectation.kind == "numerical":
        lines += [at_zero, f"return _even_part_integral(tau, {component})"]
    else:
        if expectation.series is not None:
            tables, body = _series_lines(expectation.series, name)
            lines.append(f"if tau <= {expectation.series.limit!r}:")
            lines += [f"    {line}" for line in body]
        else:
            lines.append(at_zero)
        if expectation.kind == "gaussian terms":
            moments_body, term_names = _moments_body(expectation.terms)
            lines += ["r = tau", "b = 0.0"]
            lines += [line[4:] for line in moments_body.splitlines()]
            lines.append(f"return mean_field_runtime.sum_of_terms(({term_names}))")
        else:
            lines += print_assignments(["value"], [expectation.expression], prefix="c")
            lines.append("return value")
    body = "\n".join(f"    {line}" for text in lines for line in text.splitlines())
    return body, tables


def _even_body(plan: MeanFieldPlan) -> str:
    """An if-chain over the pieces of f_e on u > 0, per numerical component."""
    lines = []
    for component, expectation in enumerate((plan.mean, plan.second_moment)):
        lines.append(f"    if component == {component}:  # f = {sp.sstr(expectation.function)}")
        if expectation.kind != "numerical":
            lines.append(f"        return 0.0  # {expectation.label} is not integrated numerically")
            continue
        if any(piece.expression.has(T_POSITIVE) for piece in expectation.even_pieces):
            lines.append(f"        {T_POSITIVE} = math.exp(-u)")
        for index, piece in enumerate(expectation.even_pieces):
            last = index == len(expectation.even_pieces) - 1
            indent = "        "
            if not (last and index == 0):
                keyword = (
                    "else:"
                    if last
                    else f"{'if' if index == 0 else 'elif'} u < {_number(piece.upper)}:"
                )
                lines.append(f"        {keyword}  # u in ({piece.lower}, {piece.upper})")
                indent = "            "
            lines += [
                f"{indent}{line}"
                for line in print_assignments(["value"], [piece.expression], prefix="e")
            ]
            lines.append(f"{indent}return value")
    lines.append("    return math.nan")
    return "\n".join(lines)


def render_section(plan: MeanFieldPlan) -> str:
    """The module source of ``mean_field`` and what it calls."""
    mean_body, mean_tables = _body(plan.mean, 0, "_MEAN_SERIES")
    second_body, second_tables = _body(plan.second_moment, 1, "_SECOND_MOMENT_SERIES")
    tables = []
    if any(e.kind == "numerical" for e in (plan.mean, plan.second_moment)):
        kinks = sorted(
            {k for e in (plan.mean, plan.second_moment) if e.kind == "numerical" for k in e.kinks},
            key=float,
        )
        tables.append(
            NUMERICAL.substitute(
                kinks="np.array([" + ", ".join(_number(k) for k in kinks) + "], dtype=np.float64)",
                even_body=_even_body(plan),
            )
        )
    for lines in (mean_tables, second_tables):
        if lines:
            tables.append("\n" + "\n".join(lines) + "\n")
    return SECTION.substitute(
        kinds=repr((plan.mean.kind, plan.second_moment.kind)),
        tables="".join(tables) + "\n",
        mean_doc=_docstring(f"E[φ(τv)], tau ≥ 0: {_how(plan.mean)}."),
        second_doc=_docstring(f"E[φ(τv)²], tau ≥ 0: {_how(plan.second_moment)}."),
        mean_body=mean_body,
        second_body=second_body,
    )


def header_lines(plan: MeanFieldPlan) -> list[str]:
    """The module docstring's lines on the mean field."""
    lines = ["Mean field (mean_field), v ~ N(0, 1), for tau ≥ 0:"]
    for expectation in (plan.mean, plan.second_moment):
        if expectation.kind == "numerical":
            pieces = "; ".join(
                f"{sp.sstr(p.expression)} on u in ({p.lower}, {p.upper})"
                for p in expectation.even_pieces
            )
            lines.append(
                f"    {expectation.label}: numerically, 2∫_0^40 f_e(τz) φ(z) dz by adaptive "
                "Gauss–Legendre quadrature, each panel halved until its halves agree with it to "
                "MEAN_FIELD_TOLERANCE = 1e-13 of the summed |integrand| (the accuracy knob, "
                f"in fisher_sym.mean_field_runtime); f_e(u) = {pieces}, t = exp(−u). "
                f"No closed form: {expectation.reason}."
            )
            continue
        text = (
            f"    {expectation.label} = {sp.sstr(expectation.closed_form)} ({expectation.reason})"
        )
        if expectation.kind == "gaussian terms":
            text += ", summed term by term"
        if expectation.kind == "closed form":
            text += f", evaluated as {sp.sstr(expectation.expression)}"
        series = expectation.series
        if series is not None and series.limit != float("inf"):
            text += (
                f"; for tau ≤ {series.limit:g} its Taylor series in tau, "
                f"{len(series.coefficients)} coefficients"
            )
        lines.append(text + ".")
    lines.append("    E[φ'(τv)²] = A00 at r = tau, b = 0.")
    return lines
