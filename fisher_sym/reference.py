"""Independent references for the unit-wise Fisher information of one neuron.

This module is the yardstick the test suite holds the generated kernels against, so it deliberately
shares no code with the derivation engine: it starts from a SymPy expression of the activation
``phi`` in the symbol :data:`U`, differentiates it with :func:`sympy.diff`, and from there on only
uses mpmath (high-precision quadrature) or numpy (Monte Carlo, dense linear algebra).

Setting. One neuron ``u = w.x + b`` with input ``x ~ N(0, I_n)``; ``r = |w|``, ``z ~ N(0, 1)``.

* Fisher blocks (:func:`fisher_blocks_mp`)::

      A00 = E[phi'(r z + b)^2],  A0n = E[z phi'(r z + b)^2],  Ann = E[z^2 phi'(r z + b)^2].

* Dense Fisher matrix (:func:`dense_fisher`), parameters ordered ``(w_1..w_n, b)``,
  ``x* = (x, 1)``, ``w^ = w / r``, ``w^* = (w^, 0)``, ``e0 = (0, .., 0, 1)``::

      G = E[phi'(u)^2 x* x*^T] = A00 I + (Ann - A00) w^* w^*^T + A0n (e0 w^*^T + w^* e0^T).

* Input with a mean and a variance, ``x ~ N(mu, diag(var))`` (:func:`dense_fisher_with_input_statistics`),
  by conditioning on ``u`` rather than by any map of parameters: ``u ~ N(m, sigma^2)`` with
  ``m = w.mu + b``, ``sigma^2 = sum var w^2``, and ``x = mu + a v + e`` with
  ``v = (u - m) / sigma``, ``a = var w / sigma`` and ``e`` independent of ``u`` with covariance
  ``diag(var) - a a^T``; so with ``(I0, I1, I2) = E[phi'(sigma v + m)^2 v^{0,1,2}]`` (the blocks
  at ``r = sigma``, ``b = m``)::

      E[phi'^2 x x^T] = I0 (mu mu^T + diag(var) - a a^T) + I1 (mu a^T + a mu^T) + I2 a a^T,
      E[phi'^2 x] = I0 mu + I1 a,   E[phi'^2] = I0.

* Inverse (:func:`inverse_coefficients_mp`)::

      (G + lam I)^-1 = Abar00 I + X w^* w^*^T + Y (e0 w^*^T + w^* e0^T) + Z e0 e0^T.

Conventions at ``r = 0`` (``w = 0``): the blocks are the limit ``r -> 0+`` at fixed ``b``.  With
``g+-`` the one-sided limits of ``phi'^2`` at ``b`` and ``gbar = (g+ + g-) / 2`` this limit is
``(gbar, (g+ - g-) / sqrt(2 pi), gbar)``, i.e. ``(gbar, 0, gbar)`` unless ``b`` is exactly a kink of
``phi'``.  The dense matrix at ``w = 0`` is ``gbar I`` (taken as ``A00 I``), since ``w^`` is
undefined there.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import mpmath
import numpy as np
import sympy

__all__ = [
    "U",
    "fisher_blocks_mp",
    "fisher_blocks_in_u_mp",
    "inverse_coefficients_mp",
    "inverse_coefficients_of",
    "activation_moments_mp",
    "mean_abs_mp",
    "mean_field_mp",
    "dense_fisher",
    "monte_carlo_fisher",
    "natural_gradient_dense",
    "dense_fisher_with_input_statistics",
    "input_second_moment",
    "monte_carlo_fisher_product",
]

#: The symbol in which activations are written, ``phi = phi(U)``.
U = sympy.Symbol("u", real=True)

_GUARD_DPS = 15  # extra decimal digits carried through the quadrature
_MC_CHUNK = 1 << 16  # Monte-Carlo samples per chunk
_CAP_BITS = 1 << 14  # precision boosting never adds more bits than this


# --------------------------------------------------------------------------------------------
# Preparing phi'^2
# --------------------------------------------------------------------------------------------


def _derivative(phi: sympy.Expr) -> sympy.Expr:
    """phi'(u) with Dirac deltas dropped (they live on a null set of the Gaussian measure)."""
    d = sympy.diff(sympy.sympify(phi), U)
    return d.replace(lambda e: isinstance(e, sympy.DiracDelta), lambda e: sympy.S.Zero)


@functools.lru_cache(maxsize=64)
def _mp_dphi_sq(phi: sympy.Expr):
    """phi'(u)^2 as a function of one mpf, evaluated at the current mpmath precision."""
    return sympy.lambdify(U, _derivative(phi) ** 2, modules="mpmath")


@functools.lru_cache(maxsize=64)
def _dphi_sq_is_even(phi: sympy.Expr) -> bool:
    """Whether phi'(-u)^2 = phi'(u)^2 identically (sigmoid, tanh, erf, the cubic)."""
    g = _derivative(phi) ** 2
    return sympy.simplify(g.subs(U, -U) - g) == 0


