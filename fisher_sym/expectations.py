"""Mean-field expectations of an activation: E[φ(τv)] and E[φ(τv)²] for v ~ N(0, 1), τ ≥ 0.

The third mean-field quantity, E[φ'(τv)²], is the Fisher block's A00 at r = τ, b = 0 (see
``gaussian.py``). For f = φ and f = φ² the engine takes the first of these that applies:

1. **Symmetry.** v and −v have the same law, so E[f(τv)] = E[f_e(τv)] with the even part
   f_e(u) = (f(u) + f(−u))/2. Where f_e is a constant c (φ odd: c = 0; sigmoid: c = 1/2),
   E[f(τv)] = c for every τ.
2. **A polynomial in τ.** Where f is a polynomial on each side of 0 and has no other kink,
   E[f(τv)] = Σ_k τ^k (a_k⁺ M_k⁺ + a_k⁻ M_k⁻) exactly, with f = Σ_k a_k^± u^k on ±u > 0 and
   the half-line moments M_k^± = ∫_{±v>0} v^k φ(v) dv = (±1)^k 2^{k/2} Γ((k+1)/2)/(2√π).
3. **Gaussian terms.** Where f splits between its kinks into terms P(u)·exp(Q(u)) (elu,
   relu6, hardtanh), each term integrates in closed form as the terms of φ'² do
   (``gaussian.term_moment`` at r = τ, b = 0), and the kernel sums the terms' values.
4. **The heat equation and Price's theorem.** Where φ' is one sum of Gaussian terms
   P(u)·exp(q₂u² + q₀) on the whole line, centred at u = 0 (erf), with s = τ²:

       d/ds E[φ(√s v)] = ½ E[φ''(√s v)],
       E[φ(τv)²] = E[φ(τv)]² + ∫_0^s E[φ'(X_c) φ'(Y_c)] dc,

   where (X_c, Y_c) is normal with variances s and covariance c (Price's theorem: the
   derivative of E[φ(X_c)φ(Y_c)] in c is E[φ'(X_c)φ'(Y_c)]; at c = 0 the two are
   independent, at c = s equal). Both integrands are Gaussian integrals in closed form;
   SymPy integrates them in s or c where it can, and the result is checked against
   quadrature before it is used.
5. **Numerically**, otherwise: E[f(τv)] = 2∫_0^∞ f_e(τz) φ(z) dz, with f_e written for u > 0
   by ``stable.positive_side_value`` (tanh, sigmoid, softplus, silu, gelu).

The closed forms of kinds 3 and 4 are sums whose terms can cancel as τ → 0 (elu's E[φ] is
O(τ²), its terms O(τ)). Below ``Series.limit`` the kernel therefore sums the Taylor series in
τ instead (the expansion of kind 2 from the one-sided derivatives of f at 0). The limit and the
series' length are chosen at derivation time, in 60-digit mpmath, so that the truncated series
is exact to 2⁻⁶⁰ there and the closed form's terms exceed their sum by at most ``MAX_CANCELLATION``
above it; where no limit satisfies both, the next kind is tried.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import mpmath
import sympy as sp

from fisher_sym.activations import ActivationError, U
from fisher_sym.gaussian import (
    B,
    GaussianTerm,
    NoClosedForm,
    Piece,
    R,
    _split_term,
    gaussian_terms,
    split_at_kinks,
    term_moment,
)
from fisher_sym.stable import T_POSITIVE, positive_side_value

TAU = sp.Symbol("tau", positive=True)
#: The variance s = τ² and the covariance c of Price's theorem.
S = sp.Symbol("s", positive=True)
C = sp.Symbol("c", real=True)

#: Longest Taylor series in τ the kernels sum below ``Series.limit``.
MAX_SERIES_ORDER = 64
#: The series must be exact to this relative error where it is used.
SERIES_TOLERANCE = mpmath.mpf(2) ** -60
#: Largest ratio Σ|terms| / |Σ terms| allowed, for the closed form above the series' limit and
#: for the series itself below it: a relative error of about this many ulps at worst.
MAX_CANCELLATION = 256
#: Candidate limits of the series, 2⁰ down to 2⁻²⁰, and the τ at which the closed form's
#: cancellation is checked above a limit (up to 2¹⁴ > 10⁴).
SERIES_LIMITS = tuple(mpmath.mpf(2) ** -k for k in range(0, 21))
CANCELLATION_GRID = tuple(mpmath.mpf(2) ** k for k in range(-20, 15))
#: Digits of the derivation-time checks.
CHECK_DPS = 60


@dataclass(frozen=True)
class Series:
    """E[f(τv)] ≈ Σ_k coefficients[k]·τ^k for τ ≤ limit (limit = ∞: the sum is exact)."""

    coefficients: tuple[sp.Expr, ...]
    limit: float

    def expression(self, variable: sp.Expr = TAU) -> sp.Expr:
        return sum(c * variable**k for k, c in enumerate(self.coefficients))


@dataclass(frozen=True)
class Expectation:
    """How the kernels compute E[f(τv)], for f = φ or φ², and what the derivation found.

    ``kind`` is one of "constant", "polynomial", "gaussian terms", "closed form" (kind 4 of the
    module docstring) and "numerical"; ``closed_form`` is the exact E[f(τv)] in ``TAU`` for τ > 0
    (None for "numerical"); ``terms`` the Gaussian terms of f ("gaussian terms");
    ``expression`` the form the kernel evaluates ("closed form"); ``series`` the Taylor series
    used near τ = 0 (or everywhere, "polynomial"); ``even_pieces`` the even part f_e on u > 0
    in the form ``stable.positive_side_value`` gives ("numerical").
    """

    label: str
    function: sp.Expr
    kind: str
    reason: str
    at_zero: sp.Expr
    closed_form: sp.Expr | None = None
    terms: tuple[GaussianTerm, ...] = ()
    expression: sp.Expr | None = None
    series: Series | None = None
    even_pieces: tuple[Piece, ...] = ()

    @property
    def kinks(self) -> tuple[sp.Expr, ...]:
        """The kinks of f_e on u > 0 ("numerical")."""
        return tuple(piece.upper for piece in self.even_pieces[:-1])


@dataclass(frozen=True)
class MeanFieldPlan:
    """E[φ(τv)] and E[φ(τv)²] of one activation."""

    phi: sp.Expr
    mean: Expectation
    second_moment: Expectation


# --- pieces and series ---------------------------------------------------------------------------


def even_part_pieces(f: sp.Expr) -> tuple[Piece, ...]:
    """f_e(u) = (f(u) + f(−u))/2 on u > 0, split at its kinks, each piece in the form of
    ``stable.positive_side_value`` (f_e is even, so this determines it)."""
    even = (f + f.subs(U, -U)) / 2
    pieces = []
    for piece in split_at_kinks(even):
        if piece.upper <= 0:
            continue
        lower = piece.lower if piece.lower != -sp.oo and piece.lower >= 0 else sp.Integer(0)
        value = positive_side_value(piece.expression)
        if pieces and sp.simplify(pieces[-1].expression - value) == 0:
            pieces[-1] = Piece(pieces[-1].lower, piece.upper, pieces[-1].expression)
        else:
            pieces.append(Piece(lower, piece.upper, value))
    return tuple(pieces)


def half_line_moment(k: int) -> sp.Expr:
    """M_k⁺ = ∫_0^∞ v^k φ(v) dv = 2^{k/2} Γ((k+1)/2) / (2√π): (k − 1)!!/2 for even k,
    2^j j!/√(2π) for k = 2j + 1; M_k⁻ = (−1)^k M_k⁺."""
    if k % 2 == 0:
        return sp.factorial2(k - 1) / 2
    j = (k - 1) // 2
    return 2**j * sp.factorial(j) / sp.sqrt(2 * sp.pi)


def _sides_at_zero(pieces: list[Piece]) -> tuple[sp.Expr, sp.Expr]:
    """The expressions of f on (−ε, 0) and on (0, ε)."""
    left = next(p for p in pieces if p.lower < 0 and p.upper >= 0)
    right = next(p for p in pieces if p.lower <= 0 and p.upper > 0)
    return left.expression, right.expression


def _truncated(polynomial: sp.Poly, order: int) -> sp.Poly:
    return sp.Poly.from_dict(
        {m: c for m, c in polynomial.as_dict().items() if m[0] <= order},
        U,
        domain=polynomial.domain,
    )


def _gaussian_taylor(expression: sp.Expr, order: int) -> sp.Poly | None:
    """The Taylor polynomial of a sum of terms P(u)·exp(q₂u² + q₁u + q₀) up to u^order, by
    exp(w) = Σ_j w^j/j! with w = q₂u² + q₁u truncated (far faster than ``sympy.series``);
    None where ``expression`` is not such a sum."""
    total = sp.Poly(0, U, domain="EX")
    for term in sp.Add.make_args(sp.expand(expression)):
        try:
            polynomial, exponent = _split_term(term)
        except NoClosedForm:
            return None
        exponent = sp.Poly(exponent, U, domain="EX")
        q0 = exponent.coeff_monomial(1)
        w = exponent - sp.Poly(q0, U, domain="EX")
        series = power = sp.Poly(1, U, domain="EX")
        for j in range(1, order + 1):
            power = _truncated(power * w, order)
            if power.is_zero:
                break
            series += power * sp.Poly(sp.Rational(1, sp.factorial(j)), U, domain="EX")
        product = sp.Poly(polynomial, U, domain="EX") * series * sp.Poly(sp.exp(q0), U, domain="EX")
        total += _truncated(product, order)
    return total


def _taylor(expression: sp.Expr, order: int) -> list[sp.Expr]:
    """Coefficients a_0 … a_order of the Taylor series of ``expression`` at u = 0."""
    fast = _gaussian_taylor(expression, order)
    if fast is not None:
        coefficients = [fast.coeff_monomial(U**k) for k in range(order + 1)]
    else:
        expansion = sp.series(expression, U, 0, order + 1).removeO()
        coefficients = [sp.expand(expansion).coeff(U, k) for k in range(order + 1)]
    coefficients = [sp.nsimplify(c) if c.is_Float else c for c in coefficients]
    return (coefficients + [sp.Integer(0)] * (order + 1))[: order + 1]


def one_sided_series(pieces: list[Piece], order: int) -> tuple[sp.Expr, ...]:
    """c_k = a_k⁺ M_k⁺ + a_k⁻ M_k⁻, k = 0 … order: E[f(τv)] = Σ c_k τ^k + O(τ^(order+1)) when f
    is analytic on each side of 0 (the other kinks contribute O(exp(−κ²/2τ²)))."""
    left, right = _sides_at_zero(pieces)
    a_left, a_right = _taylor(left, order), _taylor(right, order)
    return tuple(
        sp.expand((a_right[k] + (-1) ** k * a_left[k]) * half_line_moment(k))
        for k in range(order + 1)
    )


def _mp_function(expression: sp.Expr):
    return sp.lambdify(TAU, expression, modules="mpmath")


def _cancellation(values) -> mpmath.mpf:
    total = mpmath.fsum(values)
    magnitude = mpmath.fsum(abs(v) for v in values)
    return magnitude / abs(total) if total != 0 else mpmath.inf


def _choose_series(
    coefficients: tuple[sp.Expr, ...], term_expressions: list[sp.Expr]
) -> Series | None:
    """The Taylor series the kernel sums near τ = 0 instead of the closed form that is the sum
    of ``term_expressions``, or None where those terms do not cancel as τ → 0 (see the module
    docstring); raise NoClosedForm where the closed form cancels and no series can take over."""
    terms = [_mp_function(t) for t in term_expressions]
    with mpmath.workdps(CHECK_DPS):

        def cancellation(tau):
            return _cancellation([term(tau) for term in terms])

        if cancellation(mpmath.mpf(2) ** -60) <= 16:
            for tau in CANCELLATION_GRID:
                if cancellation(tau) > MAX_CANCELLATION:
                    raise NoClosedForm(
                        f"the closed form's terms cancel at τ = {mpmath.nstr(tau, 5)}"
                    )
            return None
        numbers = [mpmath.mpf(sp.N(c, CHECK_DPS + 10)) for c in coefficients]

        def exact(tau):
            return mpmath.fsum(term(tau) for term in terms)

        def series_error(tau, order):
            value = mpmath.fsum(c * tau**k for k, c in enumerate(numbers[: order + 1]))
            return abs(value - exact(tau)) / abs(exact(tau))

        limit = None
        for tau in SERIES_LIMITS:
            below = (tau, tau / 2, tau / 4)
            if all(series_error(t, len(numbers) - 1) <= SERIES_TOLERANCE for t in below) and (
                _cancellation([c * tau**k for k, c in enumerate(numbers)]) <= MAX_CANCELLATION
            ):
                limit = tau
                break
        if limit is None:
            raise NoClosedForm("its terms cancel as τ → 0 and no Taylor series in τ is exact there")
        for tau in CANCELLATION_GRID:
            if tau > limit and cancellation(tau) > MAX_CANCELLATION:
                raise NoClosedForm(
                    f"the closed form's terms cancel at τ = {mpmath.nstr(tau, 5)}, above the "
                    f"series' range τ ≤ {mpmath.nstr(limit, 5)}"
                )
        order = len(numbers) - 1
        while order > 0 and series_error(limit, order - 1) <= SERIES_TOLERANCE:
            order -= 1
    return Series(tuple(coefficients[: order + 1]), float(limit))


# --- the kinds ------------------------------------------------------------------------------------


def _constant(pieces: tuple[Piece, ...]) -> sp.Expr | None:
    values = {sp.simplify(piece.expression) for piece in pieces}
    if len(values) == 1:
        (value,) = values
        if value.is_number:
            return value
    return None


def _polynomial(pieces: list[Piece]) -> Series | None:
    kinks = {piece.upper for piece in pieces[:-1]}
    if not kinks <= {sp.Integer(0)} or not all(p.expression.is_polynomial(U) for p in pieces):
        return None
    degree = max(sp.degree(p.expression, U) if p.expression != 0 else 0 for p in pieces)
    coefficients = list(one_sided_series(pieces, max(degree, 0)))
    while len(coefficients) > 1 and coefficients[-1] == 0:
        coefficients.pop()
    return Series(tuple(coefficients), float("inf"))


def _gaussian_terms(f: sp.Expr, pieces: list[Piece]):
    """(terms, closed form, series) of f by Gaussian terms; NoClosedForm where f does not split."""
    try:
        terms = gaussian_terms(pieces)
    except ActivationError as error:  # a degree or a growth the term kernels do not support
        raise NoClosedForm(str(error)) from None
    values = [term_moment(term, 0).subs(B, 0).subs(R, TAU) for term in terms]
    series = _choose_series(one_sided_series(pieces, MAX_SERIES_ORDER), values)
    return tuple(terms), sp.simplify(sum(values)), series


def _smooth_derivative_terms(phi: sp.Expr, order: int) -> list[GaussianTerm]:
    """The Gaussian terms of φ^(order) when it is one smooth sum of them on the whole line."""
    derivative = sp.diff(phi, U, order)
    pieces = split_at_kinks(derivative)
    if len(pieces) != 1:
        raise NoClosedForm(f"φ^({order}) has kinks")
    try:
        terms = gaussian_terms(pieces)
    except ActivationError as error:
        raise NoClosedForm(str(error)) from None
    if any(term.q1 != 0 for term in terms):
        # exp(q₁u) makes the integrands exponentials of rational functions of s or c, which
        # SymPy does not integrate in reasonable time (φ = erf(u + 1)).
        raise NoClosedForm(f"φ^({order}) has Gaussian terms off u = 0")
    return terms


def _bivariate_expectation(first: GaussianTerm, second: GaussianTerm) -> sp.Expr:
    """E[P₁(X)e^{Q₁(X)} P₂(Y)e^{Q₂(Y)}] for (X, Y) normal with variances s and covariance c.

    With Σ = [[s, c], [c, s]], Q = diag(q₂, q₂'), l = (q₁, q₁'): the tilted Gaussian has
    covariance K = (I − 2ΣQ)⁻¹Σ and mean Kl, and the expectation is
    exp(q₀ + q₀' + lᵀKl/2) / √det(I − 2ΣQ) · E_{N(Kl, K)}[P₁(X)P₂(Y)], the last from the
    moment generating function exp(mᵀt + tᵀKt/2)."""
    sigma = sp.Matrix([[S, C], [C, S]])
    tilt = sp.diag(first.q2, second.q2)
    shift = sp.Matrix([first.q1, second.q1])
    a = sp.eye(2) - 2 * sigma * tilt
    covariance = sp.simplify(a.inv() * sigma)
    mean = covariance * shift
    t = sp.Matrix(sp.symbols("t1 t2", real=True))
    mgf = sp.exp((mean.T * t)[0] + (t.T * covariance * t)[0] / 2)
    x, y = sp.symbols("x y", real=True)
    product = sp.Poly(sp.expand(first.polynomial_expr(x) * second.polynomial_expr(y)), x, y)
    moments = sum(
        coefficient * sp.diff(mgf, t[0], i, t[1], j).subs({t[0]: 0, t[1]: 0})
        for (i, j), coefficient in product.terms()
    )
    scale = sp.exp(first.q0 + second.q0 + (shift.T * covariance * shift)[0] / 2)
    return sp.simplify(scale * moments / sp.sqrt(sp.factor(a.det())))


def _integrated(integrand: sp.Expr, variable: sp.Symbol, upper: sp.Expr) -> sp.Expr:
    result = sp.integrate(integrand, (variable, 0, upper))
    if result.has(sp.Integral, sp.Piecewise) or result.has(sp.I):
        raise NoClosedForm(f"SymPy does not integrate {integrand} in {variable}")
    return result


def _heat_equation_mean(phi: sp.Expr) -> sp.Expr:
    """E[φ(√s v)] = φ(0) + ½ ∫_0^s E[φ''(√s' v)] ds', in s."""
    terms = _smooth_derivative_terms(phi, 2)
    s_prime = sp.Symbol("s_prime", positive=True)
    rate = sum(term_moment(term, 0).subs(B, 0).subs(R, sp.sqrt(s_prime)) for term in terms)
    return phi.subs(U, 0) + _integrated(sp.simplify(rate), s_prime, S) / 2


def _price_second_moment(phi: sp.Expr, mean: sp.Expr) -> sp.Expr:
    """E[φ(√s v)²] = E[φ(√s v)]² + ∫_0^s E[φ'(X_c)φ'(Y_c)] dc (Price's theorem), in s."""
    terms = _smooth_derivative_terms(phi, 1)
    rate = sum(_bivariate_expectation(a, b) for a in terms for b in terms)
    return mean**2 + _integrated(sp.simplify(rate), C, S)


def _factored_roots(expression: sp.Expr) -> sp.Expr:
    """√x with x factored, so that √((2τ² + 1)²) becomes 2τ² + 1 and nothing is squared twice
    (which would overflow at large τ)."""
    return expression.replace(
        lambda e: e.is_Pow and e.exp.is_Rational and not e.exp.is_Integer,
        lambda e: sp.Pow(sp.factor(e.base), e.exp),
    )


def _asin_as_atan(expression: sp.Expr) -> sp.Expr:
    """asin(A) → atan(A/√(1 − A²)) with 1 − A² simplified symbolically: asin is ill-conditioned
    next to A = 1 (erf's E[φ²] at large τ), atan is not."""

    def rewrite(e: sp.asin) -> sp.Expr:
        (argument,) = e.args
        complement = sp.factor(sp.cancel(1 - argument**2))
        return sp.atan(_factored_roots(sp.simplify(argument / sp.sqrt(complement))))

    return expression.replace(lambda e: isinstance(e, sp.asin), rewrite)


def _check_against_quadrature(f: sp.Expr, closed: sp.Expr) -> None:
    """Guard against a wrong branch of ``sympy.integrate``: the closed form must agree with
    quadrature at τ = 1/2 and τ = 2."""
    numeric = sp.lambdify(U, f, modules="mpmath")
    value = _mp_function(closed)
    with mpmath.workdps(30):
        for tau in (mpmath.mpf(1) / 2, mpmath.mpf(2)):
            quadrature = mpmath.quad(
                lambda v, tau=tau: numeric(tau * v) * mpmath.npdf(v),
                [-mpmath.inf, -1, 0, 1, mpmath.inf],
            )
            if abs(value(tau) - quadrature) > mpmath.mpf(10) ** -20 * (1 + abs(quadrature)):
                raise NoClosedForm(f"the integrated closed form fails its check at τ = {tau}")


def _stable_closed_form(f: sp.Expr, exact_in_s: sp.Expr, pieces: list[Piece]):
    """(closed form in τ, the form the kernel evaluates, its series) of kind 4."""
    closed = _factored_roots(sp.simplify(exact_in_s.subs(S, TAU**2)))
    _check_against_quadrature(f, closed)
    stable = _asin_as_atan(_factored_roots(closed))
    terms = list(sp.Add.make_args(sp.expand(stable, deep=False)))
    series = _choose_series(one_sided_series(pieces, MAX_SERIES_ORDER), terms)
    return closed, stable, series


# --- the plan -------------------------------------------------------------------------------------


def derive_expectation(f: sp.Expr, label: str, phi: sp.Expr, mean: Expectation | None = None):
    """The ``Expectation`` of f (φ, or φ² with ``mean`` the plan of E[φ(τv)])."""
    at_zero = sp.simplify(f.subs(U, 0))
    even = even_part_pieces(f)
    constant = _constant(even)
    if constant is not None:
        reason = "its even part (f(u) + f(−u))/2 is the constant " + sp.sstr(constant)
        return Expectation(label, f, "constant", reason, at_zero, closed_form=constant)
    pieces = split_at_kinks(f)
    series = _polynomial(pieces)
    if series is not None:
        return Expectation(
            label,
            f,
            "polynomial",
            "f is a polynomial on each side of 0",
            at_zero,
            closed_form=sp.expand(series.expression()),
            series=series,
        )
    failures = []
    try:
        terms, closed, series = _gaussian_terms(f, pieces)
        return Expectation(
            label,
            f,
            "gaussian terms",
            "f splits into Gaussian terms between its kinks",
            at_zero,
            closed_form=closed,
            terms=terms,
            series=series,
        )
    except NoClosedForm as error:
        failures.append(f"f is not a sum of Gaussian terms ({error})")
    try:
        if mean is None:
            exact = _heat_equation_mean(phi)
            reason = "the heat equation d/ds E[φ(√s v)] = E[φ''(√s v)]/2, φ'' in Gaussian terms"
        else:
            if mean.closed_form is None:
                raise NoClosedForm("E[φ(τv)] has no closed form")
            exact = _price_second_moment(phi, mean.closed_form.subs(TAU, sp.sqrt(S)))
            reason = "Price's theorem, φ' in Gaussian terms"
        closed, stable, series = _stable_closed_form(f, exact, pieces)
        return Expectation(
            label,
            f,
            "closed form",
            reason,
            at_zero,
            closed_form=closed,
            expression=stable,
            series=series,
        )
    except NoClosedForm as error:
        route = "the heat equation" if mean is None else "Price's theorem"
        failures.append(f"no closed form by {route} ({error})")
    return Expectation(label, f, "numerical", "; ".join(failures), at_zero, even_pieces=even)


@functools.cache
def derive_mean_field(phi: sp.Expr) -> MeanFieldPlan:
    """How the kernels compute E[φ(τv)] and E[φ(τv)²] (cached: a module and its page derive
    it once)."""
    mean = derive_expectation(phi, "E[φ(τv)]", phi)
    second = derive_expectation(phi**2, "E[φ(τv)²]", phi, mean)
    return MeanFieldPlan(phi, mean, second)


def uses_exponential(pieces: tuple[Piece, ...]) -> bool:
    """Whether a numerical plan's even part needs t = exp(−u)."""
    return any(piece.expression.has(T_POSITIVE) for piece in pieces)
