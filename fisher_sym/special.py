"""Numerical core for Gaussian integrals over intervals, callable from ``numba.njit`` code.

Notation: φ(y) = exp(-y²/2)/√(2π) is the standard normal density, Q(a) = ∫_a^∞ φ its upper
tail, R(a) = Q(a)/φ(a) the Mills ratio and erfcx(x) = exp(x²)·erfc(x), so that
R(a) = √(π/2)·erfcx(a/√2).

Generated kernels need, for an interval [lo, hi] with -inf <= lo <= hi <= +inf, the Gaussian
mass ∫_lo^hi φ and moments ∫_lo^hi (y - c)^j φ(y) dy. The textbook formulas (differences of
normal CDFs, E[y²] - E[y]²) cancel catastrophically in the tails and for narrow intervals, so
every quantity here is computed in a form without large cancellation:

* masses are returned as logarithms, so [1e150, inf) still has a finite log-mass;
* moments are conditional moments E[(y - c)^j | lo <= y <= hi] about an anchor c next to the
  mass, chosen per regime (the constants are justified where they are defined):

  narrow   width·(1 + max|endpoint|) <= NARROW_LIMIT: Gauss-Legendre quadrature, c = midpoint;
  tail     lo >= TAIL_START (mirrored: hi <= -TAIL_START): c = lo; the Laplace continued
           fraction gives the ratios K_j = h_j/h_{j-1} of h_k(a) = ∫_0^∞ s^k exp(-a s - s²/2) ds,
           and E[(y - a)^k | y >= a] = K_1···K_k is a product, free of cancellation;
  central  everything else: c = 0; the upper-tail moments G_k(x) = ∫_x^∞ y^k φ obey the
           recurrence G_{k+1} = k G_{k-1} + x^k φ(x) with positive terms only, and an interval
           is a difference of two such tails (or, when it contains 0, the sum of its two halves).

All public functions are ``numba.njit(cache=True)``, take and return float64 scalars (or fill a
float64 array), and never return NaN for arguments in their documented domain.
"""

import math

import numba
import numba.extending
import numpy as np
from numba.core import cgutils

MAX_MOMENT_ORDER = 12
"""Highest moment order j that `normal_interval_moments` computes to full accuracy."""
#: Length of the work arrays that ``scratch`` hands out for moments up to MAX_MOMENT_ORDER.
SCRATCH_SIZE = MAX_MOMENT_ORDER + 1

SQRT2 = 1.4142135623730950488
INV_SQRT2 = 0.70710678118654752440
INV_SQRT_PI = 0.56418958354775628695
SQRT_PI_OVER_2 = 1.2533141373155002512
SQRT_2PI = 2.5066282746310005024
INV_SQRT_2PI = 0.39894228040143267794
LOG_SQRT_2PI = 0.91893853320467274178

# Veltkamp splitting constant 2^27 + 1: x = x_hi + x_lo with 26-bit halves whose products are
# exact. Beyond SQUARE_SPLIT_LIMIT, exp(±x²) is 0 or inf anyway and log φ(x) only needs x² to
# relative accuracy, so the low part is dropped: it is up to half an ulp of x², which for
# |x| > ~1e9 would itself under- or overflow exp (giving inf·0 = NaN).
VELTKAMP_SPLIT = 134217729.0
SQUARE_SPLIT_LIMIT = 2.0**16

# erfcx switches from erfc(x)·exp(x²) to its continued fraction here; below it libm's erfc is
# accurate to ~1 ulp (measured), above it the continued fraction needs at most 21 terms.
ERFCX_CF_START = 4.0

# Tail intervals [a, ...) with a >= TAIL_START use the continued fraction (at most 84 terms for
# 12 moments at a = 3, fewer for larger a). Below it the central regime (anchor 0) is used: its
# variance E[y²] - E[y]² then loses at most log10(150) ≈ 2 digits, reached at [3, inf).
TAIL_START = 3.0

