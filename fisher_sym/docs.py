"""Documentation generated from the derivation: one Markdown page and two plots per activation.

For an activation ``name`` the page ``docs/activations/<name>.md`` states φ and φ' (sympy.latex),
the pieces and Gaussian terms of φ'² that ``gaussian.derive_integrals`` found, the closed forms
of A00, A0n, Ann (or why there are none), the inverse coefficients as ``fisher.py`` solved and
rewrote them, the mean-field expectations as ``expectations.py`` derived them, and the accuracy
of the generated kernels against the mpmath reference on the small grid
ACCURACY_RADII × ACCURACY_BIASES (× ACCURACY_DAMPINGS). The plots ``<name>_blocks.png`` and
``<name>_inverse.png`` show what ``generated.<name>`` computes against t = b/r.

Everything is deterministic: the same derivation gives byte-identical pages and PNGs, so
``stale_docs`` can compare bytes the way ``python -m derive --check`` compares modules. The
accuracy table is the slow part (about a minute per activation at 40 digits, several for GELU,
whose reference needs hundreds of digits in its tails); it has no time limit, which would make
it depend on the machine. ``stale_docs`` with ``recompute_accuracy=False`` reuses the table of
the committed page and checks the rest.
"""

from __future__ import annotations

import importlib
import io
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from fisher_sym import fisher, report
from fisher_sym.activations import Activation, ActivationError, U
from fisher_sym.codegen.emit import write_atomically
from fisher_sym.expectations import TAU, Expectation, derive_mean_field
from fisher_sym.gaussian import (
    B,
    GaussianIntegrals,
    NoClosedForm,
    Piece,
    R,
    derive_integrals,
    numerical_plan,
    pieces,
)
from fisher_sym.stable import S_NEGATIVE, T_POSITIVE

#: The docs pages' accuracy grid: small enough to compute for every page in a few minutes.
ACCURACY_RADII = (0.0, 0.1, 1.0, 10.0, 1e4)
ACCURACY_BIASES = (-30.0, -1.0, 0.0, 1.0, 30.0)
ACCURACY_DAMPINGS = (0.0, 1e-3)

#: The plots: each quantity against t = b/r on PLOT_T, one line per radius in PLOT_RADII.
PLOT_RADII = (0.1, 1.0, 10.0)
PLOT_T = np.linspace(-6.0, 6.0, 241)
PLOT_DAMPING = 1e-3
PLOT_DPI = 100

_LATEX_NAMES = {
    fisher.A00: "A_{00}",
    fisher.A0N: "A_{0n}",
    fisher.ANN: "A_{nn}",
    fisher.DAMPING: r"\lambda",
    fisher.ABAR00: r"\bar{A}_{00}",
    fisher.MEAN: "m_1",
}
_ACCURACY_HEADING = "## Accuracy against mpmath"
_WHERE_PATTERN = re.compile(r"^- (\w+): (.*)$")


def latex(expression: sp.Expr) -> str:
    """``sympy.latex`` with the project's symbol names (A_{00}, λ, Ā00, m_1)."""
    return sp.latex(expression, symbol_names=_LATEX_NAMES)


def _cell(expression: sp.Expr) -> str:
    """Inline math for a Markdown table cell: a bare '|' would end the cell."""
    return "$" + latex(expression).replace("|", r"\vert ") + "$"


def _interval_condition(lower: sp.Expr, upper: sp.Expr) -> str:
    if lower == -sp.oo and upper == sp.oo:
        return r"u \in \mathbb{R}"
    if lower == -sp.oo:
        return f"u < {latex(upper)}"
    if upper == sp.oo:
        return f"u > {latex(lower)}"
    return f"{latex(lower)} < u < {latex(upper)}"


def _cases(piece_list) -> str:
    """Pieces (lower, upper, expression) as a LaTeX cases environment, or the one expression."""
    if len(piece_list) == 1:
        return latex(piece_list[0].expression)
    rows = [
        f"{latex(piece.expression)} & {_interval_condition(piece.lower, piece.upper)}"
        for piece in piece_list
    ]
    return r"\begin{cases} " + r" \\ ".join(rows) + r" \end{cases}"


