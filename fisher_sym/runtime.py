"""What the generated modules import: jitted helpers for Gaussian terms, and input checks.

A generated ``_tilted_moments(r, b)`` describes each Gaussian term of φ'(rz+b)² φ(z) (see
``gaussian.py``) by its parameters and hands them to ``constant_term`` or ``polynomial_term``,
which return a *term summary*

    (sign, log_weight, mean, variance, one_minus_variance)

meaning: the term integrates to sign·exp(log_weight), and z under the term's normalised density
has that mean and variance. ``combine_terms`` merges the summaries like a mixture (law of total
variance), which keeps every step free of catastrophic cancellation.
"""

from __future__ import annotations

import functools
import hashlib
import math
from pathlib import Path

import numba
import numpy as np

from fisher_sym.special import (
    SCRATCH_SIZE,
    mills_ratio,
    normal_interval_moments,
    normal_interval_summary,
    normal_pdf_one_exp,
    scratch,
)

EMPTY_TERM = (1.0, -math.inf, 0.0, 0.0, 1.0)
#: The smallest normal double; the undamped inverse treats an m1 within ROUNDING_OF_MEAN·√v
#: of 0 as 0 where v is below it (``_coefficients_of_moments`` of a generated module).
DOUBLE_TINY = float(np.finfo(np.float64).tiny)
ROUNDING_OF_MEAN = 8.0 * float(np.finfo(np.float64).eps)
#: Beyond |z| = 40 the Gaussian weight is below 1e-347: quadrature ends there, and a
#: truncation beyond it counts as none.
Z_LIMIT = 40.0
#: Beyond this many deviations a half-line term's mass is taken relative to its edge density.
TAIL_EDGE = 8.0


def _runtime_fingerprint() -> str:
    """A hash of the jitted code that generated modules call (this module, special, row_passes,
    mean_field_runtime)."""
    folder = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("mean_field_runtime.py", "row_passes.py", "runtime.py", "special.py"):
        digest.update((folder / name).read_bytes())
    return digest.hexdigest()[:16]


def drop_stale_cache(module_file: str) -> None:
    """Delete a generated module's numba cache when fisher_sym's runtime has changed.

    numba keys its on-disk cache on the source file of each function only, so a cached
    kernel would keep calling the old runtime after an upgrade; a stamp next to the cache
    records which runtime it was compiled against.
    """
    path = Path(module_file).resolve()
    cache = path.parent / "__pycache__"
    stamp = cache / f"{path.stem}.fisher_sym-runtime"
    fingerprint = _runtime_fingerprint()
    try:
        if stamp.exists() and stamp.read_text() == fingerprint:
            return
        for stale in cache.glob(f"{path.stem}.*.nb[ic]"):
            stale.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(fingerprint)
    except OSError:
        pass  # a read-only install: numba then cannot cache either


@numba.njit(cache=True)
def kink_to_z(kink, b, r):
    """z = (c − b)/r, where u = rz + b crosses the kink c.

    At r = 0 this is the limit r → 0+ at fixed b: ±inf, or 0 when the kink is at b.
    """
    if r > 0.0:
        return (kink - b) / r
    if kink == b:
        return 0.0
    return math.inf if kink > b else -math.inf


@numba.njit(cache=True)
def _standardise(z_lower, z_upper, mean, std):
    return (z_lower - mean) / std, (z_upper - mean) / std


@numba.njit(cache=True)
def constant_term(
    sign, log_weight, mean, std, one_minus_variance, z_lower, z_upper,
    log_at_lower=math.nan, log_at_upper=math.nan,
):
    """Summary of sign·exp(log_weight)·N(z; mean, std²) restricted to [z_lower, z_upper].

    ``one_minus_variance`` is 1 − std², passed in its cancellation-free symbolic form;
    1 − Var z = (1 − std²) + std²·(1 − Var y) for z = mean + std·y.
    ``log_at_lower`` (``log_at_upper``) is log_weight + log φ(y) at the lower (upper) end, in
    symbolic form: when the Gaussian lies far beyond that end, log_weight and the log mass
    are both huge (≈ ±y²/2) and cancel, so the mass is taken relative to the density there.
    """
    if not (std > 0.0 and math.isfinite(mean)):
        # A Gaussian term whose printed parameters overflow (erf's std = 1/sqrt(1 + 4r²) at
        # r ≳ 1e154): taken as 0, a known limit (docs/numerics.md), not an exception.
        return EMPTY_TERM
    y_lower, y_upper = _standardise(z_lower, z_upper, mean, std)
    if y_lower >= y_upper:
        return EMPTY_TERM
    log_mass, y_mean, y_variance, y_one_minus_variance = normal_interval_summary(y_lower, y_upper)
    log_total = log_weight + log_mass
    if TAIL_EDGE < y_lower < math.inf and y_upper == math.inf and not math.isnan(log_at_lower):
        log_total = log_at_lower + math.log(mills_ratio(y_lower))
    elif -math.inf < y_upper < -TAIL_EDGE and y_lower == -math.inf and not math.isnan(log_at_upper):
        log_total = log_at_upper + math.log(mills_ratio(-y_upper))
    variance_scale = std * std
    return (
        sign,
        log_total,
        mean + std * y_mean,
        variance_scale * y_variance,
        one_minus_variance + variance_scale * y_one_minus_variance,
    )


@numba.njit(cache=True)
def _taylor_shift(coefficients, origin, step, shifted, outer=1.0, inner=1.0):
    """Fill ``shifted`` (length degree + 1) with the coefficients in s of P(origin + step·s),
    for P(u) = Σ_k coefficients[k] u^k, or with size = outer·inner, of
    P(size·(origin + step·s))/size^degree (pass origin and step divided by size): its
    coefficients are coefficients[k]·size^(k − degree). A size above 1 keeps a far origin from
    overflowing; two factors, so that size itself does not."""
    degree = len(coefficients) - 1
    for k in range(degree + 1):
        power = float(k - degree)
        shifted[k] = coefficients[k] * math.pow(outer, power) * math.pow(inner, power)
    # Repeated synthetic division by (u − origin) gives the Taylor coefficients at origin.
    for k in range(degree):
        for j in range(degree - 1, k - 1, -1):
            shifted[j] += origin * shifted[j + 1]
    scale = 1.0
    for k in range(degree + 1):
        shifted[k] *= scale
        scale *= step


@numba.njit(cache=True)
def _power_of_two_above(x):
    """The least power of two ≥ x, at least 1 and at most 2^1023: scaling by it is exact."""
    if not x > 1.0:
        return 1.0
    _, exponent = math.frexp(x)
    return math.ldexp(1.0, min(exponent, 1023))


@numba.njit(cache=True)
def polynomial_term(coefficients, log_weight, mean, std, z_lower, z_upper, r, b):
    """Summary of exp(log_weight)·P(rz + b)·N(z; mean, std²) restricted to [z_lower, z_upper].

    The moments are taken about the anchor that ``normal_interval_moments`` picks near the
    mass, so P is re-expanded there (``_taylor_shift``) before the moments are summed. On the
    whole line (truncated only beyond ±Z_LIMIT deviations) 1 − Var z comes from Stein's
    identity instead of 1 − Var z: with
    h(y) = P(r(mean + std·y) + b), E[(1 − y²)h] = −E[h''] and E[y h] = E[h'], so
    1 − Var y = −E[h'']/E[h] + (E[h']/E[h])², both O(r²) as r → 0, where 1 − Var cancels.
    """
    y_lower, y_upper = _standardise(z_lower, z_upper, mean, std)
    if y_lower >= y_upper:
        return EMPTY_TERM
    degree = len(coefficients) - 1
    moments = scratch(SCRATCH_SIZE)[: degree + 3]
    log_scale, anchor = normal_interval_moments(y_lower, y_upper, moments)
    z_anchor = mean + std * anchor
    # P is evaluated at u = r·z_anchor + b + r·std·s divided by size^degree, size the larger
    # of 1 and the scales of u (powers of two), so that far out (|b| or r beyond about 1e77
    # for degree 4) it does not overflow; size is a product of two factors so that it does
    # not either. The scaling is exact: only log|mass| + log size rounds differently.
    outer = _power_of_two_above(max(r, abs(b)))
    inner = _power_of_two_above(max(std, abs(z_anchor)))
    origin = ((r / outer) * z_anchor + b / outer) / inner
    step = (r / outer) * std / inner
    shifted = scratch(SCRATCH_SIZE)[: degree + 1]
    _taylor_shift(coefficients, origin, step, shifted, outer, inner)
    log_size = degree * (math.log(outer) + math.log(inner))
    mass = first = second = 0.0
    for j in range(degree + 1):
        mass += shifted[j] * moments[j]
        first += shifted[j] * moments[j + 1]
        second += shifted[j] * moments[j + 2]
    if mass == 0.0:
        return EMPTY_TERM
    offset = first / mass
    variance = std * std * (second / mass - offset * offset)
    one_minus_variance = 1.0 - variance
    if y_lower <= -Z_LIMIT and y_upper >= Z_LIMIT:
        # The whole line, up to a truncation below exp(−800): the boundary terms of Stein's
        # identity vanish. d/dy of Σ c_j s^j is Σ j c_j s^(j−1), about the same anchor.
        slope = curvature = 0.0
        for j in range(1, degree + 1):
            slope += j * shifted[j] * moments[j - 1]
        for j in range(2, degree + 1):
            curvature += j * (j - 1) * shifted[j] * moments[j - 2]
        y_one_minus_variance = -curvature / mass + (slope / mass) ** 2
        one_minus_variance = (1.0 - std * std) + std * std * y_one_minus_variance
    return (
        math.copysign(1.0, mass),
        log_weight + log_scale + log_size + math.log(abs(mass)),
        z_anchor + std * offset,
        variance,
        one_minus_variance,
    )


@numba.njit(cache=True)
def combine_terms(terms):
    """(A00, m1, v, q) from term summaries: A00 = Σ weights, and the mixture's mean m1,
    variance v = Σ w (v_t + (μ_t − m1)²)/A00 and q = Σ w (q_t − (μ_t − m1)²)/A00 = 1 − v.
    """
    log_max, total, mean, variance, one_minus_variance = combine_terms_scaled(terms)
    return math.exp(log_max) * total, mean, variance, one_minus_variance


@numba.njit(cache=True)
def overflowing_blocks(log_scale, total, m1, v):
    """(A00, A0n, Ann) = exp(log_scale)·total·(1, m1, v + m1²), each formed in logs, for an
    A00 that overflows while A0n may not (the cubic at r = 1e-200, b = 1e100: A0n ≈ 4rb³)."""
    blocks = []
    for factor in (1.0, m1, v + m1 * m1):
        part = total * factor
        if part == 0.0:
            blocks.append(0.0)
        else:
            blocks.append(math.copysign(math.exp(log_scale + math.log(abs(part))), part))
    return blocks[0], blocks[1], blocks[2]


@numba.njit(cache=True)
def combine_terms_scaled(terms):
    """``combine_terms`` with A00 = exp(log_scale)·total left as (log_scale, total), so that an
    A00 beyond the double range keeps its moments' products (``overflowing_blocks``)."""
    log_max = -math.inf
    for term in terms:
        log_max = max(log_max, term[1])
    if log_max == -math.inf:
        return -math.inf, 0.0, 0.0, 1.0, 0.0
    total = weighted_mean = 0.0
    for sign, log_weight, mean, _, _ in terms:
        weight = sign * math.exp(log_weight - log_max)
        if weight != 0.0:  # a term of weight 0 (far beyond its kink) may carry NaN moments
            total += weight
            weighted_mean += weight * mean
    mean = weighted_mean / total
    variance = one_minus_variance = 0.0
    for sign, log_weight, term_mean, term_variance, term_one_minus_variance in terms:
        weight = sign * math.exp(log_weight - log_max) / total
        if weight == 0.0:
            continue
        spread = (term_mean - mean) ** 2
        variance += weight * (term_variance + spread)
        one_minus_variance += weight * (term_one_minus_variance - spread)
    return log_max, total, mean, variance, one_minus_variance


def warn_if_overflow(coefficients):
    """A RuntimeWarning, naming how many units, if any inverse coefficient is ±inf."""
    overflow = ~np.isfinite(coefficients).all(axis=0)
    if overflow.any():
        import warnings

        warnings.warn(
            f"the inverse exceeds the double range for {int(overflow.sum())} unit(s) (a block "
            "singular in double precision); use damping > 0",
            RuntimeWarning,
            stacklevel=3,
        )


# --- input checks (plain Python, run before any kernel) ---------------------------------------


def check_blocks_arguments(r, b):
    """Broadcast r and b to float64 arrays; reject non-finite values and r < 0.

    C-contiguous float64 arrays of one shape with valid values are returned as they are,
    checked by attribute tests and one compiled pass (NumPy calls cost microseconds each when
    the caches are cold, as they are once per training step); anything else takes the
    thorough path below, which also writes the error messages."""
    if (type(r) is np.ndarray and type(b) is np.ndarray and r.dtype == _FLOAT64
            and b.dtype == _FLOAT64 and r.shape == b.shape and r.flags.c_contiguous
            and b.flags.c_contiguous and _valid_blocks_arguments(r, b)):
        return r, b
    r_array = _finite_float_array(r, "r")
    b_array = _finite_float_array(b, "b")
    if np.any(r_array < 0):
        raise ValueError("r = |w| must be non-negative")
    try:
        return np.broadcast_arrays(r_array, b_array)
    except ValueError:
        raise ValueError(
            f"r and b do not broadcast: shapes {r_array.shape} and {b_array.shape}"
        ) from None