# Intervals with width·(1 + max|endpoint|) <= NARROW_LIMIT are integrated by Gauss-Legendre.
# There φ(y)/φ(midpoint) varies at most like exp(±4) across the interval, and 16 nodes
# integrate (y - c)^j φ, j <= 12, to ~1e-14 (measured). Wider intervals are differences of
# tails, whose cancellation grows with j as the interval narrows: at this limit the measured
# worst error for j = 12 is ~2e-14 (at 6 instead of 8 it would be ~1.3e-13).
NARROW_LIMIT = 8.0
GL_NODES, GL_WEIGHTS = np.polynomial.legendre.leggauss(16)


def scratch(size):
    """A float64 work array of ``size`` elements (an integer constant), valid until the
    function that asks for it returns: on the stack of that function on the CPU
    (``_stack_array``), a thread-local array in CUDA device code (``register_device_scratch``),
    so that the same compiled functions run on both without a heap allocation."""
    return np.empty(size)


@numba.extending.intrinsic
def _stack_array(typingctx, size):
    """A float64 array of ``size`` (an integer literal) elements in the stack frame of the
    function being compiled: an alloca in its entry block, so a call in a loop reuses it."""
    if not isinstance(size, numba.types.IntegerLiteral):
        return None
    length = size.literal_value
    array_type = numba.types.Array(numba.float64, 1, "C")

    def codegen(context, builder, signature, args):
        element = context.get_value_type(numba.float64)
        data = cgutils.alloca_once(builder, element, size=length)
        intp = context.get_value_type(numba.types.intp)
        itemsize = context.get_abi_sizeof(element)
        array = context.make_array(array_type)(context, builder)
        context.populate_array(
            array, data=data, shape=[intp(length)], strides=[intp(itemsize)],
            itemsize=intp(itemsize), meminfo=None,
        )
        return array._getvalue()

    return array_type(size), codegen


@numba.extending.overload(scratch, target="cpu", prefer_literal=True, inline="always")
def _scratch_cpu(size):
    # Inlined into the caller, so that the alloca lies in the caller's frame.
    if not isinstance(size, numba.types.IntegerLiteral):
        raise numba.errors.TypingError("scratch(size) needs an integer constant")
    length = size.literal_value
    return lambda size: _stack_array(length)


def register_device_scratch():
    """Teach numba-cuda ``scratch``: ``cuda.local.array`` of the literal size. Called by the
    generated modules when they build their CUDA kernels; a no-op where numba-cuda's
    extension API is missing (numba's CUDA simulator runs the CPU functions)."""
    global _DEVICE_SCRATCH_REGISTERED
    if _DEVICE_SCRATCH_REGISTERED:
        return
    try:
        from numba import cuda
        from numba.cuda.extending import overload
    except ImportError:
        return
    _DEVICE_SCRATCH_REGISTERED = True

    @overload(scratch, prefer_literal=True, inline="always")
    def _scratch_device(size):
        if not isinstance(size, numba.types.IntegerLiteral):
            raise numba.errors.TypingError("scratch(size) needs an integer constant on a GPU")
        length = size.literal_value

        def allocate(size):
            return cuda.local.array(length, numba.float64)

        return allocate


_DEVICE_SCRATCH_REGISTERED = False


@numba.njit(cache=True)
def split_square(x):
    """Return (hi, lo) with x² = hi + lo exactly (Dekker's product); lo = 0 for huge |x|."""
    square = x * x
    if not abs(x) < SQUARE_SPLIT_LIMIT:
        return square, 0.0
    scaled = VELTKAMP_SPLIT * x
    x_hi = scaled - (scaled - x)
    x_lo = x - x_hi
    return square, ((x_hi * x_hi - square) + 2.0 * x_hi * x_lo) + x_lo * x_lo