def _display(left: str, right: str) -> str:
    return f"$$\n{left} = {right}\n$$"


#: About as many LaTeX characters as one displayed line holds at the page's width.
_LINE_LENGTH = 200


def _display_long(left: str, expression: sp.Expr) -> str:
    """``left = expression``, broken into aligned lines of terms where it is too wide (MathJax
    does not break lines). A long product is expanded into its terms first."""
    text = latex(expression)
    if len(text) <= _LINE_LENGTH:
        return _display(left, text)
    expanded = expression if expression.is_Add else sp.expand(expression)
    if not expanded.is_Add:
        return _display(left, text)
    ordered = expanded.as_ordered_terms()
    lines = [latex(ordered[0])]
    for term in ordered[1:]:
        negative = term.could_extract_minus_sign()
        piece = ("- " if negative else "+ ") + latex(-term if negative else term)
        if len(lines[-1]) + len(piece) > _LINE_LENGTH:
            lines.append(piece)
        else:
            lines[-1] += " " + piece
    body = " \\\\\n&\\quad ".join(lines)
    return f"$$\n\\begin{{aligned}}\n{left} &= {body}\n\\end{{aligned}}\n$$"


# --- the page ----------------------------------------------------------------------------


def _activation_section(activation: Activation) -> list[str]:
    derivative = sp.diff(activation.expression, U)
    try:
        derivative_pieces = pieces(derivative)
    except ActivationError:
        derivative_pieces = []
    lines = [
        "## The activation",
        "",
        _display(r"\varphi(u)", latex(activation.expression)),
        "",
        _display(
            r"\varphi'(u)", _cases(derivative_pieces) if derivative_pieces else latex(derivative)
        ),
    ]
    if len(derivative_pieces) > 1:
        lines += [
            "",
            "φ' is undefined at its kinks, a set of measure zero for the Gaussian integrals.",
        ]
    return lines


def _terms_section(integrals: GaussianIntegrals) -> list[str]:
    lines = [
        "## φ'² in Gaussian terms",
        "",
        "Split at its kinks, φ'(u)² is one smooth expression on each interval:"
        if len(integrals.pieces) > 1
        else "φ'(u)² is one smooth expression on the whole line:",
        "",
        _display(r"\varphi'(u)^2", _cases(integrals.pieces)),
        "",
        "Each nonzero piece is a sum of terms P(u)·exp(Q(u)), P a polynomial and Q a quadratic "
        "q₂u² + q₁u + q₀. With u = rz + b and z ~ N(0, 1), completing the square turns a term "
        "into exp(κ) times the normal density N(z; μ, 1/p), so its share of A00, A0n, Ann is a "
        "moment of a truncated normal distribution "
        "([the Gaussian-term method](../derivation.md#the-gaussian-term-method)):",
        "",
        "| interval of u | $P(u)$ | $Q(u)$ | $p = 1 - 2 q_2 r^2$ | $\\mu$ | $\\kappa$ |",
        "|---|---|---|---|---|---|",
    ]
    for term in integrals.terms:
        quadratic = sp.expand(term.q2 * U**2 + term.q1 * U + term.q0)
        interval = f"$({latex(term.lower)}, {latex(term.upper)})$"
        cells = (
            sp.factor(term.polynomial_expr()),
            quadratic,
            term.precision,
            term.mean,
            sp.simplify(term.log_scale),
        )
        lines.append(f"| {interval} | " + " | ".join(map(_cell, cells)) + " |")
    return lines


