"""The mean-field stage: E[φ(τv)] and E[φ(τv)²] in closed form, by series, or by a plan.

Each piece is held against mpmath quadrature or a symbolic identity; the closed forms, through
the generated kernels that evaluate them, in test_mean_field.py.
"""

import mpmath
import pytest
import sympy as sp

from fisher_sym import activations, expectations
from fisher_sym.expectations import TAU, derive_mean_field, half_line_moment, one_sided_series
from fisher_sym.gaussian import B, R, gaussian_terms, split_at_kinks, term_moment


def test_half_line_moments_match_quadrature():
    with mpmath.workdps(30):
        for k in range(8):
            want = mpmath.quad(lambda v, k=k: v**k * mpmath.npdf(v), [0, mpmath.inf])
            assert abs(sp.N(half_line_moment(k), 30) - want) < mpmath.mpf(10) ** -28


def test_elu_series_is_the_taylor_expansion_of_its_closed_form():
    """The one-sided series (derivatives of f at 0± times half-line moments) against SymPy's own
    expansion in τ of the closed form of f's Gaussian terms: a symbolic identity, coefficient
    by coefficient, for f = φ and f = φ²."""
    phi = activations.builtin("elu").expression
    for f in (phi, phi**2):
        pieces = split_at_kinks(f)
        closed = sum(
            term_moment(term, 0).subs(B, 0).subs(R, TAU) for term in gaussian_terms(pieces)
        )
        expansion = sp.expand(sp.series(closed, TAU, 0, 6).removeO())
        series = one_sided_series(pieces, 5)
        for k in range(6):
            assert sp.simplify(expansion.coeff(TAU, k) - series[k]) == 0, (f, k)


def test_off_centre_gaussian_derivative_goes_the_numerical_way():
    plan = derive_mean_field(activations.parse_expression("erf(u + 1)"))
    assert plan.mean.kind == plan.second_moment.kind == "numerical"
    assert "off u = 0" in plan.mean.reason


@pytest.mark.parametrize(
    ("text", "constant"), [("tanh(u)", 0), ("1/(1 + exp(-u))", sp.Rational(1, 2))]
)
def test_symmetry_gives_the_constant_mean(text, constant):
    phi = activations.parse_expression(text)
    expectation = expectations.derive_expectation(phi, "E[φ(τv)]", phi)
    assert expectation.kind == "constant" and expectation.closed_form == constant
    function = sp.lambdify(activations.U, phi, modules="mpmath")
    with mpmath.workdps(20):  # and quadrature agrees, at τ = 2
        mean = mpmath.quad(lambda v: function(2 * v) * mpmath.npdf(v), [-mpmath.inf, 0, mpmath.inf])
        assert abs(mean - constant) < 1e-18