def check_damping(damping):
    """Return damping as a float; it must be a finite number ≥ 0."""
    if type(damping) is float and 0.0 <= damping < math.inf:  # the common case, at once
        return damping
    try:
        value = float(damping)
    except (TypeError, ValueError):
        raise TypeError(f"damping must be a real number, got {type(damping).__name__}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"damping must be finite and non-negative, got {value}")
    return value


#: The ``unit_damping`` of a kernel called with one damping for every unit: empty, so each
#: unit takes the scalar ``damping`` (a kernel's damping_i is ``unit_damping[i]`` otherwise).
NO_UNIT_DAMPING = np.empty(0)


def _damping_array(damping, what):
    """``damping`` (not a scalar) as a new C-contiguous float64 array of real, finite,
    non-negative numbers; ``what`` names its entries in the message ("units", "entries")."""
    array = np.asarray(damping)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"damping must hold real numbers, got dtype {array.dtype}")
    array = np.array(array, dtype=np.float64, order="C")  # a copy: the caller may change its own
    bad = np.flatnonzero(~(np.isfinite(array) & (array >= 0.0)))
    if bad.size:
        first = float(array.ravel()[bad[0]])
        raise ValueError(
            f"damping must be finite and non-negative ({what} {_list_units(bad)}: "
            f"{first!r}{', …' if bad.size > 1 else ''})"
        )
    return array


def check_layer_damping(damping, m):
    """(damping, unit_damping) for a layer kernel of m units: a real number ≥ 0 as
    (float, NO_UNIT_DAMPING), one damping for every unit; an array of shape (m,), any real
    dtype, as (0.0, a C-contiguous float64 copy), damping_i for unit i. Raises TypeError or
    ValueError (a wrong shape, entries negative, NaN or inf: naming the units)."""
    if type(damping) is float and 0.0 <= damping < math.inf:  # the common case, at once
        return damping, NO_UNIT_DAMPING
    if np.ndim(damping) == 0:
        return check_damping(damping), NO_UNIT_DAMPING
    if np.shape(damping) != (m,):
        raise ValueError(
            f"damping must be a real number or have shape ({m},), one entry per unit of W "
            f"(m = {m}), got shape {np.shape(damping)}"
        )
    return 0.0, _damping_array(damping, "units")


def check_blocks_damping(r, b, damping):
    """(r, b, damping, unit_damping) for ``inverse_coefficients``: ``check_blocks_arguments``,
    and damping a real number ≥ 0 (unit_damping NO_UNIT_DAMPING) or an array of real numbers
    ≥ 0 broadcast with r and b (damping 0.0, unit_damping of their shape, C-contiguous)."""
    if type(damping) is float or np.ndim(damping) == 0:
        return (*check_blocks_arguments(r, b), check_damping(damping), NO_UNIT_DAMPING)
    unit_damping = _damping_array(damping, "entries")
    r, b = check_blocks_arguments(r, b)
    try:
        r, b, unit_damping = np.broadcast_arrays(r, b, unit_damping)
    except ValueError:
        raise ValueError(
            f"damping does not broadcast with r and b: shapes {np.shape(damping)} and "
            f"{r.shape}"
        ) from None
    return r, b, 0.0, np.ascontiguousarray(unit_damping)


_FLOAT64 = np.dtype(np.float64)


@numba.njit(cache=True)
def _valid_blocks_arguments(r, b):
    """Whether every r is finite and ≥ 0 and every b finite (C-contiguous arrays)."""
    for x in r.ravel():
        if not (math.isfinite(x) and x >= 0.0):
            return False
    for x in b.ravel():
        if not math.isfinite(x):
            return False
    return True


def _finite_float_array(value, name):
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite values")
    return array


# --- the numerical path: quadrature panels and the remainder's contribution -------------------

#: Gauss–Legendre nodes and weights on [−1, 1] for the remainder's panels.
GL_NODES, GL_WEIGHTS = np.polynomial.legendre.leggauss(20)
#: Offsets, in units of 1/r, of extra panel edges around each kink and around u = 0.
_FEATURE_OFFSETS = np.array([0.0, 0.25, 1.0, 4.0, 16.0, 64.0])


@numba.njit(cache=True)
def quadrature_edges(r, b, kinks):
    """Sorted panel edges in z ∈ [−Z_LIMIT, Z_LIMIT]: the ends, 0, and points at ±k/r around
    u = 0 and around every kink, where φ'(rz + b)² changes on the scale 1/r."""
    candidates = np.empty(3 + (1 + len(kinks)) * (2 * _FEATURE_OFFSETS.size))
    count = 0
    for value in (-Z_LIMIT, 0.0, Z_LIMIT):
        candidates[count] = value
        count += 1
    for j in range(len(kinks) + 1):
        centre = kink_to_z(kinks[j] if j < len(kinks) else 0.0, b, r)
        for offset in _FEATURE_OFFSETS:
            for sign in (-1.0, 1.0):
                z = centre + sign * offset / r
                if -Z_LIMIT < z < Z_LIMIT:
                    candidates[count] = z
                    count += 1
    edges = np.unique(candidates[:count])
    return edges


# --- the numerical path's fast rule: fixed nodes in u ---------------------------------------
#
# E[h(rz + b)] = ∫ h(u) φ((u − b)/r)/r du. In u the remainder ρ has fixed features (its kinks,
# scale 1 around them, exponential decay beyond), so one set of nodes in u serves every unit and
# ρ, ρ', ρ'' are tabulated once per module: a unit costs one exp per node instead of a full
# evaluation of ρ at nodes placed in z. The rule is accepted for a unit only when it checks
# itself: the same sums with half the nodes per panel must agree (Gauss–Kronrod style, an
# agreement of 1e-11 of the summed |integrand| means an error far below it for the finer rule),
# and the integrand must have decayed at both ends of the window; otherwise the adaptive
# quadrature in z runs.

#: Panel edges in u of the fixed rule (kinks of ρ are added); ρ is negligible beyond ±16.
FIXED_U_EDGES = np.array([-16.0, -8.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 8.0, 16.0])
FIXED_GL_FINE = np.polynomial.legendre.leggauss(20)
FIXED_GL_COARSE = np.polynomial.legendre.leggauss(10)
#: Agreement required between the two rules, relative to the summed |integrand|.
FIXED_RULE_TOLERANCE = 1e-11
#: Below this radius the Gaussian is too narrow for the fixed panels: skip the attempt.
FIXED_RULE_MIN_RADIUS = 0.25


def fixed_u_nodes(kinks):
    """(nodes, weights) in u of the fine and of the coarse rule, as four float64 arrays:
    Gauss–Legendre on the panels FIXED_U_EDGES, split at the kinks inside the window."""
    edges = np.unique(np.concatenate([FIXED_U_EDGES, np.asarray(kinks, dtype=np.float64)]))
    edges = edges[(edges >= FIXED_U_EDGES[0]) & (edges <= FIXED_U_EDGES[-1])]
    rules = []
    for nodes, weights in (FIXED_GL_FINE, FIXED_GL_COARSE):
        half = 0.5 * np.diff(edges)[:, None]
        middle = 0.5 * (edges[1:] + edges[:-1])[:, None]
        rules += [(middle + half * nodes).ravel(), (half * weights).ravel()]
    return tuple(rules)


def fixed_rule_tables(remainder, kinks, tail_count):
    """((nodes, weights, values, tails) of the fine rule, the same of the coarse rule), with
    values[k] = remainder(nodes[k], all tails closed) = (ρ, ρ', ρ'') and tails[t, k] the change
    when tail t is integrated with ρ. Plain Python over a compiled ``remainder``: run at import."""
    fine_nodes, fine_weights, coarse_nodes, coarse_weights = fixed_u_nodes(kinks)
    all_closed = (True,) * tail_count
    rules = []
    for nodes, weights in ((fine_nodes, fine_weights), (coarse_nodes, coarse_weights)):
        values = np.array([remainder(u, all_closed) for u in nodes]).reshape(nodes.size, 3)
        tails = np.zeros((tail_count, nodes.size, 3))
        for t in range(tail_count):
            flags = tuple(i != t for i in range(tail_count))
            tails[t] = np.array([remainder(u, flags) for u in nodes]) - values
        rules.append((nodes, weights, values, tails))
    return tuple(rules)


@numba.njit(cache=True)
def _fixed_rule_sums(r, b, rule, closed_tails, centre, sums, scale):
    """The rule's estimate of E[(ρ, ρ', ρ'', (z − c)²ρ, zρ, (1 − z²)ρ)] over z ~ N(0, 1),
    u = rz + b, into sums (and of |·| into scale), with c = ``centre``, or E[zρ]/E[ρ] from the
    same nodes where ``centre`` is NaN;
    ρ at the nodes is values[k] plus the tails integrated with ρ. Returns (c, the largest
    |integrand| density at the two end nodes)."""
    nodes, weights, values, tails = rule
    count = nodes.size
    z_at = np.empty(count)
    weighted_value = np.empty(count)
    ends = 0.0
    for k in range(count):
        z = (nodes[k] - b) / r
        density = normal_pdf_one_exp(z) / r
        value, first, second = values[k, 0], values[k, 1], values[k, 2]
        for t in range(tails.shape[0]):
            if not closed_tails[t]:
                value += tails[t, k, 0]
                first += tails[t, k, 1]
                second += tails[t, k, 2]
        weight = weights[k] * density
        terms = (value, first, second, 0.0, z * value, (1 - z * z) * value)
        for j in range(6):
            sums[j] += weight * terms[j]
            scale[j] += weight * abs(terms[j])
        z_at[k] = z
        weighted_value[k] = weight * value
        if k == 0 or k == count - 1:
            ends = max(ends, density * (abs(value) + abs(first) + abs(second)))
    if math.isnan(centre):
        centre = sums[4] / sums[0] if sums[0] != 0.0 else 0.0
    for k in range(count):
        term = (z_at[k] - centre) ** 2 * weighted_value[k]
        sums[3] += term
        scale[3] += abs(term)
    return centre, ends


@numba.njit(cache=True)
def fixed_rule_remainder_sums(r, b, closed_tails, fine, coarse):
    """(accepted, sums, magnitude, centre) of the fixed rule in u; ``fine`` and ``coarse`` are
    (nodes, weights, values, tails) with values[k] = (ρ, ρ', ρ'') at the nodes with every tail
    in closed form and tails[t, k] what tail t adds when it is integrated with ρ instead."""
    sums = np.zeros(6)
    magnitude = np.zeros(6)
    centre, ends = _fixed_rule_sums(r, b, fine, closed_tails, math.nan, sums, magnitude)
    check = np.zeros(6)
    check_scale = np.zeros(6)
    _fixed_rule_sums(r, b, coarse, closed_tails, centre, check, check_scale)
    # With the Gaussian's centre b inside the window, ρ(u)·φ((u − b)/r) decreases outward
    # beyond it (ρ decays there), so its value at the end nodes bounds the truncated part.
    window = FIXED_U_EDGES[-1]
    accepted = abs(b) <= window and magnitude[0] > 0.0 and ends <= 1e-17 * magnitude[0]
    for j in range(6):
        if not abs(sums[j] - check[j]) <= FIXED_RULE_TOLERANCE * magnitude[j]:
            accepted = False
    return accepted, sums, magnitude, centre


@numba.njit(cache=True)
def add_remainder(step, sums, magnitude, centre, r, b, jumps):
    """(A00, m1, v, q) of step + remainder, from the step's (A00, m1, v, q) and the
    quadrature sums of (ρ, ρ', ρ'', (z − centre)²ρ, zρ, (1 − z²)ρ) and of their absolute
    values (each an expectation over z ~ N(0, 1), u = rz + b).

    For small r, E[zρ] and E[(1 − z²)ρ] cancel to O(r) and O(r²); Stein's identity gives them
    without cancellation:
        E[zρ] = r·E[ρ'] + Σ_j J_j φ(z_j),
        E[(1 − z²)ρ] = −r²·E[ρ''] − Σ_j (r·J'_j + z_j·J_j) φ(z_j),
    with J_j, J'_j the jumps of ρ and ρ' at the kink c_j and z_j = (c_j − b)/r. For large r
    it is the other way round, so each is taken in the form whose integrand cancels less.
    """
    step_total, step_mean, step_variance, step_one_minus_variance = step
    mass, centred = sums[0], sums[3]
    use_stein_odd = r * magnitude[1] <= magnitude[4]
    use_stein_even = r * r * magnitude[2] <= magnitude[5]
    odd = r * sums[1] if use_stein_odd else sums[4]
    even = -r * r * sums[2] if use_stein_even else sums[5]
    if r > 0.0:
        for j in range(jumps.shape[0]):
            kink, jump, slope_jump = jumps[j, 0], jumps[j, 1], jumps[j, 2]
            z = (kink - b) / r
            density = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)
            if use_stein_odd:
                odd += jump * density
            if use_stein_even:
                even -= (r * slope_jump + z * jump) * density
    total = step_total + mass
    if r == 0.0:
        return total, 0.0, 1.0, 0.0
    if total == 0.0:  # both parts underflow: keep the step's moments (they live in log space)
        return step
    mean = (step_total * step_mean + odd) / total
    # step_mean − mean = (step_mean·mass − odd)/total, without the rounding of mean (which
    # alone made q of a zero remainder −(ulp of m1)² ≈ −1e-30 where the step's q is 5e-73)
    spread = ((step_mean * mass - odd) / total) ** 2
    about_mean = centred + 2.0 * (centre - mean) * (odd - centre * mass) + (centre - mean) ** 2 * mass
    variance = (step_total * (step_variance + spread) + about_mean) / total
    one_minus_variance = (
        step_total * (step_one_minus_variance - spread) + even + 2.0 * mean * odd - mean * mean * mass
    ) / total
    return total, mean, variance, one_minus_variance