def _np_erf(x):
    return np.vectorize(math.erf, otypes=[float])(x)


def _np_erfc(x):
    return np.vectorize(math.erfc, otypes=[float])(x)


@functools.lru_cache(maxsize=64)
def _np_dphi(phi: sympy.Expr):
    """phi'(u) as a vectorised numpy function (erf/erfc through math, as numpy lacks them)."""
    f = sympy.lambdify(U, _derivative(phi), modules=[{"erf": _np_erf, "erfc": _np_erfc}, "numpy"])

    def dphi(u: np.ndarray) -> np.ndarray:
        return np.broadcast_to(np.asarray(f(u), dtype=float), u.shape)

    return dphi


@functools.lru_cache(maxsize=64)
def _auto_kinks(phi: sympy.Expr) -> tuple[sympy.Expr, ...]:
    """Real points where phi or phi' may be non-smooth, read off Heaviside/sign/Abs/Max/Min and
    Piecewise conditions.  Only used to add quadrature breakpoints, so a miss or a spurious point
    costs time, never correctness."""
    phi = sympy.sympify(phi)
    zeros: list[sympy.Expr] = []
    for expr in (phi, _derivative(phi)):
        for atom in expr.atoms(sympy.Heaviside, sympy.sign, sympy.Abs, sympy.DiracDelta):
            zeros.append(atom.args[0])
        for atom in expr.atoms(sympy.Max, sympy.Min):
            args = atom.args
            zeros.extend(a - c for i, a in enumerate(args) for c in args[i + 1 :])
        for pw in expr.atoms(sympy.Piecewise):
            for _, cond in pw.args:
                if isinstance(cond, sympy.logic.boolalg.Boolean) and cond not in (True, False):
                    for rel in cond.atoms(sympy.core.relational.Relational):
                        zeros.append(rel.lhs - rel.rhs)
    points: set[sympy.Expr] = set()
    for e in zeros:
        if not e.has(U):
            continue
        try:
            sol = sympy.solveset(e, U, domain=sympy.S.Reals)
        except Exception:  # noqa: BLE001 - any failure just means "no breakpoint found"
            continue
        if isinstance(sol, sympy.FiniteSet):
            points.update(s for s in sol if s.is_number and s.is_real)
    return tuple(sorted(points, key=lambda s: float(s)))


def _to_mpf(x) -> mpmath.mpf:
    """Convert a Python/numpy/SymPy/mpmath real number to an mpf at the current precision."""
    if isinstance(x, sympy.Basic):
        return mpmath.mpf(sympy.Float(x, mpmath.mp.dps + 5)._mpf_)
    if isinstance(x, np.generic):
        x = x.item()
    return mpmath.mpf(x)


# --------------------------------------------------------------------------------------------
# High-precision Fisher blocks
# --------------------------------------------------------------------------------------------


class _FoldedIntegrand:
    """For z >= 0: the even and odd parts of h(z) = phi'(r z + b)^2 exp(-z^2 / 2),

        even(z) = (f(z) + f(-z)) exp(-z^2 / 2),  odd(z) = (f(z) - f(-z)) exp(-z^2 / 2),

    with f(z) = phi'(r z + b)^2, so that A00, Ann integrate even(z) z^{0,2} and A0n integrates
    odd(z) z over [0, inf).  Folding moves the cancellation of the signed moment A0n into the
    pointwise difference f(z) - f(-z) (exactly 0 or 1 for ReLU), which, like phi'^2 itself
    (tanh: 1 - tanh(u)^2 at large |u|), is made accurate by precision boosting: each value is
    recomputed with more bits until two successive values agree relatively to the target
    precision, or absolutely to a tolerance relative to the integral's scale.  Values are
    memoised by node, so the three moments share the evaluations.
    """

    def __init__(self, g, r: mpmath.mpf, b: mpmath.mpf, symmetric: bool = False):
        self.g, self.r, self.b = g, r, b
        # f(-z) = f(z) exactly (an even phi'^2 at b = 0): the odd part is 0, not the rounding
        # noise of two evaluations, which no precision boost would ever make agree.
        self.symmetric = symmetric
        self.scale_even = self.scale_odd = mpmath.mp.zero  # max |even| max(1, z^2), |odd| max(1, z)
        self.target_bits = mpmath.mp.prec
        self.memo: dict = {}

    def _raw(self, z, prec: int):
        with mpmath.workprec(prec):
            rz = self.r * z
            fp = self.g(self.b + rz)
            fm = fp if self.symmetric else self.g(self.b - rz)
            return fp + fm, fp - fm

    def value(self, z):
        hit = self.memo.get(z)
        if hit is not None:
            return hit
        prec = mpmath.mp.prec
        gauss = mpmath.exp(-z * z / 2)
        rel = mpmath.ldexp(1, -(self.target_bits - 8))
        tol_e = tol_o = mpmath.inf
        if gauss:
            tol_e = mpmath.ldexp(self.scale_even, -self.target_bits) / (gauss * max(1, z * z))
            tol_o = mpmath.ldexp(self.scale_odd, -self.target_bits) / (gauss * max(1, z))
        prev = self._raw(z, prec)
        extra = 32
        while True:
            cur = self._raw(z, prec + extra)
            de, do = abs(cur[0] - prev[0]), abs(cur[1] - prev[1])
            ok_e = de <= rel * abs(cur[0]) or de <= tol_e
            ok_o = do <= rel * abs(cur[1]) or do <= tol_o
            if (ok_e and ok_o) or extra >= _CAP_BITS:
                break
            prev, extra = cur, 2 * extra
        out = ((+cur[0]) * gauss, (+cur[1]) * gauss)
        self.memo[z] = out
        return out


