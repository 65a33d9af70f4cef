"""Gaussian expectations of φ'(rz + b)²: the activation split into closed-form Gaussian terms.

For z ~ N(0, 1) the Fisher block needs I_k(r, b) = E[z^k g(rz + b)], k = 0, 1, 2, with
g = φ'². ``sympy.integrate`` does not evaluate these for piecewise activations, so the engine
does the work itself:

1. g is rewritten as a Piecewise and the u-line is split at its kinks (the real roots of every
   condition). Between two kinks every condition has a fixed truth value, so g is one smooth
   expression there; neighbouring intervals with equal expressions are merged.
2. Each smooth expression is expanded into terms P(u)·exp(Q(u)) with P a polynomial and Q a
   quadratic. A term with Q = q2 u² + q1 u + q0 and u = rz + b is, after completing the square,

       P(rz + b) exp(Q(rz + b)) φ(z) = P(rz + b) · exp(κ) · N(z; μ, σ²),
       p = 1 − 2 q2 r²,  σ² = 1/p,  μ = r (2 q2 b + q1)/p,
       κ = Q(b) + r² (2 q2 b + q1)² / (2p) − ½ log p,

   so its contribution to I_k is a moment of a normal distribution truncated to the interval of
   z = (u − b)/r, which is closed form (erfc and exp).

An expression that does not split this way raises ``NoClosedForm``.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import sympy as sp

from fisher_sym.activations import U, ActivationError
from fisher_sym.special import MAX_MOMENT_ORDER

R = sp.Symbol("r", nonnegative=True)
B = sp.Symbol("b", real=True)
Y = sp.Symbol("y", real=True)
#: Largest degree of P in a term P(u)·exp(Q(u)): its moments need orders up to degree + 2.
MAX_POLYNOMIAL_DEGREE = MAX_MOMENT_ORDER - 2


class NoClosedForm(Exception):
    """φ'² has a piece that is not a sum of polynomial × exp(quadratic) terms."""


@dataclass(frozen=True)
class Piece:
    """g(u) = φ'(u)² equals ``expression`` on the open interval (lower, upper)."""

    lower: sp.Expr
    upper: sp.Expr
    expression: sp.Expr


@dataclass(frozen=True)
class GaussianTerm:
    """The term P(u)·exp(q2 u² + q1 u + q0) of φ'(u)² on the open interval (lower, upper)."""

    lower: sp.Expr
    upper: sp.Expr
    polynomial: tuple[sp.Expr, ...]  # P(u) = Σ_k polynomial[k] u^k
    q2: sp.Expr
    q1: sp.Expr
    q0: sp.Expr

    @cached_property
    def precision(self) -> sp.Expr:
        """p = 1/σ² = 1 − 2 q2 r²."""
        return 1 - 2 * self.q2 * R**2

    @cached_property
    def mean(self) -> sp.Expr:
        """μ = r (2 q2 b + q1) / p, the mean of z under the term's Gaussian."""
        return sp.cancel(R * (2 * self.q2 * B + self.q1) / self.precision)

    @cached_property
    def std(self) -> sp.Expr:
        """σ = p^(-1/2)."""
        return 1 / sp.sqrt(self.precision)

    @cached_property
    def one_minus_variance(self) -> sp.Expr:
        """1 − σ² = −2 q2 r² / p, written without the subtraction."""
        return sp.cancel(-2 * self.q2 * R**2 / self.precision)

    @cached_property
    def log_scale(self) -> sp.Expr:
        """κ = Q(b) + r² (2 q2 b + q1)² / (2p) − ½ log p."""
        quadratic_at_b = self.q2 * B**2 + self.q1 * B + self.q0
        completed = R**2 * (2 * self.q2 * B + self.q1) ** 2 / (2 * self.precision)
        return sp.cancel(quadratic_at_b + completed) - sp.log(self.precision) / 2

    @property
    def is_constant(self) -> bool:
        """True when P is a constant, so the term is a weighted truncated normal."""
        return len(self.polynomial) == 1

    def polynomial_expr(self, variable: sp.Expr = U) -> sp.Expr:
        return sum(c * variable**k for k, c in enumerate(self.polynomial))

    def describe(self) -> str:
        factor = sp.factor(self.polynomial_expr())
        exponent = sp.expand(self.q2 * U**2 + self.q1 * U + self.q0)
        if exponent == 0:
            body = sp.sstr(factor)
        elif factor == 1:
            body = f"exp({sp.sstr(exponent)})"
        else:
            body = f"({sp.sstr(factor)})*exp({sp.sstr(exponent)})"
        return f"u in ({sp.sstr(self.lower)}, {sp.sstr(self.upper)}): {body}"