# --- the numerical path's fast rule: a smooth split and the trapezoidal rule in u -------------
#
# Where φ'² is one analytic expression on the whole line (tanh, sigmoid, softplus, silu, gelu),
# the step L−·[u < 0] + L+·[u > 0] is replaced by the smooth step
#     L−·Φ(−u/s) + L+·Φ(u/s),   s = SMOOTH_STEP_WIDTH,
# whose Gaussian integrals are closed form (``smooth_step_term``). The remainder
#     ρs = φ'² − smooth step
# is then analytic and decays on both sides, and for such a function the trapezoidal rule on
# the whole line converges geometrically in 1/h (its error is the Fourier transform of the
# integrand at 2π/h). E[h(rz + b)] = ∫ h(u) φ((u − b)/r)/r du is summed over the nodes u = kh
# of one table of (ρs, ρs', ρs'') per module, so a unit costs a few exps (the Gaussian
# weights follow by a product recurrence) and a few flops per node. The step h resolves ρs
# (checked once per module, on the table) and the Gaussian (h ≤ r/2), and the rule checks
# itself per unit: the sums of ρs and ρs'' over every other node (step 2h) must agree with
# the full sums to TRAPEZOID_TOLERANCE of the summed |integrand|; as the error of step h is
# about the square of that of step 2h (relative to the integrand's size), the full sum is then
# accurate far below it. Where φ'² is nearly an exponential (a deep tail), q ≈ 0 would cancel:
# there the rule refuses and the hard split with closed-form tail terms serves.

#: Width s of the smooth step Φ(u/s): its tails exp(−2u²) fall below those of any φ'² that
#: decays no faster than exp(−u²) (GELU's u²·exp(−u²)), so ρs does not cancel against it.
SMOOTH_STEP_WIDTH = 0.5
#: The table of ρs: nodes kh, |kh| ≤ TRAPEZOID_HALF_WIDTH, h = TRAPEZOID_SPACING.
TRAPEZOID_HALF_WIDTH = 48.0
#: ... and wider, where ρs has not decayed to TRAPEZOID_REACH of its largest value there.
TRAPEZOID_REACH = 1e-40
TRAPEZOID_WIDENING = 8.0
#: (At ±96 a table takes 0.96 MB: numba freezes a global array into the compiled code only
#: below 1 MB, and cannot cache a kernel that reads a larger one.)
TRAPEZOID_MAX_HALF_WIDTH = 96.0
TRAPEZOID_SPACING = 1.0 / 64.0
#: The coarsest step considered. Per module the table fixes the coarsest power of two whose
#: sums of ρs, ρs', ρs'' over the whole line (the limit r → ∞) agree with those of the finest
#: to TRAPEZOID_TABLE_TOLERANCE of the sums of |·| (tanh 1/8; sigmoid, softplus, silu, gelu 1/4).
TRAPEZOID_MAX_STEP = 0.5
TRAPEZOID_TABLE_TOLERANCE = 1e-13
#: Agreement of the step-h and step-2h sums of a unit, relative to the summed |integrand|.
TRAPEZOID_TOLERANCE = 1e-5
#: The nodes are summed in blocks of this many lanes (one SIMD register of float64 on AVX-512,
#: two on AVX2): lane l of every block adds its own partial sums, and the lanes' Gaussian
#: weights step from block to block by their own ratios.
TRAPEZOID_LANES = 8
#: The lanes' weights and ratios are evaluated afresh every this many blocks (in between, a
#: recurrence whose rounding grows like the square of the number of blocks).
TRAPEZOID_ANCHOR_BLOCKS = 8
_TWO_BLOCKS = 2 * TRAPEZOID_LANES  # work-array sizes (constants, as ``scratch`` needs)
_LANE_SUMS = 10 * TRAPEZOID_LANES
#: The walk over the nodes stops where what is left is below this fraction of the sum of |ρs|.
TRAPEZOID_TRUNCATION = 1e-16
#: A00, v·A00 and q·A00 may be smaller than the sum of their parts by at most this factor.
TRAPEZOID_CANCELLATION = 1e4
NO_JUMPS = np.zeros((0, 3))


@numba.njit(cache=True)
def smooth_step_term(limit, side, r, b):
    """Summary of limit·Φ(side·(rz + b)/s) over z ~ N(0, 1), side = ±1, s = SMOOTH_STEP_WIDTH.

    With y ~ N(0, 1) independent of z, Φ(a z + c) = P(y ≤ a z + c), a = side·r/s, c = side·b/s;
    t = (a z − y)/√(1 + a²) is standard normal and the event is t ≥ −c/√(1 + a²) = t0, so
    z = κ t + √(1 − κ²)·v (κ = a/√(1 + a²), v independent) gives the mass Q(t0), the mean
    κ·E[t | t ≥ t0], the variance κ²·Var(t | t ≥ t0) + 1 − κ² and 1 − variance
    κ²·(1 − Var(t | t ≥ t0)), all from the summary of the truncated normal.
    """
    if limit == 0.0:
        return EMPTY_TERM
    a = side * r / SMOOTH_STEP_WIDTH
    norm = math.sqrt(1.0 + a * a)
    kappa = a / norm
    log_mass, mean, variance, one_minus_variance = normal_interval_summary(
        -side * b / SMOOTH_STEP_WIDTH / norm, math.inf
    )
    return (
        1.0,
        math.log(limit) + log_mass,
        kappa * mean,
        kappa * kappa * variance + 1.0 / (norm * norm),
        kappa * kappa * one_minus_variance,
    )


def _smooth_values(remainder, step_flags, limits, u):
    """(ρs, ρs', ρs'') at u from the hard split's remainder (``smooth_step_difference``)."""
    value, first, second = remainder(u, step_flags)
    step_value, step_first, step_second = smooth_step_difference(u, limits)
    return value + step_value, first + step_first, second + step_second


def _table_half_width(remainder, step_flags, limits):
    """TRAPEZOID_HALF_WIDTH, or beyond it, by TRAPEZOID_WIDENING at a time up to
    TRAPEZOID_MAX_HALF_WIDTH, until |ρs|, |ρs'| and |ρs''| at ±(half width) are below
    TRAPEZOID_REACH of their largest value within it (ρs of softplus and SiLU decays as
    u·exp(−u), and a wide Gaussian tilted towards the table's end still reaches far out).
    A side where they do not fall by half over a widening (a tail term left in ρ, which tends
    to a constant) does not widen the table."""

    def size(u):
        return max(abs(x) for x in _smooth_values(remainder, step_flags, limits, u))

    inner = np.arange(-TRAPEZOID_HALF_WIDTH, TRAPEZOID_HALF_WIDTH + 0.25, 0.25)
    largest = max(size(u) for u in inner)
    half_width = TRAPEZOID_HALF_WIDTH
    for side in (-1.0, 1.0):
        reach, current = TRAPEZOID_HALF_WIDTH, size(side * TRAPEZOID_HALF_WIDTH)
        while reach < TRAPEZOID_MAX_HALF_WIDTH and current > TRAPEZOID_REACH * largest:
            following = size(side * (reach + TRAPEZOID_WIDENING))
            if not following <= 0.5 * current:
                break
            reach, current = reach + TRAPEZOID_WIDENING, following
        half_width = max(half_width, reach)
    return half_width


def smooth_remainder_table(remainder, step_flags, limits):
    """(h, u_0, stride, levels, offsets, counts, centre, spread, lower_length, upper_length)
    of the trapezoidal rule: the finest nodes u_k = u_0 + kh, the largest stride (a power of
    two) that resolves ρs (TRAPEZOID_TABLE_TOLERANCE), the mean and variance of u under |ρs|,
    the decay length of ρs at each end, and per stride 2^j ≤ stride the nodes u_0 + i·2^j·h,
    i < counts[j], as columns offsets[j] + i of ``levels``: rows ρs, ρs', ρs'' and the largest
    |ρs^(j)| at nodes ≥ u (row 3) and ≤ u (row 4), each level padded with TRAPEZOID_LANES
    zeros on either side, so that a block of lanes may run past its ends.

    ``remainder(u, step_flags)`` is φ'² − L−·[u < 0] − L+·[u > 0] (every exponential tail term
    added back); ρs adds back the hard step minus the smooth one, sign(u)·(L+ − L−)·Q(|u|/s)
    and its derivatives. Plain Python over the compiled ``remainder``: run at import.
    """
    half_width = _table_half_width(remainder, step_flags, limits)
    count = int(round(2 * half_width / TRAPEZOID_SPACING)) + 1
    nodes = -half_width + TRAPEZOID_SPACING * np.arange(count)
    values = np.array([_smooth_values(remainder, step_flags, limits, u) for u in nodes])
    finest = values.sum(axis=0)
    scale = np.abs(values).sum(axis=0)
    stride = 1
    while 2 * stride * TRAPEZOID_SPACING <= TRAPEZOID_MAX_STEP:
        coarser = 2 * stride * values[:: 2 * stride].sum(axis=0)
        if np.any(np.abs(coarser - finest) > TRAPEZOID_TABLE_TOLERANCE * scale):
            break
        stride *= 2
    size = np.abs(values).max(axis=1)
    upper_envelope = np.maximum.accumulate(size[::-1])[::-1].copy()
    lower_envelope = np.maximum.accumulate(size)
    mass = np.abs(values[:, 0])
    centre = float(np.sum(mass * nodes) / np.sum(mass))
    spread = float(np.sum(mass * (nodes - centre) ** 2) / np.sum(mass))
    # Beyond each end ρs is taken to keep decaying as over the last unit of u: |ρs| ≤
    # |ρs(end)|·exp(−|u − end|/length) (length inf, so that the rule refuses, if it did not decay).
    per_unit = int(round(1.0 / TRAPEZOID_SPACING))
    lengths = []
    for inner, outer in ((size[per_unit], size[0]), (size[-1 - per_unit], size[-1])):
        if outer == 0.0:
            lengths.append(0.0)
        elif inner > outer:
            lengths.append(1.0 / math.log(inner / outer))
        else:
            lengths.append(math.inf)
    pad = TRAPEZOID_LANES
    rows = np.vstack([values.T, upper_envelope, lower_envelope])
    columns, offsets, counts = [], [], []
    level_stride, width = 1, 0
    while level_stride <= stride:
        level = rows[:, ::level_stride]
        offsets.append(width + pad)
        counts.append(level.shape[1])
        columns.append(np.pad(level, ((0, 0), (pad, pad))))
        width += level.shape[1] + 2 * pad
        level_stride *= 2
    levels = np.ascontiguousarray(np.concatenate(columns, axis=1))
    return (TRAPEZOID_SPACING, nodes[0], stride, levels, np.array(offsets), np.array(counts),
            centre, spread, lengths[0], lengths[1])


@numba.njit(cache=True)
def _lane_weights(z, dz, shrink, shrink_lane, direction, weights, ratios):
    """weights[l] = φ(z + l·dz) and ratios[l] = φ(z_l + direction·L·dz)/φ(z_l), l < L =
    TRAPEZOID_LANES: three exps and recurrences of L steps (φ(z + d) = φ(z)·exp(−z d − d²/2),
    whose ratio shrinks by exp(−d²) = ``shrink`` per step; exp(−L·dz²) = ``shrink_lane``)."""
    lanes = TRAPEZOID_LANES
    weight = normal_pdf_one_exp(z)
    step = math.exp(-z * dz - 0.5 * dz * dz)
    ratio = math.exp(-direction * lanes * dz * z - 0.5 * lanes * lanes * dz * dz)
    factor = shrink_lane if direction == 1 else 1.0 / shrink_lane
    for lane in range(lanes):
        weights[lane] = weight
        ratios[lane] = ratio
        weight *= step
        step *= shrink
        ratio *= factor