def _breakpoints(r: mpmath.mpf, b: mpmath.mpf, kinks_z: Sequence[mpmath.mpf]) -> list:
    """Split points of the folded half-line [0, inf): |p| for p = 0 (the Gaussian's centre),
    -b/r (phi' features at u = 0) and the kinks, each with a geometric ladder of neighbours on the
    length scales that can shape the integrand there: 1 (Gaussian), 1/r (phi' in z) and 1/|c|
    (the Gaussian's slope far out).  Points that coincide up to rounding are merged."""
    steps = [mpmath.mpf(4) ** k for k in range(-1, 5)]  # 1/4, 1, 4, .., 256
    pts = {mpmath.mp.zero, *steps}
    finest = mpmath.mp.one
    for c in [-b / r, *kinks_z]:
        scales = {1 / r}
        if abs(c) > 1:
            scales.add(1 / abs(c))
        finest = min(finest, *scales)
        pts.add(abs(c))
        pts.update(abs(c + s * k * h) for h in scales for k in steps for s in (1, -1))
    pts = sorted(pts)
    merge = mpmath.mpf(10) ** (10 - mpmath.mp.dps)
    out = [pts[0]]
    for p in pts[1:]:
        if p - out[-1] > merge * max(p, finest):
            out.append(p)
    return [*out, mpmath.inf]


def fisher_blocks_mp(phi, r, b, kinks=(), dps: int = 40):
    """(A00, A0n, Ann) = E[z^k phi'(r z + b)^2], k = 0, 1, 2, z ~ N(0, 1), as mpf at ``dps`` digits
    (see ``_fisher_blocks_mp``). Memoized: checks of the blocks and of the inverse coefficients
    at the same point share one quadrature."""
    return _fisher_blocks_mp(sympy.sympify(phi), r, b, tuple(kinks), dps)


@functools.lru_cache(maxsize=4096)
def _fisher_blocks_mp(phi, r, b, kinks, dps):
    """(A00, A0n, Ann) = E[z^k phi'(r z + b)^2], k = 0, 1, 2, z ~ N(0, 1), as mpf at ``dps`` digits.

    ``phi`` is a SymPy expression in :data:`U`; ``kinks`` are u-values where phi' is not smooth
    (added to those found automatically in Heaviside/Piecewise/Max/Min/Abs/sign).  The integrals
    are folded onto z >= 0 (A00, Ann from the even part of the integrand, A0n from the odd part,
    so that its cancellation happens pointwise), the half-line is split at |kinks mapped to z|,
    at |b/r| and at neighbours of these, and each piece is integrated with mpmath.quad
    (tanh-sinh) at ``dps`` + guard digits.  The integrands are scaled to their maxima so that
    mpmath's absolute error control acts as a relative one: tails such as b/r = -1e3, where
    A00 ~ 1e-217000, keep full relative accuracy.  Raises ArithmeticError if quad reports
    non-convergence.

    At ``r == 0`` the limit r -> 0+ at fixed b is returned: ``(gbar, (g+ - g-)/sqrt(2 pi), gbar)``
    with ``g+-`` the one-sided limits of phi'^2 at b and ``gbar = (g+ + g-)/2``.
    """
    phi = sympy.sympify(phi)
    g = _mp_dphi_sq(phi)
    all_kinks = tuple(kinks) + _auto_kinks(phi)
    with mpmath.workdps(dps + _GUARD_DPS):
        r, b = _to_mpf(r), _to_mpf(b)
        if r < 0:
            raise ValueError("r = |w| must be non-negative")
        if r == 0:
            A = _zero_radius_blocks(g, b, [_to_mpf(c) for c in all_kinks])
        else:
            # Far-out centres c lose digits in z^2/2 and in b + r z (a kink's position is blurred
            # by |b| eps / r relative to pieces of width 1/|c|): widen the working precision.
            far = max([abs(b / r), *[abs((_to_mpf(c) - b) / r) for c in all_kinks], 1])
            extra = int(3 * mpmath.log10(far)) + 5
            with mpmath.workdps(mpmath.mp.dps + extra):
                kinks_z = [(_to_mpf(c) - b) / r for c in all_kinks]
                symmetric = b == 0 and _dphi_sq_is_even(phi)
                A = _quad_blocks(g, r, b, kinks_z, dps, symmetric)
    with mpmath.workdps(dps):
        return tuple(mpmath.mpf(a) for a in A)


