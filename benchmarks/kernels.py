"""Baseline kernels timed beside the generated ones: the STREAM triad, plain SGD steps, the
layer kernels' loop over rows alone, and the same closed form written by hand in vectorised
NumPy."""

from __future__ import annotations

import math

import numba
import numpy as np

from fisher_sym import row_passes


@numba.njit(parallel=True, cache=True)
def triad(a, b, c, scalar):
    """STREAM triad a = b + scalar·c (2 reads, 1 write per element), parallel like the kernels."""
    for i in numba.prange(a.size):
        a[i] = b[i] + scalar * c[i]


@numba.njit(parallel=True, cache=True)
def sgd_step(W, grad_W, lr):
    """Plain SGD step W -= lr·grad_W, parallel over rows (1 read of each, 1 write of W)."""
    for i in numba.prange(W.shape[0]):
        w = W[i]
        g = grad_W[i]
        for j in range(w.size):
            w[j] = w[j] - lr * g[j]


@numba.njit(parallel=True, cache=True)
def read_all(buffer):
    """Sum of a float64 buffer: a parallel read of all of it (used to evict the caches)."""
    total = 0.0
    for i in numba.prange(buffer.size):
        total += buffer[i]
    return total


@numba.njit(parallel=True, cache=True)
def bare_row_pipeline(W, grad_W, out, write, lr, totals):
    """The layer kernels' loop over rows alone, with fixed coefficients a = 1/2, c = 1/4:
    ``totals.size`` runs of consecutive rows in parallel, each row written (out = a·grad_w +
    c·w, or for ``write`` = STEP w −= lr·(a·grad_w + c·w)) in the loop that sums the next
    (``row_passes.write_and_sum``), as in the kernels, but without their coefficients, checks
    and Python entry: what the two passes over each row cost by themselves. Each run's total
    of the row sums goes to ``totals`` (so that the sums are computed)."""
    m = W.shape[0]
    runs = min(m, totals.size)
    for run in numba.prange(runs):
        first = run * m // runs
        last = (run + 1) * m // runs
        total = 0.0
        ww, wg, gg = row_passes.row_sums(W[first], grad_W[first])
        for i in range(first, last):
            total += ww + wg + gg
            following = min(i + 1, last - 1)
            ww, wg, gg = row_passes.write_and_sum(
                W[i], grad_W[i], out[i], W[following], grad_W[following], 0.5, 0.25, lr, write,
                i + 1 < last,
            )
        totals[run] = total
        if write == row_passes.STREAM:
            row_passes.fence()


def numpy_sgd_step(W, grad_W, lr):
    W -= lr * grad_W


def _erfc_function():
    """scipy.special.erfc if SciPy is installed (it is not a project dependency), else
    math.erfc vectorised by NumPy (only m values per call, so the difference is small)."""
    try:
        from scipy.special import erfc

        return erfc, "scipy.special.erfc"
    except ImportError:
        return np.vectorize(math.erfc, otypes=[np.float64]), "math.erfc (SciPy not installed)"


ERFC, ERFC_SOURCE = _erfc_function()
INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def numpy_relu_natural_gradient(W, b, grad_W, grad_b, damping):
    """The ReLU unit-wise natural gradient written by hand in vectorised NumPy.

    Closed forms with t = b/r: A00 = Φ(t), A0n = φ(t), Ann = Φ(t) − t·φ(t). G has eigenvalue
    A00 on the complement of span(ŵ, e0), and on that plane the 2×2 block
    [[Ann, A0n], [A0n, A00]] (+ damping); the inverse is applied in those coordinates.
    Assumes r > 0 and a regular block (as in the benchmark's data).
    """
    work = W.astype(np.float64, copy=False)
    g = grad_W.astype(np.float64, copy=False)
    r = np.sqrt(np.einsum("ij,ij->i", work, work))
    t = b / r
    A00 = 0.5 * ERFC(-t / math.sqrt(2.0))
    A0n = INV_SQRT_2PI * np.exp(-0.5 * t * t)
    Ann = A00 - t * A0n
    p = np.einsum("ij,ij->i", work, g) / r  # ŵ·g_w
    a, c, d = Ann + damping, A0n, A00 + damping
    det = a * d - c * c
    along = (d * p - c * grad_b) / det  # coefficient of ŵ
    nat_b = (a * grad_b - c * p) / det
    scale = 1.0 / (A00 + damping)
    nat_W = scale[:, None] * g + ((along - scale * p) / r)[:, None] * work
    return nat_W.astype(W.dtype, copy=False), nat_b.astype(W.dtype, copy=False)


def relu_dense_blocks(W, b, damping):
    """The stacked dense (n+1)×(n+1) blocks G_i + damping·I of ReLU units (float64)."""
    from generated import relu

    m, n = W.shape
    r = np.linalg.norm(W.astype(np.float64), axis=1)
    A00, A0n, Ann = relu.fisher_blocks(r, b.astype(np.float64))
    w_hat = np.zeros((m, n + 1))
    w_hat[:, :n] = W / r[:, None]
    e0 = np.zeros(n + 1)
    e0[n] = 1.0
    G = (A00 + damping)[:, None, None] * np.eye(n + 1)
    G += (Ann - A00)[:, None, None] * (w_hat[:, :, None] * w_hat[:, None, :])
    cross = w_hat[:, :, None] * e0[None, None, :]
    G += A0n[:, None, None] * (cross + np.swapaxes(cross, 1, 2))
    return G


def dense_solve(G, grad_W, grad_b):
    """The exact per-unit inverse applied by a batched dense solve (numpy.linalg.solve)."""
    rhs = np.concatenate([grad_W, grad_b[:, None]], axis=1)[:, :, None]
    x = np.linalg.solve(G, rhs)[:, :, 0]
    return x[:, :-1], x[:, -1]