@numba.njit(cache=True)
def _add_blocks(levels, column, direction, count, z, dz, centre, weights, ratios, shrink_block,
                sums):
    """Add ``count`` blocks of L lanes to the lane sums: the first block is the columns
    column … column + L − 1 of ``levels`` at z … z + (L − 1)·dz, each next one L columns on in
    ``direction``. sums[j·L + l] is lane l's Σ φ(z)·f_j, f = (ρs, ρs', ρs'', (z − c)²ρs, zρs,
    |ρs|, |ρs'|, |ρs''|, (z − c)²|ρs|, |z||ρs|) (f_j with c = ``centre``). The weights step to
    the next block by ``ratios``, and the ratios by ``shrink_block`` = exp(−L²·dz²)."""
    lanes = TRAPEZOID_LANES
    for _ in range(count):
        values = levels[0, column : column + lanes]
        slopes = levels[1, column : column + lanes]
        curvatures = levels[2, column : column + lanes]
        for lane in range(lanes):
            weight = weights[lane]
            node = z + lane * dz
            offset = node - centre
            f0 = weight * values[lane]
            f1 = weight * slopes[lane]
            f2 = weight * curvatures[lane]
            g0 = abs(f0)
            sums[lane] += f0
            sums[lanes + lane] += f1
            sums[2 * lanes + lane] += f2
            sums[3 * lanes + lane] += f0 * offset * offset
            sums[4 * lanes + lane] += f0 * node
            sums[5 * lanes + lane] += g0
            sums[6 * lanes + lane] += abs(f1)
            sums[7 * lanes + lane] += abs(f2)
            sums[8 * lanes + lane] += g0 * offset * offset
            sums[9 * lanes + lane] += g0 * abs(node)
            weights[lane] = weight * ratios[lane]
            ratios[lane] *= shrink_block
        column += direction * lanes
        z += direction * lanes * dz


@numba.njit(cache=True)
def trapezoid_remainder_sums(r, b, table, reference=(0.0, 0.0, 0.0)):
    """(accepted, sums, magnitude, centre) like ``fixed_rule_remainder_sums``, by the
    trapezoidal rule over the nodes of ``smooth_remainder_table``: sums of
    E[(ρs, ρs', ρs'', (z − c)²ρs, zρs, (1 − z²)ρs)], magnitude the same of |·| (the sixth
    bounded by the others), and the centre c.

    ``reference`` = (R0, Rq, Rv): the checks are relative to the larger of what the sums give
    for A00, q·A00 and v·A00 and R0, Rq, Rv, the size of what they are added to (a closed-form
    step: its A00, A00·|q|, A00·v); with R0 > 0 a remainder whose nodes all underflow is
    accepted as 0 where the bound on what lies beyond the table is below its share of each.

    Step h: the largest power-of-two multiple of the table's spacing that is at most the
    table's step and at most r/2 (so that the Gaussian, of width r, is resolved: its own
    aliasing error is exp(−2π²r²/h²)); where the sums at that step fail their checks, once
    more at h/2 (just above r = 2h the self-check's step 2h is about r, too coarse for the
    Gaussian's second moment, while h itself is fine).
    """
    spacing, max_stride = table[0], table[2]
    if not 0.5 * r >= spacing:  # the Gaussian is narrower than the table's nodes (or r = 0)
        return False, (0.0,) * 6, (0.0,) * 6, 0.0
    stride = 1
    level = 0
    while 2 * stride <= max_stride and 2 * stride * spacing <= 0.5 * r:
        stride *= 2
        level += 1
    accepted, sums, magnitude, centre = _trapezoid_sums_at(r, b, table, level, reference)
    if not accepted and level > 0:
        accepted, sums, magnitude, centre = _trapezoid_sums_at(r, b, table, level - 1, reference)
    return accepted, sums, magnitude, centre


@numba.njit(cache=True)
def beyond_table_bound(envelope, z_edge, direction, length, r, centre):
    """A bound on E[|f(rz + b)|·(1 + (z − centre)² + |z|)] over the z beyond a table's edge
    (z > z_edge for direction 1, z < z_edge for −1) for |f(u)| ≤ envelope·exp(−|u − edge|/ℓ),
    ℓ = ``length``: in z the envelope is exp(−direction·r(z − z_edge)/ℓ), so the integral is
    a shifted Gaussian tail, exp(r·z_edge'/ℓ + r²/(2ℓ²))·Q(z_edge' + r/ℓ) with
    z_edge' = direction·z_edge, times the weight at |z_edge| + 2 (that tail is the Gaussian
    φ(z + direction·r/ℓ) cut at z_edge: its mass lies within about one deviation of the point
    of the cut half-line nearest to −direction·r/ℓ, which is no farther from 0 than z_edge).
    0 where ℓ = 0 (f vanished at the edge), inf where ℓ = inf (it did not decay)."""
    if envelope == 0.0 or length == 0.0:
        return 0.0
    if not length < math.inf:
        return math.inf
    shift = r / length
    edge = direction * z_edge
    log_tail, _, _, _ = normal_interval_summary(edge + shift, math.inf)
    reach = abs(centre) + abs(z_edge) + 2.0
    weight = 1.0 + reach * reach + reach
    return envelope * weight * math.exp(min(shift * edge + 0.5 * shift * shift + log_tail, 700.0))


@numba.njit(cache=True)
def _trapezoid_sums_at(r, b, table, level, reference):
    """``trapezoid_remainder_sums`` at step h = 2^level·spacing (level ≤ that of the table's
    step). From b the nodes are taken in blocks of L = TRAPEZOID_LANES, upward from the first
    node above b and downward from the one below it, as far as a bound on the rest allows:
    first that length is found (following the outermost lane's weight only), then the blocks
    are summed, their weights by the recurrence φ(z + L·dz) = φ(z)·ratio,
    ratio(z + L·dz) = ratio(z)·exp(−L²dz²) per lane, evaluated afresh every
    TRAPEZOID_ANCHOR_BLOCKS blocks. Where b lies beyond the table, the walk starts at its
    nearest end.
    """
    (spacing, first_node, max_stride, levels, offsets, counts, mode, spread,
     lower_length, upper_length) = table
    lanes = TRAPEZOID_LANES
    stride = 1 << level
    h = stride * spacing
    dz = h / r
    inverse_dz = r / h
    base = offsets[level]  # column of node 0 of this level
    last = counts[level] - 1
    # The first node above b, clamped to one past either end: the levels are padded with
    # TRAPEZOID_LANES zeros on both sides, so the block beyond the end adds nothing.
    start = int(math.ceil(max(min((b - first_node) / h, last + 1.0), 0.0)))
    # The second moment is summed about an estimate c of the mean of z under ρs(rz + b)φ(z),
    # so that it does not cancel: that of N(b, r²)·N(mode, spread) in u, mapped to z.
    centre = r * (mode - b) / (spread + r * r)
    shrink = math.exp(-dz * dz)
    shrink_lane = math.exp(-lanes * dz * dz)
    shrink_block = math.exp(-lanes * lanes * dz * dz)
    weights = scratch(_TWO_BLOCKS)  # lanes of the block below b, then above it
    ratios = scratch(_TWO_BLOCKS)
    _lane_weights((first_node + (start - lanes) * h - b) / r, dz, shrink, shrink_lane, -1,
                  weights[:lanes], ratios[:lanes])
    _lane_weights((first_node + start * h - b) / r, dz, shrink, shrink_lane, 1,
                  weights[lanes:], ratios[lanes:])
    # Σ φ|ρs| over these two blocks: a lower bound of the final one, for the stopping rule.
    central = 0.0
    for j in range(2 * lanes):
        central += weights[j] * abs(levels[0, base + start - lanes + j])
    # What the sums are added to, in the sums' units: the walk may stop below it too.
    floor = min(reference[0], reference[1], reference[2]) * inverse_dz
    sums = scratch(_LANE_SUMS)
    sums[:] = 0.0
    truncated = 0.0
    for direction in (1, -1):
        envelope = levels[3] if direction == 1 else levels[4]
        first = start if direction == 1 else start - lanes  # lowest node of the first block
        outer = first + lanes - 1 if direction == 1 else first  # its outermost node
        side = slice(lanes, 2 * lanes) if direction == 1 else slice(0, lanes)
        outer_lane = 2 * lanes - 1 if direction == 1 else 0
        weight, ratio = weights[outer_lane], ratios[outer_lane]
        blocks = 1
        while True:
            if (outer >= last) if direction == 1 else (outer <= 0):
                # Beyond the table: |ρs^(j)| ≤ envelope(edge)·exp(−|u − edge|/ℓ) (ℓ its decay
                # length over the table's last unit), whose Gaussian integral is closed form
                # (``beyond_table_bound``), wherever b lies; or, where φ decreases outward from
                # the edge, the Gaussian's own tail times the envelope (``left``).
                edge = last if direction == 1 else 0
                z = (first_node + edge * h - b) / r
                bound = normal_pdf_one_exp(z) * envelope[base + edge]
                left = math.inf
                if direction * z > 2.0:
                    left = bound * (abs(z) + 2.0) * inverse_dz
                length = upper_length if direction == 1 else lower_length
                beyond = beyond_table_bound(envelope[base + edge], z, direction, length, r, centre)
                truncated = max(truncated, min(left, beyond * inverse_dz))
                break
            z = (first_node + outer * h - b) / r
            if direction * z > 2.0:
                # There (1 + |z| + z²)·φ(z) decreases outward, so the nodes beyond add less than
                # the envelope times ∫ from z on, over dz: φ(z)·(|z| + 2)/dz bounds that.
                left = weight * envelope[base + outer] * (abs(z) + 2.0) * inverse_dz
                if left <= TRAPEZOID_TRUNCATION * max(central, floor):
                    break
            if weight == 0.0:
                break
            weight *= ratio
            ratio *= shrink_block
            outer += direction * lanes
            blocks += 1
        done = 0
        while done < blocks:
            low = first + direction * lanes * done
            z = (first_node + low * h - b) / r
            if done > 0:
                _lane_weights(z, dz, shrink, shrink_lane, direction, weights[side], ratios[side])
            count = min(TRAPEZOID_ANCHOR_BLOCKS, blocks - done)
            _add_blocks(levels, base + low, direction, count, z, dz, centre, weights[side],
                        ratios[side], shrink_block, sums)
            done += count
    total = scratch(10)
    for j in range(10):
        total[j] = 0.0
        for lane in range(lanes):
            total[j] += sums[j * lanes + lane]
    # The step-2h sums differ from the step-h ones by h·(alternating sum): lane l holds the
    # nodes of parity start + l.
    alternating0 = alternating2 = 0.0
    for lane in range(lanes):
        sign = 1.0 - 2.0 * ((start + lane) & 1)
        alternating0 += sign * sums[lane]
        alternating2 += sign * sums[2 * lanes + lane]
    s0, s1, s2, s3, s4 = total[0], total[1], total[2], total[3], total[4]
    m0, m1, m2, m3, m4 = total[5], total[6], total[7], total[8], total[9]
    scale = dz  # Σ φ(z_m)·f·dz approximates E[f]
    # (1 − z²)ρ from the others: z² = (z − c)² + 2cz − c²; its magnitude is bounded alike.
    s5 = s0 - s3 - 2.0 * centre * s4 + centre * centre * s0
    m5 = m0 + m3 + 2.0 * abs(centre) * m4 + centre * centre * m0
    result = (s0 * scale, s1 * scale, s2 * scale, s3 * scale, s4 * scale, s5 * scale)
    magnitude = (m0 * scale, m1 * scale, m2 * scale, m3 * scale, m4 * scale, m5 * scale)
    # ρs and ρs'' are checked (ρs' lies between them; the factors z, (z − c)² only add to the
    # Gaussian's side, which h ≤ r/2 resolves).
    # What lies beyond the table (bounded with the weight (z − c)² included) must be
    # negligible in A00, in v·A00 and in q·A00, which takes −r²·E[ρs''] (Stein's form) or
    # E[(1 − z²)ρs], whichever has the smaller magnitude (as ``add_remainder`` does).
    stein = r * r * m2 <= m5
    size0 = max(m0 * scale, reference[0])
    size_q = max((r * r * m2 if stein else m5) * scale, reference[1])
    size_v = max(m3 * scale, reference[2])
    size2 = max(m2 * scale, reference[1] / (r * r))
    accepted = (
        truncated * scale <= TRAPEZOID_TRUNCATION * size0
        and truncated * scale * (r * r if stein else 1.0) <= TRAPEZOID_TRUNCATION * size_q
        and truncated * scale <= TRAPEZOID_TRUNCATION * size_v
        and size0 > 0.0
        and abs(alternating0) * scale <= TRAPEZOID_TOLERANCE * size0
        and abs(alternating2) * scale <= TRAPEZOID_TOLERANCE * size2
    )
    return accepted, result, magnitude, centre


@numba.njit(cache=True)
def trapezoid_moments(r, b, table, limits, cancellation=TRAPEZOID_CANCELLATION):
    """(accepted, (A00, m1, v, q)) of φ'² = smooth step + ρs, ρs by ``trapezoid_remainder_sums``.

    Refused where the sums would not give the moments to high relative accuracy: where
    A00, v·A00 or q·A00 is much smaller than the sum of the magnitudes of its parts (a deep
    tail, where φ'² is nearly an exponential, so that q ≈ 0 cancels; the hard split with its
    tail terms in closed form serves there).
    """
    step = smooth_step(r, b, limits)
    # The sums need only be accurate relative to what they are added to (where the step
    # outweighs ρs, the walk may stop, and the table may end, where ρs is still far from 0).
    reference = (step[0], step[0] * abs(step[3]), step[0] * step[2])
    accepted, sums, magnitude, centre = trapezoid_remainder_sums(r, b, table, reference)
    if not accepted:
        return False, (0.0, 0.0, 1.0, 0.0)
    return smooth_split_moments(r, b, sums, magnitude, centre, step, cancellation)