def _quad_blocks(g, r, b, kinks_z, dps, symmetric=False):
    """The three moments by tanh-sinh quadrature of the scaled folded integrands."""
    h = _FoldedIntegrand(g, r, b, symmetric)
    pts = _breakpoints(r, b, kinks_z)
    h.target_bits = mpmath.mp.prec
    vals = [(z, h.value(z)) for z in pts[:-1]]
    h.scale_even = max(abs(e) * max(1, z * z) for z, (e, _) in vals)
    h.scale_odd = max(abs(o) * max(1, z) for z, (_, o) in vals)
    h.memo.clear()  # recompute with the absolute tolerances now known
    # Split points beyond the last one where the integrands are non-negligible only cost time
    # (the Gaussian factor decreases on z >= 0): keep one of them to start the tail piece.
    tiny_e = mpmath.ldexp(h.scale_even, -2 * h.target_bits)
    tiny_o = mpmath.ldexp(h.scale_odd, -2 * h.target_bits)
    last = max(
        i
        for i, (z, (e, o)) in enumerate(vals)
        if abs(e) * max(1, z * z) > tiny_e or abs(o) * max(1, z) > tiny_o or i == 0
    )
    pts = [*pts[: last + 2], mpmath.inf] if last + 2 < len(pts) - 1 else pts
    maxdeg = mpmath.calculus.quadrature.TanhSinh(mpmath.mp).guess_degree(mpmath.mp.prec)
    # Accept mpmath's error estimate if it is small relative to the (scaled) value or absolutely.
    rel_tol = mpmath.mpf(10) ** -(dps + 5)
    abs_tol = mpmath.ldexp(1, 20 - mpmath.mp.prec)
    out = []
    for k, part in ((0, 0), (1, 1), (2, 0)):
        scale = (h.scale_odd if part else h.scale_even) or mpmath.mp.one
        for degree in (maxdeg, maxdeg + 3):  # one retry with 8x the nodes before giving up
            val, err = mpmath.quad(
                lambda z, k=k, part=part, scale=scale: h.value(z)[part] * z**k / scale,
                pts,
                error=True,
                maxdegree=degree,
            )
            if err <= rel_tol * abs(val) or err <= abs_tol:
                break
        else:
            raise ArithmeticError(f"fisher_blocks_mp: quadrature of moment {k} did not converge")
        out.append(val * scale / mpmath.sqrt(2 * mpmath.pi))
    return tuple(out)


def _boosted(fn, prec: int):
    """fn() evaluated with increasing precision until two successive values agree to ``prec``
    bits (guards against cancellation such as 1 - tanh(u)^2 at large |u|)."""
    with mpmath.workprec(prec):
        prev = mpmath.mpf(fn())
    extra = 32
    while True:
        with mpmath.workprec(prec + extra):
            cur = mpmath.mpf(fn())
        if abs(cur - prev) <= mpmath.ldexp(abs(cur), 8 - prec) or extra >= _CAP_BITS:
            return cur
        prev, extra = cur, 2 * extra


def _zero_radius_blocks(g, b, kinks_u):
    """Limit r -> 0+ at fixed b, from the one-sided limits g+- of phi'^2 at b, taken as the values
    at b +- eps with eps = 2^(-2 prec) max(1, |b|), shrunk below a quarter of the distance from b
    to the nearest other kink (so a tiny b next to a kink is not mistaken for the kink); a
    difference g+ - g- at the level of the O(eps) slope term is rounded to 0 (b is not a kink)."""
    prec = mpmath.mp.prec
    eps = mpmath.ldexp(max(mpmath.mp.one, abs(b)), -2 * prec)
    distances = [abs(b - c) for c in kinks_u if c != b]
    if distances:
        eps = min(eps, min(distances) / 4)
    g_plus = _boosted(lambda: g(b + eps), 4 * prec)
    g_minus = _boosted(lambda: g(b - eps), 4 * prec)
    gbar = (g_plus + g_minus) / 2
    jump = g_plus - g_minus
    if abs(jump) <= mpmath.ldexp(max(abs(g_plus), abs(g_minus)), -prec):
        jump = mpmath.mp.zero
    return gbar, jump / mpmath.sqrt(2 * mpmath.pi), gbar


# --------------------------------------------------------------------------------------------
# Mean-field expectations
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _mp_phi(phi: sympy.Expr):
    """phi(u) as a function of one mpf."""
    return sympy.lambdify(U, phi, modules="mpmath")


@functools.lru_cache(maxsize=64)
def _is_odd(phi: sympy.Expr) -> bool:
    """Whether phi(-u) = -phi(u) identically (tanh, erf, hardtanh, the cubic)."""
    return sympy.simplify(phi.subs(U, -U) + phi) == 0


