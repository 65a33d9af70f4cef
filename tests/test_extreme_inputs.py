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


# --- the whole double range: saturation, the wide rule, overflow (issue 20) --------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

MODULES = [*activations.known_activations(), "cubic"]
NUMERICAL_TOLERANCE = 1e-9  # the bound of the numerical path (issue 3)


def relative_error(got, want):
    want = float(want)
    if want == 0.0:
        return 0.0 if got == 0.0 else math.inf
    return abs(got - want) / abs(want)


@pytest.mark.parametrize(
    "name, r, b, limit",
    [("gelu", 1e-10, 1e20, 1.0), ("gelu", 1e-10, -1e20, 0.0), ("gelu", 1.0, 1e250, 1.0),
     ("gelu", 1e200, 1.7e308, 1.0), ("silu", 1e-10, 1e50, 1.0), ("silu", 1e-300, -1e100, 0.0),
     ("silu", 1e10, 1e250, 1.0), ("softplus", 1e-250, 1e300, 1.0)],
)
def test_saturated_units_are_their_limit(name, r, b, limit):
    """NaN before (the printed remainder of GELU and SiLU overflowed into inf·0 far out): where
    N(b, r²) lies, to 40 deviations, where ρ = φ'² − step is 0 in double precision, the block is
    the limit L± of φ'² times I exactly (A00 = Ann = L, A0n = 0), and its inverse follows."""
    blocks, coefficients = evaluate(name, r, b, DAMPING)
    assert blocks.tolist() == [limit, 0.0, limit]
    assert relative_error(coefficients[0], 1.0 / (limit + DAMPING)) <= 1e-15
    assert coefficients[1:].tolist() == [0.0, 0.0, 0.0]


def test_elu_beyond_r_squared_overflow():
    """NaN before at r ≳ 1e155 (the edge form held b²/r², inf/inf): against the half-line
    Gaussian moments, which are all of ELU's block there (its exp(2u) part is ≈ φ(1)/(2r))."""
    import mpmath

    blocks, _ = evaluate("elu", 1e155, 1e155, DAMPING)
    want = (mpmath.ncdf(1), mpmath.npdf(1), mpmath.ncdf(1) - mpmath.npdf(1))
    assert max(relative_error(g, w) for g, w in zip(blocks, want)) <= BLOCK_TOLERANCE
    blocks, coefficients = evaluate("elu", 1e155, 1e200, DAMPING)
    assert blocks.tolist() == [1.0, 0.0, 1.0]
    blocks, coefficients = evaluate("elu", 1e155, -1e200, DAMPING)
    assert blocks.tolist() == [0.0, 0.0, 0.0]
    assert coefficients.tolist() == [1.0 / DAMPING, 0.0, 0.0, 0.0]


@pytest.mark.parametrize("r, b", [(0.0, 1e100), (1e100, 0.0), (1.0, -1e100), (1e-300, 1e300)])
def test_overflowing_blocks_are_inf(r, b):
    """The cubic u³/3 + u gave NaN where its block overflows: A00 ≈ b⁴ or 3r⁴ is inf, A0n is 0
    where it is by symmetry, and every inverse coefficient is 0 (they are ∝ 1/A00)."""
    for damping in (0.0, DAMPING):
        blocks, coefficients = evaluate("cubic", r, b, damping)
        assert blocks[0] == blocks[2] == math.inf
        assert not np.isnan(blocks).any()
        assert coefficients.tolist() == [0.0, 0.0, 0.0, 0.0]
    if r == 0.0 or b == 0.0:
        assert evaluate("cubic", r, b, 0.0)[0][1] == 0.0


def test_finite_a0n_next_to_an_overflowing_a00():
    """At r = 1e-200, b = 1e100 A00 ≈ b⁴ overflows but A0n = E[z·(1 + (rz + b)²)²] =
    4rb³ + 12r³b + 4rb = 4e100 does not: formed in logs, not as inf·m1."""
    blocks, _ = evaluate("cubic", 1e-200, 1e100, DAMPING)
    assert relative_error(blocks[1], 4e100) <= BLOCK_TOLERANCE
    blocks, _ = evaluate("cubic", 1.0, -1e100, DAMPING)
    assert relative_error(blocks[1], -4e300 - 12e100 - 4e100) <= BLOCK_TOLERANCE


@pytest.mark.parametrize("r, b", [(1e155, -1.7e308), (1e-155, -0.01)])
def test_dead_relu_unit_with_damping(r, b):
    """Z was NaN (m1² overflowed next to a = 0): a block that is 0 in double precision is
    inverted with damping as damping·I."""
    blocks, coefficients = evaluate("relu", r, b, DAMPING)
    assert blocks.tolist() == [0.0, 0.0, 0.0]
    assert coefficients.tolist() == [1.0 / DAMPING, 0.0, 0.0, 0.0]


def test_singular_block_without_inf_times_zero():
    """erf at r = 1e140, b = 0 gave Y = NaN with damping 0: X = q/(A00·v) truly overflows
    (A00·v ≈ 1e-420), but m1 = 0, so Y = Z = 0."""
    _, coefficients = evaluate("erf", 1e140, 0.0, 0.0)
    assert coefficients[1] == math.inf
    assert coefficients[2:].tolist() == [0.0, 0.0]


@pytest.mark.parametrize("name", ["hardtanh", "erf", "tanh", "sigmoid"])
def test_symmetric_singular_block_has_no_rounding_driven_y_and_z(name):
    """At r = 1e155, b = 0 an even φ'² has m1 = 0 by symmetry, so Y = −m1/(A00·v) and
    Z = m1²/(A00·v) are 0 at damping 0, while X = q/(A00·v) overflows (v is subnormal). The
    closed form's m1 was −1.6e-172 for hardtanh, a rounding of √v ≈ 6e-156, and gave
    Y = 6e293, Z = 1e122."""
    _, coefficients = evaluate(name, 1e155, 0.0, 0.0)
    assert coefficients[1] == math.inf
    assert coefficients[2:].tolist() == [0.0, 0.0]