@numba.njit(cache=True)
def smooth_step(r, b, limits):
    """(A00, m1, v, q) of the smooth step L−·Φ(−u/s) + L+·Φ(u/s), (L−, L+) = ``limits``."""
    lower, upper = limits
    return combine_terms((smooth_step_term(lower, -1.0, r, b), smooth_step_term(upper, 1.0, r, b)))


@numba.njit(cache=True)
def smooth_split_moments(r, b, sums, magnitude, centre, step, cancellation=TRAPEZOID_CANCELLATION):
    """(accepted, (A00, m1, v, q)) of φ'² = smooth step + ρs from the step's moments
    (``smooth_step``) and the sums of E[(ρs, ρs', ρs'', (z − c)²ρs, zρs, (1 − z²)ρs)] and of
    their |·| (``add_remainder``); refused where A00, v·A00 or q·A00 is smaller than the sum of
    the magnitudes of its parts by more than ``cancellation``."""
    total, mean, variance, one_minus_variance = add_remainder(
        step, sums, magnitude, centre, r, b, NO_JUMPS
    )
    # Sizes of the parts that add_remainder sums (its Stein or direct form, whichever it took).
    step_total, step_mean, step_variance, step_one_minus_variance = step
    odd = min(r * magnitude[1], magnitude[4])
    even = min(r * r * magnitude[2], magnitude[5])
    spread = (step_mean - mean) ** 2
    parts_total = step_total + magnitude[0]
    offset = abs(centre - mean)  # add_remainder sums the variance about the centre
    parts_variance = (
        step_total * (step_variance + spread) + magnitude[3]
        + 2.0 * offset * (odd + abs(centre) * magnitude[0]) + offset * offset * magnitude[0]
    )
    parts_one_minus_variance = (
        step_total * (abs(step_one_minus_variance) + spread) + even + 2.0 * abs(mean) * odd
        + mean * mean * magnitude[0]
    )
    limit = cancellation
    if not (
        parts_total <= limit * abs(total)
        and parts_variance <= limit * abs(variance * total)
        and parts_one_minus_variance <= limit * abs(one_minus_variance * total)
    ):
        return False, (0.0, 0.0, 1.0, 0.0)
    return True, (total, mean, variance, one_minus_variance)


# --- the tilted rule: the fast rule on φ'² divided by its exponential tail -----------------
#
# Deep in a tail where φ'² ≈ c·exp(a·u) (tanh: 16·exp(−4u) for u > 0), q = 1 − v is far
# smaller than the parts the fast rule sums (an exponential tilts the Gaussian without changing
# its variance), and the fast rule refuses. With ψ = φ'²·exp(−a·u),
#     E[φ'²(rz + b)·f(z)] = exp(a·b + a²r²/2)·E[ψ(rz + b')·f(z + a·r)],   b' = b + a·r²,
# (exp(a·r·z)·φ(z) = exp(a²r²/2)·φ(z − a·r)), so A00 = exp(a·b + a²r²/2)·A00(ψ; r, b'),
# m1 = m1(ψ; r, b') + a·r, and v, q are those of ψ at (r, b'). ψ is a smooth step from 0 to c
# (its tail terms beyond the leading one decay, and so does φ'²·exp(−a·u) on the other side),
# so the fast rule's split, smooth step plus tabulated remainder, serves for it with q in
# closed form. ψ and its derivatives are formed from the remainder with that side's tail
# terms in closed form, ρ, as exp(−a·u)·(ρ, ρ' − aρ, ρ'' − 2aρ' + a²ρ) plus the other tail
# terms c_k·exp((a_k − a)·u), so that nothing cancels.


#: The tilted rule's parts may cancel by at most this factor (the fast rule's allows 1e4): in a
#: tail, ψ's bend and the smooth step's can cancel by that much, and q then lost 1e-10.
TILTED_CANCELLATION = 100.0
#: Below this A00 of ψ the sums hold subnormal terms, whose errors the factor
#: exp(a·b + a²r²/2) would lift into a normal A00: the rule refuses.
TILTED_SMALLEST = 1e-280


def tilted_table(remainder, closed_tails, tails, upper_side):
    """(exponent a, limits of ψ, ``smooth_remainder_table`` of ψ) for the tail on the upper
    (``upper_side``) or lower side whose terms c_k·exp(a_k·u) are ``tails``, the leading one
    first, and in closed form in ``closed_tails``. Plain Python: run at import."""

    def psi_remainder(u, _flags):
        value, first, second = remainder(u, closed_tails)
        return tilted_values(value, first, second, u, tails, upper_side)

    limits = tilted_limits(tails, upper_side)
    return tails[0][1], limits, smooth_remainder_table(psi_remainder, closed_tails, limits)


@numba.njit(cache=True)
def tilted_limits(tails, upper_side):
    """The limits (ψ(−∞), ψ(+∞)) of ψ: the leading tail term's coefficient on its side."""
    return (0.0, tails[0][0]) if upper_side else (tails[0][0], 0.0)


@numba.njit(cache=True)
def tilted_values(value, first, second, u, tails, upper_side):
    """(ψ, ψ', ψ'') less ψ's hard step at u, from the remainder's (ρ, ρ', ρ'') there with the
    side's tail terms ``tails`` = ((c_0, a_0), (c_1, a_1), …) in closed form: exp(−a_0·u)·ρ plus
    the terms after the leading one, c_k·exp((a_k − a_0)·u), on their side."""
    exponent = tails[0][1]
    scale = math.exp(-exponent * u)
    psi = scale * value
    slope = scale * (first - exponent * value)
    curvature = scale * (second - 2.0 * exponent * first + exponent * exponent * value)
    if (u >= 0.0) == upper_side:  # the remainder's pieces take u = 0 as u > 0
        for k in range(1, len(tails)):
            c, a = tails[k]
            d = a - exponent
            term = c * math.exp(d * u)
            psi += term
            slope += d * term
            curvature += d * d * term
    return psi, slope, curvature


@numba.njit(cache=True)
def tilted_moments(r, b, tilted):
    """(accepted, (A00, m1, v, q)) by the tilted rule: the fast rule (``trapezoid_moments``)
    on ψ = φ'²·exp(−a·u) at b' = b + a·r², ``tilted`` = (a, limits, table) of ``tilted_table``."""
    exponent, limits, table = tilted
    shifted = b + exponent * r * r
    if not math.isfinite(shifted):
        return False, NO_MOMENTS
    accepted, moments = trapezoid_moments(r, shifted, table, limits, TILTED_CANCELLATION)
    if not accepted:
        return False, NO_MOMENTS
    return untilted(moments, exponent, r, b)


@numba.njit(cache=True)
def untilted(moments, exponent, r, b):
    """(accepted, (A00, m1, v, q)) of φ'² from those of ψ = φ'²·exp(−a·u) at b + a·r²:
    A00·exp(a·b + a²r²/2), m1 + a·r; refused where A00 of ψ is below TILTED_SMALLEST."""
    total, mean, variance, one_minus_variance = moments
    if not total >= TILTED_SMALLEST:
        return False, NO_MOMENTS
    log_factor = exponent * b + 0.5 * (exponent * r) ** 2
    total = math.exp(math.log(total) + log_factor)
    return True, (total, mean + exponent * r, variance, one_minus_variance)


# --- the Hermite rule: Gauss–Hermite quadrature in z of the smooth remainder (small r) -------
#
# Where r is small, ρs(rz + b) is a polynomial in z to double precision over the reach of the
# Gaussian (ρs is analytic, its nearest singularity a distance d of order 1 from the real line,
# so in z at d/r), and Gauss–Hermite quadrature with n nodes, exact for degree 2n − 1,
# converges faster than geometrically. The generated module evaluates ρs, ρs', ρs'' at the
# nodes of the rules with HERMITE_FINE and HERMITE_COARSE nodes (``smooth_step_difference``
# turns the hard split's remainder into ρs); the unit is accepted where no part cancels
# (``smooth_split_moments``) and the two rules give A00, m1, v and q that agree to
# HERMITE_TOLERANCE of each (of |m1| + √v for m1): the finer one's error is then about the
# square of that. It costs one evaluation of
# ρs per node and fills the gap between the narrow rule (whose series in r needs r ≲ 0.002
# for 1e-16 at the bulk of φ'²) and the trapezoidal rule (r ≥ 2h = 1/32), for GELU (which
# has no narrow rule) every small r.

HERMITE_FINE = 20
HERMITE_COARSE = 10


def _hermite_rule(count):
    nodes, weights = np.polynomial.hermite_e.hermegauss(count)
    return nodes, weights / math.sqrt(2.0 * math.pi)


#: The nodes of both rules, fine first, and their weights (each rule's sum to 1).
HERMITE_NODES, HERMITE_WEIGHTS = (
    np.concatenate(parts)
    for parts in zip(_hermite_rule(HERMITE_FINE), _hermite_rule(HERMITE_COARSE), strict=True)
)
#: Above this r the rule is not tried (the trapezoidal rule serves there).
HERMITE_MAX_RADIUS = 0.125
#: Agreement of the two rules, relative to the summed |integrand|.
HERMITE_TOLERANCE = 1e-8


@numba.njit(cache=True)
def smooth_step_difference(u, limits):
    """(ρs − ρ, ρs' − ρ', ρs'' − ρ'') at u: the hard step L−·[u < 0] + L+·[u > 0] (u = 0
    counted as u > 0, as the remainder's pieces do) minus the smooth one L−·Φ(−u/s) + L+·Φ(u/s),
    s = SMOOTH_STEP_WIDTH, and its derivatives."""
    lower, upper = limits
    jump = upper - lower
    if jump == 0.0:
        return 0.0, 0.0, 0.0
    s = SMOOTH_STEP_WIDTH
    y = u / s
    density = normal_pdf_one_exp(y)
    side = 1.0 if u >= 0.0 else -1.0
    return (side * jump * 0.5 * math.erfc(abs(y) / math.sqrt(2.0)), -jump * density / s,
            jump * y * density / (s * s))


@numba.njit(cache=True)
def hermite_moments(r, b, values, limits, cancellation=TRAPEZOID_CANCELLATION):
    """(accepted, (A00, m1, v, q)) by the Hermite rule, values[k] = (ρs, ρs', ρs'') at
    u = r·HERMITE_NODES[k] + b; ``cancellation`` as for ``smooth_split_moments``."""
    sums = np.zeros(6)
    magnitude = np.zeros(6)
    check = np.zeros(6)
    mass = first = 0.0
    for k in range(HERMITE_FINE):
        weight = HERMITE_WEIGHTS[k] * values[k, 0]
        mass += weight
        first += weight * HERMITE_NODES[k]
    centre = first / mass if mass != 0.0 else 0.0
    for k in range(HERMITE_NODES.size):
        z = HERMITE_NODES[k]
        weight = HERMITE_WEIGHTS[k]
        value = values[k, 0]
        terms = (value, values[k, 1], values[k, 2], (z - centre) ** 2 * value, z * value,
                 (1.0 - z * z) * value)
        for j in range(6):
            if k < HERMITE_FINE:
                sums[j] += weight * terms[j]
                magnitude[j] += weight * abs(terms[j])
            else:
                check[j] += weight * terms[j]
    if not magnitude[0] > 0.0:
        return False, NO_MOMENTS
    sizes = (magnitude[0], magnitude[1], magnitude[2], magnitude[3], magnitude[4], magnitude[5])
    step = smooth_step(r, b, limits)
    accepted, moments = smooth_split_moments(
        r, b, (sums[0], sums[1], sums[2], sums[3], sums[4], sums[5]), sizes, centre, step,
        cancellation,
    )
    if not accepted:
        return False, NO_MOMENTS
    # The two rules are compared on the moments, each relative to its own size (a sum that the
    # step outweighs, such as E[ρs'] at b = 0, may differ by rounding alone).
    _, coarse = smooth_split_moments(
        r, b, (check[0], check[1], check[2], check[3], check[4], check[5]), sizes, centre, step
    )
    total, mean, variance, one_minus_variance = moments
    scales = (abs(total), abs(mean) + math.sqrt(abs(variance)), abs(variance), abs(one_minus_variance))
    for j in range(4):
        if not abs(moments[j] - coarse[j]) <= HERMITE_TOLERANCE * scales[j]:  # False for NaN
            return False, NO_MOMENTS
    return True, moments


# --- the narrow-Gaussian rule: the tilted moments as a series in r (``fisher_sym.narrow``) ---

#: (A00, m1, v, q) returned with a refusal.
NO_MOMENTS = (0.0, 0.0, 1.0, 0.0)
#: The two highest orders of each series must be below this fraction of its size.
NARROW_TOLERANCE = 1e-16


@numba.njit(cache=True)
def clear_of_kinks(r, b, kinks):
    """Whether N(b, r²) is more than Z_LIMIT deviations from every kink of φ'² (its mass
    beyond them is then below exp(−800), nothing in double precision)."""
    for kink in kinks:
        if not abs(kink - b) >= Z_LIMIT * r:
            return False
    return True


@numba.njit(cache=True)
def narrow_gaussian_part(r, g1, g2):
    """(accepted, μ, σ², log mass) of exp(g1·r·z + g2·r²·z²/2)·φ(z) = mass·N(z; μ, σ²):
    σ² = 1/(1 − g2 r²), μ = g1·r·σ², log mass = −½·log(1 − g2 r²) + (g1 r)²σ²/2."""
    curvature = g2 * r * r
    if not (curvature < 1.0 and math.isfinite(curvature) and math.isfinite(g1 * r)):
        return False, 0.0, 1.0, 0.0
    sigma2 = 1.0 / (1.0 - curvature)
    slope = g1 * r
    return True, slope * sigma2, sigma2, -0.5 * math.log1p(-curvature) + 0.5 * slope * slope * sigma2


