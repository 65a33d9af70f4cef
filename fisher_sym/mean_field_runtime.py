"""What a generated ``mean_field`` imports: its input check, sums of Gaussian terms, and the
panels and rule of its numerical path.

The numerical path (``expectations.py``, kind "numerical") computes
E[f(τv)] = 2 ∫_0^∞ f_e(τz) φ(z) dz, v, z ~ N(0, 1), for the even part f_e of f = φ or φ²,
by adaptive Gauss–Legendre quadrature over z ∈ [0, Z_LIMIT]: the panels start at the
features of f_e(τz) (u = 0 and the kinks of f_e, on the scale 1/τ) and of the Gaussian (scale
1), and a panel is split in two until its two halves agree with it to MEAN_FIELD_TOLERANCE of
the summed |integrand|. Beyond Z_LIMIT = 40 the Gaussian is below 1e-347 and underflows.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from fisher_sym.runtime import GL_NODES, GL_WEIGHTS, Z_LIMIT

#: Agreement a panel's halves must reach with the panel, relative to the summed |integrand|.
MEAN_FIELD_TOLERANCE = 1e-13
#: Most panels the adaptive rule keeps open at once; beyond it the integral is refused (NaN).
MEAN_FIELD_MAX_PANELS = 4000
#: Panel edges, in units of 1/τ, on each side of u = 0 and of each kink of f_e.
FEATURE_OFFSETS = np.array([0.0, 0.25, 1.0, 4.0, 16.0, 64.0, 256.0])
#: Panel edges in z where the Gaussian changes (its scale is 1).
GAUSSIAN_EDGES = np.array([0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0, 24.0, 32.0])

_FLOAT64 = np.dtype(np.float64)


def check_tau(tau) -> np.ndarray:
    """tau as a float64 array; TypeError for values that are not real numbers, ValueError for
    NaN, ±inf or tau < 0."""
    array = np.asarray(tau)
    if array.dtype.kind not in "fiu":
        raise TypeError(f"tau must be real numbers, got dtype {array.dtype}")
    array = np.array(array, dtype=_FLOAT64, order="C")
    if not np.all(np.isfinite(array)):
        raise ValueError("tau has non-finite values")
    if np.any(array < 0):
        raise ValueError("tau must be non-negative (it is the standard deviation of u)")
    return array


def raise_for_non_finite(values, tau) -> None:
    """FloatingPointError naming the τ at which a mean-field quantity is not finite (it
    overflows, or the numerical path's integral refused)."""
    bad = ~np.all(np.isfinite(values), axis=0)
    if np.any(bad):
        where = ", ".join(f"{x:.17g}" for x in tau[bad][:5])
        more = f" and {int(bad.sum()) - 5} more" if bad.sum() > 5 else ""
        raise FloatingPointError(
            f"mean_field: a result is not a finite double at tau = {where}{more} (it overflows, "
            "or E[φ(τv)²] does not converge within |v| ≤ 40)"
        )


@numba.njit(cache=True)
def sum_of_terms(terms):
    """Σ sign·exp(log_weight) over term summaries (sign, log_weight, …) (see ``runtime``),
    each scaled by the largest weight before the sum."""
    log_max = -math.inf
    for term in terms:
        log_max = max(log_max, term[1])
    if log_max == -math.inf:
        return 0.0
    total = 0.0
    for term in terms:
        total += term[0] * math.exp(term[1] - log_max)
    return total * math.exp(log_max)


@numba.njit(cache=True)
def panel_edges(tau, kinks):
    """Sorted panel edges in z ∈ [0, Z_LIMIT]: the ends, GAUSSIAN_EDGES, and k/τ around u = 0
    and around each kink c of f_e (z = c/τ), for k in FEATURE_OFFSETS."""
    size = 2 + GAUSSIAN_EDGES.size + (1 + len(kinks)) * 2 * FEATURE_OFFSETS.size
    candidates = np.empty(size)
    count = 0
    candidates[count] = 0.0
    candidates[count + 1] = Z_LIMIT
    count += 2
    for z in GAUSSIAN_EDGES:
        candidates[count] = z
        count += 1
    for j in range(len(kinks) + 1):
        centre = kinks[j] / tau if j < len(kinks) else 0.0
        for offset in FEATURE_OFFSETS:
            for sign in (-1.0, 1.0):
                z = centre + sign * offset / tau
                if 0.0 < z < Z_LIMIT:
                    candidates[count] = z
                    count += 1
    return np.unique(candidates[:count])


@numba.njit(cache=True)
def panel_nodes(lower, upper):
    """Gauss–Legendre nodes in z on [lower, upper] and their weights times 2φ(z)."""
    half = 0.5 * (upper - lower)
    middle = 0.5 * (upper + lower)
    nodes = middle + half * GL_NODES
    weights = half * GL_WEIGHTS * 2.0 * np.exp(-0.5 * nodes * nodes) / math.sqrt(2.0 * math.pi)
    return nodes, weights


@numba.njit(cache=True)
def power_series(coefficients, x, lowest, step):
    """x^lowest · Σ_j coefficients[j]·x^(step·j), by Horner's rule in x^step."""
    power = x * x if step == 2 else x
    total = 0.0
    for j in range(coefficients.size - 1, -1, -1):
        total = total * power + coefficients[j]
    return total * x**lowest