def _closed_forms_section(integrals: GaussianIntegrals) -> list[str]:
    A00, A0n, Ann = integrals.closed_forms
    return [
        "## Closed forms",
        "",
        "For r > 0, with u = rz + b and z ~ N(0, 1):",
        "",
        _display_long(r"A_{00} = \mathrm{E}\left[\varphi'(u)^2\right]", A00),
        "",
        _display_long(r"A_{0n} = \mathrm{E}\left[z\,\varphi'(u)^2\right]", A0n),
        "",
        _display_long(r"A_{nn} = \mathrm{E}\left[z^2\varphi'(u)^2\right]", Ann),
        "",
        "At r = 0 the kernels take A00 as the mean of the one-sided limits of φ'(b)², A0n = 0 "
        "and Ann = A00 ([conventions](../derivation.md#conventions)).",
    ]


def _numerical_section(activation: Activation, error: NoClosedForm) -> list[str]:
    """The numerical plan of ``gaussian.numerical_plan``: closed-form part and remainder ρ."""
    plan = numerical_plan(activation.expression, str(error))
    lines = [
        "## No closed form: the numerical scheme",
        "",
        f"φ'(u)² does not split into Gaussian terms P(u)·exp(Q(u)) ({error}), so "
        f"`generated/{activation.name}.py` integrates it in two parts "
        "([the scheme](../numerics.md#activations-without-a-closed-form)):",
        "",
        _display(r"\varphi'(u)^2", latex(plan.g)),
        "",
        "**In closed form**: the limits of φ'² at ±∞ (a step at u = 0) and the leading "
        "exponential terms of each tail, Gaussian terms P(u)·exp(Q(u)) like those of a "
        "closed-form activation. Where a tail term's Gaussian lies far beyond its edge, or "
        "next to it at small r, the kernel integrates that term with ρ instead.",
        "",
        "| interval of u | term |",
        "|---|---|",
    ]
    for term in plan.tails:
        expression = term.polynomial_expr() * sp.exp(term.q2 * U**2 + term.q1 * U + term.q0)
        lines.append(f"| $({latex(term.lower)}, {latex(term.upper)})$ | {_cell(expression)} |")
    lines += [
        "",
        "**By quadrature**: the remainder ρ = φ'² − (closed-form part), which decays on both "
        "sides. It is written on each side of 0 in t = exp(−|u|) ≤ 1 (and erfcx for erf), so "
        "that it neither overflows nor cancels:",
        "",
    ]
    for piece in plan.remainder:
        where = rf"{latex(piece.lower)} < u < {latex(piece.upper)}"
        variable = T_POSITIVE if piece.positive_side else S_NEGATIVE
        if piece.value.has(variable):
            where += rf",\; {latex(variable)} = {latex(sp.exp(-U if piece.positive_side else U))}"
        lines += [_display(r"\rho(u)", rf"{latex(piece.value)} \qquad ({where})"), ""]
    lines += [
        "E[ρ(rz + b)·(1, z, z²)] is integrated, in a deep tail (one side's tail terms in closed "
        "form, the Gaussian negligible at ρ's kinks), by the trapezoidal rule in u over ρ "
        "tabulated once, wherever that rule checks itself; else by a fixed Gauss–Legendre "
        "rule in u, with ρ tabulated at its nodes, wherever that rule checks itself, and "
        "otherwise by adaptive Gauss–Legendre quadrature in z on panels at the features of "
        "ρ(rz + b); Stein's identity gives A0n and A00 − Ann from ρ' and ρ'' without the "
        "cancellation of the direct integrals at small r.",
    ]
    if plan.smooth:
        phi_cdf = sp.Function(r"\Phi")
        lower, upper = plan.limits
        step = lower * phi_cdf(-2 * U) + upper * phi_cdf(2 * U)
        if step == 0:
            split = "φ'² itself (its limits at ±∞ vanish), tabulated once,"
        else:
            split = (
                f"the step becomes the smooth step ${latex(step)}$, whose Gaussian integrals "
                "are closed form, and the analytic remainder φ'² − (smooth step), tabulated "
                "once,"
            )
        lines += [
            "",
            "**The fast rule, tried first.** φ'² is analytic on the whole line, so for most "
            f"units (all of a typical layer's) the kernel uses another split: {split} is "
            "summed by the trapezoidal rule in u, which converges geometrically for it. A unit "
            "is accepted where the sum over every other node agrees and no part cancels. In a "
            "deep tail, where φ'² is nearly an exponential c·exp(a·u), the same sums for "
            "φ'²·exp(−a·u) at the bias b + a·r² serve where that tail is a pure exponential "
            "(the tilted rule); for r ≤ 1/8, Gauss–Hermite quadrature in z of the same "
            "remainder; elsewhere the split above "
            "([the fast rule](../numerics.md#activations-without-a-closed-form)).",
        ]
    return lines


