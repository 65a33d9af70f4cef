"""Tests of fisher_sym.special against independent mpmath computations (50 digits and up).

The interval references use closed forms: Q(x) = erfc(x/√2)/2 for tails, raw moments about 0
from the recurrence G_{k+1}(x) = k G_{k-1}(x) + x^k φ(x) for G_k(x) = ∫_x^∞ y^k φ (positive
terms), tail differences, and a binomial shift to the anchor. The differences and the shift
cancel heavily (thousands of digits for 12 moments of [1e150, inf) about 1e150), so the
references carry a running bound B on the magnitudes that cancel (|error| <= ROUNDING·10^-dps·B)
and raise the mpmath precision, starting at 50 digits, until that bound is below 1e-30 of the
quantity compared. Rounding noise can never pass this test, since it is itself at most
ROUNDING·10^-dps·B.
"""

import math

import mpmath
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from fisher_sym.special import (
    MAX_MOMENT_ORDER,
    erfcx,
    log_normal_pdf,
    mills_ratio,
    normal_interval_moments,
    normal_interval_summary,
    normal_pdf,
)

mpmath.mp.dps = 50

INF = math.inf
DBL_MIN = 2.2250738585072014e-308  # smallest normal double
DBL_MAX = 1.7976931348623157e308

ERFCX_RTOL = 1e-15
PDF_RTOL = 1e-15
MILLS_RTOL = 1e-15
LOG_MASS_TOL = 1e-13
MEAN_TOL = 1e-13
VAR_RTOL = 1e-12
MOMENT_RTOL = 1e-12
# Below this a moment's relative error is not checked: DBL_MIN/MOMENT_RTOL, so that the
# allowed error is itself a normal double.
MOMENT_FLOOR = DBL_MIN / MOMENT_RTOL


# ---------------------------------------------------------------- mpmath references

REFERENCE_RTOL = mpmath.mpf("1e-30")
ROUNDING = 1000  # generous multiple of 10^-dps covering the few roundings per operation
ASYMPTOTIC_START = 1e10  # mpmath's erfc overflows internally for arguments above ~1e154


def _mills_ratio_asymptotic(a):
    """R(a) = Σ_k (-1)^k (2k-1)!!/a^(2k+1) for a >= ASYMPTOTIC_START, to the working precision.

    The terms shrink by a factor of at least 1e-20·k / 2, so the series converges long before
    it starts to diverge.
    """
    a = mpmath.mpf(a)
    term = 1 / a
    total = term
    k = 1
    while abs(term) > mpmath.eps * abs(total) / 1000:
        term *= -(2 * k - 1) / (a * a)
        total += term
        k += 1
    return total


def _upper_tail_raw(x, order):
    """[G_0(x), ..., G_order(x)] with G_k(x) = ∫_x^∞ y^k φ, for x >= 0 (inf allowed)."""
    if x == INF:
        return [mpmath.mpf(0)] * (order + 1)
    density = mpmath.npdf(x)
    if x >= ASYMPTOTIC_START:
        upper_tail = density * _mills_ratio_asymptotic(x)
    else:
        upper_tail = mpmath.erfc(mpmath.mpf(x) / mpmath.sqrt(2)) / 2
    moments = [upper_tail, density]
    x = mpmath.mpf(x)
    for k in range(1, order):
        moments.append(k * moments[k - 1] + x**k * density)
    return moments[: order + 1]


def _whole_line_raw(k):
    return mpmath.mpf(0) if k % 2 else mpmath.fac2(k - 1)


def _raw_moments_about_zero(lo, hi, order):
    """Values and cancellation bounds of ∫_lo^hi y^k φ(y) dy, k <= order."""
    if lo >= 0:
        upper_lo, upper_hi = _upper_tail_raw(lo, order), _upper_tail_raw(hi, order)
        values = [a - b for a, b in zip(upper_lo, upper_hi, strict=True)]
        return values, [a + b for a, b in zip(upper_lo, upper_hi, strict=True)]
    if hi <= 0:
        values, bounds = _raw_moments_about_zero(-hi, -lo, order)
        return [(-1) ** k * v for k, v in enumerate(values)], bounds
    below, above = _upper_tail_raw(-lo, order), _upper_tail_raw(hi, order)
    values = [_whole_line_raw(k) - (-1) ** k * below[k] - above[k] for k in range(order + 1)]
    bounds = [_whole_line_raw(k) + below[k] + above[k] for k in range(order + 1)]
    return values, bounds


