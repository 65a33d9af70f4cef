"""Inputs beyond the documented grid: narrow Gaussians (small r), where the narrow rule
(fisher_sym.narrow) replaces quadrature that took seconds a unit, against 40-digit mpmath;
and the rule's series itself, symbolically and against quadrature.
"""

import importlib
import math
import time
import warnings

import numpy as np
import pytest

from fisher_sym import activations, narrow, reference

BLOCK_TOLERANCE = 1e-12  # the accuracy bounds of the blocks and of the damped inverse
INVERSE_TOLERANCE = 1e-10
DAMPING = 1e-3


def module(name):
    return importlib.import_module(f"generated.{name}")


def phi(name):
    return activations.builtin(name).expression


def evaluate(name, r, b, damping):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        blocks = np.ravel(module(name).fisher_blocks(r, b))
        coefficients = np.ravel(module(name).inverse_coefficients(r, b, damping))
    return blocks, coefficients


def assert_matches_reference(name, r, b, blocks, coefficients):
    """Each value within its tolerance of mpmath where the true value is a normal double, an
    exact 0 where it underflows."""
    want_blocks = [float(x) for x in reference.fisher_blocks_mp(phi(name), r, b)]
    want_inverse = [float(x) for x in reference.inverse_coefficients_of(phi(name), r, b, DAMPING)]
    pairs = zip(list(blocks) + list(coefficients), want_blocks + want_inverse, strict=True)
    for index, (got, want) in enumerate(pairs):
        tolerance = BLOCK_TOLERANCE if index < 3 else INVERSE_TOLERANCE
        label = f"{name} value {index} at r={r!r}, b={b!r}: got {got!r}, want {want!r}"
        if abs(want) >= np.finfo(float).tiny:
            assert abs(got - want) <= tolerance * abs(want), label
        elif want == 0.0:
            assert got == 0.0, label
        else:  # subnormal: within a few of the smallest normal
            assert abs(got - want) <= 4 * np.finfo(float).tiny, label


# --- regression cases --------------------------------------------------------------------------

NARROW_CASES = [(1e-7, -1e-8), (1e-9, 1e-12), (1e-10, -1e-20), (1e-10, -1e-40), (1e-4, 0.3)]


@pytest.mark.parametrize("name", ["tanh", "sigmoid"])
@pytest.mark.parametrize("r, b", NARROW_CASES)
def test_narrow_gaussians_are_quick_and_accurate(name, r, b):
    """Seconds per unit before (1.2–45 s for tanh and sigmoid): now the narrow rule, a few
    hundred flops. The time bound is loose (the costs are measured in the benchmarks): it
    catches a fall back to adaptive quadrature, which took seconds."""
    evaluate(name, 1.0, 0.0, DAMPING)  # compiled
    start = time.perf_counter()
    blocks, coefficients = evaluate(name, r, b, DAMPING)
    assert time.perf_counter() - start < 0.5
    assert module(name)._narrow_moments(r, b)[0]
    assert_matches_reference(name, r, b, blocks, coefficients)


# --- the narrow rule's series, symbolically ----------------------------------------------------


def test_narrow_series_vanishes_for_a_gaussian_tilt():
    """With every c_k = 0 (log φ'² quadratic) the tilted density is exactly N(μ, σ²): every
    order of every series is 0, so q = −g2·r²·σ² exactly and no order is left to cancel."""
    series = narrow.narrow_series()
    zero = {c: 0 for c in narrow.C.values()}
    for parts in series.orders.values():
        assert all(part.subs(zero) == 0 for part in parts)


def test_narrow_series_against_quadrature():
    """At one point, the series' log E[e^R], mean and variance shifts against mpmath
    quadrature of the same integrals."""
    import mpmath

    mu, sigma = 0.3, 1.1
    c = {3: 1e-6, 4: -1e-8, 5: 1e-10, 6: -1e-12, 7: 1e-14, 8: -1e-16}
    series = narrow.narrow_series()
    values = {narrow.MU: mu, narrow.SIGMA: sigma, **{narrow.C[k]: c[k] for k in c}}
    log_sum = sum(float(parts[0].subs(values)) for parts in series.orders.values())
    shift = sum(float(parts[1].subs(values)) for parts in series.orders.values())
    variance = sigma**2 + sum(float(parts[2].subs(values)) for parts in series.orders.values())
    mpmath.mp.dps = 30

    def moment(j):
        def f(z):
            rest = sum(c[k] * z**k for k in c)
            density = mpmath.exp(-((z - mu) ** 2) / (2 * sigma**2)) / (sigma * mpmath.sqrt(2 * mpmath.pi))
            return (z - mu) ** j * mpmath.exp(rest) * density

        return mpmath.quad(f, [-mpmath.inf, mu, mpmath.inf])

    n0, n1, n2 = moment(0), moment(1), moment(2)
    # c_k = ±1e-2k: the orders the series keeps (up to 8) are each above 2e-8 of the whole, what it
    # leaves out (9th order: c3·c6, c4·c5, c3³) is about 1e-9 of the whole.
    assert math.isclose(log_sum, float(mpmath.log(n0)), rel_tol=3e-9, abs_tol=1e-20)
    assert math.isclose(shift, float(n1 / n0), rel_tol=3e-9, abs_tol=1e-20)
    assert math.isclose(variance, float(n2 / n0 - (n1 / n0) ** 2), rel_tol=3e-9, abs_tol=1e-20)
