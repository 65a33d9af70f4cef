"""Rewrite rules that make an expression in u safe to evaluate in floating point on one side of 0.

Applied to every activation that goes the numerical way (``gaussian.numerical_plan``), so a new
activation is stable for free:

- on u > 0 every exp(k·u + c) becomes e^c·t^(−k) with t = exp(−u) ∈ (0, 1], and on u < 0
  it becomes e^c·s^k with s = exp(u) ∈ (0, 1]; hyperbolic functions are written in exp first.
  The expression is then a rational function of t (or s) that ``cancel`` puts over one
  denominator, so exp(u)/(1 + exp(u))² never overflows into inf/inf.
- erf(a·u) and erfc(a·u) become exp(−x²)·erfcx(x) with x positive on this side
  (erf(x) = 1 − erfc(x) for x > 0), and the numerator is expanded so that constants such as
  1 − 1 cancel exactly, symbolically: (Φ(u) + uφ(u))² − 1 on u > 0 becomes a sum of small
  terms instead of a difference of two numbers near 1, and erfc never underflows while
  exp(x²) overflows.
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p

from fisher_sym.activations import U

class erfcx(sp.Function):  # noqa: N801 (named like the special function it is)
    """The scaled complementary error function exp(x²)·erfc(x), kept unevaluated."""

    @classmethod
    def eval(cls, x):
        if x == 0:
            return sp.Integer(1)
        return None

    def _eval_evalf(self, precision):
        return self.rewrite(sp.erfc)._eval_evalf(precision)

    def fdiff(self, argindex=1):
        (x,) = self.args
        return 2 * x * erfcx(x) - 2 / sp.sqrt(sp.pi)

    def _eval_rewrite_as_erfc(self, x, **kwargs):
        return sp.exp(x**2) * sp.erfc(x)


T_POSITIVE = sp.Symbol("t", positive=True)  # exp(−u) on u > 0
S_NEGATIVE = sp.Symbol("s", positive=True)  # exp(u) on u < 0


def _exp_as_power(expression: sp.Expr, positive_side: bool) -> sp.Expr:
    """exp(k·u + c) → e^c·t^(−k) (u > 0) or e^c·s^k (u < 0); exp of anything else is kept."""

    def replace(exponential: sp.exp) -> sp.Expr:
        argument = sp.expand(exponential.args[0])
        if not argument.is_polynomial(U) or sp.degree(argument, U) != 1:
            return exponential
        k, c = sp.Poly(argument, U).all_coeffs()
        if positive_side:
            return sp.exp(c) * T_POSITIVE ** (-k)
        return sp.exp(c) * S_NEGATIVE**k

    return expression.replace(lambda e: isinstance(e, sp.exp), replace)


def _erf_with_positive_argument(expression: sp.Expr, positive_side: bool) -> sp.Expr:
    """erf(a·u) and erfc(a·u) via exp(−x²)·erfcx(x) with x = ±a·u positive on this side."""

    def scaled_erfc(x: sp.Expr) -> sp.Expr:
        return sp.exp(-sp.expand(x**2)) * erfcx(x)

    def argument_positive(argument: sp.Expr) -> bool:
        slope = sp.diff(argument, U)
        return bool(slope.is_positive) == positive_side

    def replace_erf(e: sp.erf) -> sp.Expr:
        (argument,) = e.args
        if argument_positive(argument):
            return 1 - scaled_erfc(argument)
        return scaled_erfc(-argument) - 1

    def replace_erfc(e: sp.erfc) -> sp.Expr:
        (argument,) = e.args
        if argument_positive(argument):
            return scaled_erfc(argument)
        return 2 - scaled_erfc(-argument)

    expression = expression.replace(lambda e: isinstance(e, sp.erf), replace_erf)
    return expression.replace(lambda e: isinstance(e, sp.erfc), replace_erfc)


def one_sided(expression: sp.Expr, positive_side: bool) -> sp.Expr:
    """``expression`` rewritten for evaluation on u > 0 (``positive_side``) or u < 0.

    The result may contain ``T_POSITIVE`` = exp(−u) or ``S_NEGATIVE`` = exp(u), which the
    printed code computes once.
    """
    expression = expression.rewrite([sp.tanh, sp.sinh, sp.cosh, sp.sech, sp.csch, sp.coth], sp.exp)
    expression = _erf_with_positive_argument(expression, positive_side)
    expression = _exp_as_power(expression, positive_side)
    numerator, denominator = sp.fraction(sp.cancel(sp.together(expression)))
    # Exponential factors go into every term of the numerator, so that exp(u²/2)·exp(−u²)
    # is printed as exp(−u²/2) and never as inf·0.
    exponentials = [f for f in sp.Mul.make_args(denominator) if isinstance(f, sp.exp)]
    for exponential in exponentials:
        numerator = numerator * sp.exp(-exponential.args[0])
        denominator = denominator / exponential
    numerator = sp.powsimp(sp.expand(numerator), combine="exp")
    return numerator / sp.factor(denominator)


# --- values of a function on u > 0 (the mean field's even parts) -------------------------------


def _log_of_polynomial(polynomial: sp.Expr) -> sp.Expr:
    """log P(t) for a polynomial P in t = exp(−u) ∈ (0, 1]: with P = t^m·(c0 + Σ_{k>0} c_k t^k),
    log P = −m·u + log c0 + log1p(Σ_{k>0} c_k t^k / c0), which neither overflows nor cancels for
    c0 > 0. Anything else is kept as log P."""
    if not polynomial.is_polynomial(T_POSITIVE):
        return sp.log(polynomial)
    poly = sp.Poly(sp.expand(polynomial), T_POSITIVE)
    lowest = min(monomial[0] for monomial in poly.monoms())
    reduced = sp.expand(sp.cancel(polynomial / T_POSITIVE**lowest))
    constant = reduced.subs(T_POSITIVE, 0)
    if not (constant.is_number and constant.is_positive):
        return sp.log(polynomial)
    rest = sp.expand(reduced / constant - 1)
    return -lowest * U + sp.log(constant) + (log1p(rest) if rest != 0 else 0)


def _split_logs(expression: sp.Expr) -> sp.Expr:
    """log of a rational function of t → logs of its numerator and denominator, each by
    ``_log_of_polynomial``: log(1 + exp(u)) on u > 0 becomes u + log1p(t)."""

    def replace(logarithm: sp.log) -> sp.Expr:
        numerator, denominator = sp.fraction(sp.cancel(sp.together(logarithm.args[0])))
        return _log_of_polynomial(numerator) - _log_of_polynomial(denominator)

    return expression.replace(lambda e: isinstance(e, sp.log) and e.has(T_POSITIVE), replace)


def _expm1_factors(expression: sp.Expr) -> sp.Expr:
    """Factors t^k − 1 of a product → expm1(−k·u), so that 1 − exp(−u) keeps its digits as
    u → 0 (silu's even part u·(1 − t)/(2(1 + t)) ≈ u²/4)."""

    def rewrite(factor: sp.Expr) -> sp.Expr:
        base, exponent = factor.as_base_exp()
        if not base.is_Add or not base.is_polynomial(T_POSITIVE) or base.has(U):
            return factor
        poly = sp.Poly(base, T_POSITIVE)
        terms = poly.terms()
        if len(terms) == 2 and {c for _, c in terms} == {1, -1} and poly.eval(1) == 0:
            ((k,), leading) = max(terms)
            return (leading * expm1(-k * U)) ** exponent
        return factor

    return sp.Mul(*(rewrite(factor) for factor in sp.Mul.make_args(expression)))


def positive_side_value(expression: sp.Expr) -> sp.Expr:
    """``expression`` (a function of u, such as φ or φ²) in a form for evaluation on u > 0.

    Hyperbolic functions become exponentials and exp(k·u + c) becomes e^c·t^(−k) with
    t = ``T_POSITIVE`` = exp(−u) ∈ (0, 1], so that nothing overflows at large u; logarithms of
    the resulting rational functions of t are split into −m·u + log c0 + log1p(…)
    (softplus: log(1 + exp(u)) = u + log1p(t)); the whole is put over one denominator, and
    factors t^k − 1 become expm1(−k·u), which keeps its digits as u → 0. erf and erfc are left
    as they are: unlike φ'², φ itself needs erf near 0, where 1 − erfc would cancel.
    """
    expression = expression.rewrite([sp.tanh, sp.sinh, sp.cosh, sp.sech, sp.csch, sp.coth], sp.exp)
    expression = _split_logs(_exp_as_power(expression, True))
    numerator, denominator = sp.fraction(sp.cancel(sp.together(expression)))
    numerator = _expm1_factors(sp.factor(numerator))
    denominator = _expm1_factors(sp.factor(denominator))
    return numerator / denominator