# --- step 1: φ'² and its pieces ----------------------------------------------------------------


def derivative_squared(phi: sp.Expr) -> sp.Expr:
    """g(u) = φ'(u)², refusing activations whose derivative is not an ordinary function."""
    derivative = _without_null_deltas(sp.diff(phi, U))
    if derivative.has(sp.DiracDelta):
        raise ActivationError("φ is discontinuous: its derivative has a Dirac delta")
    if derivative.has(sp.Derivative, sp.Subs):
        raise ActivationError(f"cannot differentiate {phi}")
    _check_real_and_finite(derivative)
    return derivative**2


def _check_real_and_finite(derivative: sp.Expr) -> None:
    """Refuse a φ' that is not real and finite on the whole line (log u, 1/u, √u), piece by
    piece between its kinks, wherever sympy can tell (where it cannot, as for GELU's φ', the
    derivation goes on)."""
    from sympy.calculus.util import continuous_domain

    piecewise = _as_piecewise(derivative)
    bounds = [-sp.oo, *_kinks(piecewise), sp.oo]
    for lower, upper in zip(bounds[:-1], bounds[1:], strict=True):
        interval = sp.Interval.open(lower, upper)
        expression = _on_interval(piecewise, lower, upper)
        try:
            domain = continuous_domain(expression, U, interval)
        except (NotImplementedError, ValueError, TypeError):
            continue
        if domain != interval:
            raise ActivationError(
                f"φ'(u) = {expression} is not real and finite on all of {interval} "
                f"(only on {domain})"
            )


def _without_null_deltas(derivative: sp.Expr) -> sp.Expr:
    """``derivative`` without its terms c(u)·δ(u − a) with c(a) = 0 (u·Heaviside(u) gives
    u·δ(u), which is zero: φ is continuous there). Other deltas are kept, for the caller to
    refuse."""
    if not derivative.has(sp.DiracDelta):
        return derivative
    expanded = sp.expand(derivative)
    for delta in expanded.atoms(sp.DiracDelta):
        if len(delta.args) != 1 or not delta.args[0].is_polynomial(U):
            continue
        argument = sp.Poly(delta.args[0], U)
        if argument.degree() != 1:
            continue
        root = sp.solve(delta.args[0], U)[0]
        weight = expanded.coeff(delta)
        if weight != 0 and not weight.has(sp.DiracDelta) and sp.simplify(weight.subs(U, root)) == 0:
            expanded = expanded.subs(delta, 0)
    return expanded if not expanded.has(sp.DiracDelta) else derivative


def _as_piecewise(expression: sp.Expr) -> sp.Expr:
    """Rewrite the non-smooth functions (Heaviside, Max, Min, Abs, sign) as Piecewise."""
    return sp.piecewise_fold(
        expression.rewrite(sp.Piecewise).replace(
            lambda e: isinstance(e, sp.sign | sp.Abs | sp.Heaviside | sp.Max | sp.Min),
            lambda e: e.rewrite(sp.Piecewise),
        )
    )


