"""The narrow-Gaussian rule: the tilted moments as a series in r, for the numerical path.

Where the Gaussian N(b, r²) of u = rz + b is narrow against the scale on which φ'² varies
(a small weight norm, or a deep exponential tail), quadrature in z is wasted work (and slow:
its panels must resolve a width r), while the integrals have a series in r. Write
φ'(b + rz)² = exp(g(b + rz)) with g = log φ'² and g_k = g^(k)(b); then

    φ'(b + rz)² φ(z) = exp(g_0) · exp(g_1·r·z + g_2·r²·z²/2) φ(z) · exp(R(z)),
    R(z) = Σ_{k=3..N} c_k z^k,   c_k = g_k r^k / k!.

The middle factor is a Gaussian in z, integrated exactly: with σ² = 1/(1 − g_2 r²) and
μ = g_1 r σ² it is σ·exp(μ²/(2σ²))·N(z; μ, σ²). Only R, whose terms are O(r³), is expanded:
E[e^R], E[(z − μ) e^R] and E[(z − μ)² e^R] under N(μ, σ²) are power series in the c_k
(Gaussian moments of z = μ + σy), collected by order (c_k counts as order k) up to order
N = ``ORDER``. Then

    A00 = exp(g_0 − ½·log(1 − g_2 r²) + (g_1 r)²σ²/2 + Σ_n L_n),
    m1 = μ + Σ_n M_n,     v = σ² + Σ_n V_n,     q = 1 − v = −g_2 r² σ² − Σ_n V_n,

with L_n, M_n, V_n the order-n parts of log E[e^R], of the mean shift and of the variance
shift. Every V_n holds some c_k (k ≥ 3), so for an exponential tail (g_k = 0 for k ≥ 2)
q = 0 exactly, with no cancellation; the checks below assert such identities symbolically.

The rule checks itself per unit (``runtime.narrow_moments``): the highest order must be below
1e-16 of the size of what it is added to (1 for log A00, |μ| + σ for m1, |q| for q), the one
before it below 1e-8. It applies
only where N(b, r²) cannot reach a kink of φ'² (``runtime.Z_LIMIT`` deviations away).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

from fisher_sym.activations import U

#: The highest order (in r) of the series.
ORDER = 8
#: A derivative of log φ'² that has, or whose one-sided form has, more operations than this is
#: not printed, and the series stops at the order before it, so that derivation and
#: compilation stay quick (the self-check then accepts a smaller r); below order 3 the module
#: has no narrow rule.
MAX_OPERATIONS = 600

MU, SIGMA = sp.symbols("mu sigma", real=True)
C = {k: sp.Symbol(f"c{k}", real=True) for k in range(3, ORDER + 1)}
_EPS = sp.Symbol("eps", positive=True)
_Y = sp.Symbol("y", real=True)


def _gaussian_moment(power: int) -> sp.Integer:
    """E[y^power] for y ~ N(0, 1)."""
    return sp.Integer(0) if power % 2 else sp.factorial2(power - 1) if power else sp.Integer(1)


def _expectation(polynomial: sp.Expr) -> sp.Expr:
    """E over y ~ N(0, 1) of a polynomial in y."""
    poly = sp.Poly(sp.expand(polynomial), _Y)
    return sp.expand(sum(coeff * _gaussian_moment(m) for (m,), coeff in poly.terms()))


def _truncate(expression: sp.Expr) -> sp.Expr:
    """``expression`` as a polynomial in the order marker, cut after order ORDER."""
    series = sp.expand(expression)
    return sum(series.coeff(_EPS, n) * _EPS**n for n in range(ORDER + 1))


@dataclass(frozen=True)
class NarrowSeries:
    """Order n → (L_n, M_n, V_n) as expressions in μ, σ and the c_k (see the module doc)."""

    orders: dict[int, tuple[sp.Expr, sp.Expr, sp.Expr]]


@cache
def narrow_series() -> NarrowSeries:
    """The series of log E[e^R], of the mean shift and of the variance shift, by order."""
    z = MU + SIGMA * _Y
    exponent = sum(C[k] * _EPS**k * z**k for k in C)
    # e^R to order ORDER: R has no term below order 3, so ORDER // 3 powers suffice.
    exp_r = _truncate(sum(exponent**j / sp.factorial(j) for j in range(ORDER // 3 + 1)))
    n0 = _truncate(_expectation(exp_r))
    n1 = _truncate(_expectation(exp_r * (z - MU)))
    n2 = _truncate(_expectation(exp_r * (z - MU) ** 2))
    excess = n0 - 1
    log_n0 = _truncate(sum((-1) ** (j + 1) * excess**j / j for j in range(1, ORDER // 3 + 1)))
    inverse_n0 = _truncate(sum((-excess) ** j for j in range(ORDER // 3 + 1)))
    shift = _truncate(n1 * inverse_n0)
    variance = _truncate(n2 * inverse_n0 - shift**2)
    orders = {}
    for n in range(3, ORDER + 1):
        parts = tuple(sp.factor_terms(sp.expand(e.coeff(_EPS, n))) for e in (log_n0, shift))
        parts += (sp.factor_terms(sp.expand(variance.coeff(_EPS, n))),)
        orders[n] = parts
    # σ² is the variance of the Gaussian part: the shift's zeroth order is σ² itself.
    assert sp.simplify(variance.coeff(_EPS, 0) - SIGMA**2) == 0
    return NarrowSeries(orders)


@dataclass(frozen=True)
class LogPiece:
    """g = log φ'² on (lower, upper): its value's one-sided form and g_1 … g_ORDER."""

    lower: sp.Expr
    upper: sp.Expr
    positive_side: bool
    value: sp.Expr
    derivatives: tuple[sp.Expr, ...]


def log_derivative_pieces(g: sp.Expr) -> tuple[LogPiece, ...]:
    """Per piece of φ'² = ``g`` (split at 0 for the one-sided forms): φ'² itself and the
    derivatives of log φ'² up to ORDER, each in its stable one-sided form, all pieces cut at
    the same order (``MAX_OPERATIONS``, and at least 3)."""
    from fisher_sym.gaussian import _as_function_of_u, pieces
    from fisher_sym.stable import one_sided

    result = []
    for piece in pieces(g):
        bounds = [piece.lower, piece.upper]
        if piece.lower < 0 < piece.upper:
            bounds.insert(1, sp.Integer(0))
        for lower, upper in zip(bounds[:-1], bounds[1:], strict=True):
            side = bool(lower >= 0)
            if piece.expression == 0:
                result.append(LogPiece(lower, upper, side, sp.Integer(0), ()))
                continue
            # Each derivative from the previous one's one-sided form, which stays small.
            derivative = sp.diff(sp.log(piece.expression), U)
            derivatives = []
            for order in range(1, ORDER + 1):
                if sp.count_ops(derivative) > MAX_OPERATIONS:
                    break
                form = one_sided(derivative, side)
                if sp.count_ops(form) > MAX_OPERATIONS:
                    break
                derivatives.append(form)
                if order < ORDER:
                    derivative = sp.diff(_as_function_of_u(form), U)
            value = one_sided(piece.expression, side)
            result.append(LogPiece(lower, upper, side, value, tuple(derivatives)))
    order = min((len(piece.derivatives) for piece in result if piece.value != 0), default=0)
    return tuple(
        LogPiece(p.lower, p.upper, p.positive_side, p.value, p.derivatives[:order]) for p in result
    )


def series_order(log_pieces: tuple[LogPiece, ...]) -> int:
    """The highest order of the series that ``log_pieces`` support: 0 (no narrow rule) where
    the derivatives of log φ'² grow past MAX_OPERATIONS before order 3."""
    order = min((len(p.derivatives) for p in log_pieces if p.value != 0), default=0)
    return order if order >= 3 else 0