@numba.njit(cache=True)
def _exp_square(x, factor):
    """exp(factor·x²) for factor = ±1 or ±1/2, without the error of rounding x² first.

    exp(x²) has condition number 2x², so the 1-ulp rounding of x*x alone would cost up to
    ~700 ulp; exp(hi)·exp(lo) with the exact split x² = hi + lo avoids it (scaling by a power
    of two is exact).
    """
    square_hi, square_lo = split_square(x)
    return math.exp(factor * square_hi) * math.exp(factor * square_lo)


@numba.njit(cache=True)
def normal_pdf(x):
    """φ(x) = exp(-x²/2)/√(2π), to ~1 ulp (exact splitting of x²); 0 for |x| >= ~38.6."""
    return INV_SQRT_2PI * _exp_square(x, -0.5)


@numba.njit(cache=True)
def normal_pdf_one_exp(x):
    """φ(x) with one exp, for quadrature weights: with x² = hi + lo exactly,
    exp(−(hi + lo)/2) = exp(−hi/2)·(1 − lo/2) to ~1 ulp, as |lo| <= ulp(x²) is below 1e-13
    wherever φ(x) does not underflow."""
    square_hi, square_lo = split_square(x)
    return INV_SQRT_2PI * math.exp(-0.5 * square_hi) * (1.0 - 0.5 * square_lo)


@numba.njit(cache=True)
def log_normal_pdf(x):
    """log φ(x) = -x²/2 - log √(2π); -inf only where x²/2 overflows (|x| > ~1.9e154)."""
    if abs(x) < SQUARE_SPLIT_LIMIT:
        square_hi, square_lo = split_square(x)
        return -0.5 * square_hi - 0.5 * square_lo - LOG_SQRT_2PI
    return -(0.5 * x) * x - LOG_SQRT_2PI  # x² itself overflows already for |x| > ~1.34e154


@numba.njit(cache=True)
def _x_normal_pdf(x):
    """x·φ(x), with the limit 0 at x = ±inf (where the product would be inf·0 = NaN)."""
    if math.isinf(x):
        return 0.0
    return x * normal_pdf(x)


@numba.njit(cache=True)
def _cf_terms(a, order):
    """Depth of the Laplace continued fraction for R(a) giving K_1, ..., K_order to ~1 ulp.

    Started from the asymptotic tail value (see `_upper_tail_conditional_moments`), a truncation
    error is damped by about exp(-2a(√n - √j)) between depths n and j, hence n ≈ (√j + c/a)².
    Measured minimal depths (a: order 1 / 2 / 12): 3: 41/45/74, 5: 21/24/44, 10: 11/13/27,
    100: 4/5/16, 1000: 2/3/13; this formula exceeds each of them by 10 % or more.
    """
    return int(math.ceil((math.sqrt(order) + 16.0 / a) ** 2)) + 6


@numba.njit(cache=True)
def _erfcx_continued_fraction(x):
    """erfcx(x) for x >= ERFCX_CF_START by erfcx(x) = 1/(√π (x + ½/(x + 1/(x + (3/2)/(x + …))))).

    This is the Mills-ratio continued fraction at a = √2 x, hence the shared depth rule.
    """
    terms = _cf_terms(SQRT2 * x, 1)
    # Start from the fixed point of K (x + K) = (terms + 1)/2 instead of 0: the true tail.
    half_depth = 0.5 * (terms + 1)
    tail = half_depth / (x + math.hypot(x, math.sqrt(2.0 * half_depth)))
    for j in range(terms, 0, -1):
        tail = 0.5 * j / (x + tail)
    return INV_SQRT_PI / (x + tail)


@numba.njit(cache=True)
def erfcx(x):
    """Scaled complementary error function exp(x²)·erfc(x), to a few ulp for every float x.

    For x < ERFCX_CF_START it is libm's erfc(x) (which for x < 0 is 2 - erfc(-x), so this is
    the reflection erfcx(x) = 2 exp(x²) - erfcx(-x)) times exp(x²) from the exact split of x².
    Above, erfc underflows, so a continued fraction is used. Returns +inf only for
    x < -26.628..., where the true value exceeds the largest double.
    """
    if x < ERFCX_CF_START:
        return math.erfc(x) * _exp_square(x, 1.0)
    return _erfcx_continued_fraction(x)