def _folded_expectation(f, tau, kinks_z, dps):
    """E[f(tau v)] = integral over z >= 0 of (f(tau z) + f(-tau z)) phi(z), split at the
    breakpoints of ``_breakpoints``.  The folded sum cancels where f is nearly odd (silu at small
    tau z: f(u) + f(-u) = O(u^2) from terms O(u), so about log10(1/(tau z)) digits are lost),
    so it is evaluated with log10(1/tau) + 20 more digits."""
    extra_bits = int(3.33 * max(0, -mpmath.log10(tau))) + 64

    def folded(z):
        with mpmath.workprec(mpmath.mp.prec + extra_bits):
            value = f(tau * z) + f(-tau * z)
        return value * mpmath.npdf(z)

    # Beyond z = 64 the Gaussian is below exp(-2048): later points would only cost time.
    points = [p for p in _breakpoints(tau, mpmath.mp.zero, kinks_z) if p <= 64] + [mpmath.inf]
    # Scaled to its size where the Gaussian is, so that quad's absolute error control acts as a
    # relative one (at tau = 1e-8, E[relu(tau v)^2] = 5e-17).
    scale = max(abs(folded(z)) for z in (mpmath.mpf(1) / 4, mpmath.mpf(1), mpmath.mpf(2)))
    scale = scale or mpmath.mp.one
    rel_tol = mpmath.mpf(10) ** -(dps + 5)
    maxdeg = mpmath.calculus.quadrature.TanhSinh(mpmath.mp).guess_degree(mpmath.mp.prec)
    for degree in (maxdeg, maxdeg + 3):
        value, error = mpmath.quad(
            lambda z: folded(z) / scale, points, error=True, maxdegree=degree
        )
        # A value far below the smallest double (the mass beyond a kink at 1e6 deviations)
        # needs no digits: a double holds 0 there.
        if error <= rel_tol * abs(value) or abs(value * scale) < mpmath.mpf("1e-400"):
            return value * scale
    raise ArithmeticError("mean_field_mp: quadrature did not converge")


def activation_moments_mp(phi, tau, dps: int = 40):
    """(E[phi(tau v)], E[phi(tau v)^2]) for v ~ N(0, 1), as mpf at ``dps`` digits.

    Each is an integral over z >= 0 of the folded integrand (f(tau z) + f(-tau z)) phi(z), split
    where the Gaussian and the activation change (z = k/tau and the kinks over tau), by
    tanh-sinh quadrature at ``dps`` + guard digits.  An odd phi (checked symbolically) has mean
    0 exactly.  At tau = 0: (phi(0), phi(0)^2).
    """
    phi = sympy.sympify(phi)
    f = _mp_phi(phi)
    with mpmath.workdps(dps + _GUARD_DPS):
        tau = _to_mpf(tau)
        if tau < 0:
            raise ValueError("tau must be non-negative")
        if tau == 0:
            value = f(mpmath.mp.zero)
            out = (value, value**2)
        else:
            kinks_z = [_to_mpf(c) / tau for c in _auto_kinks(phi)]
            mean = (
                mpmath.mp.zero if _is_odd(phi) else _folded_expectation(f, tau, kinks_z, dps)
            )
            out = (mean, _folded_expectation(lambda u: f(u) ** 2, tau, kinks_z, dps))
    with mpmath.workdps(dps):
        return tuple(+x for x in out)


def mean_field_mp(phi, tau, dps: int = 40):
    """(E[phi(tau v)], E[phi(tau v)^2], E[phi'(tau v)^2]) for v ~ N(0, 1), as mpf at ``dps``
    digits: ``activation_moments_mp`` and A00 of ``fisher_blocks_mp`` at r = tau, b = 0 (at
    tau = 0 the mean of the one-sided limits of phi'(0)^2)."""
    mean, second = activation_moments_mp(phi, tau, dps)
    return mean, second, fisher_blocks_mp(sympy.sympify(phi), tau, 0, dps=dps)[0]


def mean_abs_mp(phi, tau):
    """E[|phi(tau v)|] to about 15 digits: the scale against which a mean that vanishes by
    symmetry is judged."""
    phi = sympy.sympify(phi)
    f = _mp_phi(phi)
    with mpmath.workdps(15 + _GUARD_DPS):
        tau = _to_mpf(tau)
        if tau == 0:
            return abs(f(mpmath.mp.zero))
        kinks_z = [_to_mpf(c) / tau for c in (*_auto_kinks(phi), *_real_zeros(phi))]
        return +_folded_expectation(lambda u: abs(f(u)), tau, kinks_z, 15)


@functools.lru_cache(maxsize=64)
def _real_zeros(phi: sympy.Expr) -> tuple[sympy.Expr, ...]:
    """Real zeros of phi where sympy finds them (breakpoints for |phi|; a miss costs time)."""
    try:
        zeros = sympy.solveset(phi, U, domain=sympy.S.Reals)
    except Exception:  # noqa: BLE001 - any failure just means "no breakpoint found"
        return ()
    if not isinstance(zeros, sympy.FiniteSet):
        return ()
    return tuple(z for z in zeros if z.is_number and z.is_real)


