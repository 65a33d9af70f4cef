"""Checks of the independent references in fisher_sym.reference.

Every test compares against a computation that does not go through the code under test:
closed forms derived by hand (evaluated with mpmath), a differently organised mpmath quadrature,
Monte-Carlo sampling, mpmath's dense matrix inverse, or an explicit element-by-element build.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import sympy

from fisher_sym.reference import (
    inverse_coefficients_of,
    U,
    dense_fisher,
    fisher_blocks_mp,
    inverse_coefficients_mp,
    monte_carlo_fisher,
    natural_gradient_dense,
)

DPS = 40
REL = mpmath.mpf("1e-30")

RELU = sympy.Max(0, U)
TANH = sympy.tanh(U)


def _assert_close_mp(got, want, rel=REL, abs_floor=0):
    for k, (g, w) in enumerate(zip(got, want, strict=True)):
        assert isinstance(g, mpmath.mpf)
        err = abs(g - w)
        assert err <= rel * abs(w) or err <= abs_floor, (k, mpmath.nstr(g, 25), mpmath.nstr(w, 25))


# --------------------------------------------------------------------------------------------
# 1. Closed forms
# --------------------------------------------------------------------------------------------


def relu_closed_form(r, b):
    """phi'^2 = 1{u > 0}: with t = b/r, z > -t, so A00 = Phi(t), A0n = int_{-t}^inf z pdf = pdf(t),
    Ann = int_{-t}^inf z^2 pdf = [-z pdf]_{-t}^inf + (1 - Phi(-t)) = Phi(t) - t pdf(t)."""
    with mpmath.workdps(2 * DPS):
        t = mpmath.mpf(b) / mpmath.mpf(r)
        cdf = mpmath.erfc(-t / mpmath.sqrt(2)) / 2
        pdf = mpmath.exp(-t * t / 2) / mpmath.sqrt(2 * mpmath.pi)
        return cdf, pdf, cdf - t * pdf


def erf_closed_form(r, b):
    """phi = erf: phi'^2 = (4/pi) exp(-2u^2).  Completing the square in
    -z^2/2 - 2(rz + b)^2 = -(z - mu)^2 / (2 s^2) - 2 b^2 / (1 + 4 r^2) with
    s^2 = 1/(1 + 4r^2), mu = -4 r b s^2 gives, with y ~ N(0, 1),
    E[z^k ...] = (4/pi) s exp(-2b^2 s^2) E[(mu + s y)^k]."""
    with mpmath.workdps(2 * DPS):
        r, b = mpmath.mpf(r), mpmath.mpf(b)
        s2 = 1 / (1 + 4 * r * r)
        mu = -4 * r * b * s2
        c = 4 / mpmath.pi * mpmath.sqrt(s2) * mpmath.exp(-2 * b * b * s2)
        return c, c * mu, c * (mu * mu + s2)


def cubic_closed_form(r, b):
    """phi = u^3/3 + u: phi'^2 = ((rz + b)^2 + 1)^2, a polynomial in z whose Gaussian moments are
    E z^j = (j - 1)!! (j even), 0 (j odd)."""
    with mpmath.workdps(2 * DPS):
        r, b = mpmath.mpf(r), mpmath.mpf(b)
        p = [b * b + 1, 2 * r * b, r * r]  # (rz + b)^2 + 1 in powers of z
        sq = [mpmath.mpf(0)] * 5
        for i, pi in enumerate(p):
            for j, pj in enumerate(p):
                sq[i + j] += pi * pj

        def moment(j):
            return mpmath.mpf(0) if j % 2 else mpmath.fac2(j - 1)

        return tuple(sum(c * moment(j + k) for j, c in enumerate(sq)) for k in range(3))


@pytest.mark.parametrize(
    "r, b",
    [
        (1, 0.3),
        (2.5, -1.0),
        (0.7, 0.0),
        (1, 30),  # t = +30
        (1, -30),  # t = -30: A00 ~ 5e-198
        (1e-3, 1),  # t = +1e3
        (2e-3, -2),  # t = -1e3: A00 ~ 1e-217000
        (1e4, 50),  # narrow feature at z = -5e-3
        (1e4, -50),
        (1e4, 0.5),
        (0.05, -0.3),
    ],
)
def test_relu_closed_form(r, b):
    _assert_close_mp(fisher_blocks_mp(RELU, r, b, dps=DPS), relu_closed_form(r, b))


def test_shifted_relu_closed_form_uses_the_kink():
    # Max(0, u - 1.5) at bias b is ReLU at bias b - 1.5; kink at u = 3/2 (found automatically).
    phi = sympy.Max(0, U - sympy.Rational(3, 2))
    for r, b in [(0.8, 0.4), (50.0, 1.5)]:
        with mpmath.workdps(2 * DPS):
            want = relu_closed_form(r, mpmath.mpf(b) - 1.5)  # exact shift of the float b
        _assert_close_mp(fisher_blocks_mp(phi, r, b, dps=DPS), want)
    # passing the kink explicitly changes nothing
    got = fisher_blocks_mp(phi, 0.8, 0.4, kinks=(1.5,), dps=DPS)
    with mpmath.workdps(2 * DPS):
        want = relu_closed_form(0.8, mpmath.mpf(0.4) - 1.5)
    _assert_close_mp(got, want)


@pytest.mark.parametrize(
    "b, want",
    [
        (0.3, (1, 0, 1)),
        (-0.3, (0, 0, 0)),
        # at the kink the r -> 0+ limit has A0n = E[z 1{z > 0}] = 1/sqrt(2 pi)
        (0.0, (0.5, "1/sqrt(2 pi)", 0.5)),
    ],
)
def test_relu_zero_radius(b, want):
    got = fisher_blocks_mp(RELU, 0, b, dps=DPS)
    with mpmath.workdps(2 * DPS):
        inv_sqrt_2pi = 1 / mpmath.sqrt(2 * mpmath.pi)
        want = [inv_sqrt_2pi if isinstance(w, str) else mpmath.mpf(w) for w in want]
    _assert_close_mp(got, want, abs_floor=0)
    # ... and it is the limit of small r at fixed b
    small = fisher_blocks_mp(RELU, mpmath.mpf("1e-12"), b, dps=DPS)
    _assert_close_mp(small, got, rel=mpmath.mpf("1e-9"), abs_floor=mpmath.mpf("1e-9"))


def test_leaky_relu_zero_radius_kink():
    phi = sympy.Piecewise((U / 10, U < 0), (U, True))
    got = fisher_blocks_mp(phi, 0, 0, dps=DPS)
    with mpmath.workdps(2 * DPS):
        g_plus, g_minus = mpmath.mpf(1), mpmath.mpf(1) / 100  # (phi')^2 right and left of 0
        jump = (g_plus - g_minus) / mpmath.sqrt(2 * mpmath.pi)
        want = ((g_plus + g_minus) / 2, jump, (g_plus + g_minus) / 2)
    _assert_close_mp(got, want)


@pytest.mark.parametrize("r, b", [(0.3, 0.2), (1e4, 50), (0, -1.7), (1, -30)])
def test_linear(r, b):
    A00, A0n, Ann = fisher_blocks_mp(U, r, b, dps=DPS)
    assert abs(A00 - 1) < REL and abs(Ann - 1) < REL and abs(A0n) < REL


@pytest.mark.parametrize(
    "r, b",
    [(0.7, 0.4), (1.0, -2.0), (1, 30), (0.05, 50), (0.03, -30), (1e4, 50), (1e4, -0.5), (0, 0.9)],
)
def test_erf_closed_form(r, b):
    _assert_close_mp(
        fisher_blocks_mp(sympy.erf(U), r, b, dps=DPS),
        erf_closed_form(r, b),
        abs_floor=0 if b else REL,  # A0n = 0 exactly at b = 0
    )


@pytest.mark.parametrize("r, b", [(0.5, -0.3), (2.0, 1.5), (0.01, 10), (1e4, 50), (0, 2.0)])
def test_cubic_closed_form(r, b):
    got = fisher_blocks_mp(U**3 / 3 + U, r, b, dps=DPS)
    _assert_close_mp(got, cubic_closed_form(r, b))


# tanh has no closed form: compare against a plain quadrature of the cancellation-free
# sech(u)^4 (the module differentiates tanh to 1 - tanh(u)^2, which cancels in the tails).
@pytest.mark.parametrize("r, b", [(1, 30), (1e4, 50), (0.8, -0.6)])
def test_tanh_against_sech_quadrature(r, b):
    got = fisher_blocks_mp(TANH, r, b, dps=DPS)
    with mpmath.workdps(DPS + 20):
        r_, b_ = mpmath.mpf(r), mpmath.mpf(b)
        c = -b_ / r_
        pts = {c + s / r_ for s in (-30, -5, -1, 0, 1, 5, 30)} | {-8, -4, -2, 0, 2, 4, 8}
        pts = sorted(pts)

        def f(z):
            return mpmath.sech(r_ * z + b_) ** 4 * mpmath.npdf(z)

        # quad's error control is absolute: normalise by the integrand's size (1e-48 at b = 30)
        scale = max(f(z) for z in pts)
        pts = [mpmath.ninf, *pts, mpmath.inf]
        want = [
            scale * mpmath.quad(lambda z, k=k: f(z) * z**k / scale, pts, maxdegree=10)
            for k in range(3)
        ]
    _assert_close_mp(got, want)


# sigmoid: phi'^2 = sigma(u)^2 sigma(-u)^2 is even in u, so at b = 0 A0n vanishes exactly, while
# the module's f(z) - f(-z) is pure rounding noise (its two evaluations round differently).
@pytest.mark.parametrize("r, b", [(1, 0), (1e-3, 0), (2.5, -1.5)])
def test_sigmoid_against_plain_quadrature(r, b):
    got = fisher_blocks_mp(1 / (1 + sympy.exp(-U)), r, b, dps=DPS)
    with mpmath.workdps(DPS + 20):
        r_, b_ = mpmath.mpf(r), mpmath.mpf(b)

        def f(z):
            u = r_ * z + b_
            return (mpmath.exp(-abs(u)) / (1 + mpmath.exp(-abs(u))) ** 2) ** 2 * mpmath.npdf(z)

        pts = [mpmath.ninf, *sorted({-8, -2, 0, 2, 8, -b_ / r_}), mpmath.inf]
        want = [mpmath.quad(lambda z, k=k: f(z) * z**k, pts, maxdegree=10) for k in range(3)]
    if b == 0:
        assert got[1] == 0
        want[1] = mpmath.mpf(0)
    _assert_close_mp(got, want)


def test_tanh_zero_radius_and_continuity():
    got = fisher_blocks_mp(TANH, 0, 0.7, dps=DPS)
    with mpmath.workdps(2 * DPS):
        g = mpmath.sech(mpmath.mpf(0.7)) ** 4  # the float 0.7, as passed
    _assert_close_mp(got, (g, 0, g), abs_floor=0)
    assert got[1] == 0
    small = fisher_blocks_mp(TANH, mpmath.mpf("1e-10"), 0.7, dps=DPS)
    _assert_close_mp(small, got, rel=mpmath.mpf("1e-8"), abs_floor=mpmath.mpf("1e-8"))


def test_negative_radius_rejected():
    with pytest.raises(ValueError):
        fisher_blocks_mp(RELU, -1, 0.0)


# --------------------------------------------------------------------------------------------
# 2. Monte Carlo
# --------------------------------------------------------------------------------------------

MC_CASES = [
    (RELU, [0.8, -0.5, 0.3], 0.4),
    (RELU, [1.5, 0.2, -0.7, 0.9], -0.6),
    (RELU, [0.0, 0.0], 0.5),  # w = 0: G = gbar I with gbar = 1
    (TANH, [0.3, 1.2], 0.5),
    (TANH, [2.0, -1.0, 0.5, 0.1], -1.0),
    (TANH, [0.0, 0.0, 0.0], 0.7),  # w = 0: G = sech(0.7)^4 I
]


def _mc_zscores(phi, w, b, G, n_samples=400_000, seed=12345):
    mean, se = monte_carlo_fisher(phi, np.array(w), b, n_samples, seed)
    assert mean.shape == se.shape == G.shape
    exact = se <= 1e-12 * np.abs(mean)  # constant entries, e.g. bias-bias at w = 0
    assert np.allclose(mean[exact], G[exact], rtol=1e-12, atol=1e-14)
    return np.abs(mean - G)[~exact] / se[~exact]


@pytest.mark.parametrize("phi, w, b", MC_CASES)
def test_dense_fisher_against_monte_carlo(phi, w, b):
    A = fisher_blocks_mp(phi, np.linalg.norm(w), b, dps=20)
    z = _mc_zscores(phi, w, b, dense_fisher(np.array(w), *A))
    assert z.max() < 5, z.max()


def test_monte_carlo_detects_a_wrong_matrix():
    # negative control: flipping the sign of A0n must be caught by the same criterion
    phi, w, b = MC_CASES[0]
    A00, A0n, Ann = fisher_blocks_mp(phi, np.linalg.norm(w), b, dps=20)
    assert _mc_zscores(phi, w, b, dense_fisher(np.array(w), A00, -A0n, Ann)).max() > 5


def test_monte_carlo_is_deterministic_and_chunk_safe():
    w = np.array([0.4, -0.2, 0.9])
    m1, s1 = monte_carlo_fisher(TANH, w, 0.1, 70_001, seed=7)
    m2, s2 = monte_carlo_fisher(TANH, w, 0.1, 70_001, seed=7)
    assert np.array_equal(m1, m2) and np.array_equal(s1, s2)
    # chunking does not change the statistics: compare with a one-shot computation
    x = np.random.default_rng(7).standard_normal((70_001, 3))
    g2 = (1 - np.tanh(x @ w + 0.1) ** 2) ** 2
    xs = np.hstack([x, np.ones((len(x), 1))])
    y = g2[:, None, None] * xs[:, :, None] * xs[:, None, :]
    assert np.allclose(m1, y.mean(0), rtol=1e-12, atol=1e-15)
    assert np.allclose(s1, y.std(0, ddof=1) / np.sqrt(len(x)), rtol=1e-9)


# --------------------------------------------------------------------------------------------
# 3. Inverse coefficients
# --------------------------------------------------------------------------------------------


def _dense_mp(what, A00, A0n, Ann, lam):
    """(G + lam I) as an mpmath matrix, built entrywise from its definition."""
    n = len(what)
    M = mpmath.matrix(n + 1, n + 1)
    for i in range(n + 1):
        for j in range(n + 1):
            wi = what[i] if i < n else 0
            wj = what[j] if j < n else 0
            ei, ej = int(i == n), int(j == n)
            M[i, j] = (A00 + lam) * (i == j) + (Ann - A00) * wi * wj + A0n * (ei * wj + wi * ej)
    return M


@pytest.mark.parametrize(
    "phi, r, b, lam",
    [
        (TANH, 1.3, 0.4, 0),
        (TANH, 1.3, 0.4, "0.25"),
        (RELU, 0.5, -15.0, 0),  # t = -30: tiny, nearly degenerate blocks (det cancels)
        (RELU, 0.5, 1.0, "1e-3"),
        (sympy.erf(U), 1e4, 3.0, "1e-6"),
    ],
)
def test_inverse_coefficients_against_dense_mp_inverse(phi, r, b, lam):
    A = fisher_blocks_mp(phi, r, b, dps=DPS)
    with mpmath.workdps(3 * DPS):
        lam = mpmath.mpf(lam)
    abar, X, Y, Z = inverse_coefficients_mp(*A, damping=lam, dps=DPS)
    with mpmath.workdps(3 * DPS):
        v = [mpmath.mpf(x) for x in ("0.3", "-1.1", "0.7")]
        nv = mpmath.sqrt(sum(x * x for x in v))
        what = [x / nv for x in v]
        inv = _dense_mp(what, *A, lam) ** -1
        scale = max(abs(x) for x in inv)
        for i in range(4):
            for j in range(4):
                wi = what[i] if i < 3 else 0
                wj = what[j] if j < 3 else 0
                ei, ej = int(i == 3), int(j == 3)
                dyad = abar * (i == j) + X * wi * wj + Y * (ei * wj + wi * ej) + Z * ei * ej
                assert abs(dyad - inv[i, j]) <= REL * scale, (i, j)


def test_inverse_coefficients_singular():
    with pytest.raises(ZeroDivisionError):
        inverse_coefficients_mp(0, 0, 0)
    abar, X, Y, Z = inverse_coefficients_mp(0, 0, 0, damping=2)
    assert (abar, X, Y, Z) == (0.5, 0, 0, 0)


def test_dense_fisher_spectrum():
    # eigenvalues: A00 (n - 1 times) and those of [[Ann, A0n], [A0n, A00]]
    w = np.array([0.2, -0.4, 1.0, 0.3])
    A00, A0n, Ann = 0.6, 0.25, 0.9
    G = dense_fisher(w, A00, A0n, Ann)
    assert np.array_equal(G, G.T)
    want = sorted([A00] * 3 + list(np.linalg.eigvalsh([[Ann, A0n], [A0n, A00]])))
    assert np.allclose(np.linalg.eigvalsh(G), want, rtol=1e-13)
    assert np.array_equal(dense_fisher(np.zeros(3), A00, A0n, Ann), A00 * np.eye(4))


# --------------------------------------------------------------------------------------------
# 4. Dense natural gradient
# --------------------------------------------------------------------------------------------


def _explicit_nat_grad(w, gw, gb, A, lam):
    """Elementwise G + lam I from the definition, then numpy's inverse; zero at a zero matrix."""
    n = len(w)
    r = np.sqrt(sum(x * x for x in w))
    A00, A0n, Ann = (float(a) for a in A)
    M = np.zeros((n + 1, n + 1))
    for i in range(n + 1):
        M[i, i] += A00 + lam
        for j in range(n + 1):
            if r > 0 and i < n and j < n:
                M[i, j] += (Ann - A00) * w[i] * w[j] / r**2
            if r > 0 and i < n and j == n:
                M[i, j] += A0n * w[i] / r
            if r > 0 and i == n and j < n:
                M[i, j] += A0n * w[j] / r
    rhs = np.append(gw, gb)
    if not M.any():
        return np.zeros(n), 0.0  # the pseudo-inverse of 0 is 0
    sol = np.linalg.inv(M) @ rhs
    return sol[:n], sol[n]