#: Up to this r the narrow rule trusts its own check: N(b, r²) then reaches at most
#: Z_LIMIT·r = 1.25 from b, inside the radius within which the derivatives of log φ'² at b
#: describe φ'² (about π/2 for tanh).
NARROW_LOCAL_RADIUS = 1.0 / 32.0


@numba.njit(cache=True)
def narrow_is_local(r, b, mu, sigma2):
    """Whether the narrow rule's Gaussian stays where the derivatives of log φ'² at b describe
    φ'²: r ≤ NARROW_LOCAL_RADIUS, or the tilted Gaussian N(b + r·μ, r²σ²) and N(b, r²) both lie,
    to Z_LIMIT deviations, on b's side of u = 0. Far out the derivatives underflow (SiLU at
    b = 3000: φ'² = 1 and every g_k = 0 in double precision) and the series would pass a
    Gaussian of width r = 1000 that reaches the bend of φ'² at u = 0."""
    if r <= NARROW_LOCAL_RADIUS:
        return True
    reach = Z_LIMIT * r * max(1.0, math.sqrt(sigma2))
    centre = b + r * mu
    if b > 0.0:
        return min(b, centre) - reach > 0.0
    return max(b, centre) + reach < 0.0


@numba.njit(cache=True)
def narrow_moments(r, value, g2, mu, sigma2, log_mass, orders):
    """(accepted, (A00, m1, v, q)) from the narrow rule's parts: φ'(b)² = ``value``, the
    Gaussian part (``narrow_gaussian_part``) and, per order n, (L_n, M_n, V_n) (``orders``):

        A00 = φ'(b)²·exp(log mass + Σ L_n),  m1 = μ + Σ M_n,
        v = σ² + Σ V_n,                       q = −g2·r²·σ² − Σ V_n.

    Accepted where φ'(b)² is a positive number, everything is finite, and the highest order
    of each series is below NARROW_TOLERANCE of its size (1 for the log of A00, |μ| + σ for
    m1, the sum of the magnitudes of q's parts for v and q), the order before it below the
    square root of that.
    """
    if not (value > 0.0 and math.isfinite(value) and math.isfinite(log_mass)):
        return False, NO_MOMENTS
    log_excess = shift = variance_shift = variance_size = 0.0
    count = len(orders)
    for n in range(count):
        part_log, part_shift, part_variance = orders[n]
        log_excess += part_log
        shift += part_shift
        variance_shift += part_variance
        variance_size += abs(part_variance)
    gaussian_q = -g2 * r * r * sigma2
    scales = (1.0, abs(mu) + math.sqrt(sigma2), abs(gaussian_q) + variance_size)
    for j in range(3):
        # The last order below the tolerance, the one before it below its square root (so
        # that a last order that vanishes by chance does not pass a series that diverges).
        if not abs(orders[count - 1][j]) <= NARROW_TOLERANCE * scales[j]:  # False for NaN
            return False, NO_MOMENTS
        if count > 1 and not abs(orders[count - 2][j]) <= math.sqrt(NARROW_TOLERANCE) * scales[j]:
            return False, NO_MOMENTS
    total = math.exp(math.log(value) + log_mass + log_excess)
    m1 = mu + shift
    v = sigma2 + variance_shift
    q = gaussian_q - variance_shift
    if not (math.isfinite(total) and math.isfinite(m1) and math.isfinite(v) and math.isfinite(q)):
        return False, NO_MOMENTS
    return True, (total, m1, v, q)


# --- the wide rule: a Gaussian flat on the scale of ρ (large r) -------------------------------
#
# For large r, N(b, r²) is flat on the scale on which φ'² varies. With the step
# L−·[u < 0] + L+·[u > 0] in closed form (``step_terms``, exact for every r and b), the
# remainder ρ = φ'² − step (its exponential tail terms included) decays on both sides, and
#     E[h(rz + b)] = ∫ h(u) φ((u − b)/r)/r du,   φ((u − b)/r) = φ(β − εw) = φ(β)·Σ_k He_k(β)(εw)^k/k!
# with ε = 1/r, w = u − c (c the centre of |ρ|), β = (b − c)/r and He_k the Hermite polynomials
# (their generating function exp(βt − t²/2)), so the tilted moments of w need only the moments
#     M_k = ∫ (u − c)^k ρ(u) du,
# tabulated once per module at import (``wide_rule_table``):
#     N_j = Σ_k He_k(β) ε^k M_(k+j)/k!,   mass = ε·φ(β)·N_0,   z = εw − β,
#     mean of z = ε·N_1/N_0 − β,   variance of z = ε²·(N_2/N_0 − (N_1/N_0)²).
# The variance is ε² times that of w, so it keeps its relative accuracy where it is far below 1
# (tanh at r = 1e150 has v ≈ 1e-300), which no sum over z could give. The rule checks itself per
# unit: the last two terms of each N_j below WIDE_TOLERANCE and its square root of the summed
# |terms| (|b| ≪ r² and r ≫ 1, the width of ρ). Beyond WIDE_DEVIATIONS deviations (|β| > 40)
# φ(β) ≤ exp(−800): the remainder is 0 in double precision and only the step is left.

#: The Hermite series keeps the terms k = 0 … WIDE_ORDER.
WIDE_ORDER = 10
#: The last term of each series must be below this fraction of its summed |terms|.
WIDE_TOLERANCE = 1e-16
#: Below this radius the wide rule is not tried (its series would not converge).
WIDE_MIN_RADIUS = 16.0
#: |β| beyond which φ(β) is below exp(−800).
WIDE_DEVIATIONS = Z_LIMIT
#: The moments of ρ are summed by 20-point Gauss–Legendre panels of width WIDE_PANEL within
#: ±WIDE_INNER and 4·WIDE_PANEL beyond, over [−WIDE_HALF_WIDTH, WIDE_HALF_WIDTH] (split at ρ's
#: kinks); ρ must have decayed at both ends (softplus: exp(−u), so the window is wide).
WIDE_HALF_WIDTH = 192.0
WIDE_INNER = 32.0
WIDE_PANEL = 0.5
#: What |u − c|^(WIDE_ORDER + 2)·|ρ| beyond |u| = 144 may add to the moments, relative to ∫|ρ|.
WIDE_DECAY_TOLERANCE = 1e-18


def wide_rule_table(remainder, closed_tails, kinks):
    """(valid, centre, moments) of the wide rule: moments[k] = ∫ (u − centre)^k ρ(u) du for
    k = 0 … WIDE_ORDER + 2, ρ = ``remainder(u, closed_tails)``, centre the mean of u under |ρ|;
    valid where ρ decays fast enough that the moments converge inside the window (an
    algebraic decay, such as 1/(1 + u²)², is refused: some moments diverge). Plain Python over
    a compiled ``remainder``: run at import."""
    inner = np.arange(-WIDE_INNER, WIDE_INNER + WIDE_PANEL / 2, WIDE_PANEL)
    outer = np.arange(WIDE_INNER, WIDE_HALF_WIDTH + WIDE_PANEL, 4 * WIDE_PANEL)
    edges = np.concatenate([-outer, inner, outer])
    kinks = np.asarray(kinks, dtype=np.float64)
    edges = np.unique(np.concatenate([edges, kinks[np.abs(kinks) < WIDE_HALF_WIDTH]]))
    half = 0.5 * np.diff(edges)[:, None]
    middle = 0.5 * (edges[1:] + edges[:-1])[:, None]
    nodes = (middle + half * GL_NODES).ravel()
    weights = (half * GL_WEIGHTS).ravel()
    values = np.array([remainder(u, closed_tails)[0] for u in nodes])
    count = WIDE_ORDER + 3
    if not np.all(np.isfinite(values)):
        return False, 0.0, np.zeros(count)
    size = float(np.sum(weights * np.abs(values)))
    if size == 0.0:
        return False, 0.0, np.zeros(count)
    centre = float(np.sum(weights * nodes * np.abs(values)) / size)
    mirrored = np.array_equal(nodes, -nodes[::-1]) and np.allclose(
        values, values[::-1], rtol=1e-13, atol=0.0
    )
    if mirrored:  # an even φ'² (tanh, sigmoid): odd moments exactly 0, so m1 = 0 at b = 0
        centre = 0.0
    offsets = nodes - centre
    moments = np.array([math.fsum(weights * offsets**k * values) for k in range(count)])
    if mirrored:
        moments[1::2] = 0.0
    outer = np.abs(nodes) > 0.75 * WIDE_HALF_WIDTH
    edge = float(np.sum(weights[outer] * np.abs(offsets[outer]) ** (count - 1) * np.abs(values[outer])))
    return bool(edge <= WIDE_DECAY_TOLERANCE * size), centre, moments


@numba.njit(cache=True)
def step_terms(limits, r, b):
    """Summaries of L−·[u < 0] and L+·[u > 0] over z ~ N(0, 1), u = rz + b, (L−, L+) = limits."""
    kink = kink_to_z(0.0, b, r)
    lower = upper = EMPTY_TERM
    at_kink = -0.5 * kink * kink - 0.5 * math.log(2.0 * math.pi)
    if limits[0] != 0.0:
        log_limit = math.log(abs(limits[0]))
        lower = constant_term(math.copysign(1.0, limits[0]), log_limit, 0.0, 1.0, 0.0,
                              -math.inf, kink, math.nan, log_limit + at_kink)
    if limits[1] != 0.0:
        log_limit = math.log(abs(limits[1]))
        upper = constant_term(math.copysign(1.0, limits[1]), log_limit, 0.0, 1.0, 0.0,
                              kink, math.inf, log_limit + at_kink)
    return lower, upper


@numba.njit(cache=True)
def wide_moments(r, b, table, limits):
    """(accepted, (A00, m1, v, q)) by the wide rule (see above): the step in closed form plus
    the remainder by its Hermite series, where that series checks itself."""
    valid, centre, moments = table
    if not (valid and r >= WIDE_MIN_RADIUS and math.isfinite(r)):
        return False, NO_MOMENTS
    epsilon = 1.0 / r
    beta = (b - centre) / r
    remainder = EMPTY_TERM
    sums = np.zeros(3)
    if abs(beta) <= WIDE_DEVIATIONS:
        sizes = np.zeros(3)
        last = np.zeros(3)
        before = np.zeros(3)
        hermite_before, hermite = 0.0, 1.0  # He_(k−1)(β), He_k(β)
        factor = 1.0  # ε^k/k!
        for k in range(WIDE_ORDER + 1):
            for j in range(3):
                term = hermite * factor * moments[k + j]
                sums[j] += term
                sizes[j] += abs(term)
                before[j] = last[j]
                last[j] = term
            hermite_before, hermite = hermite, beta * hermite - k * hermite_before
            factor *= epsilon / (k + 1)
        for j in range(3):
            if not (abs(last[j]) <= WIDE_TOLERANCE * sizes[j]
                    and abs(before[j]) <= math.sqrt(WIDE_TOLERANCE) * sizes[j]):
                return False, NO_MOMENTS
        if not abs(sums[0]) >= 1e-8 * sizes[0]:  # ρ's mass cancels: its moments would not
            return False, NO_MOMENTS
        shift = sums[1] / sums[0]
        spread = epsilon * epsilon * (sums[2] / sums[0] - shift * shift)
        remainder = (
            math.copysign(1.0, sums[0]),
            -math.log(r) - 0.5 * beta * beta - 0.5 * math.log(2.0 * math.pi) + math.log(abs(sums[0])),
            epsilon * shift - beta,
            spread,
            1.0 - spread,
        )
    lower, upper = step_terms(limits, r, b)
    if limits[0] == 0.0 and limits[1] == 0.0:
        # ρ is φ'² itself: its moments as they are (a mixture of one would round the mean
        # into a variance that may be far below 1).
        # The mass as a product, not exp(log): the log of a mass near 1e-300 would carry an
        # absolute rounding of 1e-13.
        if remainder[1] == -math.inf:
            return True, NO_MOMENTS
        density = math.exp(-0.5 * beta * beta) / math.sqrt(2.0 * math.pi)
        return True, (epsilon * density * abs(sums[0]), remainder[2], remainder[3], remainder[4])
    return True, combine_terms((lower, upper, remainder))


# --- saturation: the Gaussian where φ'² is its limit to double precision ----------------------
#
# Where N(b, r²) lies, to Z_LIMIT deviations, on a side u > U+ (u < −U−) beyond which the
# remainder ρ = φ'² − step and its derivatives are below the smallest normal double, φ'² is
# L+ (L−) on the whole Gaussian: A00 = L±, m1 = 0, v = 1, q = 0 (with L± = 0, A00 = 0: a dead
# unit). ``saturation_points`` finds U± once per module, at import; beyond them a printed form
# of ρ may overflow into inf·0 (u²·exp(−u) at u = 1e200), which this rule never evaluates.