@numba.njit(cache=True)
def mills_ratio(a):
    """Mills ratio R(a) = Q(a)/φ(a) = √(π/2)·erfcx(a/√2), to a few ulp; +inf for a < -37.65.

    For a < 0 the reflection R(a) = √(2π) exp(a²/2) - R(-a) is used: erfcx(a/√2) would amplify
    the rounding of a/√2 by the condition number a² of exp(a²/2).
    """
    if a >= 0.0:
        return SQRT_PI_OVER_2 * erfcx(a * INV_SQRT2)
    reflected = SQRT_PI_OVER_2 * erfcx(-a * INV_SQRT2)  # R(-a) <= 1/|a|, no cancellation
    return SQRT_2PI * _exp_square(a, 0.5) - reflected


@numba.njit(cache=True)
def _upper_tail_conditional_moments(a, out):
    """Fill out[k] = E[(y - a)^k | y >= a] = h_k(a)/h_0(a) (k <= J = len(out) - 1); return R(a).

    Requires a >= TAIL_START. With h_k(a) = ∫_0^∞ s^k exp(-a s - s²/2) ds the ratios
    K_j = h_j/h_{j-1} are the tails of the Laplace continued fraction
    R(a) = 1/(a + 1/(a + 2/(a + 3/(a + …)))): K_j = j/(a + K_{j+1}). Evaluating them backwards is
    stable (the forward recurrence h_{k+1} = k h_{k-1} - a h_k cancels), and the moments are
    products K_1···K_k, which underflow only where the moments themselves do.
    """
    order = len(out) - 1
    terms = _cf_terms(a, max(order, 1))
    # Start from the fixed point of K (a + K) = terms + 1 instead of 0: the true tail.
    depth = terms + 1.0
    ratio = 2.0 * depth / (a + math.hypot(a, 2.0 * math.sqrt(depth)))
    for j in range(terms, 0, -1):
        ratio = j / (a + ratio)
        if j <= order:
            out[j] = ratio
    out[0] = 1.0
    for j in range(1, order + 1):
        out[j] *= out[j - 1]
    return 1.0 / (a + ratio)


@numba.njit(cache=True)
def _upper_tail_raw_moments(x, out):
    """Fill out[k] = G_k(x) = ∫_x^∞ y^k φ(y) dy for x >= 0 and k <= len(out) - 1.

    G_0 = Q(x), G_1 = φ(x) and G_{k+1} = k G_{k-1} + x^k φ(x) (integration by parts): all terms
    are positive, so the recurrence is forward-stable for every x >= 0.
    """
    order = len(out) - 1
    density = normal_pdf(x)
    if density == 0.0:  # x >= ~38.6 or inf: every G_k underflows (and x^k·0 could be NaN)
        out[:] = 0.0
        return
    out[0] = density * mills_ratio(x)
    if order >= 1:
        out[1] = density
    boundary = density  # x^k φ(x)
    for k in range(1, order):
        boundary *= x
        out[k + 1] = k * out[k - 1] + boundary


@numba.njit(cache=True)
def _midpoint(lo, hi):
    """(lo + hi)/2 for finite lo <= hi, without overflow."""
    return lo + 0.5 * (hi - lo)