def _series_note(expectation: Expectation) -> str:
    series = expectation.series
    if series is None or series.limit == float("inf"):
        return ""
    return (
        f" Below τ = {series.limit:g} the kernel sums the Taylor series in τ instead "
        f"({len(series.coefficients)} coefficients, from the one-sided derivatives of f at 0), "
        "where the closed form's terms cancel."
    )


def _plain_functions(expression: sp.Expr) -> sp.Expr:
    """A stable form for display: t = exp(−u), expm1 and log1p written as exp and log."""
    expression = expression.subs(T_POSITIVE, sp.exp(-U))
    expression = expression.replace(lambda e: isinstance(e, expm1), lambda e: sp.exp(e.args[0]) - 1)
    return expression.replace(lambda e: isinstance(e, log1p), lambda e: sp.log(1 + e.args[0]))


def _expectation_lines(expectation: Expectation, left: str) -> list[str]:
    """One mean-field expectation: its closed form and how the kernel evaluates it."""
    if expectation.kind == "numerical":
        even = [
            Piece(piece.lower, piece.upper, _plain_functions(piece.expression))
            for piece in expectation.even_pieces
        ]
        return [
            f"${left}$ has no closed form (`{expectation.reason}`). The kernel integrates "
            "2∫₀⁴⁰ f_e(τz) φ(z) dz by adaptive Gauss–Legendre quadrature, each panel halved "
            "until its halves agree with it to 1e-13 of the summed |integrand| "
            "([the scheme](../meanfield.md#expectations)), with the even part "
            "f_e(u) = (f(u) + f(−u))/2 written for u > 0 as",
            "",
            _display("f_e(u)", _cases(even)),
        ]
    how = {
        "constant": "By symmetry: the even part (f(u) + f(−u))/2 is this constant.",
        "polynomial": "Exactly: f is a polynomial on each side of 0, and the sum is finite.",
        "gaussian terms": "From f's Gaussian terms between its kinks, which the kernel sums "
        "term by term with the Fisher blocks' stable runtime.",
        "closed form": f"By {expectation.reason}.",
    }[expectation.kind]
    lines = [
        _display_long(left, expectation.closed_form),
        "",
        how + _series_note(expectation),
    ]
    if expectation.kind == "closed form" and expectation.expression != expectation.closed_form:
        stable = _display(left, latex(expectation.expression))
        lines += ["", "The kernel evaluates the form", "", stable]
    return lines


def _mean_field_section(activation: Activation, integrals: GaussianIntegrals | None) -> list[str]:
    plan = derive_mean_field(activation.expression)
    lines = [
        "## Mean field",
        "",
        f"`generated.{activation.name}.mean_field(tau)` returns E[φ(τv)], E[φ(τv)²] and "
        "E[φ'(τv)²] for v ~ N(0, 1) and τ ≥ 0 ([the mean field](../meanfield.md)); "
        f"`MEAN_FIELD_KINDS = {(plan.mean.kind, plan.second_moment.kind)!r}`.",
        "",
    ]
    lines += _expectation_lines(plan.mean, r"\mathrm{E}\left[\varphi(\tau v)\right]")
    lines += [""]
    lines += _expectation_lines(plan.second_moment, r"\mathrm{E}\left[\varphi(\tau v)^2\right]")
    lines += [""]
    slope = r"\mathrm{E}\left[\varphi'(\tau v)^2\right]"
    if integrals is None:
        lines.append(
            f"${slope}$ is A00 at r = τ, b = 0, computed by the numerical scheme above."
        )
    else:
        closed = sp.simplify(integrals.closed_forms[0].subs(B, 0).subs(R, TAU))
        lines += [
            _display_long(slope, closed),
            "",
            "This is A00 at r = τ, b = 0, which the kernel computes as the Fisher blocks'.",
        ]
    return lines


