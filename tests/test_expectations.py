"""The mean-field stage: E[φ(τv)] and E[φ(τv)²] in closed form, by series, or by a plan.

Each closed form is held against mpmath quadrature or a symbolic identity; the generated
kernels are tested in test_mean_field.py.
"""

import mpmath
import pytest
import sympy as sp

from fisher_sym import activations, expectations, reference
from fisher_sym.expectations import TAU, derive_mean_field, half_line_moment


def test_half_line_moments_match_quadrature():
    with mpmath.workdps(30):
        for k in range(8):
            want = mpmath.quad(lambda v, k=k: v**k * mpmath.npdf(v), [0, mpmath.inf])
            assert abs(sp.N(half_line_moment(k), 30) - want) < mpmath.mpf(10) ** -28


def test_elu_series_is_the_taylor_expansion_of_its_closed_form():
    """The one-sided series (derivatives of φ at 0± times half-line moments) against SymPy's own
    expansion of the closed form in τ: a symbolic identity, coefficient by coefficient."""
    plan = derive_mean_field(activations.builtin("elu").expression)
    for expectation in (plan.mean, plan.second_moment):
        expansion = sp.series(expectation.closed_form, TAU, 0, 8).removeO()
        for k in range(8):
            difference = sp.simplify(expansion.coeff(TAU, k) - expectation.series.coefficients[k])
            assert difference == 0, (expectation.label, k)


def test_price_theorem_closed_form_matches_quadrature():
    """φ = erf(u)/2 + u: φ' is a constant plus a Gaussian, so E[φ(τv)²] comes from Price's
    theorem (the mean is 0, φ being odd)."""
    phi = activations.parse_expression("erf(u)/2 + u")
    plan = derive_mean_field(phi)
    assert (plan.mean.kind, plan.second_moment.kind) == ("constant", "closed form")
    for tau in ("0.75", "3"):  # exact in binary: the reference takes a float
        want = reference.activation_moments_mp(phi, float(tau), dps=30)[1]
        for form in (plan.second_moment.closed_form, plan.second_moment.expression):
            with mpmath.workdps(40):
                got = mpmath.mpf(form.subs(TAU, sp.Rational(tau)).evalf(40))
                assert abs(got - want) <= mpmath.mpf(10) ** -28 * abs(want)


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