@numba.njit(cache=True)
def _gauss_legendre_moments(lo, hi, anchor, out):
    """Gauss-Legendre moments of a narrow finite interval: returns log F and fills out so that
    ∫_lo^hi (y - anchor)^k φ(y) dy = F·out[k], with F = φ(c)·(hi - lo)/2, c = _midpoint(lo, hi).

    The integrand is evaluated relative to φ(c), as exp(-s (c + s/2)) with s = y - c, so no
    large exponent is formed. Rounding c moves it off the true midpoint by up to half an ulp
    of c, which for [1e4, 1e4 + 1e-3] would be 1e-9 of the width; the offsets lo - c and
    hi - c are exact there (Sterbenz), so the nodes are placed on the exact interval instead.
    """
    order = len(out) - 1
    center = _midpoint(lo, hi)
    offset_lo = lo - center
    offset_hi = hi - center
    half_width = 0.5 * (offset_hi - offset_lo)
    center_error = 0.5 * (offset_hi + offset_lo)
    anchor_offset = center - anchor
    out[:] = 0.0
    for i in range(GL_NODES.size):
        offset = center_error + half_width * GL_NODES[i]  # y_i - c
        term = GL_WEIGHTS[i] * math.exp(-offset * (center + 0.5 * offset))
        distance = anchor_offset + offset  # y_i - anchor
        for k in range(order + 1):
            out[k] += term
            term *= distance
    # log of the full width, as half of a subnormal width can underflow to 0
    return math.log(offset_hi - offset_lo) - math.log(2.0) + log_normal_pdf(center)


@numba.njit(cache=True)
def _shift_moments(moments, shift):
    """Turn moments about x into moments about x - shift, in place (Taylor shift).

    E[(y - x + shift)^k] = Σ_j C(k, j) shift^(k-j) E[(y - x)^j]; with non-negative moments and
    shift, as used here, every term is non-negative.
    """
    order = len(moments) - 1
    for i in range(order):
        for k in range(order, i, -1):
            moments[k] += shift * moments[k - 1]


@numba.njit(cache=True)
def _normalize(moments):
    """Divide raw moments by the mass moments[0] in place; return log(mass)."""
    mass = moments[0]
    for k in range(len(moments)):
        moments[k] /= mass
    return math.log(mass)


@numba.njit(cache=True)
def _is_narrow_from_zero(b):
    """Whether [0, b] is narrow in the sense of NARROW_LIMIT (b <= 2.37)."""
    return b * (1.0 + b) <= NARROW_LIMIT


@numba.njit(cache=True)
def _moments_from_zero(b, out):
    """Fill out[k] = ∫_0^b y^k φ(y) dy for 0 < b <= inf (raw moments, not normalized)."""
    if _is_narrow_from_zero(b):
        factor = math.exp(_gauss_legendre_moments(0.0, b, 0.0, out))
        for k in range(len(out)):
            out[k] *= factor
        return
    # G_k(0) - G_k(b): b > 2.37 here, so [0, b] holds a fair part of G_k(0), k <= 12
    _upper_tail_raw_moments(b, out)
    half_line = 0.5  # G_k(0) = ∫_0^∞ y^k φ, by G_{k+1}(0) = k G_{k-1}(0)
    next_half_line = INV_SQRT_2PI
    for k in range(len(out)):
        out[k] = half_line - out[k]
        half_line, next_half_line = next_half_line, (k + 1) * half_line


@numba.njit(cache=True)
def _tail_interval_moments(lo, hi, out, scratch):
    """Conditional moments about lo of [lo, hi] with lo >= TAIL_START; returns the log-mass.

    Uses E[(y - lo)^k | lo <= y <= hi] = (C_k(lo) - ρ S_k)/(1 - ρ), where C_k(lo) are the
    half-line moments, ρ = Q(hi)/Q(lo) and S_k = E[(y - lo)^k | y >= hi] is obtained by a Taylor
    shift of the half-line moments at hi; the subtraction is benign because the interval is not
    narrow (see NARROW_LIMIT).
    """
    mills_lo = _upper_tail_conditional_moments(lo, out)
    log_mass = log_normal_pdf(lo) + math.log(mills_lo)
    width = hi - lo
    # φ(hi)/φ(lo) = exp(-(hi - lo)(hi + lo)/2): the exact width avoids squaring lo and hi
    density_ratio = math.exp(-0.5 * width * (lo + hi))
    if density_ratio == 0.0:  # hi = inf, or the part beyond hi is below the double range
        return log_mass
    mills_hi = _upper_tail_conditional_moments(hi, scratch)
    tail_ratio = density_ratio * (mills_hi / mills_lo)
    _shift_moments(scratch, width)
    kept = 1.0 - tail_ratio
    for k in range(1, len(out)):
        out[k] = (out[k] - tail_ratio * scratch[k]) / kept
    return log_mass + math.log1p(-tail_ratio)