def _inverse_section() -> list[str]:
    solved = fisher.inverse_coefficients()
    stable = fisher.stable_inverse_coefficients()
    names = {
        fisher.ABAR00: r"\bar{A}_{00}",
        fisher.X: "X",
        fisher.Y: "Y",
        fisher.Z: "Z",
    }
    lines = [
        "## Inverse coefficients",
        "",
        "The same for every activation: solved by `fisher_sym.fisher.inverse_coefficients()` from "
        "(G + λI)·M = I in the dyadic algebra, with",
        "",
        "$$",
        r"(G + \lambda I)^{-1} = \bar{A}_{00} I + X \hat{w}\hat{w}^\top"
        r" + Y (e_0 \hat{w}^\top + \hat{w} e_0^\top) + Z e_0 e_0^\top,",
        "$$",
        "",
    ]
    for symbol, name in names.items():
        lines += [_display(name, latex(solved[symbol])), ""]
    lines += [
        "The kernels evaluate them in the form of `stable_inverse_coefficients()`, where "
        "s = A00 + λ, a = A00/s, l = λ/s, m1 = A0n/A00, v = Ann/A00 − m1² and q = 1 − v "
        "([why](../derivation.md#the-numerically-stable-form)):",
        "",
    ]
    for symbol, name in names.items():
        lines += [_display(name, latex(stable[symbol])), ""]
    return lines[:-1]


def _grid_text(values: Iterable[float]) -> str:
    return "{" + ", ".join(f"{value:g}" for value in values) + "}"


def compute_accuracy_rows(activation: Activation) -> dict[str, report.Worst]:
    """``report.accuracy`` of ``generated.<name>`` on the docs grid (slow: mpmath at 40 digits),
    without a time limit, so that a recomputed table is the same on every machine."""
    return report.accuracy(
        activation.name, activation.expression, ACCURACY_RADII, ACCURACY_BIASES, ACCURACY_DAMPINGS,
        time_limit=None,
    )


def _accuracy_section(activation: Activation, rows: dict[str, report.Worst]) -> list[str]:
    lines = [
        _ACCURACY_HEADING,
        "",
        f"`fisher_sym.report.accuracy` compares `generated.{activation.name}` with the mpmath "
        "reference of `fisher_sym.reference` on the grid",
        f"r ∈ {_grid_text(ACCURACY_RADII)} × b ∈ {_grid_text(ACCURACY_BIASES)}, and for "
        f"Abar00, X, Y, Z also damping ∈ {_grid_text(ACCURACY_DAMPINGS)}. Each entry is the "
        "largest relative error over the grid points where the true value is a normal double "
        "(`python -m derive --report` runs the same comparison on a larger grid).",
        "",
        report.format_table({activation.name: rows}),
        "",
        "Where each largest error occurs:",
        "",
    ]
    lines += [f"- {quantity}: {rows[quantity].where}" for quantity in report.QUANTITIES]
    skipped = sorted({point for entry in rows.values() for point in entry.skipped})
    if skipped:
        lines += [
            "",
            "Grid points without an mpmath reference, where it does not converge "
            f"(left out of the table): {'; '.join(skipped)}.",
        ]
    return lines