# --------------------------------------------------------------------------------------------
# Inverse coefficients
# --------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _limits_at_infinity(phi: sympy.Expr) -> tuple[sympy.Expr, sympy.Expr]:
    """(L-, L+): the limits of phi'(u)^2 at -inf and +inf (finite for a bounded phi')."""
    g = _derivative(phi) ** 2
    return tuple(sympy.limit(g, U, end) for end in (-sympy.oo, sympy.oo))


def fisher_blocks_in_u_mp(phi, r, b, window: float = 200.0, dps: int = 40, for_inverse=False):
    """(A00, A0n, Ann) by quadrature in u = rz + b rather than in z, for a wide Gaussian
    (large r), where every feature of phi'^2 sits in a sliver of z of width 1/r:

        E[phi'(u)^2 z^k] = L+ E[z^k; z > z0] + L- E[z^k; z < z0]
                           + int (phi'(u)^2 - L+ [u > 0] - L- [u < 0]) z^k phi(z) du / r,

    z = (u - b)/r, z0 = -b/r, with L+- the limits of phi'^2 at +-inf; the half-line Gaussian
    moments in closed form and the rest (which decays) over [-window, window], split at the
    kinks of phi'. With ``for_inverse`` the working precision is ``dps`` plus twice the decimal
    exponent of r, so that A00 Ann - A0n^2 (of relative size 1/r^2) survives for
    ``inverse_coefficients_mp`` (slow for r beyond 1e50).
    Needs phi'^2 bounded with limits at +-inf, and its rest negligible beyond the window.
    """
    lower_limit, upper_limit = _limits_at_infinity(phi)
    extra = 2 * max(0, int(math.log10(float(r)) + 1)) if for_inverse else 0
    digits = dps + extra + _GUARD_DPS
    with mpmath.workdps(digits):
        r_mp, b_mp = _to_mpf(r), _to_mpf(b)
        g = _mp_dphi_sq(phi)
        low, high = mpmath.mpf(lower_limit), mpmath.mpf(upper_limit)
        z0 = -b_mp / r_mp
        density = mpmath.npdf(z0)
        above, below = mpmath.ncdf(-z0), mpmath.ncdf(z0)
        steps = (
            high * above + low * below,
            high * density - low * density,
            high * (above + z0 * density) + low * (below - z0 * density),
        )
        edges = {mpmath.mpf(x) for x in (0, 1, 2, 5, 10, 20, 50, 100)}
        edges |= {-e for e in edges} | {mpmath.mpf(window), -mpmath.mpf(window)}
        edges |= {mpmath.mpf(float(k)) for k in _auto_kinks(phi) if abs(float(k)) < window}
        edges = sorted(e for e in edges if abs(e) <= window)

        def rest(u):
            step = high if u > 0 else low if u < 0 else (high + low) / 2
            return g(u) - step

        # The integrand relative to the Gaussian at u = 0: mpmath.quad's tolerance is absolute,
        # and the integral may be 1e-200.
        blocks = []
        for k in range(3):
            def integrand(u, k=k):
                z = (u - b_mp) / r_mp
                return rest(u) * z**k * mpmath.exp((z0 - z) * (z0 + z) / 2)

            blocks.append(steps[k] + density / r_mp * mpmath.quad(integrand, edges))
        return tuple(blocks)


def inverse_coefficients_mp(A00, A0n, Ann, damping=0, dps: int = 40):
    """(Abar00, X, Y, Z) with (G + lam I)^-1 = Abar00 I + X w^*w^*^T + Y (e0 w^*^T + w^* e0^T)
    + Z e0 e0^T, lam = ``damping``.

    On span{w^*, e0} (in that order) G + lam I is M = [[Ann + lam, A0n], [A0n, A00 + lam]]; on the
    orthogonal complement it is A00 + lam.  Hence Abar00 = 1/(A00 + lam), X = inv(M)[0][0] - Abar00,
    Y = inv(M)[0][1], Z = inv(M)[1][1] - Abar00, with inv(M) the explicit 2x2 inverse.  The
    subtractions can cancel hundreds of digits (e.g. A00 ~ 1e-100 next to lam = 1e-8), so the
    working precision starts at 2 * ``dps`` digits and doubles until two successive precisions
    agree to ``dps`` + 5 digits.  Raises ZeroDivisionError when G + lam I is singular.
    """

    def at_precision(digits):
        with mpmath.workdps(digits):
            lam = _to_mpf(damping)
            a00, a0n, ann = (_to_mpf(a) + s for a, s in ((A00, lam), (A0n, 0), (Ann, lam)))
            det = ann * a00 - a0n * a0n
            if a00 == 0 or det == 0:
                raise ZeroDivisionError("G + damping*I is singular")
            inv00, inv01, inv11 = a00 / det, -a0n / det, ann / det
            abar = 1 / a00
            return (abar, inv00 - abar, inv01, inv11 - abar)

    digits = 2 * dps + _GUARD_DPS
    out = at_precision(digits)
    while True:
        finer = at_precision(2 * digits)
        with mpmath.workdps(2 * digits):
            agree = all(
                abs(a - b) <= mpmath.mpf(10) ** -(dps + 5) * abs(b) for a, b in zip(out, finer)
            )
        digits, out = 2 * digits, finer
        if agree or digits > 20000:
            break
    with mpmath.workdps(dps):
        return tuple(+c for c in out)