@pytest.mark.parametrize("lam", [0.0, 1e-2])
def test_natural_gradient_dense_explicit(lam):
    W = np.array([[0.7, -0.2, 0.4], [0.0, 0.0, 0.0], [1.5, 0.5, -1.0], [0.0, 0.0, 0.0]])
    b = np.array([0.3, -0.5, -0.2, 0.6])
    phis = [RELU, RELU, TANH, TANH]  # unit 1: dead ReLU (w = 0, b < 0) -> G = 0
    A_blocks = [
        fisher_blocks_mp(p, np.linalg.norm(w), bi, dps=20)
        for p, w, bi in zip(phis, W, b, strict=True)
    ]
    assert all(a == 0 for a in A_blocks[1])
    rng = np.random.default_rng(3)
    gW, gb = rng.standard_normal(W.shape), rng.standard_normal(4)
    nat_W, nat_b = natural_gradient_dense(W, b, gW, gb, A_blocks, lam)
    assert nat_W.shape == W.shape and nat_b.shape == b.shape
    for i in range(4):
        ew, eb = _explicit_nat_grad(W[i], gW[i], gb[i], A_blocks[i], lam)
        assert np.allclose(nat_W[i], ew, rtol=1e-10, atol=1e-12)
        assert np.isclose(nat_b[i], eb, rtol=1e-10, atol=1e-12)
    if lam:
        # dead unit with damping: plain gradient / damping
        assert np.allclose(nat_W[1], gW[1] / lam) and np.isclose(nat_b[1], gb[1] / lam)
    else:
        assert not nat_W[1].any() and nat_b[1] == 0
    # w = 0, alive (tanh): G = gbar I
    gbar = float(A_blocks[3][0])
    assert np.allclose(nat_W[3], gW[3] / (gbar + lam))
    assert np.isclose(nat_b[3], gb[3] / (gbar + lam))