def _raw_moments_about(lo, hi, anchor, order):
    """Values and bounds of ∫_lo^hi (y - anchor)^k φ(y) dy, by the binomial shift."""
    values, bounds = _raw_moments_about_zero(lo, hi, order)
    c = mpmath.mpf(anchor)
    shifted_values, shifted_bounds = [], []
    for k in range(order + 1):
        weights = [mpmath.binomial(k, j) * (-c) ** (k - j) for j in range(k + 1)]
        pairs = zip(weights, values[: k + 1], bounds[: k + 1], strict=True)
        terms = [(w * v, abs(w) * b) for w, v, b in pairs]
        shifted_values.append(mpmath.fsum(value for value, _ in terms))
        shifted_bounds.append(mpmath.fsum(bound for _, bound in terms))
    return shifted_values, shifted_bounds


def _abs_moments_about(lo, hi, anchor, order, values, bounds):
    """Values and bounds of ∫_lo^hi |y - anchor|^k φ(y) dy, given those without |.|."""
    if not lo < anchor < hi:  # y - anchor has one sign
        return [abs(v) for v in values], bounds
    left_values, left_bounds = _raw_moments_about(lo, anchor, anchor, order)
    right_values, right_bounds = _raw_moments_about(anchor, hi, anchor, order)
    return (
        [abs(a) + b for a, b in zip(left_values, right_values, strict=True)],
        [a + b for a, b in zip(left_bounds, right_bounds, strict=True)],
    )


def _moments_at_current_precision(lo, hi, anchor, order):
    """(log mass, conditional moments, conditional absolute moments, worst error ratio).

    The error ratio is the largest bound on |error| / (what the quantity is compared with),
    over the log-mass and all moments.
    """
    values, bounds = _raw_moments_about(lo, hi, anchor, order)
    abs_values, abs_bounds = _abs_moments_about(lo, hi, anchor, order, values, bounds)
    unit = ROUNDING * mpmath.eps
    mass, mass_bound = values[0], bounds[0]
    if mass <= unit * mass_bound:  # not a single correct digit yet
        return None, None, None, mpmath.inf
    conditional = [v / mass for v in values]
    conditional_abs = [v / mass for v in abs_values]
    ratios = [unit * mass_bound / mass / max(1, abs(mpmath.log(mass)))]
    for k in range(order + 1):
        error = unit * (bounds[k] + abs(values[k]) * mass_bound / mass) / mass
        abs_error = unit * (abs_bounds[k] + abs_values[k] * mass_bound / mass) / mass
        if conditional_abs[k] <= abs_error:
            ratios.append(mpmath.inf)
        else:
            ratios.append(max(error, abs_error) / conditional_abs[k])
    return mpmath.log(mass), conditional, conditional_abs, max(ratios)