def inverse_coefficients_of(phi, r, b, damping=0, dps: int = 40, max_dps: int = 1280):
    """(Abar00, X, Y, Z) of the activation ``phi`` at (r, b), correct to ``dps`` digits.

    The coefficients can be ill-conditioned functions of (A00, A0n, Ann): for ReLU at
    t = b/r = 20, A00 and Ann both equal 1 to 86 digits and X depends on their difference.
    So after computing the blocks at ``digits`` digits, the coefficients' sensitivity to a
    relative change of 10^-digits in each block is measured; while it exceeds 10^-(dps/2)
    (the coefficients would have fewer than dps/2 correct digits, 20 by default — ample for
    checking doubles) the blocks are recomputed with twice the digits. Coefficients outside the range of doubles
    (below 1e-320 or above 1e309 in magnitude) are not held to this. At r = 0 the direction-average
    convention gives (1/(gbar + damping), 0, 0, 0).
    """
    digits = dps
    while digits <= max_dps:
        blocks = fisher_blocks_mp(phi, r, b, dps=digits)
        if r == 0:
            with mpmath.workdps(dps):
                zero = mpmath.mpf(0)
                return (1 / (blocks[0] + _to_mpf(damping)), zero, zero, zero)
        current = inverse_coefficients_mp(*blocks, damping=damping, dps=digits)
        with mpmath.workdps(3 * digits):
            step = mpmath.mpf(10) ** -digits
            sensitivity = mpmath.mpf(0)
            for k in range(3):
                nudged = list(blocks)
                nudged[k] = blocks[k] * (1 + step)
                moved = inverse_coefficients_mp(*nudged, damping=damping, dps=digits)
                for a, c in zip(moved, current):
                    # Only coefficients a double can hold need relative accuracy.
                    if mpmath.mpf("1e-320") <= abs(c) <= mpmath.mpf("1e309"):
                        sensitivity = max(sensitivity, abs(a - c) / abs(c))
            if sensitivity <= mpmath.mpf(10) ** -(dps // 2):
                with mpmath.workdps(dps):
                    return tuple(+c for c in current)
        digits *= 2
    raise ArithmeticError(f"inverse coefficients did not converge by {max_dps} digits")


# --------------------------------------------------------------------------------------------
# Dense matrices, Monte Carlo, dense natural gradient
# --------------------------------------------------------------------------------------------


def dense_fisher(w, A00, A0n, Ann) -> np.ndarray:
    """The (n+1)x(n+1) float64 matrix A00 I + (Ann - A00) w^*w^*^T + A0n (e0 w^*^T + w^* e0^T);
    ``A00 * I`` at w = 0 (the gbar I convention)."""
    w = np.asarray(w, dtype=float).ravel()
    n = w.size
    a00, a0n, ann = float(A00), float(A0n), float(Ann)
    G = a00 * np.eye(n + 1)
    r = np.linalg.norm(w)
    if r == 0.0:
        return G
    ws = np.append(w / r, 0.0)
    e0 = np.zeros(n + 1)
    e0[-1] = 1.0
    G += (ann - a00) * np.outer(ws, ws) + a0n * (np.outer(e0, ws) + np.outer(ws, e0))
    return G


def monte_carlo_fisher(phi, w, b, n_samples: int, seed) -> tuple[np.ndarray, np.ndarray]:
    """(mean, standard error) of y = phi'(u)^2 x* x*^T, u = w.x + b, over ``n_samples`` draws
    x ~ N(0, I_n) from numpy.random.default_rng(seed); standard error = sample std / sqrt(N).
    Processed in chunks of 65536 samples, merged with Chan's parallel mean/variance update."""
    dphi = _np_dphi(sympy.sympify(phi))
    w = np.asarray(w, dtype=float).ravel()
    n = w.size
    n_samples = int(n_samples)
    if n_samples < 2:
        raise ValueError("need at least two samples for a standard error")
    rng = np.random.default_rng(seed)
    count, mean, m2 = 0, np.zeros((n + 1, n + 1)), np.zeros((n + 1, n + 1))
    while count < n_samples:
        m = min(_MC_CHUNK, n_samples - count)
        x = rng.standard_normal((m, n))
        g2 = dphi(x @ w + float(b)) ** 2
        xs = np.concatenate([x, np.ones((m, 1))], axis=1)
        y = g2[:, None, None] * xs[:, :, None] * xs[:, None, :]
        c_mean = y.mean(axis=0)
        c_m2 = ((y - c_mean) ** 2).sum(axis=0)
        delta = c_mean - mean
        total = count + m
        mean = mean + delta * (m / total)
        m2 = m2 + c_m2 + delta**2 * (count * m / total)
        count = total
    std = np.sqrt(m2 / (count - 1))
    return mean, std / np.sqrt(count)


def natural_gradient_dense(W, b, grad_W, grad_b, A_blocks, damping):
    """Per unit i, solve (dense_fisher(W[i], *A_blocks[i]) + damping I) [dW; db] = [gW_i; gb_i].

    A matrix that is exactly zero (a dead unit with zero damping) is handled with the Moore-Penrose
    pseudo-inverse (which maps the gradient to zero).  ``b`` only fixes the unit count: the
    blocks already encode it.  Returns (nat_W, nat_b) shaped like (grad_W, grad_b).
    """
    W = np.atleast_2d(np.asarray(W, dtype=float))
    grad_W = np.asarray(grad_W, dtype=float).reshape(W.shape)
    grad_b = np.asarray(grad_b, dtype=float).reshape(W.shape[0])
    if np.asarray(b).size != W.shape[0] or len(A_blocks) != W.shape[0]:
        raise ValueError("W, b and A_blocks must describe the same number of units")
    n = W.shape[1]
    nat_W, nat_b = np.empty_like(grad_W), np.empty_like(grad_b)
    for i in range(W.shape[0]):
        M = dense_fisher(W[i], *A_blocks[i]) + float(damping) * np.eye(n + 1)
        rhs = np.append(grad_W[i], grad_b[i])
        if not M.any():
            sol = np.linalg.pinv(M) @ rhs
        else:
            sol = np.linalg.solve(M, rhs)
        nat_W[i], nat_b[i] = sol[:n], sol[n]
    return nat_W, nat_b


# --------------------------------------------------------------------------------------------
# Inputs with a mean and a variance
# --------------------------------------------------------------------------------------------


def dense_fisher_with_input_statistics(w, mean, variance, blocks) -> np.ndarray:
    """E[phi'(u)^2 x* x*^T] for x ~ N(mean, diag(variance)) as a float64 (n+1)x(n+1) matrix, from
    ``blocks`` = (I0, I1, I2) = E[phi'(sigma v + m)^2 v^k], v ~ N(0, 1), at sigma = |sqrt(variance)
    w| and m = w.mean + b (see the module docstring: conditioning on u). At sigma = 0, u = m is
    constant and the matrix is I0 E[x* x*^T]."""
    w = np.asarray(w, dtype=float).ravel()
    mean = np.asarray(mean, dtype=float).ravel()
    variance = np.broadcast_to(np.asarray(variance, dtype=float), w.shape)
    i0, i1, i2 = (float(value) for value in blocks)
    n = w.size
    sigma = math.sqrt(float(np.sum(variance * w * w)))
    a = variance * w / sigma if sigma > 0 else np.zeros(n)
    G = np.empty((n + 1, n + 1))
    G[:n, :n] = (i0 * (np.outer(mean, mean) + np.diag(variance) - np.outer(a, a))
                 + i1 * (np.outer(mean, a) + np.outer(a, mean)) + i2 * np.outer(a, a))
    G[:n, n] = G[n, :n] = i0 * mean + i1 * a
    G[n, n] = i0
    return G


def input_second_moment(mean, variance) -> np.ndarray:
    """E[x* x*^T] = [[diag(variance) + mean mean^T, mean], [mean^T, 1]] for
    x ~ N(mean, diag(variance))."""
    mean = np.asarray(mean, dtype=float).ravel()
    variance = np.broadcast_to(np.asarray(variance, dtype=float), mean.shape)
    n = mean.size
    M = np.empty((n + 1, n + 1))
    M[:n, :n] = np.diag(variance) + np.outer(mean, mean)
    M[:n, n] = M[n, :n] = mean
    M[n, n] = 1.0
    return M


def monte_carlo_fisher_product(phi, w, b, mean, variance, vector, n_samples: int, seed):
    """(mean, standard error) of y = phi'(u)^2 x* (x*.vector), u = w.x + b, over ``n_samples``
    draws x ~ N(mean, diag(variance)) from numpy.random.default_rng(seed): a Monte-Carlo estimate
    of G.vector with G = E[phi'(u)^2 x* x*^T]; standard error = sample std / sqrt(N)."""
    dphi = _np_dphi(sympy.sympify(phi))
    w = np.asarray(w, dtype=float).ravel()
    mean = np.asarray(mean, dtype=float).ravel()
    deviation = np.sqrt(np.broadcast_to(np.asarray(variance, dtype=float), w.shape))
    vector = np.asarray(vector, dtype=float).ravel()
    rng = np.random.default_rng(seed)
    x = mean + deviation * rng.standard_normal((int(n_samples), w.size))
    xs = np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)
    y = (dphi(x @ w + float(b)) ** 2 * (xs @ vector))[:, None] * xs
    return y.mean(axis=0), y.std(axis=0, ddof=1) / math.sqrt(y.shape[0])
