"""fisher_sym.meanfield: the recursions against simulated random networks, the fixed point and
the edge of chaos against independent solutions, and the argument checks."""

import math

import mpmath
import numpy as np
import pytest
import sympy as sp

from fisher_sym import meanfield
from fisher_sym.meanfield import MeanField
from generated import relu, tanh

WIDTH = 1000
REPLICAS = 8
DEPTH = 3
#: Perturbations carried through each network: χ^l is their mean growth.
DIRECTIONS = 16
#: |simulated mean − mean field| must be within this many standard errors of the mean over
#: REPLICAS independent networks (for a t statistic with 7 degrees of freedom, P(|t| > 5) is
#: 0.2 %); the O(1/WIDTH) bias of a finite width is far smaller than one standard error.
STANDARD_ERRORS = 5.0

def simulate(sigma_w, sigma_b, residual=None, seed=0):
    """(activity, chi) of REPLICAS independent tanh networks of width WIDTH, each of shape
    (REPLICAS, DEPTH): A^l = |x^l|²/n, and χ^l = |dx^l|²/|dx^{l−1}|² summed over DIRECTIONS
    perturbations dx carried by the Jacobian. The input has A^0 = 1 exactly. ``residual``:
    (sigma_v, alpha). In float32: its rounding (1e-7) is far below the Monte-Carlo error."""
    rng = np.random.default_rng(seed)
    activity = np.empty((REPLICAS, DEPTH))
    chi = np.empty((REPLICAS, DEPTH))
    for replica in range(REPLICAS):
        x = rng.standard_normal(WIDTH, dtype=np.float32)
        x /= np.sqrt(np.mean(x**2))
        dx = rng.standard_normal((WIDTH, DIRECTIONS), dtype=np.float32)
        for layer in range(DEPTH):
            W = rng.standard_normal((WIDTH, WIDTH), dtype=np.float32)
            W *= sigma_w / np.sqrt(WIDTH)
            u = W @ x + sigma_b * rng.standard_normal(WIDTH, dtype=np.float32)
            step = np.tanh(u)
            dstep = (1 - step**2)[:, None] * (W @ dx)
            if residual is not None:
                sigma_v, alpha = residual
                V = rng.standard_normal((WIDTH, WIDTH), dtype=np.float32)
                V *= sigma_v / np.sqrt(WIDTH)
                step, dstep = alpha * x + V @ step, alpha * dx + V @ dstep
            chi[replica, layer] = np.sum(dstep**2) / np.sum(dx**2)
            activity[replica, layer] = np.mean(step**2)
            x, dx = step, dstep
    return activity, chi


def assert_within_monte_carlo_error(simulated, predicted, what):
    mean = simulated.mean(axis=0)
    error = simulated.std(axis=0, ddof=1) / math.sqrt(REPLICAS)
    deviation = np.abs(mean - predicted) / error
    assert np.all(deviation <= STANDARD_ERRORS), f"{what}: {deviation} standard errors"
    return error


def test_plain_network_matches_a_simulated_network():
    """tanh, whose E[φ(τv)²] the module integrates numerically (ReLU's fixed point is checked
    below against its solution)."""
    field = meanfield.plain_network(tanh, 1.5, 0.3, DEPTH)
    activity, chi = simulate(1.5, 0.3)
    assert_within_monte_carlo_error(activity, field.activity, "A^l")
    assert_within_monte_carlo_error(chi, field.chi, "χ^l")


def test_residual_network_matches_a_simulated_network_and_not_the_printed_eq_88():
    sigma_w, sigma_b, sigma_v, alpha = 1.5, 0.3, 0.8, 0.6
    field = meanfield.residual_network(tanh, sigma_w, sigma_b, sigma_v, alpha, DEPTH)
    activity, chi = simulate(sigma_w, sigma_b, residual=(sigma_v, alpha), seed=1)
    assert_within_monte_carlo_error(activity, field.activity, "residual A^l")
    error = assert_within_monte_carlo_error(chi, field.chi, "residual χ^l")
    # The paper prints χ̄ = σ_v²χ + α (eq. 88): α − α² = 0.24 away, dozens of standard errors.
    printed = field.chi - alpha**2 + alpha
    assert np.all(np.abs(chi.mean(axis=0) - printed) > 20 * error)


def test_a_wider_layer_scales_chi_by_the_width_ratio_not_as_the_printed_eq_16():
    """W_ij ~ N(0, σ_w²/n_in) (Sec. 2): a layer from n_in to n_out units multiplies |dx|² by
    (n_out/n_in)·σ_w² E[φ'(τv)²]; with the printed eq. 16 (variance σ_w²/n_out) the ratio would
    not appear. fisher_sym.meanfield assumes equal widths."""
    sigma_w, sigma_b, n_in, n_out = 1.5, 0.3, WIDTH, 2 * WIDTH
    (chi,) = meanfield.plain_network(tanh, sigma_w, sigma_b, 1).chi
    rng = np.random.default_rng(2)
    growth = np.empty(REPLICAS)
    for replica in range(REPLICAS):
        x = rng.standard_normal(n_in)
        x /= np.sqrt(np.mean(x**2))
        dx = rng.standard_normal((n_in, DIRECTIONS))
        W = rng.standard_normal((n_out, n_in)) * (sigma_w / np.sqrt(n_in))
        u = W @ x + sigma_b * rng.standard_normal(n_out)
        growth[replica] = np.sum(((1 - np.tanh(u) ** 2)[:, None] * (W @ dx)) ** 2) / np.sum(dx**2)
    error = assert_within_monte_carlo_error(growth[:, None], [n_out / n_in * chi], "χ")
    assert abs(growth.mean() - chi) > 20 * error[0]