def reference_moments(lo, hi, anchor, order, rtol=REFERENCE_RTOL):
    """(log mass, E[(y - anchor)^k | ...], E[|y - anchor|^k | ...]) for k <= order, as mpf.

    Every moment is correct to rtol relative to the absolute moment, the log-mass to
    rtol·max(1, |log mass|).
    """
    dps = 50
    while True:
        with mpmath.workdps(dps):
            log_mass, moments, abs_moments, ratio = _moments_at_current_precision(
                lo, hi, anchor, order
            )
        if ratio <= rtol:
            return log_mass, moments, abs_moments
        missing = 10 if ratio == mpmath.inf else int(mpmath.log10(ratio / rtol)) + 1
        dps += max(missing, dps // 2)
        assert dps < 50000, "reference did not converge"


def _x_pdf(x):
    return mpmath.mpf(0) if math.isinf(x) else x * mpmath.npdf(x)


def reference_summary(lo, hi):
    """(log_mass, mean, var, 1 - var) as mpf, from moments about a point next to the mass."""
    anchor = lo if lo >= 0 else (hi if hi <= 0 else 0.0)
    # var = E[(y - anchor)²] - E[y - anchor]² is then correct to 3 rtol·E[(y - anchor)²]. The
    # anchor is the mode, and (mean - mode)² <= 3 var for unimodal distributions (Johnson and
    # Rogers), so E[(y - anchor)²] <= 4 var and rtol = 1e-33 gives var to 1e-30 of itself.
    rtol = REFERENCE_RTOL / 1000
    log_mass, moments, _ = reference_moments(lo, hi, anchor, 2, rtol)
    var = moments[2] - moments[1] ** 2
    assert 3 * rtol * moments[2] <= REFERENCE_RTOL * var
    mean = anchor + moments[1]
    if var <= 0.5:
        return log_mass, mean, var, 1 - var
    # only intervals containing 0 get here: 1 - var = [y φ(y)]_lo^hi/mass + mean², all >= 0
    with mpmath.workdps(60):
        boundary = _x_pdf(hi) - _x_pdf(lo)
        return log_mass, mean, var, boundary / mpmath.exp(log_mass) + mean**2


def reference_erfcx(x):
    """exp(x²) erfc(x); erfcx(x) = R(√2 x)/√(π/2) where mpmath's erfc would overflow."""
    if x >= ASYMPTOTIC_START:
        return _mills_ratio_asymptotic(mpmath.sqrt(2) * x) / mpmath.sqrt(mpmath.pi / 2)
    x = mpmath.mpf(x)
    if x <= -ASYMPTOTIC_START:  # erfc(x) = 2 - erfc(-x), and erfcx(-x) < 1e-10
        return 2 * mpmath.exp(x * x) - reference_erfcx(-x)
    return mpmath.exp(x * x) * mpmath.erfc(x)


def reference_mills_ratio(a):
    if a >= ASYMPTOTIC_START:
        return _mills_ratio_asymptotic(a)
    if a <= -ASYMPTOTIC_START:  # R(a) = 1/φ(a) - R(-a)
        return 1 / mpmath.npdf(a) - _mills_ratio_asymptotic(-a)
    a = mpmath.mpf(a)
    return mpmath.erfc(a / mpmath.sqrt(2)) / (2 * mpmath.npdf(a))


# ---------------------------------------------------------------- comparison helpers


def assert_relative(value, reference, rtol, what):
    """value ≈ reference to rtol where the reference is a normal double; overflow -> inf."""
    if reference > DBL_MAX:
        assert value == INF, f"{what}: expected overflow to inf, got {value!r}"
        return
    assert math.isfinite(value), f"{what}: {value!r} for reference {mpmath.nstr(reference, 17)}"
    if abs(reference) >= DBL_MIN:
        error = abs(mpmath.mpf(value) - reference) / abs(reference)
        assert error <= rtol, f"{what}: {value!r} vs {mpmath.nstr(reference, 20)}, rel {error:.2e}"
    else:  # subnormal or zero: only check it is not a normal double of the wrong size
        assert abs(value) <= DBL_MIN, f"{what}: {value!r} for tiny {mpmath.nstr(reference, 5)}"


def assert_log_mass(log_mass, reference, what):
    """Absolute error <= LOG_MASS_TOL·max(1, |reference|); -inf where it is below -DBL_MAX."""
    if reference < -DBL_MAX:
        assert log_mass == -INF, f"{what}: log-mass {log_mass!r} for {mpmath.nstr(reference, 5)}"
        return
    error = abs(mpmath.mpf(log_mass) - reference)
    assert error <= LOG_MASS_TOL * max(1, abs(reference)), (
        f"{what}: log-mass {log_mass!r} vs {mpmath.nstr(reference, 20)}"
    )


def check_summary(lo, hi):
    log_mass, mean, var, one_minus_var = normal_interval_summary(lo, hi)
    what = f"summary[{lo!r}, {hi!r}]"
    ref_log_mass, ref_mean, ref_var, ref_one_minus_var = reference_summary(lo, hi)
    assert_log_mass(log_mass, ref_log_mass, what)
    mean_error = abs(mpmath.mpf(mean) - ref_mean)
    # (a true mean below the subnormal spacing, as for [0, 5e-324], can only be 0 or 5e-324)
    allowed = max(MEAN_TOL * (abs(ref_mean) + mpmath.sqrt(ref_var)), math.ulp(0.0))
    assert mean_error <= allowed, f"{what}: mean {mean!r} vs {mpmath.nstr(ref_mean, 20)}"
    assert_relative(var, ref_var, VAR_RTOL, f"{what}: var")
    assert_relative(one_minus_var, ref_one_minus_var, VAR_RTOL, f"{what}: one_minus_var")


def check_moments(lo, hi, order):
    out = np.full(order + 1, np.nan)
    log_scale, anchor = normal_interval_moments(lo, hi, out)
    what = f"moments[{lo!r}, {hi!r}] about {anchor!r}"
    # documented choices: 0, lo, hi or the midpoint
    assert anchor in (0.0, lo, hi) or lo < anchor < hi, f"{what}: unexpected anchor"
    ref_log_mass, ref_moments, ref_abs_moments = reference_moments(lo, hi, anchor, order)
    assert_log_mass(log_scale, ref_log_mass, what)
    for j in range(order + 1):
        error = abs(mpmath.mpf(out[j]) - ref_moments[j])
        allowed = MOMENT_RTOL * max(ref_abs_moments[j], MOMENT_FLOOR)
        assert error <= allowed, (
            f"{what}: out[{j}] = {out[j]!r} vs {mpmath.nstr(ref_moments[j], 20)} "
            f"(scale {mpmath.nstr(ref_abs_moments[j], 5)})"
        )


# ---------------------------------------------------------------- strategies

magnitudes = st.one_of(
    st.floats(0.0, 10.0),
    st.floats(-12.0, 155.0).map(lambda e: 10.0**e),
    st.sampled_from([0.0, 1.0, 2.0, 3.0, 6.0, 30.0, 38.0, 40.0]),
)
signed_values = st.tuples(magnitudes, st.booleans()).map(lambda t: -t[0] if t[1] else t[0])
widths = st.one_of(
    st.floats(-12.0, 3.0).map(lambda e: 10.0**e),
    st.floats(0.0, 12.0),
    st.just(INF),
)


@st.composite
def intervals(draw, max_magnitude=INF):
    """Intervals [lo, hi]: lo of any scale or -inf, hi = lo + width (or any value above -inf)."""
    if draw(st.integers(0, 9)) == 0:
        lo = -INF
        hi = draw(st.one_of(signed_values, st.just(INF)))
    else:
        lo = draw(signed_values)
        hi = lo + draw(widths)
    finite = [abs(v) for v in (lo, hi) if math.isfinite(v)]
    assume(not finite or max(finite) <= max_magnitude)
    return lo, hi


# ---------------------------------------------------------------- erfcx, Mills ratio, pdf

ERFCX_EDGE_CASES = [
    0.0,
    -0.0,
    1e-300,
    -1e-300,
    1e-20,
    -1e-8,
    0.5,
    -0.5,
    1.0,
    1.5,
    2.0,
    3.0,
    3.999999,
    4.0,
    4.000001,
    5.0,
    10.0,
    26.0,
    26.6,
    27.0,
    30.0,
    100.0,
    1e4,
    1e8,
    1e20,
    1e150,
    1e300,
    -1.0,
    -3.0,
    -10.0,
    -26.0,
    -26.6,
    -26.62,
    -26.628,
    -26.629,
    -26.64,
    -27.0,
    -1e3,
    -1e300,
]


@pytest.mark.parametrize("x", ERFCX_EDGE_CASES)
def test_erfcx_edge_cases(x):
    assert_relative(erfcx(x), reference_erfcx(x), ERFCX_RTOL, f"erfcx({x!r})")


def test_erfcx_infinities():
    assert erfcx(INF) == 0.0
    assert erfcx(-INF) == INF
    # 1/(√π x) is subnormal for the largest doubles: no NaN, no overflow
    assert 0.0 <= erfcx(DBL_MAX) < DBL_MIN


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.floats(-27.0, 27.0), signed_values))
def test_erfcx_random(x):
    assert_relative(erfcx(x), reference_erfcx(x), ERFCX_RTOL, f"erfcx({x!r})")