def read_accuracy_rows(page: str) -> dict[str, report.Worst]:
    """The accuracy rows recorded in a rendered page (the inverse of ``_accuracy_section``)."""
    _, found, section = page.partition(_ACCURACY_HEADING)
    if not found:
        raise ValueError("the page has no accuracy section")
    table_row = next(
        line
        for line in section.splitlines()
        if line.startswith("| ") and "|---" not in line and not line.startswith("| activation ")
    )
    errors = [float(cell) for cell in table_row.strip("| ").split(" | ")[1:]]
    where = dict(
        match.groups() for match in map(_WHERE_PATTERN.match, section.splitlines()) if match
    )
    skipped: list[str] = []
    for line in section.splitlines():
        if line.startswith("Grid points without an mpmath reference"):
            skipped = line.partition("(left out of the table): ")[2].rstrip(".").split("; ")
    return {
        quantity: report.Worst(error, where[quantity], list(skipped))
        for quantity, error in zip(report.QUANTITIES, errors, strict=True)
    }


def _plots_section(activation: Activation) -> list[str]:
    return [
        "## Plots",
        "",
        f"What `generated.{activation.name}` computes against t = b/r, for r ∈ "
        f"{_grid_text(PLOT_RADII)}.",
        "",
        f"![A00, A0n, Ann against t = b/r]({activation.name}_blocks.png)",
        "",
        f"The inverse coefficients with damping λ = {PLOT_DAMPING:g}, on an asinh axis (linear "
        "near 0, logarithmic beyond ±1, for either sign):",
        "",
        f"![Abar00, X, Y, Z against t = b/r]({activation.name}_inverse.png)",
    ]