def _kinks(expression: sp.Expr) -> list[sp.Expr]:
    """The sorted real points where a condition of ``expression`` changes its truth value."""
    points: set[sp.Expr] = set()
    for relation in expression.atoms(sp.core.relational.Relational):
        difference = sp.expand(relation.lhs - relation.rhs)
        if not difference.has(U):
            continue
        if not difference.is_polynomial(U):
            raise ActivationError(f"condition {relation} is not polynomial in u")
        roots = sp.Poly(difference, U).real_roots()
        points.update(sp.nsimplify(root) if root.is_Float else root for root in roots)
    return sorted(points, key=lambda point: float(point))


def _sample_point(lower: sp.Expr, upper: sp.Expr) -> sp.Expr:
    if lower == -sp.oo and upper == sp.oo:
        return sp.Integer(0)
    if lower == -sp.oo:
        return upper - 1
    if upper == sp.oo:
        return lower + 1
    return (lower + upper) / 2


def _on_interval(expression: sp.Expr, lower: sp.Expr, upper: sp.Expr) -> sp.Expr:
    """The smooth expression that ``expression`` reduces to on the open interval."""
    point = _sample_point(lower, upper)
    truth = {}
    for relation in expression.atoms(sp.core.relational.Relational):
        value = relation.subs(U, point)
        if value not in (sp.true, sp.false):
            raise ActivationError(f"cannot decide condition {relation} on ({lower}, {upper})")
        truth[relation] = value
    return sp.expand(sp.powsimp(expression.xreplace(truth)))


def pieces(g: sp.Expr) -> list[Piece]:
    """Split g(u) into smooth expressions between its kinks, merging equal neighbours; refuse a
    g that vanishes everywhere (φ' = 0)."""
    merged = split_at_kinks(g)
    if all(piece.expression == 0 for piece in merged):
        raise ActivationError("φ'(u) is identically zero: the Fisher block vanishes")
    return merged


def split_at_kinks(f: sp.Expr) -> list[Piece]:
    """Split f(u) into smooth expressions between its kinks, merging equal neighbours."""
    piecewise = _as_piecewise(f)
    bounds = [-sp.oo, *_kinks(piecewise), sp.oo]
    merged: list[Piece] = []
    for lower, upper in zip(bounds[:-1], bounds[1:], strict=True):
        expression = _on_interval(piecewise, lower, upper)
        if expression.has(sp.Piecewise, sp.Heaviside, sp.Max, sp.Min, sp.Abs, sp.sign):
            raise ActivationError(f"could not resolve the pieces of {f}")
        if merged and sp.simplify(merged[-1].expression - expression) == 0:
            merged[-1] = Piece(merged[-1].lower, upper, merged[-1].expression)
        else:
            merged.append(Piece(lower, upper, expression))
    return merged


# --- step 2: Gaussian terms --------------------------------------------------------------------