def test_natural_gradient_dense_matches_dyadic_inverse():
    # the same natural gradient through the inverse coefficients (no matrix solve at all)
    w, bi, lam = np.array([0.9, -0.3]), 0.2, 0.05
    A = fisher_blocks_mp(TANH, np.linalg.norm(w), bi, dps=DPS)
    abar, X, Y, Z = (float(c) for c in inverse_coefficients_mp(*A, damping=lam))
    gw, gb = np.array([0.4, 1.1]), -0.7
    what = w / np.linalg.norm(w)
    s = what @ gw
    want_w = abar * gw + X * what * s + Y * what * gb
    want_b = abar * gb + Y * s + Z * gb
    nat_W, nat_b = natural_gradient_dense(w[None], [bi], gw[None], [gb], [A], lam)
    assert np.allclose(nat_W[0], want_w, rtol=1e-12) and np.isclose(nat_b[0], want_b, rtol=1e-12)


def test_inverse_coefficients_of_resolves_ill_conditioned_tails():
    # ReLU at t = b/r = 20: A00 and Ann agree to 86 digits, X ≈ 1.1e-86 depends on their
    # difference. Hand-derived: with λ = φ(t)/Φ(t), m1 = λ, v = 1 − tλ − λ², and with no
    # damping X = (1 − v)/(A00 v), Y = −m1/(A00 v), Z = m1²/(A00 v).
    phi = sympy.Max(0, U)
    with mpmath.workdps(300):
        t = mpmath.mpf(20)
        A00 = mpmath.ncdf(t)
        lam = mpmath.npdf(t) / A00
        v = 1 - t * lam - lam**2
        want = (1 / A00, (1 - v) / (A00 * v), -lam / (A00 * v), lam**2 / (A00 * v))
    got = inverse_coefficients_of(phi, 0.5, 10.0)
    for g, w in zip(got, want):
        assert abs(g - w) <= mpmath.mpf(10) ** -30 * abs(w)
