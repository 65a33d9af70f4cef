"""The Gaussian stage: pieces, terms and closed forms against mpmath quadrature."""

import mpmath
import pytest
import sympy as sp

from fisher_sym import reference
from fisher_sym.activations import U, ActivationError
from fisher_sym.gaussian import B, R, NoClosedForm, derive_integrals, pieces, truncated_moment
from tests.activation_cases import CLOSED_FORM_CASES

SAMPLE_POINTS = [(0.3, -0.7), (2.5, 1.2), (4.0, -9.0)]


def test_relu_splits_at_zero_into_one_constant_term():
    integrals = derive_integrals(sp.Max(0, U))
    assert [(p.lower, p.upper, p.expression) for p in integrals.pieces] == [
        (-sp.oo, 0, 0),
        (0, sp.oo, 1),
    ]
    (term,) = integrals.terms
    assert term.is_constant and term.polynomial == (1,) and (term.lower, term.upper) == (0, sp.oo)


def test_equal_neighbouring_pieces_are_merged():
    # Piecewise((u, u > 0), (u, True)) is the identity: one piece, no kink.
    merged = pieces(sp.diff(sp.Piecewise((U, U > 0), (U, True)), U) ** 2)
    assert len(merged) == 1 and merged[0].expression == 1


@pytest.mark.parametrize("j", range(6))
def test_truncated_moment_recurrence_matches_direct_integration(j):
    alpha, beta = sp.Rational(-1, 3), sp.Rational(7, 4)
    y = sp.Symbol("y", real=True)
    direct = sp.Integral(y**j * sp.exp(-(y**2) / 2) / sp.sqrt(2 * sp.pi), (y, alpha, beta))
    assert abs(sp.N(truncated_moment(j, alpha, beta) - direct, 30)) < 1e-25


@pytest.mark.parametrize("name", sorted(CLOSED_FORM_CASES))
def test_closed_forms_match_quadrature(name):
    phi = CLOSED_FORM_CASES[name]
    closed = derive_integrals(phi).closed_forms
    evaluate = [sp.lambdify((R, B), form, modules="mpmath") for form in closed]
    with mpmath.workdps(40):
        for r, b in SAMPLE_POINTS:
            expected = reference.fisher_blocks_mp(phi, r, b, dps=40)
            for got, want in zip((f(mpmath.mpf(r), mpmath.mpf(b)) for f in evaluate), expected):
                assert abs(got - want) <= mpmath.mpf(10) ** -30 * max(abs(want), 1e-300), name


def test_smooth_activations_without_closed_form_are_reported():
    with pytest.raises(NoClosedForm):
        derive_integrals(sp.tanh(U))


@pytest.mark.parametrize(
    "phi, message",
    [
        (sp.Heaviside(U), "discontinuous"),
        (sp.Integer(3), "identically zero"),
        (sp.exp(U**2), "diverge"),
    ],
)
def test_unusable_activations_are_refused(phi, message):
    with pytest.raises(ActivationError, match=message):
        derive_integrals(phi)