@pytest.mark.parametrize(
    "a",
    [
        0.0,
        1e-10,
        0.5,
        1.0,
        3.0,
        5.656,
        5.66,
        10.0,
        40.0,
        1e3,
        1e8,
        1e150,
        1e300,
        -1e-10,
        -0.5,
        -1.0,
        -3.0,
        -10.0,
        -30.0,
        -37.6,
        -37.65,
        -37.7,
        -1e3,
    ],
)
def test_mills_ratio_edge_cases(a):
    assert_relative(mills_ratio(a), reference_mills_ratio(a), MILLS_RTOL, f"R({a!r})")


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(-38.0, 38.0), signed_values))
def test_mills_ratio_random(a):
    assert_relative(mills_ratio(a), reference_mills_ratio(a), MILLS_RTOL, f"R({a!r})")


def check_pdf_and_log_pdf(x):
    ref_log = -(mpmath.mpf(x) ** 2) / 2 - mpmath.log(2 * mpmath.pi) / 2
    assert_relative(normal_pdf(x), mpmath.exp(ref_log), PDF_RTOL, f"pdf({x!r})")
    log_pdf = log_normal_pdf(x)
    if -ref_log > DBL_MAX:
        assert log_pdf == -INF
    else:
        assert abs(mpmath.mpf(log_pdf) - ref_log) <= PDF_RTOL * max(1, abs(ref_log))