def saturation_points(remainder, closed_tails):
    """(U−, U+): ρ, ρ', ρ'' are below the smallest normal double (or not finite: a printed
    form that overflows where ρ has decayed) at every point u = ±2^(k/4) beyond U±, up to the
    largest double; inf on a side where they are not."""
    tiny = np.finfo(np.float64).tiny
    exponents = np.arange(0, 4 * 1024) / 4.0
    points = []
    for side in (-1.0, 1.0):
        point = math.inf
        for exponent in exponents[::-1]:
            u = side * 2.0**exponent
            if not math.isfinite(u):
                continue
            values = remainder(u, closed_tails)
            if all(abs(x) < tiny or not math.isfinite(x) for x in values):
                point = 2.0 ** min(float(exponent) + 0.25, 1023.0)
            else:
                break
        points.append(point)
    return points[0], points[1]


@numba.njit(cache=True)
def saturated_moments(r, b, points, limits):
    """(accepted, (A00, m1, v, q)) where N(b, r²) lies beyond a saturation point (above)."""
    spread = Z_LIMIT * r
    if b - spread > points[1]:
        return True, (limits[1], 0.0, 1.0, 0.0)
    if b + spread < -points[0]:
        return True, (limits[0], 0.0, 1.0, 0.0)
    return False, NO_MOMENTS


# --- the hard split's tail rule: the trapezoidal rule for ρ away from its kinks ---------------
#
# Deep in a tail (a saturated tanh, sigmoid or softplus unit) the fast rule refuses, as q ≈ 0
# would cancel, and the hard split takes the tail terms of that side in closed form. Its
# remainder ρ has kinks (at u = 0 at least), but where the Gaussian N(b, r²) is negligible at
# every kink, ρ·N is as smooth as an analytic integrand for the trapezoidal rule, so the fast
# rule's machinery sums it at a few µs a unit, against 40–60 µs for adaptive quadrature. The
# tables hold ρ itself with one side's tail terms in closed form: the pattern ``closed_tails``
# takes in a deep tail on that side (``tail_in_closed_form``).


def split_remainder_table(remainder, closed_tails):
    """``smooth_remainder_table`` of the hard split's remainder ρ itself (no smooth step) with
    the tail terms flagged in ``closed_tails`` in closed form. ρ has kinks, so the table keeps
    only its finest step (its whole-line sums converge slowly in h)."""
    return smooth_remainder_table(remainder, closed_tails, (0.0, 0.0))


@numba.njit(cache=True)
def tail_rule_remainder_sums(r, b, table, kinks, step):
    """(accepted, sums, magnitude, centre) like ``fixed_rule_remainder_sums``, by the
    trapezoidal rule over the nodes of a ``split_remainder_table`` (``trapezoid_remainder_sums``
    and its checks), accepted only where every kink c of ρ is out of the Gaussian's reach.

    A jump of ρ^(j)·N at c costs the trapezoidal rule at most about h times its size, so it
    moves E[ρ^(j)] by at most e = 4·h·max|ρ^(j)|·N(c'), N the Gaussian density in u and c' the
    point within 2h of c nearest to b (times 1 + (|z_c| + |centre|)² for the sums weighted by
    z, z² or (z − centre)²). Each sum that ``add_remainder`` uses (it takes Stein's form or the
    direct one by the same test) must have its e below TRAPEZOID_TRUNCATION of the larger of
    its own magnitude and the part of the closed-form step's (A00, m1, v, q) (``step``) that
    ``add_remainder`` adds it to, in that sum's units (A00 for ρ, A00·(|m1| + √v)/r for ρ',
    A00·|q|/r² for ρ'', ...): the error is then that fraction of the final moment.
    """
    total, mean, variance, one_minus_variance = step
    spread = abs(mean) + math.sqrt(max(variance, 0.0))
    parts = (total, total * spread / r, total * abs(one_minus_variance) / (r * r),
             total * variance, total * spread, total * abs(one_minus_variance))
    accepted, sums, magnitude, centre = trapezoid_remainder_sums(r, b, table, (parts[0], parts[5], parts[3]))
    if accepted:
        spacing, stride, levels, offsets = table[0], table[2], table[3], table[4]
        h = spacing * stride  # the coarsest step the rule may have taken
        largest = levels[3, offsets[0]]  # the upper envelope at the first node: max |ρ^(j)|
        # the sums add_remainder uses: ρ, (z − c)²ρ, and its Stein or direct forms
        odd = 1 if r * magnitude[1] <= magnitude[4] else 4
        even = 2 if r * r * magnitude[2] <= magnitude[5] else 5
        for c in kinks:
            z = max(abs(c - b) - 2.0 * h, 0.0) / r
            error = 4.0 * h * largest * normal_pdf_one_exp(z) / r
            weighted = error * (1.0 + (abs(c - b) / r + abs(centre)) ** 2)
            for j in (0, 3, odd, even):
                bound = error if j < 3 else weighted
                if not bound <= TRAPEZOID_TRUNCATION * max(magnitude[j], parts[j]):
                    accepted = False
    return accepted, np.array(sums), np.array(magnitude), centre


#: A tail term whose Gaussian mean lies more than this many standard deviations beyond its
#: kink is integrated by quadrature: its closed form would subtract two logs of size y²/2.
TAIL_SWITCH = 8.0


@numba.njit(cache=True)
def tail_in_closed_form(kink, r, b, mean, std, positive_side):
    """Whether a tail term on u > kink (or u < kink) is evaluated in closed form at (r, b).

    Closed form is what a deep tail needs: the bulk of z far from the kink (|z_c| > 3) and
    u = b far from it too (|b − c| > 1), where the term is close to φ'² itself. Near the kink
    the term would add an artificial kink to ρ, so it stays in the quadrature; and when its
    Gaussian lies beyond the kink by more than TAIL_SWITCH deviations, its closed form would
    subtract two large logarithms.
    """
    kink_z = kink_to_z(kink, b, r)
    beyond = (kink_z - mean) / std if positive_side else (mean - kink_z) / std
    return abs(kink_z) > 3.0 and abs(b - kink) > 1.0 and beyond < TAIL_SWITCH


@numba.njit(cache=True)
def effective_jumps(jumps, tail_jumps, closed_tails):
    """The jumps of ρ when the tail terms not in ``closed_tails`` are added back to it."""
    result = jumps.copy()
    for k in range(tail_jumps.shape[0]):
        if closed_tails[k]:
            continue
        for j in range(result.shape[0]):
            if result[j, 0] == tail_jumps[k, 0]:
                result[j, 1] += tail_jumps[k, 1]
                result[j, 2] += tail_jumps[k, 2]
    return result


# --- layer kernels: input checks that need no pass over W and grad_W ---------------------------
# A layer kernel is called once per training step, with its caches cold: every Python or NumPy
# call made to check its arguments then costs microseconds (at (256, 256) the checks once took
# longer than the kernel). So the checks run in two stages, both before anything is written:
# - in Python, what numba's dispatch would otherwise compile a new specialization for (types,
#   dtypes, dimensions, layout, writeability) and the types of lr and damping, by attribute
#   tests only (``is_layer_call``, ``is_out_call``), with the thorough checks (and their
#   messages) only for arguments that fail them;
# - in the kernel itself, before its first write, the rest (``layer_argument_error``): lr and
#   damping finite (damping ≥ 0), shapes, b and grad_b finite, no overlaps.
# Non-finite values in W and grad_W are found by the kernel's single pass (see a generated
# module's ``_layer_kernel``) and reported, with overflows, through a per-unit status that
# ``raise_for_layer_errors`` turns into errors, with the thorough checks' messages.

import numbers  # noqa: E402  (used by check_learning_rate only)

ROW_STATUS_MESSAGES = {
    1: "W has non-finite values",
    2: "grad_W has non-finite values",
    3: "b has non-finite values",
    4: "grad_b has non-finite values",
}
ROW_OVERFLOW = 5

#: Codes of ``layer_argument_error``, in the order it checks: lr not finite, damping not
#: finite and ≥ 0, the shapes of W, b, grad_W, grad_b or of out (nat_W, nat_b) do not match,
#: b or grad_b holds a NaN or ±inf, or (from ``ARGUMENT_OVERLAP`` on) written array k
#: overlaps array j, code ARGUMENT_OVERLAP + 6·k + j, in the order of ``LAYER_ARRAY_NAMES``.
ARGUMENT_LR_NOT_FINITE = 1
ARGUMENT_DAMPING_INVALID = 2
ARGUMENT_SHAPES = 3
ARGUMENT_OUT_SHAPES = 4
ARGUMENT_B_NOT_FINITE = 5
ARGUMENT_GRAD_B_NOT_FINITE = 6
ARGUMENT_OVERLAP = 8
LAYER_ARRAY_NAMES = ("out[0]", "out[1]", "W", "b", "grad_W", "grad_b")
_FLOAT_DTYPES = (_FLOAT64, np.dtype(np.float32))


def is_layer_call(W, b, grad_W, grad_b, step=False):
    """Whether a layer kernel may take the four as they are, told by attribute tests alone:
    NumPy arrays of one float dtype, W and grad_W 2-D, b and grad_b 1-D, all C-contiguous, and
    for a step W and b writeable. Their shapes are left to the kernel (``layer_argument_error``)."""
    ndarray = np.ndarray
    if not (type(W) is ndarray and type(b) is ndarray and type(grad_W) is ndarray
            and type(grad_b) is ndarray):
        return False
    dtype = W.dtype
    W_flags = W.flags
    b_flags = b.flags
    return (
        (dtype is _FLOAT_DTYPES[0] or dtype is _FLOAT_DTYPES[1])
        and b.dtype is dtype and grad_W.dtype is dtype and grad_b.dtype is dtype
        and W.ndim == 2 and grad_W.ndim == 2 and b.ndim == 1 and grad_b.ndim == 1
        and W_flags.c_contiguous and b_flags.c_contiguous
        and grad_W.flags.c_contiguous and grad_b.flags.c_contiguous
        and (not step or (W_flags.writeable and b_flags.writeable))
    )


def is_out_call(out, W):
    """``is_layer_call`` for ``out``: a pair of writeable C-contiguous NumPy arrays, 2-D and 1-D,
    of W's dtype (their shapes are left to the kernel)."""
    if not (type(out) is tuple and len(out) == 2):
        return False
    nat_W, nat_b = out
    if not (type(nat_W) is np.ndarray and type(nat_b) is np.ndarray):
        return False
    W_flags = nat_W.flags
    b_flags = nat_b.flags
    return (
        nat_W.dtype is W.dtype and nat_b.dtype is W.dtype and nat_W.ndim == 2 and nat_b.ndim == 1
        and W_flags.c_contiguous and W_flags.writeable
        and b_flags.c_contiguous and b_flags.writeable
    )


def _is_plain_layer(W, b, grad_W, grad_b):
    """What ``check_layer_shapes`` accepts as is: ``is_layer_call`` and a layer's shapes."""
    if not is_layer_call(W, b, grad_W, grad_b):
        return False
    shape = W.shape
    return grad_W.shape == shape and b.shape == shape[:1] and grad_b.shape == shape[:1]


def _check_float_arrays(arrays):
    """Shapes and one float dtype of a layer's arrays (any objects with .shape and .dtype)."""
    for name, array in arrays.items():
        dtype = getattr(array, "dtype", None)
        dtype = np.dtype(object) if dtype is None else np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be float32 or float64, got {dtype}")
    dtypes = {np.dtype(array.dtype) for array in arrays.values()}
    if len(dtypes) != 1:
        found = sorted(map(str, dtypes))
        raise TypeError(f"W, b, grad_W, grad_b must share one dtype, got {found}")
    W, b, grad_W, grad_b = arrays.values()
    if len(W.shape) != 2:
        raise ValueError(f"W must have shape (m, n), got {tuple(W.shape)}")
    m = W.shape[0]
    if tuple(b.shape) != (m,):
        raise ValueError(
            f"b must have shape ({m},) to match W {tuple(W.shape)}, got {tuple(b.shape)}"
        )
    if tuple(grad_W.shape) != tuple(W.shape):
        raise ValueError(f"grad_W must have W's shape {tuple(W.shape)}, got {tuple(grad_W.shape)}")
    if tuple(grad_b.shape) != tuple(b.shape):
        raise ValueError(f"grad_b must have b's shape {tuple(b.shape)}, got {tuple(grad_b.shape)}")


def check_layer_shapes(W, b, grad_W, grad_b):
    """A layer's arrays: NumPy arrays, one float dtype, W (m, n), b (m,), the gradients shaped
    like them. Returns them as C-contiguous arrays (copies only of non-contiguous ones). Their
    values are checked by the kernels (``layer_argument_error`` and the row status)."""
    if _is_plain_layer(W, b, grad_W, grad_b):
        return W, b, grad_W, grad_b
    arrays = {"W": W, "b": b, "grad_W": grad_W, "grad_b": grad_b}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
    _check_float_arrays(arrays)
    return tuple(np.ascontiguousarray(array) for array in arrays.values())