def render_activation_page(
    activation: Activation, accuracy_rows: dict[str, report.Worst] | None = None
) -> str:
    """The Markdown page of ``activation``; ``accuracy_rows`` (as ``report.accuracy`` returns
    them) are computed on the docs grid when not given."""
    if accuracy_rows is None:
        accuracy_rows = compute_accuracy_rows(activation)
    try:
        integrals = derive_integrals(activation.expression)
        derivation = _terms_section(integrals) + [""] + _closed_forms_section(integrals)
        path = "closed form"
    except NoClosedForm as error:
        integrals = None
        derivation = _numerical_section(activation, error)
        path = "numerical"
    sections = [
        [
            f"# {activation.name}",  # first, so that MkDocs takes it as the page title
            "",
            f"<!-- Generated by fisher_sym.docs from the derivation of `{activation.name}`. "
            f"Do not edit by hand: regenerate with `{activation.command} --docs`. -->",
            "",
            f"{activation.summary}. Kernels: `generated/{activation.name}.py`, made by "
            f"`{activation.command}`; derivation path: {path}.",
        ],
        _activation_section(activation),
        derivation,
        _inverse_section(),
        _mean_field_section(activation, integrals),
        _accuracy_section(activation, accuracy_rows),
        _plots_section(activation),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


# --- the plots -------------------------------------------------------------------------------


def _figure_bytes(figure) -> bytes:
    """PNG bytes without the metadata that would vary between runs or versions."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=PLOT_DPI, metadata={"Software": None})
    return buffer.getvalue()


def _signed_log_axis(ax, largest: float) -> None:
    """asinh y axis (linear near 0, logarithmic beyond ±1) with ticks at 0 and ±10^k only:
    matplotlib's own asinh ticks crowd around 0, and so do ±1 when the data reach ±100."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

    ax.set_yscale("asinh", linear_width=1.0)
    smallest_power = 1 if largest >= 100.0 else 0
    ticks = [0.0] + [sign * 10.0**k for k in range(smallest_power, 9) for sign in (1.0, -1.0)]
    ax.yaxis.set_major_locator(FixedLocator(sorted(ticks)))
    ax.yaxis.set_minor_locator(NullLocator())

    def label(value, _position):
        if value == 0.0:
            return "0"
        sign = "-" if value < 0 else ""
        return f"${sign}10^{{{round(np.log10(abs(value)))}}}$"

    ax.yaxis.set_major_formatter(FuncFormatter(label))


def _plot(names: tuple[str, ...], curves, shape: tuple[int, int], size, signed_log: bool) -> bytes:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context():
        matplotlib.rcdefaults()  # a user's matplotlibrc must not change the committed bytes
        figure = Figure(figsize=size, layout="constrained")
        axes = figure.subplots(*shape, sharex=True, squeeze=False).ravel()
        for index, (ax, name) in enumerate(zip(axes, names, strict=True)):
            # Distinct line styles: where the radius does not matter (ReLU) the curves coincide.
            for (r, values), style in zip(curves, ("-", "--", ":"), strict=True):
                ax.plot(PLOT_T, values[index], style, label=f"r = {r:g}", linewidth=1.4)
            ax.set_title(name)
            ax.set_xticks(np.arange(PLOT_T[0], PLOT_T[-1] + 1, 2))
            if ax.get_subplotspec().is_last_row():
                ax.set_xlabel("t = b/r")
            ax.grid(True, linewidth=0.4, alpha=0.5)
            if signed_log:
                _signed_log_axis(ax, max(np.max(np.abs(values[index])) for _, values in curves))
        handles, labels = axes[0].get_legend_handles_labels()
        figure.legend(handles, labels, loc="outside upper center", ncols=len(labels))
        return _figure_bytes(figure)


def render_plots(activation: Activation) -> dict[str, bytes]:
    """{file name: PNG bytes} of the blocks and the inverse coefficients against t = b/r."""
    module = importlib.import_module(f"generated.{activation.name}")
    blocks, inverse = [], []
    for r in PLOT_RADII:
        radius, bias = np.full_like(PLOT_T, r), PLOT_T * r
        blocks.append((r, module.fisher_blocks(radius, bias)))
        inverse.append((r, module.inverse_coefficients(radius, bias, damping=PLOT_DAMPING)))
    return {
        f"{activation.name}_blocks.png": _plot(
            ("A00", "A0n", "Ann"), blocks, (1, 3), (10, 3.2), False
        ),
        f"{activation.name}_inverse.png": _plot(
            ("Abar00", "X", "Y", "Z"), inverse, (2, 2), (8, 6), True
        ),
    }


# --- writing and checking ----------------------------------------------------------------------


def render_docs(
    activation: Activation, accuracy_rows: dict[str, report.Worst] | None = None
) -> dict[str, str | bytes]:
    """{file name: content} of one activation's documentation: the page (text), the plots."""
    page = render_activation_page(activation, accuracy_rows)
    return {f"{activation.name}.md": page, **render_plots(activation)}


def _differs(path: Path, content: str | bytes) -> bool:
    if not path.exists():
        return True
    data = content.encode("utf-8") if isinstance(content, str) else content
    return path.read_bytes() != data


def write_docs(activations: Iterable[Activation], folder: Path) -> list[Path]:
    """Render every activation's page and plots into ``folder``; write (atomically) only the
    files that differ, and return their paths. Computes the accuracy tables: slow."""
    written = []
    for activation in activations:
        for filename, content in render_docs(activation).items():
            path = Path(folder) / filename
            if not _differs(path, content):
                continue
            write_atomically(path, content)
            written.append(path)
    return written


def stale_docs(
    activations: Iterable[Activation], folder: Path, *, recompute_accuracy: bool = True
) -> list[Path]:
    """The files in ``folder`` that are missing or differ from a fresh rendering.

    With ``recompute_accuracy=False`` each page is re-rendered with the accuracy rows it
    records (everything else is derived afresh), which takes seconds instead of minutes.
    """
    stale = []
    for activation in activations:
        page = Path(folder) / f"{activation.name}.md"
        rows = None
        if not recompute_accuracy:
            if not page.exists():
                stale.append(page)
                continue
            rows = read_accuracy_rows(page.read_text(encoding="utf-8"))
        for filename, content in render_docs(activation, rows).items():
            if _differs(Path(folder) / filename, content):
                stale.append(Path(folder) / filename)
    return stale