@pytest.mark.parametrize(
    "x", [0.0, 1e-300, 1.0, -8.0, 26.0, 38.5, 38.6, -1e3, 1.3e154, 1.5e154, 1.9e154, 1e300]
)
def test_normal_pdf_and_log_pdf_edge_cases(x):
    check_pdf_and_log_pdf(x)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.floats(-40.0, 40.0), signed_values))
def test_normal_pdf_and_log_pdf_random(x):
    check_pdf_and_log_pdf(x)


# ---------------------------------------------------------------- interval summary

SUMMARY_EDGE_CASES = [
    (-INF, INF),
    (0.0, INF),
    (-INF, 0.0),
    (-10.0, INF),
    (-INF, 10.0),
    (-40.0, INF),
    (2.9, INF),
    (3.0, INF),
    (5.0, INF),
    (30.0, INF),
    (40.0, INF),
    (1e3, INF),
    (1e8, INF),
    (1e150, INF),
    (-INF, -30.0),
    (-INF, -1e3),
    (-INF, -1e150),
    (5.0, 5.0 + 1e-9),
    (5.0, 5.0 + 1e-12),
    (-0.0051, -0.0049),
    (1e4, 1e4 + 1e-3),
    (1e8, 1e8 + 1e-6),
    (-1e-12, 1e-12),
    (-1e-3, 2e-3),
    (0.0, 1e-12),
    (0.0, 2.0),
    (0.0, 2.1),
    (-1.5, 1.5),
    (-2.01, 2.01),
    (-10.0, 10.0),
    (-3.0, 5.0),
    (-0.5, 10.0),
    (0.5, 2.9),
    (2.9, 4.3),
    (3.0, 3.5),
    (3.0, 10.0),
    (10.0, 10.7),
    (10.0, 11.0),
    (30.0, 30.2),
    (40.0, 41.0),
    (1e3, 1e3 + 0.01),
    (-12.0, -11.0),
    (-5.0, -1.0),
    (-1e3, 1e3),
    (-1e300, 1e300),
    (1e300, 1.5e300),
    (38.0, 39.0),
    # either side of the regime boundaries: width·(1 + max|endpoint|) = 8, lo = 3
    (0.0, 2.372),
    (0.0, 2.373),
    (10.0, 10.6926),
    (10.0, 10.6928),
    (-2.372, 2.372),
    (-2.373, 2.373),
    (2.999999, 4.0),
    (3.0, 4.0),
    (2.999999, INF),
    # half lines whose mass is not in a far tail (the direct formulas, lo < TAIL_START = 3),
    # down to where φ(lo) and 1 − var go subnormal, and either side of that limit
    (-1e300, INF),
    (-40.0, INF),
    (-38.5, INF),
    (-37.0, INF),
    (-5.0, INF),
    (-1.0, INF),
    (-1e-300, INF),
    (0.0, INF),
    (0.5, INF),
    (1.0, INF),
    (1.5, INF),
    (-INF, -2.999999),
    (-INF, -1.0),
    (-INF, 0.5),
    (-INF, 5.0),
    (-INF, 37.0),
    (-INF, 38.0),
]


@pytest.mark.parametrize("lo,hi", SUMMARY_EDGE_CASES)
def test_summary_edge_cases(lo, hi):
    check_summary(lo, hi)


@settings(max_examples=250, deadline=None)
@given(intervals())
def test_summary_random(interval):
    lo, hi = interval
    assume(lo < hi)
    check_summary(lo, hi)


@settings(max_examples=200, deadline=None)
@given(st.floats(-38.0, 3.5), st.booleans())
def test_summary_half_lines(lo, mirrored):
    """Half-lines on both sides of the direct formulas' limit (TAIL_START), both orientations."""
    if mirrored:
        check_summary(-INF, -lo)
    else:
        check_summary(lo, INF)


