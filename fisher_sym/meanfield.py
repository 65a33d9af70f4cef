"""Mean-field recursions of random deep networks (Amari, Karakida & Oizumi 2019, Secs. 2 and 6).

A layer l = 1, …, L of width n computes u = W x + b from its input x (the previous layer's
output x^{l−1}), with W_ij ~ N(0, σ_w²/n) and b_i ~ N(0, σ_b²) independent. For a wide layer
the pre-activations u_i are i.i.d. N(0, τ_l²) given the input, with

    τ_l² = σ_w² A^{l−1} + σ_b²,            A^l = (1/n) Σ_i (x_i^l)²   (the activity),

so every mean-field quantity is an expectation over v ~ N(0, 1) that the generated module's
``mean_field(tau)`` returns: (E[φ(τv)], E[φ(τv)²], E[φ'(τv)²]).

- **Plain network** (paper eqs. 1–5 and 14), x^l = φ(u):
  A^l = E[φ(τ_l v)²], and a small change dx^{l−1} of the input grows by the enlargement factor
  χ^l = |dx^l|²/|dx^{l−1}|² = σ_w² E[φ'(τ_l v)²].
- **Residual network** (Sec. 6, eqs. 77–80 and 88), x^l = α x^{l−1} + V φ(u) with
  V_ij ~ N(0, σ_v²/n): A^l = α² A^{l−1} + σ_v² E[φ(τ_l v)²] and
  χ^l = α² + σ_v² σ_w² E[φ'(τ_l v)²] (the cross terms average to zero over V; the paper prints
  α instead of α² in eq. 88, see docs/errata.md).

The product χ^L_{m+1} = χ^{m+1} ⋯ χ^L is the factor by which |dx|² grows from the output of
layer m to that of layer L (eqs. 17–18). The edge of chaos, for a given σ_b, is the σ_w at which
χ = 1 at the fixed point A* = E[φ(√(σ_w² A* + σ_b²) v)²] of the plain network.

Pure NumPy and the generated module: nothing here needs torch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

#: Bisection stops when the bracket is this many ulps wide (or after MAX_BISECTIONS halvings).
BRACKET_ULPS = 4
MAX_BISECTIONS = 2000
#: Largest activity (and σ_w) a bracket may grow to before the search gives up.
LARGEST_ACTIVITY = 1e200
LARGEST_SIGMA_W = 1e6


@dataclass(frozen=True)
class MeanField:
    """Mean-field quantities of layers 1, …, L: entry l − 1 of each array is layer l's.

    ``tau``: τ_l, the standard deviation of a unit's pre-activation u; ``mean``: E[φ(τ_l v)],
    the mean of a unit's activation φ(u); ``activity``: A^l, the mean square of the layer's
    output (for a plain network E[φ(τ_l v)²]); ``chi``: the enlargement factor χ^l;
    ``input_activity``: A^0.
    """

    tau: np.ndarray
    mean: np.ndarray
    activity: np.ndarray
    chi: np.ndarray
    input_activity: float

    @property
    def depth(self) -> int:
        return self.tau.size

    def log_chi_product(self, first: int, last: int | None = None) -> float:
        """log χ^last_first = Σ_{l=first}^{last} log χ^l (layers numbered from 1; last = L by
        default; an empty product, first = last + 1, is 0)."""
        last = self.depth if last is None else last
        if not (isinstance(first, int | np.integer) and isinstance(last, int | np.integer)):
            raise TypeError("first and last must be integers (layer numbers from 1)")
        if not 1 <= first <= last + 1 or last > self.depth:
            raise ValueError(
                f"layers first={first}, last={last} are not 1 ≤ first ≤ last + 1, last ≤ "
                f"depth = {self.depth}"
            )
        with np.errstate(divide="ignore"):
            return float(np.sum(np.log(self.chi[first - 1 : last])))

    def chi_product(self, first: int, last: int | None = None) -> float:
        """χ^last_first = χ^first ⋯ χ^last (eq. 18): |dx^last|² = χ^last_first |dx^{first−1}|².
        Raises FloatingPointError where the product overflows a double (use
        ``log_chi_product``)."""
        log_product = self.log_chi_product(first, last)
        if log_product > math.log(np.finfo(np.float64).max):
            raise FloatingPointError(
                f"χ^{last}_{first} = exp({log_product:.6g}) overflows: use log_chi_product"
            )
        return math.exp(log_product)

    def chi_products(self) -> np.ndarray:
        """χ^L_{m+1} for m = 0, …, L − 1: the growth of |dx|² from layer m's output to the
        network's output (entry 0 is the whole network's)."""
        return np.array([self.chi_product(m + 1) for m in range(self.depth)])


@dataclass(frozen=True)
class FixedPoint:
    """The plain network's fixed point for (σ_w, σ_b): A* = E[φ(τ* v)²], τ*² = σ_w² A* + σ_b²,
    and χ* = σ_w² E[φ'(τ* v)²]. Where the activity grows without bound (no finite fixed point
    above the input activity), activity and tau are inf and chi is χ at the largest activity
    tried (LARGEST_ACTIVITY), its limit for activations that grow linearly."""

    activity: float
    tau: float
    chi: float


# --- input checks ------------------------------------------------------------------------------


def _mean_field_function(activation) -> Callable:
    """The ``mean_field`` of a generated module (or a callable with its signature)."""
    function = getattr(activation, "mean_field", activation)
    if not callable(function):
        raise TypeError(
            "activation must be a generated module (with mean_field) or a function "
            f"tau -> (E[φ(τv)], E[φ(τv)²], E[φ'(τv)²]), got {type(activation).__name__}"
        )
    return function


def _real(value, name: str, minimum: float | None = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum:g}, got {value}")
    return value


def _per_layer(value, name: str, depth: int) -> np.ndarray:
    """A scalar or one value per layer, finite and ≥ 0, as a float64 array of length depth."""
    array = np.asarray(value)
    if array.dtype.kind not in "fiu" or array.dtype == bool:
        raise TypeError(f"{name} must be real numbers, got dtype {array.dtype}")
    if array.ndim == 0:
        array = np.full(depth, float(array))
    elif array.shape != (depth,):
        raise ValueError(f"{name} must be a scalar or have shape ({depth},), got {array.shape}")
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError(f"{name} must be finite and ≥ 0")
    return array


def _depth(depth) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int | np.integer):
        raise TypeError(f"depth must be an integer, got {type(depth).__name__}")
    if depth < 1:
        raise ValueError(f"depth must be ≥ 1, got {depth}")
    return int(depth)


# --- the recursions ----------------------------------------------------------------------------


def plain_network(activation, sigma_w, sigma_b, depth: int, input_activity: float = 1.0):
    """The plain network's ``MeanField``: for l = 1, …, depth,
    τ_l² = σ_w,l² A^{l−1} + σ_b,l², A^l = E[φ(τ_l v)²], χ^l = σ_w,l² E[φ'(τ_l v)²].

    ``activation``: a generated module (``from generated import tanh``); ``sigma_w``,
    ``sigma_b``: the standard deviations of √n·W_ij and of b_i, scalars or one per layer;
    ``input_activity``: A^0 = |x^0|²/n (1 for x^0 ~ N(0, I)).
    """
    return _network(activation, sigma_w, sigma_b, depth, input_activity, None)


def residual_network(
    activation, sigma_w, sigma_b, sigma_v, alpha, depth: int, input_activity: float = 1.0
):
    """The residual network's ``MeanField``, x^l = α x^{l−1} + V φ(W x^{l−1} + b) with
    √n·V_ij ~ N(0, σ_v²): for l = 1, …, depth, τ_l² = σ_w,l² A^{l−1} + σ_b,l²,
    A^l = α_l² A^{l−1} + σ_v,l² E[φ(τ_l v)²], χ^l = α_l² + σ_v,l² σ_w,l² E[φ'(τ_l v)²].

    ``sigma_v`` and ``alpha`` are scalars or one per layer (α ≥ 0; for α ≥ 1 the activity grows
    without bound with depth, paper Sec. 6); the other arguments as in ``plain_network``.
    """
    depth = _depth(depth)
    return _network(
        activation,
        sigma_w,
        sigma_b,
        depth,
        input_activity,
        (_per_layer(sigma_v, "sigma_v", depth), _per_layer(alpha, "alpha", depth)),
    )


def _network(activation, sigma_w, sigma_b, depth, input_activity, residual) -> MeanField:
    mean_field = _mean_field_function(activation)
    depth = _depth(depth)
    sigma_w = _per_layer(sigma_w, "sigma_w", depth)
    sigma_b = _per_layer(sigma_b, "sigma_b", depth)
    activity = _real(input_activity, "input_activity")
    taus, means, activities, chis = (np.empty(depth) for _ in range(4))
    for layer in range(depth):
        tau = math.sqrt(sigma_w[layer] ** 2 * activity + sigma_b[layer] ** 2)
        mean, second_moment, slope = mean_field(tau)
        chi = sigma_w[layer] ** 2 * slope
        if residual is None:
            activity = second_moment
        else:
            sigma_v, alpha = residual[0][layer], residual[1][layer]
            activity = alpha**2 * activity + sigma_v**2 * second_moment
            chi = alpha**2 + sigma_v**2 * chi
        if not math.isfinite(activity):
            raise FloatingPointError(f"the activity overflows at layer {layer + 1}")
        taus[layer], means[layer], activities[layer], chis[layer] = tau, mean, activity, chi
    return MeanField(taus, means, activities, chis, float(_real(input_activity, "input_activity")))


# --- fixed point and edge of chaos -------------------------------------------------------------


def _bisect(function, lower: float, upper: float) -> float:
    """A root of ``function`` in [lower, upper], 0 ≤ lower < upper, where function(lower) ≥ 0 >
    function(upper) (or the reverse): halve the bracket, at its geometric mean while it spans
    more than a factor of 4, until it is BRACKET_ULPS ulps wide."""
    lower_sign = function(lower) >= 0
    for _ in range(MAX_BISECTIONS):
        if upper - lower <= BRACKET_ULPS * np.spacing(upper):
            break
        geometric = lower > 0.0 and upper > 4.0 * lower
        middle = math.sqrt(lower) * math.sqrt(upper) if geometric else 0.5 * (lower + upper)
        if (function(middle) >= 0) == lower_sign:
            lower = middle
        else:
            upper = middle
    return 0.5 * (lower + upper)


def fixed_point(activation, sigma_w, sigma_b, input_activity: float = 1.0) -> FixedPoint:
    """The plain network's fixed point A* = F(A*), F(A) = E[φ(√(σ_w² A + σ_b²) v)²], that the
    recursion A ← F(A) approaches from ``input_activity`` (for an increasing F: the nearest
    root in the direction of F(A^0) − A^0), found by a bracketed bisection of F(A) − A to a few
    ulps."""
    mean_field = _mean_field_function(activation)
    sigma_w = _real(sigma_w, "sigma_w")
    sigma_b = _real(sigma_b, "sigma_b")
    start = _real(input_activity, "input_activity")

    def tau(activity):
        return math.sqrt(sigma_w**2 * activity + sigma_b**2)

    def excess(activity):
        return mean_field(tau(activity))[1] - activity

    if excess(start) >= 0:
        lower, upper = start, max(2.0 * start, 1.0)
        while excess(upper) > 0:
            lower, upper = upper, 2.0 * upper
            if upper > LARGEST_ACTIVITY:
                chi = sigma_w**2 * mean_field(tau(LARGEST_ACTIVITY))[2]
                return FixedPoint(math.inf, math.inf, float(chi))
        activity = start if excess(start) == 0 else _bisect(excess, lower, upper)
    else:
        lower, upper, factor = start / 2.0, start, 2.0
        while excess(lower) < 0 and lower > np.finfo(np.float64).tiny:
            factor *= factor  # 2, 4, 16, 256, …: down to the smallest double in a few steps
            lower, upper = lower / factor, lower
        activity = 0.0 if excess(lower) < 0 else _bisect(excess, lower, upper)
    return FixedPoint(
        float(activity), tau(activity), float(sigma_w**2 * mean_field(tau(activity))[2])
    )


def edge_of_chaos(activation, sigma_b, input_activity: float = 1.0) -> float:
    """The σ_w at which χ* = σ_w² E[φ'(τ* v)²] = 1 at the fixed point (``fixed_point``) for
    this σ_b: a bracketed bisection of χ*(σ_w) − 1 from σ_w = 0 (χ* = 0) up to the first power
    of two where χ* > 1. Raises ValueError where χ* stays below 1 up to LARGEST_SIGMA_W."""
    _mean_field_function(activation)
    sigma_b = _real(sigma_b, "sigma_b")

    def excess(sigma_w):
        return fixed_point(activation, sigma_w, sigma_b, input_activity).chi - 1.0

    upper = 1.0
    while excess(upper) < 0:
        upper *= 2.0
        if upper > LARGEST_SIGMA_W:
            raise ValueError(f"χ* < 1 for every sigma_w ≤ {LARGEST_SIGMA_W:g}: no edge of chaos")
    lower = upper / 2.0 if upper > 1.0 else 0.0  # χ* < 1 there (χ* = 0 at σ_w = 0)
    return _bisect(lambda s: -excess(s), lower, upper)