@numba.njit(cache=True)
def _oriented_interval_moments(lo, hi, out, scratch):
    """Conditional moments and log-mass of [lo, hi] for lo < hi and hi > 0 (see module doc).

    Returns (log_mass, anchor) and fills out[k] = E[(y - anchor)^k | lo <= y <= hi].
    """
    if (hi - lo) * (1.0 + max(-lo, hi)) <= NARROW_LIMIT:
        anchor = _midpoint(lo, hi)
        log_factor = _gauss_legendre_moments(lo, hi, anchor, out)
        return log_factor + _normalize(out), anchor
    if lo >= TAIL_START:
        return _tail_interval_moments(lo, hi, out, scratch), lo
    if lo >= 0.0:
        # G_k(lo) - G_k(hi), both positive recurrences; the interval is not narrow
        _upper_tail_raw_moments(lo, out)
        _upper_tail_raw_moments(hi, scratch)
        for k in range(len(out)):
            out[k] -= scratch[k]
    elif _is_narrow_from_zero(-lo) or _is_narrow_from_zero(hi):
        # Split at 0: ∫_0^hi y^k φ + (-1)^k ∫_0^-lo y^k φ. Unlike "whole line minus two tails",
        # this keeps high even moments of [-1.5, 1.5] (tiny next to the full-line ones) exact.
        _moments_from_zero(hi, out)
        _moments_from_zero(-lo, scratch)
        for k in range(len(out)):
            out[k] += scratch[k] if k % 2 == 0 else -scratch[k]
    else:
        # Whole line minus the tails beyond -lo, hi > 2.37. Odd moments are the difference
        # G_k(-lo) - G_k(hi) of the tails alone, so the mean of [-10, inf) is φ(10)/mass, not 0.
        _upper_tail_raw_moments(-lo, out)
        _upper_tail_raw_moments(hi, scratch)
        whole_line = 1.0  # E[y^k] = (k - 1)!! for even k
        for k in range(len(out)):
            if k % 2 == 0:
                out[k] = whole_line - out[k] - scratch[k]
                whole_line *= k + 1
            else:
                out[k] -= scratch[k]
    return _normalize(out), 0.0


@numba.njit(cache=True)
def _interval_moments(lo, hi, out, scratch):
    """`normal_interval_moments` with caller-provided scratch space of the same length."""
    order = len(out) - 1
    if lo == hi:
        out[:] = 0.0
        out[0] = 1.0
        return -math.inf, lo
    if lo == -math.inf and hi == math.inf:
        # E[y^k] = (k - 1)!! for even k; special-cased so that the log-mass is exactly 0
        even_moment = 1.0
        for k in range(order + 1):
            if k % 2 == 0:
                out[k] = even_moment
                even_moment *= k + 1
            else:
                out[k] = 0.0
        return 0.0, 0.0
    if hi > 0.0:
        return _oriented_interval_moments(lo, hi, out, scratch)
    # Mirror y -> -y onto [-hi, -lo], which has -lo > 0
    log_mass, anchor = _oriented_interval_moments(-hi, -lo, out, scratch)
    for k in range(1, order + 1, 2):
        out[k] = -out[k]
    return log_mass, -anchor