def _split_term(term: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Write one product as (P(u), Q(u)) with term = P·exp(Q); raise NoClosedForm if not."""
    polynomial, exponent = sp.Integer(1), sp.Integer(0)
    for factor in sp.Mul.make_args(term):
        if isinstance(factor, sp.exp):
            exponent += factor.args[0]
        elif factor.is_polynomial(U):
            polynomial *= factor
        else:
            raise NoClosedForm(f"factor {factor} is not a polynomial or an exponential")
    exponent = sp.expand(exponent)
    if not exponent.is_polynomial(U) or sp.degree(exponent, U) > 2:
        raise NoClosedForm(f"exponent {exponent} is not a quadratic in u")
    return sp.expand(polynomial), exponent


def gaussian_terms(piece_list: list[Piece]) -> list[GaussianTerm]:
    """Each piece as a sum of P(u)·exp(Q(u)) terms, terms with equal Q grouped."""
    terms: list[GaussianTerm] = []
    for piece in piece_list:
        hyperbolic_as_exp = piece.expression.rewrite([sp.sinh, sp.cosh], sp.exp)
        expanded = sp.expand(sp.powsimp(hyperbolic_as_exp), power_exp=False)
        expanded = sp.powsimp(expanded, combine="exp")
        if expanded.has(sp.I):
            raise NoClosedForm(f"{piece.expression} has complex exponentials")
        grouped: dict[sp.Expr, sp.Expr] = {}
        for term in sp.Add.make_args(expanded):
            polynomial, exponent = _split_term(term)
            grouped[exponent] = grouped.get(exponent, 0) + polynomial
        for exponent, polynomial in sorted(grouped.items(), key=lambda item: sp.default_sort_key(item[0])):
            polynomial = sp.expand(polynomial)
            if polynomial == 0:
                continue
            q2, q1, q0 = (sp.Poly(exponent, U).coeff_monomial(U**k) for k in (2, 1, 0))
            if q2.is_positive:
                raise ActivationError(
                    f"φ'(u)² grows like exp({q2}·u²) on ({piece.lower}, {piece.upper}): "
                    "its Gaussian integrals diverge for large r"
                )
            coefficients = tuple(sp.Poly(polynomial, U).all_coeffs()[::-1])
            if len(coefficients) - 1 > MAX_POLYNOMIAL_DEGREE:
                raise ActivationError(
                    f"φ'(u)² has a polynomial factor of degree {len(coefficients) - 1} on "
                    f"({piece.lower}, {piece.upper}); the kernels support degree up to "
                    f"{MAX_POLYNOMIAL_DEGREE}"
                )
            terms.append(GaussianTerm(piece.lower, piece.upper, coefficients, q2, q1, q0))
    return terms


# --- step 3: closed forms --------------------------------------------------------------------


def normal_cdf(x: sp.Expr) -> sp.Expr:
    """Φ(x) = erfc(−x/√2)/2."""
    if x == sp.oo:
        return sp.Integer(1)
    if x == -sp.oo:
        return sp.Integer(0)
    return sp.erfc(-x / sp.sqrt(2)) / 2


def normal_pdf(x: sp.Expr) -> sp.Expr:
    """φ(x) = exp(−x²/2)/√(2π)."""
    if x in (sp.oo, -sp.oo):
        return sp.Integer(0)
    return sp.exp(-(x**2) / 2) / sp.sqrt(2 * sp.pi)


def truncated_moment(j: int, alpha: sp.Expr, beta: sp.Expr) -> sp.Expr:
    """J_j(α, β) = ∫_α^β y^j φ(y) dy, by J_j = (j−1) J_{j−2} + α^{j−1}φ(α) − β^{j−1}φ(β)."""
    if j == 0:
        return normal_cdf(beta) - normal_cdf(alpha)
    if j == 1:
        return normal_pdf(alpha) - normal_pdf(beta)

    def boundary(x: sp.Expr) -> sp.Expr:
        return sp.Integer(0) if x in (sp.oo, -sp.oo) else x ** (j - 1) * normal_pdf(x)

    return (j - 1) * truncated_moment(j - 2, alpha, beta) + boundary(alpha) - boundary(beta)


def _z_of_kink(kink: sp.Expr) -> sp.Expr:
    """The point z = (c − b)/r where u = rz + b crosses the kink c (for r > 0)."""
    return kink if kink in (sp.oo, -sp.oo) else (kink - B) / R


def term_moment(term: GaussianTerm, k: int) -> sp.Expr:
    """∫ z^k P(rz+b) exp(Q(rz+b)) φ(z) dz over the term's interval, in closed form (r > 0)."""
    mean, std = term.mean, term.std
    alpha, beta = (
        limit if limit in (sp.oo, -sp.oo) else sp.simplify((_z_of_kink(limit) - mean) / std)
        for limit in (term.lower, term.upper)
    )
    z = mean + std * Y
    integrand = sp.Poly(sp.expand(z**k * term.polynomial_expr(R * z + B)), Y)
    total = sum(
        coefficient * truncated_moment(power, alpha, beta)
        for (power,), coefficient in integrand.terms()
    )
    return sp.exp(term.log_scale) * total


@dataclass(frozen=True)
class GaussianIntegrals:
    """The three Fisher integrals of one activation, with the derivation that produced them."""

    phi: sp.Expr
    g: sp.Expr
    pieces: tuple[Piece, ...]
    terms: tuple[GaussianTerm, ...]

    @cached_property
    def closed_forms(self) -> tuple[sp.Expr, sp.Expr, sp.Expr]:
        """(A00, A0n, Ann) = (I_0, I_1, I_2) as closed-form SymPy expressions in r > 0 and b."""
        return tuple(
            sp.simplify(sum(term_moment(term, k) for term in self.terms)) for k in range(3)
        )


def derive_integrals(phi: sp.Expr) -> GaussianIntegrals:
    """Split φ'² into Gaussian terms; raise NoClosedForm where a piece does not split."""
    g = derivative_squared(phi)
    piece_list = pieces(g)
    return GaussianIntegrals(phi, g, tuple(piece_list), tuple(gaussian_terms(piece_list)))


# --- the numerical path ----------------------------------------------------------------------


@dataclass(frozen=True)
class RemainderPiece:
    """ρ = φ'² − step on (lower, upper), with ρ, ρ', ρ'' in their stable one-sided forms."""

    lower: sp.Expr
    upper: sp.Expr
    positive_side: bool
    value: sp.Expr
    first: sp.Expr
    second: sp.Expr


@dataclass(frozen=True)
class NumericalPlan:
    """φ'² = Σ closed-form terms + ρ(u), ρ by quadrature.

    ``tails`` are the closed-form terms: the step L−·[u < 0] + L+·[u > 0] and the leading
    exponential terms of each tail; ``tail_forms`` their (value, first, second) in u, for
    when the kernel integrates a term with ρ instead. ``jumps`` lists
    (c, ρ(c+) − ρ(c−), ρ'(c+) − ρ'(c−)) at the interior boundaries of the remainder pieces,
    with every closed-form term removed; Stein's identity needs them (see ``runtime``).
    """

    phi: sp.Expr
    g: sp.Expr
    reason: str
    remainder: tuple[RemainderPiece, ...]
    jumps: tuple[tuple[sp.Expr, sp.Expr, sp.Expr], ...]
    tails: tuple[GaussianTerm, ...]
    tail_forms: tuple[tuple[sp.Expr, sp.Expr, sp.Expr], ...]
    #: (L−, L+), the limits of φ'² at ±∞; the first tails are the step's nonzero ones.
    limits: tuple[sp.Expr, sp.Expr]
    #: φ'² is one analytic expression on the whole line (no kinks): the kernel may replace the
    #: step by a smooth one and integrate the smooth remainder by the trapezoidal rule.
    smooth: bool

    @property
    def step_tails(self) -> tuple[bool, ...]:
        """Per tail term, whether it is part of the step L−·[u < 0] + L+·[u > 0]."""
        count = sum(1 for limit in self.limits if limit != 0)
        return tuple(index < count for index in range(len(self.tails)))


def _as_function_of_u(expression: sp.Expr) -> sp.Expr:
    from fisher_sym.stable import S_NEGATIVE, T_POSITIVE

    return expression.subs({T_POSITIVE: sp.exp(-U), S_NEGATIVE: sp.exp(U)})


#: How many leading exponential terms of each tail are moved from ρ into closed form.
ASYMPTOTIC_TERMS = 2


def _leading_exponentials(expression: sp.Expr, positive_side: bool) -> list[tuple[sp.Expr, int]]:
    """The leading terms c(u)·w^k of a one-sided form as w = exp(∓u) → 0 (c polynomial)."""
    from fisher_sym.stable import S_NEGATIVE, T_POSITIVE

    w = T_POSITIVE if positive_side else S_NEGATIVE
    if not expression.has(w) or expression.has(sp.exp, sp.Function):
        return []
    series = sp.series(expression, w, 0, 12).removeO()
    terms = []
    for power in range(1, 12):
        coefficient = sp.expand(series.coeff(w, power))
        if coefficient != 0 and coefficient.is_polynomial(U):
            terms.append((coefficient, power))
        if len(terms) == ASYMPTOTIC_TERMS:
            break
    return terms


def numerical_plan(phi: sp.Expr, reason: str) -> NumericalPlan:
    """Split φ'² into a closed-form part and a remainder ρ for quadrature.

    The closed-form part is the step L−·[u < 0] + L+·[u > 0] (the limits of φ'² at ±∞) plus
    the leading exponential terms c(u)·exp(∓k·u) of each tail (``tails``): in a deep tail ρ
    is then smaller than the closed-form part by many orders of magnitude, and the tilted
    moments that the inverse needs (q = 1 − v ≈ 0 for an exponential tilt) come out exactly.
    Where a tail term's Gaussian lies far beyond its kink, its closed form would cancel
    (log weight − log mass), so the kernel integrates it with ρ instead (``tail_forms``).
    """
    from fisher_sym.stable import one_sided

    g = derivative_squared(phi)
    g_pieces = pieces(g)
    limits = {}
    for side, infinity in ((True, sp.oo), (False, -sp.oo)):
        outermost = g_pieces[-1] if side else g_pieces[0]
        try:
            limit = sp.limit(outermost.expression, U, infinity)
        except (ValueError, TypeError, NotImplementedError):  # e.g. an oscillating φ'²
            limit = sp.nan
        if isinstance(limit, sp.AccumBounds) or not (limit.is_real and limit.is_finite):
            raise ActivationError(
                f"φ'(u)² has no finite limit as u → {infinity} and no closed form ({reason})"
            )
        limits[side] = limit
    zero = sp.Integer(0)
    tails, tail_forms = [], []
    for side, lower, upper in ((False, -sp.oo, zero), (True, zero, sp.oo)):
        if limits[side] != 0:
            tails.append(GaussianTerm(lower, upper, (limits[side],), zero, zero, zero))
            tail_forms.append((limits[side], zero, zero))
    remainder = []
    for piece in g_pieces:
        bounds = [piece.lower, piece.upper]
        if piece.lower < 0 < piece.upper:
            bounds.insert(1, zero)
        for lower, upper in zip(bounds[:-1], bounds[1:], strict=True):
            side = bool(lower >= 0)
            value = one_sided(piece.expression - limits[side], side)
            if (upper if side else lower) in (sp.oo, -sp.oo):
                for coefficient, power in _leading_exponentials(value, side):
                    rate = -power if side else power
                    polynomial = tuple(sp.Poly(coefficient, U).all_coeffs()[::-1])
                    tails.append(GaussianTerm(lower, upper, polynomial, zero, sp.Integer(rate), zero))
                    tail = coefficient * sp.exp(rate * U)
                    tail_forms.append(
                        tuple(one_sided(sp.diff(tail, U, k), side) for k in range(3))
                    )
                    value = one_sided(_as_function_of_u(value) - tail, side)
            first = one_sided(sp.diff(_as_function_of_u(value), U), side)
            second = one_sided(sp.diff(_as_function_of_u(first), U), side)
            remainder.append(RemainderPiece(lower, upper, side, value, first, second))
    jumps = []
    for left, right in zip(remainder[:-1], remainder[1:], strict=True):
        kink = left.upper

        def at(expression: sp.Expr) -> sp.Expr:
            return sp.nsimplify(sp.simplify(_as_function_of_u(expression).subs(U, kink)))

        jump = sp.simplify(at(right.value) - at(left.value))
        slope_jump = sp.simplify(at(right.first) - at(left.first))
        if jump != 0 or slope_jump != 0:
            jumps.append((kink, jump, slope_jump))
    return NumericalPlan(
        phi, g, reason, tuple(remainder), tuple(jumps), tuple(tails), tuple(tail_forms),
        limits=(limits[False], limits[True]), smooth=len(g_pieces) == 1,
    )


def plan(phi: sp.Expr) -> GaussianIntegrals | NumericalPlan:
    """The closed-form split of φ'² where one exists, the numerical plan otherwise."""
    try:
        return derive_integrals(phi)
    except NoClosedForm as reason:
        return numerical_plan(phi, str(reason))