def test_tanh_at_huge_radius_is_not_zero():
    """A00 was 0 at r = b = 1e150 (true value 3.2e-151): the wide rule gives
    A00 = (1/r)·φ(b/r)·∫φ'(u)² du (1 + O(1/r²)), with ∫ sech⁴ = 4/3."""
    import mpmath

    blocks, _ = evaluate("tanh", 1e150, 1e150, DAMPING)
    want = mpmath.mpf(4) / 3 * mpmath.npdf(1) / mpmath.mpf(1e150)
    assert relative_error(blocks[0], want) <= BLOCK_TOLERANCE
    assert relative_error(blocks[1], -want) <= BLOCK_TOLERANCE


WIDE_CASES = [("sigmoid", 1e150, -1e150), ("erf", 1e200, 3e200), ("silu", 1e300, -1e300),
              ("gelu", 1e150, -2e150), ("softplus", 1e200, 1e200), ("tanh", 1e300, 0.0)]


@pytest.mark.parametrize("name, r, b", WIDE_CASES)
def test_wide_gaussians_against_quadrature_in_u(name, r, b):
    """Huge r, |b| comparable: the blocks against mpmath quadrature in u (z would need
    hundreds of digits to resolve φ'² in a sliver of width 1/r). The numerical activations
    by the wide rule; erf's Gaussian term in hypot(1, 2r) (ZeroDivisionError before at
    r ≳ 1e154, its std 1/√(1 + 4r²) underflowed)."""
    blocks, coefficients = evaluate(name, r, b, DAMPING)
    want = reference.fisher_blocks_in_u_mp(phi(name), r, b)
    assert max(relative_error(g, w) for g, w in zip(blocks, want)) <= BLOCK_TOLERANCE
    assert np.isfinite(coefficients).all()


@pytest.mark.parametrize("name, r, b", [("tanh", 1e10, 1e10), ("softplus", 1e6, -2e6),
                                        ("gelu", 1e4, 3e4)])
def test_wide_inverse_against_reference(name, r, b):
    """The inverse coefficients of the wide rule, where mpmath can carry the 2·log10(r)
    digits that A00·Ann − A0n² loses. (tanh's X at r = b = 1e10 is within 4e-10: the printed
    form of X cancels in q − m1² there.)"""
    start = time.perf_counter()
    blocks, coefficients = evaluate(name, r, b, DAMPING)
    assert time.perf_counter() - start < 0.5
    want = reference.fisher_blocks_in_u_mp(phi(name), r, b, for_inverse=True)
    assert max(relative_error(g, w) for g, w in zip(blocks, want)) <= BLOCK_TOLERANCE
    inverse = reference.inverse_coefficients_mp(*want, damping=DAMPING)
    assert max(relative_error(g, w) for g, w in zip(coefficients, inverse)) <= NUMERICAL_TOLERANCE


def _magnitude(exponent, sign):
    return sign * 10.0**exponent


EXPONENTS = st.floats(min_value=-300.0, max_value=308.0)
MAGNITUDES = st.one_of(st.just(0.0), st.builds(_magnitude, EXPONENTS, st.just(1.0)))
BIASES = st.one_of(st.just(0.0), st.builds(_magnitude, EXPONENTS, st.sampled_from([1.0, -1.0])))


@settings(max_examples=12, deadline=None)
@given(points=st.lists(st.tuples(MAGNITUDES, BIASES), min_size=1, max_size=32))
def test_whole_double_range_is_finite(points):
    """Every module, any finite r ≥ 0 and b: no exception, no NaN; the blocks finite but where
    they truly overflow (the cubic's), the damped inverse finite, the undamped one without NaN
    (±inf where it truly overflows: 1/A00 at A00 ≈ 1e-309, or X where A00·v underflows)."""
    r = np.array([p[0] for p in points])
    b = np.array([p[1] for p in points])
    for name in MODULES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            blocks = np.array(module(name).fisher_blocks(r, b))
            damped = np.array(module(name).inverse_coefficients(r, b, DAMPING))
            undamped = np.array(module(name).inverse_coefficients(r, b, 0.0))
        label = f"{name} at {list(zip(r, b))}"
        assert not np.isnan(blocks).any(), label
        if name != "cubic":
            assert np.isfinite(blocks).all(), label
        assert np.isfinite(damped).all(), label
        assert not np.isnan(undamped).any(), label


@settings(max_examples=3, deadline=None)
@given(
    name=st.sampled_from(["tanh", "sigmoid", "gelu", "softplus"]),
    exponent=st.floats(min_value=4.0, max_value=300.0),
    ratio=st.floats(min_value=-3.0, max_value=3.0),
)
def test_drawn_wide_points_against_mpmath(name, exponent, ratio):
    """A few drawn points of the wide range (r from 1e4 to 1e300, |b| up to 3r) against mpmath."""
    r = 10.0**exponent
    b = ratio * r
    blocks, _ = evaluate(name, r, b, DAMPING)
    want = reference.fisher_blocks_in_u_mp(phi(name), r, b)
    for got, value in zip(blocks, want):
        # (an A0n that vanishes by symmetry is quadrature noise in mpmath, 0 here)
        if abs(value) >= 1e-30 * abs(want[0]):
            assert relative_error(got, value) <= BLOCK_TOLERANCE, (name, r, b)
