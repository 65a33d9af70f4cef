"""Stability rewrite rules and the numerical plan: identities and finiteness."""

import math

import mpmath
import pytest
import sympy as sp

from fisher_sym.activations import U, builtin
from fisher_sym.codegen.printer import NumbaPrinter, numerically_stable
from fisher_sym.gaussian import _as_function_of_u, numerical_plan
from fisher_sym.stable import S_NEGATIVE, T_POSITIVE, erfcx, one_sided, positive_side_value

NUMERICAL = ["tanh", "sigmoid", "softplus", "silu", "gelu"]


def as_mpmath(expression):
    expression = _as_function_of_u(expression).replace(
        lambda e: isinstance(e, erfcx), lambda e: e.rewrite(sp.erfc)
    )
    return sp.lambdify(U, expression, modules="mpmath")


def as_float(expression, positive_side):
    """The one-sided form evaluated in double precision, as the kernel would."""
    w = T_POSITIVE if positive_side else S_NEGATIVE
    special = {"erfcx": lambda x: float(mpmath.exp(mpmath.mpf(x) ** 2) * mpmath.erfc(x))}
    function = sp.lambdify((U, w), expression, modules=[special, "math"])
    return lambda u: function(u, math.exp(-u) if positive_side else math.exp(u))


@pytest.mark.parametrize("name", NUMERICAL)
@pytest.mark.parametrize("positive_side", [True, False])
def test_one_sided_form_equals_the_original_and_is_finite_far_out(name, positive_side):
    g = sp.diff(builtin(name).expression, U) ** 2
    rewritten = one_sided(g, positive_side)
    original, stable = as_mpmath(g), as_mpmath(rewritten)
    in_double = as_float(rewritten, positive_side)
    sign = 1 if positive_side else -1
    for magnitude in (0.5, 30.0):
        u = sign * magnitude
        with mpmath.workdps(300):  # evaluated through erfc both forms cancel: give them digits
            want, got = original(u), stable(u)
            assert abs(got - want) <= mpmath.mpf(10) ** -40 * abs(want)
    for magnitude in (1.0, 50.0, 700.0, 1e5):
        value = in_double(sign * magnitude)
        assert math.isfinite(value)


@pytest.mark.parametrize("name", NUMERICAL)
def test_plan_reassembles_phi_prime_squared(name):
    # step + tail terms + remainder = φ'², at points on both sides (an exact identity).
    plan = numerical_plan(builtin(name).expression, "test")
    g = as_mpmath(plan.g)
    closed = plan.tails
    with mpmath.workdps(50):
        for u in map(mpmath.mpf, ("-7.5", "-1.25", "-0.1", "0.3", "2", "9")):
            piece = next(p for p in plan.remainder if p.lower < u < p.upper)
            total = as_mpmath(piece.value)(u)
            for term in closed:
                if term.lower < u < term.upper:
                    coefficients = [mpmath.mpf(sp.Rational(c)) for c in term.polynomial]
                    polynomial = sum(c * u**k for k, c in enumerate(coefficients))
                    exponent = sum(
                        mpmath.mpf(sp.Rational(c)) * u**k
                        for k, c in ((2, term.q2), (1, term.q1), (0, term.q0))
                    )
                    total += polynomial * mpmath.exp(exponent)
            assert abs(total - g(u)) <= mpmath.mpf(10) ** -40 * max(1, abs(g(u))), (name, u)


@pytest.mark.parametrize("name", NUMERICAL)
def test_remainder_derivatives_are_derivatives(name):
    plan = numerical_plan(builtin(name).expression, "test")
    with mpmath.workdps(50):
        for piece in plan.remainder:
            u = mpmath.mpf(piece.upper - 1 if piece.upper != sp.oo else piece.lower + 1.5)
            value, first, second = (as_mpmath(e) for e in (piece.value, piece.first, piece.second))
            assert abs(mpmath.diff(value, u) - first(u)) < mpmath.mpf(10) ** -30
            assert abs(mpmath.diff(first, u) - second(u)) < mpmath.mpf(10) ** -30


def test_erfcx_derivative_and_value():
    x = sp.Symbol("x", positive=True)
    assert sp.simplify(sp.diff(erfcx(x), x).rewrite(sp.erfc) - sp.diff(sp.exp(x**2) * sp.erfc(x), x)) == 0
    assert abs(erfcx(sp.Rational(3, 2)).evalf(30) - sp.exp(sp.Rational(9, 4)) * sp.erfc(sp.Rational(3, 2))) < 1e-28


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus", "silu", "gelu"])
@pytest.mark.parametrize("square", [False, True])
def test_positive_side_value_of_the_even_part_is_accurate_in_double(name, square):
    """The mean field's integrand f_e(u) = (f(u) + f(−u))/2 on u > 0, f = φ or φ², as the kernel
    evaluates it, against the original at 60 digits: a few ulps from u = 1e-8 (where the sum
    cancels to O(u²) for silu and gelu) to u = 1e5 (where exp(u) overflows)."""
    phi = builtin(name).expression
    f = phi**2 if square else phi
    even = (f + f.subs(U, -U)) / 2
    rewritten = positive_side_value(even)
    printer = NumbaPrinter()
    source = printer.doprint(numerically_stable(rewritten))
    original = sp.lambdify(U, even, modules="mpmath")
    for u in (1e-8, 1e-3, 1.0, 30.0, 700.0, 1e5):
        got = eval(source, {"math": math, "u": u, str(T_POSITIVE): math.exp(-u)})
        with mpmath.workdps(60):
            want = original(mpmath.mpf(u))
        assert math.isfinite(got)
        assert abs(got - want) <= 4e-15 * abs(want), (name, square, u, got, want)