def check_out(out, W, b):
    """``out`` for a layer kernel: a tuple (nat_W, nat_b) of writeable C-contiguous NumPy arrays
    with the shapes and dtype of W and b (that they overlap nothing is checked by
    ``layer_argument_error``)."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"out must be a tuple (nat_W, nat_b), got {type(out).__name__}")
    for name, array, like in (("out[0]", out[0], W), ("out[1]", out[1], b)):
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
        if array.dtype != like.dtype:
            raise TypeError(f"{name} must have dtype {like.dtype}, got {array.dtype}")
        if array.shape != like.shape:
            raise ValueError(f"{name} must have shape {like.shape}, got {array.shape}")
        if not array.flags.c_contiguous:
            raise ValueError(f"{name} must be C-contiguous")
        if not array.flags.writeable:
            raise ValueError(f"{name} must be writeable")
    return out


def check_learning_rate(lr):
    """Return lr as a float; it must be a finite real number."""
    if type(lr) is float and math.isfinite(lr):  # the common case, at once
        return lr
    real = isinstance(lr, numbers.Real) or (
        isinstance(lr, np.ndarray) and lr.ndim == 0 and lr.dtype.kind in "fiu"
    )
    if not real or isinstance(lr, (bool, np.bool_)):
        raise TypeError(f"lr must be a real number, got {type(lr).__name__}")
    value = float(lr)
    if not math.isfinite(value):
        raise ValueError(f"lr must be finite, got {value}")
    return value


def check_step_arguments(W, b, grad_W, grad_b):
    """``check_layer_shapes`` for an in-place step: W and b must be writeable and C-contiguous
    (they are updated in place, not copied)."""
    for name, array in (("W", W), ("b", b)):
        if isinstance(array, np.ndarray):
            if not array.flags.c_contiguous:
                raise ValueError(f"{name} must be C-contiguous (it is updated in place)")
            if not array.flags.writeable:
                raise ValueError(f"{name} must be writeable (it is updated in place)")
    return check_layer_shapes(W, b, grad_W, grad_b)


@numba.njit(cache=True)
def _byte_span(array):
    """[first, end) byte addresses of a C-contiguous array; (0, 0) if it is empty."""
    if array.size == 0:
        return 0, 0
    first = array.ctypes.data
    return first, first + array.nbytes


@numba.njit(cache=True)
def layer_argument_error(W, b, grad_W, grad_b, nat_W, nat_b, step, lr, damping, unit_damping):
    """0 if a layer kernel may run on these C-contiguous arrays, else the code of the first
    failed check (see ARGUMENT_OVERLAP): lr finite, damping finite and ≥ 0, unit_damping
    empty (NO_UNIT_DAMPING) or (m,) with every entry finite and ≥ 0; b (m,), grad_W like
    W (m, n), grad_b like b, nat_W like W and nat_b like b; b and grad_b finite; the written
    arrays (nat_W, nat_b, or W, b themselves for a step) overlap neither each other nor the
    arrays read."""
    if not math.isfinite(lr):
        return ARGUMENT_LR_NOT_FINITE
    if not (math.isfinite(damping) and damping >= 0.0):
        return ARGUMENT_DAMPING_INVALID
    m, n = W.shape
    if unit_damping.size != 0:
        if unit_damping.size != m:
            return ARGUMENT_DAMPING_INVALID
        for i in range(m):
            if not (math.isfinite(unit_damping[i]) and unit_damping[i] >= 0.0):
                return ARGUMENT_DAMPING_INVALID
    if not (b.shape[0] == m and grad_W.shape[0] == m and grad_W.shape[1] == n
            and grad_b.shape[0] == m):
        return ARGUMENT_SHAPES
    if not (nat_W.shape[0] == m and nat_W.shape[1] == n and nat_b.shape[0] == m):
        return ARGUMENT_OUT_SHAPES
    return layer_value_error(W, b, grad_W, grad_b, nat_W, nat_b, step)


@numba.njit(cache=True)
def layer_value_error(W, b, grad_W, grad_b, nat_W, nat_b, step):
    """The last checks of ``layer_argument_error``: b and grad_b finite, and the written
    arrays overlap neither each other nor the arrays read."""
    for i in range(b.size):
        if not math.isfinite(b[i]):
            return ARGUMENT_B_NOT_FINITE
    for i in range(grad_b.size):
        if not math.isfinite(grad_b[i]):
            return ARGUMENT_GRAD_B_NOT_FINITE
    spans = (_byte_span(nat_W), _byte_span(nat_b), _byte_span(W), _byte_span(b),
             _byte_span(grad_W), _byte_span(grad_b))
    for written in range(2):
        for other in range(written + 1, 6):
            if step and (other == 2 or other == 3):
                continue  # W and b are the written arrays themselves
            first, end = spans[written]
            other_first, other_end = spans[other]
            if first < other_end and other_first < end:
                return ARGUMENT_OVERLAP + 6 * written + other
    return 0


def check_layer_values(W, b, grad_W, grad_b, out=None, step=False):
    """``layer_value_error`` from Python (for the GPU kernels' host arrays, whose shapes are
    checked already): raises ValueError if b or grad_b holds a NaN or ±inf or if ``out`` (or
    W, b for a step) overlaps another array."""
    nat_W, nat_b = (W[:0], b[:0]) if out is None else out
    raise_for_layer_errors(
        layer_value_error(W, b, grad_W, grad_b, nat_W, nat_b, step), None,
        (W, b, grad_W, grad_b), out, step,
    )


def raise_for_layer_errors(argument_error, status, arrays, out=None, step=False, lr=0.0,
                           damping=0.0, input_statistics=False, unit_damping=NO_UNIT_DAMPING):
    """Raise for what a layer kernel reports: its ``layer_argument_error`` code (nothing was
    written), then the per-unit ``status`` (see ``raise_for_row_status``; None: all units are
    fine). ``arrays`` = (W, b, grad_W, grad_b), ``out``, ``lr``, ``damping`` and
    ``unit_damping`` are the kernel's arguments, for the messages of the thorough checks;
    ``input_statistics``: the kernel had an input mean or variance (for the overflow's
    message)."""
    if argument_error == ARGUMENT_LR_NOT_FINITE:
        check_learning_rate(lr)
    elif argument_error == ARGUMENT_DAMPING_INVALID:
        check_layer_damping(unit_damping if unit_damping.size else damping, arrays[0].shape[0])
    elif argument_error == ARGUMENT_SHAPES:
        _check_float_arrays(dict(zip(LAYER_ARRAY_NAMES[2:], arrays, strict=True)))
    elif argument_error == ARGUMENT_OUT_SHAPES:
        check_out(out, arrays[0], arrays[1])
    elif argument_error == ARGUMENT_B_NOT_FINITE:
        raise ValueError("b has non-finite values")
    elif argument_error == ARGUMENT_GRAD_B_NOT_FINITE:
        raise ValueError("grad_b has non-finite values")
    elif argument_error:
        written, other = divmod(argument_error - ARGUMENT_OVERLAP, 6)
        names = ("W", "b") + LAYER_ARRAY_NAMES[2:] if step else LAYER_ARRAY_NAMES
        raise ValueError(f"{names[written]} must not overlap {names[other]}")
    if argument_error:  # the thorough check above must have raised
        raise RuntimeError(f"layer argument check {argument_error} failed without a message")
    if status is not None:
        raise_for_row_status(status, step, input_statistics)


@functools.cache
def element_limits(dtype):
    """(tiny, limit, cast_limit) for a float dtype: its smallest normal number, half its largest
    value (a sum of two terms below it, each rounded in the dtype, is certainly finite), and
    the float64 magnitude from which a value rounds to ±inf in the dtype (max + half an ulp;
    inf for float64). Cached per dtype."""
    info = np.finfo(dtype)
    largest = float(info.max)
    ulp = largest - float(np.nextafter(info.max, info.dtype.type(0)))  # the ulp at the top
    return float(info.tiny), 0.5 * largest, largest + 0.5 * ulp


_FLOAT32_LIMITS = element_limits(np.dtype(np.float32))
_FLOAT64_LIMITS = element_limits(np.dtype(np.float64))


@numba.njit(cache=True)
def array_element_limits(array):
    """``element_limits`` of a float32 or float64 array's dtype, in compiled code."""
    return _FLOAT32_LIMITS if array.itemsize == 4 else _FLOAT64_LIMITS


def check_device_layer_shapes(W, b, grad_W, grad_b):
    """Shapes, dtype and C-contiguity of device arrays (numba device arrays); their values are
    checked by the kernel."""
    arrays = {"W": W, "b": b, "grad_W": grad_W, "grad_b": grad_b}
    _check_float_arrays(arrays)
    for name, array in arrays.items():
        if not array.is_c_contiguous():
            raise ValueError(f"{name} must be C-contiguous")


def _check_device_no_overlap(written, read, span):
    spans = [(span(array), name) for array, name in list(written) + list(read)]
    for index in range(len(written)):
        (start, end), name = spans[index]
        for (other_start, other_end), other_name in spans[index + 1 :]:
            if start < other_end and other_start < end:
                raise ValueError(f"{name} must not overlap {other_name}")


def check_device_no_overlap(written, read, span):
    """Device arrays to be written must overlap neither each other nor ``read``; ``span(a)``
    gives an array's (first, last) byte address."""
    _check_device_no_overlap(tuple(written), tuple(read), span)


def check_device_out(out, W, b, inputs, span):
    """``check_out`` for device arrays (already converted to numba device arrays)."""
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(f"out must be a tuple (nat_W, nat_b), got {type(out).__name__}")
    for name, array, like in (("out[0]", out[0], W), ("out[1]", out[1], b)):
        if np.dtype(array.dtype) != np.dtype(like.dtype):
            raise TypeError(f"{name} must have dtype {like.dtype}, got {array.dtype}")
        if tuple(array.shape) != tuple(like.shape):
            raise ValueError(
                f"{name} must have shape {tuple(like.shape)}, got {tuple(array.shape)}"
            )
        if not array.is_c_contiguous():
            raise ValueError(f"{name} must be C-contiguous")
    names = ("W", "b", "grad_W", "grad_b")
    written = ((out[0], "out[0]"), (out[1], "out[1]"))
    _check_device_no_overlap(written, tuple(zip(inputs, names, strict=True)), span)
    return out


def raise_for_row_status(status, step=False, input_statistics=False):
    """Raise for the per-unit status of a layer kernel: ValueError for non-finite input values,
    FloatingPointError naming the units whose result overflows. For a step, the units named
    were left unchanged and all other units were updated. ``input_statistics``: the kernel
    had an input mean or variance, whose tiny variances can overflow the update too."""
    if not status.any():
        return
    left = "; those units were left unchanged, the others were updated" if step else ""
    for code, message in ROW_STATUS_MESSAGES.items():
        bad = np.flatnonzero(status == code)
        if bad.size:
            raise ValueError(f"{message} (units {_list_units(bad)}){left}")
    bad = np.flatnonzero(status == ROW_OVERFLOW)
    what = "the natural-gradient step" if step else "the natural gradient"
    statistics = (
        " (or an input_variance so small that 1/variance scales the update past the largest "
        "value, which damping does not bound: it acts on the standardized parameters)"
        if input_statistics else ""
    )
    raise FloatingPointError(
        f"{what} overflows for units {_list_units(bad)}: their Fisher blocks are numerically "
        f"singular; use damping > 0{statistics}{left}"
    )


def _list_units(indices):
    return ", ".join(map(str, indices[:10])) + (" …" if indices.size > 10 else "")


# --- Input statistics (a generated module's input_mean and input_variance) ----------------------


def _statistics_array(value, name, n, scalar_allowed):
    """``value`` as a float64 array of shape (n,), from real numbers of shape (n,) (or () where
    ``scalar_allowed``), all finite."""
    array = value if isinstance(value, np.ndarray) else np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold real numbers, got dtype {array.dtype}")
    if array.shape != (n,) and not (scalar_allowed and array.shape == ()):
        shapes = f"({n},) or a scalar" if scalar_allowed else f"({n},)"
        raise ValueError(
            f"{name} must have shape {shapes}, one entry per input of W (n = {n}), got "
            f"{array.shape}"
        )
    array = np.broadcast_to(np.asarray(array, dtype=np.float64), (n,))
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        raise ValueError(f"{name} has non-finite values (inputs {_list_units(bad)})")
    return np.ascontiguousarray(array)


def check_input_statistics(input_mean, input_variance, n):
    """(mean, variance) as C-contiguous float64 arrays of shape (n,): ``input_mean`` of shape
    (n,) or None (zeros), ``input_variance`` of shape (n,), a scalar, or None (ones); real,
    finite, and the variance positive. Raises TypeError or ValueError naming the argument."""
    if input_mean is None:
        mean = np.zeros(n)
    else:
        mean = _statistics_array(input_mean, "input_mean", n, scalar_allowed=False)
    if input_variance is None:
        variance = np.ones(n)
    else:
        variance = _statistics_array(input_variance, "input_variance", n, scalar_allowed=True)
        bad = np.flatnonzero(~(variance > 0.0))
        if bad.size:
            raise ValueError(
                f"input_variance must be positive (inputs {_list_units(bad)}: "
                f"{float(variance[bad[0]])!r}{', …' if bad.size > 1 else ''})"
            )
    return mean, variance


def raise_for_input_statistics_overflow(mean, variance):
    """Raise ValueError for statistics whose columns 1/variance or mean/variance overflow
    double precision (a positive variance below about 1e-308, or below |mean|·1e-308)."""
    with np.errstate(over="ignore", divide="ignore"):
        bad = np.flatnonzero(~(np.isfinite(1.0 / variance) & np.isfinite(mean / variance)))
    raise ValueError(
        f"input_variance is too small for double precision at inputs {_list_units(bad)}: "
        "1/variance or input_mean/variance overflows"
    )