def test_chi_products_are_the_products_of_the_layers():
    field = meanfield.plain_network(tanh, [1.2, 1.6, 0.9, 2.0], 0.1, 4, input_activity=0.5)
    assert field.input_activity == 0.5 and field.depth == 4
    for m in range(4):
        assert math.isclose(field.chi_products()[m], np.prod(field.chi[m:]), rel_tol=1e-14)
        assert math.isclose(field.chi_product(m + 1, 3), np.prod(field.chi[m:3]), rel_tol=1e-14)
    assert field.chi_product(3, 2) == 1.0  # the empty product
    huge = MeanField(*(np.full(3, 1e200) for _ in range(4)), 1.0)
    assert huge.log_chi_product(1) == pytest.approx(3 * math.log(1e200))
    with pytest.raises(FloatingPointError, match="log_chi_product"):
        huge.chi_product(1)
    with pytest.raises(ValueError, match="first"):
        field.chi_product(0)


def test_relu_fixed_point_and_edge_of_chaos_are_the_solved_ones():
    """For ReLU, A = (σ_w² A + σ_b²)/2 and χ = σ_w² E[relu'(τv)²]: solved here by SymPy and
    mpmath, not by the module."""
    activity, sigma_w, sigma_b = sp.symbols("A sigma_w sigma_b", positive=True)
    (solved,) = sp.solve(sp.Eq(activity, (sigma_w**2 * activity + sigma_b**2) / 2), activity)
    point = meanfield.fixed_point(relu, 1.2, 0.3)
    want = float(solved.subs({sigma_w: sp.Rational(6, 5), sigma_b: sp.Rational(3, 10)}))
    assert point.activity == pytest.approx(want, rel=1e-15)
    slope = mpmath.quad(mpmath.npdf, [0, mpmath.inf])  # E[relu'(τv)²] for any τ > 0
    edge = float(1 / mpmath.sqrt(slope))
    assert meanfield.edge_of_chaos(relu, 0.3) == pytest.approx(edge, rel=1e-15)
    beyond = meanfield.fixed_point(relu, 1.5, 0.3)  # σ_w² > 2: the activity diverges
    assert beyond.activity == math.inf and beyond.chi == pytest.approx(1.5**2 / 2, rel=1e-15)


def test_tanh_edge_of_chaos_against_an_mpmath_root():
    """χ* = 1 at the fixed point found by the module, and σ_w against mpmath.findroot of
    (A = E[tanh(τv)²], σ_w² E[tanh'(τv)²] = 1), τ² = σ_w² A + σ_b², by quadrature."""
    sigma_b = 0.3
    sigma_w = meanfield.edge_of_chaos(tanh, sigma_b)
    point = meanfield.fixed_point(tanh, sigma_w, sigma_b)
    assert abs(point.chi - 1.0) <= 1e-13

    def expectation(function, tau):
        integrand = lambda v: function(tau * v) * mpmath.npdf(v)  # noqa: E731
        return mpmath.quad(integrand, [-mpmath.inf, 0, mpmath.inf])

    def equations(s, a):
        tau = mpmath.sqrt(s**2 * a + sigma_b**2)
        return (
            expectation(lambda u: mpmath.tanh(u) ** 2, tau) - a,
            s**2 * expectation(lambda u: mpmath.sech(u) ** 4, tau) - 1,
        )

    with mpmath.workdps(16):
        want, _ = mpmath.findroot(equations, (mpmath.mpf(1.5), mpmath.mpf(0.5)))
    assert sigma_w == pytest.approx(float(want), rel=1e-11)


def test_bad_arguments_are_refused_naming_them():
    with pytest.raises(ValueError, match="sigma_w"):
        meanfield.plain_network(tanh, -1.0, 0.1, 3)
    with pytest.raises(ValueError, match="sigma_b"):
        meanfield.plain_network(tanh, 1.0, [0.1, 0.2], 3)
    with pytest.raises(ValueError, match="depth"):
        meanfield.plain_network(tanh, 1.0, 0.1, 0)
    with pytest.raises(TypeError, match="depth"):
        meanfield.plain_network(tanh, 1.0, 0.1, 2.5)
    with pytest.raises(ValueError, match="input_activity"):
        meanfield.plain_network(tanh, 1.0, 0.1, 3, input_activity=math.nan)
    with pytest.raises(ValueError, match="alpha"):
        meanfield.residual_network(tanh, 1.0, 0.1, 1.0, -0.5, 3)
    with pytest.raises(TypeError, match="activation"):
        meanfield.plain_network(object(), 1.0, 0.1, 3)
    with pytest.raises(TypeError, match="sigma_b"):
        meanfield.edge_of_chaos(tanh, "0.3")
