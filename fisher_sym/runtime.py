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

import math

import numba
import numpy as np

from fisher_sym.special import normal_interval_moments, normal_interval_summary

EMPTY_TERM = (1.0, -math.inf, 0.0, 0.0, 1.0)


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
def constant_term(sign, log_weight, mean, std, one_minus_variance, z_lower, z_upper):
    """Summary of sign·exp(log_weight)·N(z; mean, std²) restricted to [z_lower, z_upper].

    ``one_minus_variance`` is 1 − std², passed in its cancellation-free symbolic form;
    1 − Var z = (1 − std²) + std²·(1 − Var y) for z = mean + std·y.
    """
    y_lower, y_upper = _standardise(z_lower, z_upper, mean, std)
    if y_lower >= y_upper:
        return EMPTY_TERM
    log_mass, y_mean, y_variance, y_one_minus_variance = normal_interval_summary(y_lower, y_upper)
    variance_scale = std * std
    return (
        sign,
        log_weight + log_mass,
        mean + std * y_mean,
        variance_scale * y_variance,
        one_minus_variance + variance_scale * y_one_minus_variance,
    )


@numba.njit(cache=True)
def _taylor_shift(coefficients, origin, step):
    """Coefficients in s of P(origin + step·s), for P(u) = Σ_k coefficients[k] u^k."""
    degree = len(coefficients) - 1
    shifted = np.empty(degree + 1)
    for k in range(degree + 1):
        shifted[k] = coefficients[k]
    # Repeated synthetic division by (u − origin) gives the Taylor coefficients at origin.
    for k in range(degree):
        for j in range(degree - 1, k - 1, -1):
            shifted[j] += origin * shifted[j + 1]
    scale = 1.0
    for k in range(degree + 1):
        shifted[k] *= scale
        scale *= step
    return shifted


@numba.njit(cache=True)
def polynomial_term(coefficients, log_weight, mean, std, z_lower, z_upper, r, b):
    """Summary of exp(log_weight)·P(rz + b)·N(z; mean, std²) restricted to [z_lower, z_upper].

    The moments are taken about the anchor that ``normal_interval_moments`` picks near the
    mass, so P is re-expanded there (``_taylor_shift``) before the moments are summed.
    """
    y_lower, y_upper = _standardise(z_lower, z_upper, mean, std)
    if y_lower >= y_upper:
        return EMPTY_TERM
    degree = len(coefficients) - 1
    moments = np.empty(degree + 3)
    log_scale, anchor = normal_interval_moments(y_lower, y_upper, moments)
    z_anchor = mean + std * anchor
    shifted = _taylor_shift(coefficients, r * z_anchor + b, r * std)
    mass = first = second = 0.0
    for j in range(degree + 1):
        mass += shifted[j] * moments[j]
        first += shifted[j] * moments[j + 1]
        second += shifted[j] * moments[j + 2]
    if mass == 0.0:
        return EMPTY_TERM
    offset = first / mass
    variance = std * std * (second / mass - offset * offset)
    return (
        math.copysign(1.0, mass),
        log_weight + log_scale + math.log(abs(mass)),
        z_anchor + std * offset,
        variance,
        1.0 - variance,
    )


@numba.njit(cache=True)
def combine_terms(terms):
    """(A00, m1, v, q) from term summaries: A00 = Σ weights, and the mixture's mean m1,
    variance v = Σ w (v_t + (μ_t − m1)²)/A00 and q = Σ w (q_t − (μ_t − m1)²)/A00 = 1 − v.
    """
    log_max = -math.inf
    for term in terms:
        log_max = max(log_max, term[1])
    if log_max == -math.inf:
        return 0.0, 0.0, 1.0, 0.0
    total = weighted_mean = 0.0
    for sign, log_weight, mean, _, _ in terms:
        weight = sign * math.exp(log_weight - log_max)
        total += weight
        weighted_mean += weight * mean
    mean = weighted_mean / total
    variance = one_minus_variance = 0.0
    for sign, log_weight, term_mean, term_variance, term_one_minus_variance in terms:
        weight = sign * math.exp(log_weight - log_max) / total
        spread = (term_mean - mean) ** 2
        variance += weight * (term_variance + spread)
        one_minus_variance += weight * (term_one_minus_variance - spread)
    return math.exp(log_max) * total, mean, variance, one_minus_variance


# --- input checks (plain Python, run before any kernel) ---------------------------------------


def check_blocks_arguments(r, b):
    """Broadcast r and b to float64 arrays; reject non-finite values and r < 0."""
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
    try:
        value = float(damping)
    except (TypeError, ValueError):
        raise TypeError(f"damping must be a real number, got {type(damping).__name__}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"damping must be finite and non-negative, got {value}")
    return value


def check_layer_arguments(W, b, grad_W, grad_b):
    """Check a layer's arrays: W (m, n), b (m,), gradients of the same shapes, one float dtype,
    all values finite. Returns the arrays as C-contiguous arrays of that dtype."""
    arrays = {"W": W, "b": b, "grad_W": grad_W, "grad_b": grad_b}
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):
            raise TypeError(f"{name} must be a numpy array, got {type(array).__name__}")
        if array.dtype not in (np.float32, np.float64):
            raise TypeError(f"{name} must be float32 or float64, got {array.dtype}")
    dtypes = {array.dtype for array in arrays.values()}
    if len(dtypes) != 1:
        raise TypeError(f"W, b, grad_W, grad_b must share one dtype, got {sorted(map(str, dtypes))}")
    if W.ndim != 2:
        raise ValueError(f"W must have shape (m, n), got {W.shape}")
    m = W.shape[0]
    if b.shape != (m,):
        raise ValueError(f"b must have shape ({m},) to match W {W.shape}, got {b.shape}")
    if grad_W.shape != W.shape:
        raise ValueError(f"grad_W must have W's shape {W.shape}, got {grad_W.shape}")
    if grad_b.shape != b.shape:
        raise ValueError(f"grad_b must have b's shape {b.shape}, got {grad_b.shape}")
    for name, array in arrays.items():
        if not np.all(np.isfinite(array)):
            raise ValueError(f"{name} has non-finite values")
    return tuple(np.ascontiguousarray(array) for array in arrays.values())


def _finite_float_array(value, name):
    array = np.asarray(value)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"{name} must be real numbers, got dtype {array.dtype}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name} has non-finite values")
    return array


def raise_if_not_finite(row_is_finite):
    """Raise FloatingPointError naming the units whose natural gradient overflowed."""
    bad = np.flatnonzero(~row_is_finite)
    if bad.size:
        shown = ", ".join(map(str, bad[:10])) + (" …" if bad.size > 10 else "")
        raise FloatingPointError(
            f"the natural gradient overflows for units {shown}: their Fisher blocks are "
            "numerically singular; use damping > 0"
        )
