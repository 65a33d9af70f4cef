"""The dyadic inverse: symbolic identities, a dense check, and the stable rewrite."""

import sympy as sp

from fisher_sym import fisher
from fisher_sym.fisher import (
    A00,
    A0N,
    ANN,
    DAMPING,
    MEAN,
    ONE_MINUS_VARIANCE,
    S,
    SCALED_A00,
    SCALED_DAMPING,
    VARIANCE,
    Dyadic,
)


def _inverse_dyadic() -> Dyadic:
    coefficients = fisher.inverse_coefficients()
    return Dyadic.from_coefficients(*(coefficients[s] for s in (fisher.ABAR00, fisher.X, fisher.Y, fisher.Z)))


def test_inverse_is_a_two_sided_inverse_in_the_dyadic_algebra():
    damped = fisher.damped_fisher_block()
    inverse = _inverse_dyadic()
    for product in (damped @ inverse, inverse @ damped):
        product = product.simplify()
        assert product.identity == 1
        assert product.block == sp.eye(2)


def test_dyadic_form_matches_dense_matrices_for_a_symbolic_weight_vector():
    # The dyadic algebra's claim: the product of the dense realisations is the identity.
    w = sp.Matrix(sp.symbols("w1 w2 w3", positive=True))
    dense = fisher.damped_fisher_block().dense(w)
    inverse = _inverse_dyadic().dense(w)
    product = (dense * inverse).applyfunc(sp.simplify)
    assert product == sp.eye(4)


def test_fisher_block_dense_form_is_the_expectation_written_in_the_rotated_basis():
    # G = E[φ'² x* x*ᵀ]; in the basis (ŵ, e0, complement) its entries are Ann, A0n, A00.
    w = sp.Matrix([3, 4, 12])  # r = 13
    dense = fisher.fisher_block().dense(w)
    w_hat = sp.Matrix([3, 4, 12, 0]) / 13
    e0 = sp.Matrix([0, 0, 0, 1])
    orthogonal = sp.Matrix([4, -3, 0, 0]) / 5
    assert sp.simplify((w_hat.T * dense * w_hat)[0] - ANN) == 0
    assert sp.simplify((w_hat.T * dense * e0)[0] - A0N) == 0
    assert sp.simplify((e0.T * dense * e0)[0] - A00) == 0
    assert sp.simplify((orthogonal.T * dense * orthogonal)[0] - A00) == 0
    assert sp.simplify((orthogonal.T * dense * w_hat)[0]) == 0


def test_stable_coefficients_equal_the_solved_ones():
    mean, variance = A0N / A00, ANN / A00 - (A0N / A00) ** 2
    back = {
        S: A00 + DAMPING,
        SCALED_A00: A00 / (A00 + DAMPING),
        SCALED_DAMPING: DAMPING / (A00 + DAMPING),
        MEAN: mean,
        VARIANCE: variance,
        ONE_MINUS_VARIANCE: 1 - variance,
    }
    solved = fisher.inverse_coefficients()
    for symbol, stable in fisher.stable_inverse_coefficients().items():
        assert sp.simplify(stable.subs(back) - solved[symbol]) == 0, symbol


def test_stable_determinant_factor_has_no_subtraction():
    # D/(s²) = a²v + a·l·(1 + v + m1²) + l²: every term positive, so it cannot cancel.
    y = fisher.stable_inverse_coefficients()[fisher.Y]
    _, denominator = sp.fraction(sp.together(y))
    for factor in sp.Mul.make_args(denominator):
        base, _ = factor.as_base_exp()
        if base.is_Add:
            assert all(not term.could_extract_minus_sign() for term in base.args), base


def test_paper_equation_76_has_a_spurious_factor_w0():
    # Printed (76): Δw0 = −ηe (Ā00 + (w·x/w) Y + Z) w0. The bias component of G⁻¹x* with
    # x* = (x, 1) has no factor w0: it is Ā00 + Y·(ŵ·x) + Z.
    w = sp.Matrix(sp.symbols("w1 w2", positive=True))
    x = sp.Matrix(sp.symbols("x1 x2", real=True))
    inverse = _inverse_dyadic().dense(w)
    bias_component = (inverse * sp.Matrix([*x, 1]))[-1]
    r = sp.sqrt(w.dot(w))
    c = fisher.inverse_coefficients()
    expected = c[fisher.ABAR00] + c[fisher.Y] * w.dot(x) / r + c[fisher.Z]
    assert sp.simplify(bias_component - expected) == 0