def test_summary_exact_values():
    assert normal_interval_summary(-INF, INF) == (0.0, 0.0, 1.0, 0.0)
    for point in (-INF, -3.0, 0.0, 7.5, 1e200, INF):
        assert normal_interval_summary(point, point) == (-INF, point, 0.0, 1.0)


# ---------------------------------------------------------------- interval moments

MOMENT_EDGE_CASES = [
    (-INF, INF),
    (0.0, INF),
    (-10.0, INF),
    (-INF, -5.0),
    (2.9, INF),
    (3.0, INF),
    (40.0, INF),
    (1e3, INF),
    (1e8, INF),
    (1e150, INF),
    (5.0, 5.0 + 1e-9),
    (-0.0051, -0.0049),
    (1e4, 1e4 + 1e-3),
    (-1e-12, 1e-12),
    (0.0, 2.0),
    (0.0, 2.01),
    (0.0, 3.0),
    (-1.5, 1.5),
    (-1.99, 2.01),
    (-2.01, 2.01),
    (-2.5, 2.6),
    (-1.9, 1.0),
    (-0.5, 10.0),
    (2.9, 4.3),
    (3.0, 3.6),
    (3.0, 5.0),
    (10.0, 10.6),
    (100.0, 100.07),
    (1e3, 1e3 + 0.01),
    (-8.0, -3.0),
    (-1e3, 1e3),
    # either side of the regime boundaries: width·(1 + max|endpoint|) = 8, lo = 3
    (0.0, 2.372),
    (0.0, 2.373),
    (10.0, 10.6926),
    (10.0, 10.6928),
    (-2.372, 2.372),
    (-2.373, 2.373),
    (2.999999, 4.2),
    (3.0, 4.2),
    (-4.2, -3.0),
]


@pytest.mark.parametrize("lo,hi", MOMENT_EDGE_CASES)
def test_moments_edge_cases(lo, hi):
    check_moments(lo, hi, MAX_MOMENT_ORDER)


@settings(max_examples=120, deadline=None)
@given(intervals(max_magnitude=1e20), st.integers(0, MAX_MOMENT_ORDER))
def test_moments_random(interval, order):
    lo, hi = interval
    assume(lo < hi)
    check_moments(lo, hi, order)


def test_moments_degenerate_and_whole_line():
    out = np.full(MAX_MOMENT_ORDER + 1, np.nan)
    assert normal_interval_moments(2.5, 2.5, out) == (-INF, 2.5)
    assert out.tolist() == [1.0] + [0.0] * MAX_MOMENT_ORDER
    assert normal_interval_moments(-INF, INF, out) == (0.0, 0.0)
    expected = [0.0 if k % 2 else float(mpmath.fac2(k - 1)) for k in range(len(out))]
    assert out.tolist() == expected


@pytest.mark.parametrize("length", [0, MAX_MOMENT_ORDER + 2])
def test_moments_rejects_unsupported_orders(length):
    with pytest.raises(ValueError):
        normal_interval_moments(0.0, 1.0, np.empty(length))


# ---------------------------------------------------------------- no NaN, documented infinities

any_finite = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(any_finite, any_finite)
def test_finite_input_gives_no_nan(a, b):
    lo, hi = min(a, b), max(a, b)
    value = erfcx(a)
    assert not math.isnan(value) and value >= 0.0
    assert value < INF or a < -26.628  # overflow only where exp(a²) erfc(a) > DBL_MAX
    ratio = mills_ratio(a)
    assert not math.isnan(ratio) and ratio >= 0.0
    assert ratio < INF or a < -37.65

    log_mass, mean, var, one_minus_var = normal_interval_summary(lo, hi)
    assert not any(math.isnan(v) for v in (log_mass, mean, var, one_minus_var))
    assert math.isfinite(mean) and lo <= mean <= hi
    assert 0.0 <= var <= 1.0 and 0.0 <= one_minus_var <= 1.0
    nearest = 0.0 if lo <= 0.0 <= hi else min(abs(lo), abs(hi))
    assert log_mass <= 0.0
    # -inf only for an empty interval or where -nearest²/2 itself is below -DBL_MAX
    assert log_mass > -INF or lo == hi or nearest > 1.8e154

    out = np.empty(MAX_MOMENT_ORDER + 1)
    log_scale, anchor = normal_interval_moments(lo, hi, out)
    assert not math.isnan(log_scale) and log_scale <= 0.0 and math.isfinite(anchor)
    assert not np.isnan(out).any() and np.isfinite(out).all()