@numba.njit(cache=True)
def normal_interval_moments(lo, hi, out):
    """Log-mass and conditional moments of the standard normal on [lo, hi].

    For -inf <= lo <= hi <= inf and J = len(out) - 1 in 0..MAX_MOMENT_ORDER, returns
    (log_scale, anchor) and fills out[j] = exp(-log_scale)·∫_lo^hi (y - anchor)^j φ(y) dy, where
    log_scale = log ∫_lo^hi φ, so out[0] = 1 and out[j] = E[(y - anchor)^j | lo <= y <= hi].

    The anchor is the midpoint for narrow intervals (width·(1 + max|endpoint|) <= 8), else lo
    for tails lo >= 3 (hi for hi <= -3), else 0. out[j] is accurate to ~1e-13 relative to
    E[|y - anchor|^j | lo <= y <= hi]. For lo == hi it returns (-inf, lo) and out = (1, 0, …, 0).
    log_scale is -inf also when the true log-mass is below -1.8e308 (|endpoints| > ~1.9e154).
    Raises ValueError if len(out) is 0 or above MAX_MOMENT_ORDER + 1.
    """
    order = len(out) - 1
    if order < 0 or order > MAX_MOMENT_ORDER:
        raise ValueError("normal_interval_moments: len(out) must be in 1..MAX_MOMENT_ORDER + 1")
    return _interval_moments(lo, hi, out, scratch(SCRATCH_SIZE)[: len(out)])


@numba.njit(cache=True)
def _half_line_summary(a):
    """``normal_interval_summary(a, inf)`` for finite a < TAIL_START, directly: with
    Q = Q(a) (no cancellation: Q ≥ Q(3) ≈ 1e-3), mean = φ(a)/Q and 1 − var = mean·(mean − a),
    where mean − a > 0 cancels by at most a factor 12 (at a = 3) and var = 1 − (1 − var) by at
    most 14 (var ≥ 1 − 2/π for a ≤ 0)."""
    tail = 0.5 * math.erfc(a * INV_SQRT2)
    mean = normal_pdf(a) / tail
    one_minus_var = mean * (mean - a)
    if a < 0.0:  # Q = 1 − Q(−a) is near 1: its log from the small complement
        log_mass = math.log1p(-0.5 * math.erfc(-a * INV_SQRT2))
    else:
        log_mass = math.log(tail)
    return log_mass, mean, 1.0 - one_minus_var, one_minus_var


@numba.njit(cache=True)
def normal_interval_summary(lo, hi):
    """(log_mass, mean, var, one_minus_var) of the standard normal restricted to [lo, hi].

    For -inf <= lo <= hi <= inf: log_mass = log ∫_lo^hi φ (exactly 0 for the whole line), mean
    and var are those of y ~ φ conditioned on lo <= y <= hi, and one_minus_var = 1 - var without
    the cancellation (exactly 0 for the whole line). For lo == hi it returns (-inf, lo, 0, 1).
    Accuracy: log_mass to 1e-13·max(1, |log_mass|) absolute, mean to 1e-13·(|mean| + √var),
    var and one_minus_var to ~1e-13 relative (wherever they are normal doubles).
    """
    if hi == math.inf and -math.inf < lo < TAIL_START:
        return _half_line_summary(lo)
    if lo == -math.inf and -TAIL_START < hi < math.inf:
        log_mass, mean, var, one_minus_var = _half_line_summary(-hi)
        return log_mass, -mean, var, one_minus_var
    work = scratch(6)
    moments = work[:3]
    log_mass, anchor = _interval_moments(lo, hi, moments, work[3:])
    mean = anchor + moments[1]
    var = moments[2] - moments[1] * moments[1]
    if var <= 0.5:
        return log_mass, mean, var, 1.0 - var
    # Only intervals containing 0 have var > 1/2 (one-sided ones have var <= 1 - 2/π). There
    # 1 - var = (hi φ(hi) - lo φ(lo))/mass + mean², as ∫ (1 - y²) φ = [y φ], and both boundary
    # terms are non-negative.
    boundary = _x_normal_pdf(hi) - _x_normal_pdf(lo)
    return log_mass, mean, var, boundary / math.exp(log_mass) + mean * mean
