"""The layer kernels' row passes (fisher_sym.row_passes): writes against the same formula in
NumPy, sums against exactly rounded ones (math.fsum), and the streamed layer kernel against a
dense solve."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fisher_sym import row_passes
from generated import relu
from tests.test_kernels import dense_reference, load

DTYPES = [np.float64, np.float32]
WRITES = [row_passes.WRITE, row_passes.STREAM, row_passes.STEP]
A, C, RATE = 0.37, -1.3, 0.01


def formula(write, w, g):
    """What ``write`` puts in a row, by NumPy in the dtype's arithmetic."""
    dtype = w.dtype.type
    nat = dtype(A) * g + dtype(C) * w
    return w - dtype(RATE) * nat if write == row_passes.STEP else nat


def exact_sums(w, g):
    """(Σ w², Σ w·g, Σ g²) correctly rounded (products of floats are exact in float64 only
    for float32; for float64 the fsum of the rounded products is within n·eps/2 of Σ|.|)."""
    x, y = w.astype(np.float64), g.astype(np.float64)
    return math.fsum(x * x), math.fsum(x * y), math.fsum(y * y)


def assert_sums_close(got, w, g):
    """Each sum within 2n·eps of the sum of its terms' magnitudes from the fsum (the vector
    sum's rounding, the products' own rounding in float64)."""
    x, y = np.abs(w.astype(np.float64)), np.abs(g.astype(np.float64))
    bounds = (math.fsum(x * x), math.fsum(x * y), math.fsum(y * y))
    eps = np.finfo(np.float64).eps
    for value, want, bound in zip(got, exact_sums(w, g), bounds, strict=True):
        assert abs(value - want) <= 2 * (w.size + 1) * eps * bound


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 15, 16, 17, 40, 257])
@pytest.mark.parametrize("write", WRITES)
def test_write_and_sum_writes_the_formula_at_every_alignment_and_sums_the_next_row(
    dtype, n, write
):
    """Every offset of the row within a 64-byte line: the peeled head, the vector lines and the
    tail all give NumPy's formula in the dtype's arithmetic, bit for bit, nothing outside the
    row is touched, and the next row's sums are those of ``row_sums`` bit for bit (so that the
    step and natural_gradient see the same sums), close to the exactly rounded ones."""
    rng = np.random.default_rng(n)
    w, g, next_w, next_g = (rng.normal(size=n).astype(dtype) for _ in range(4))
    want = formula(write, w, g)
    sums = row_passes.row_sums(next_w, next_g)
    assert_sums_close(sums, next_w, next_g)
    for offset in range(64 // np.dtype(dtype).itemsize):
        buffer = np.zeros(n + 64, dtype=dtype)
        out = buffer[offset : offset + n]
        if write == row_passes.STEP:
            out[:] = w
            row = out
        else:
            out[:] = np.nan
            row = w
        got = row_passes.write_and_sum(row, g, out, next_w, next_g, A, C, RATE, write, True)
        np.testing.assert_array_equal(out, want)
        assert not buffer[:offset].any() and not buffer[offset + n :].any()
        assert got == sums


@settings(max_examples=60, deadline=None)
@given(
    dtype=st.sampled_from(DTYPES),
    n=st.integers(0, 300),
    scale=st.sampled_from([1e-150, 1e-20, 1.0, 1e20, 1e150]),
    seed=st.integers(0, 2**32 - 1),
)
def test_row_sums_are_close_to_the_exactly_rounded_ones(dtype, n, scale, seed):
    rng = np.random.default_rng(seed)
    scale = min(scale, 1e18) if dtype == np.float32 else scale
    w = (scale * rng.normal(size=n)).astype(dtype)
    g = rng.standard_cauchy(size=n).astype(dtype)
    assert_sums_close(row_passes.row_sums(w, g), w, g)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("position", [0, 9, 39])  # in the first line, a middle one, the tail
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("array", ["w", "g"])
def test_a_non_finite_entry_makes_a_sum_the_kernels_check_non_finite(dtype, position, bad, array):
    """The kernels' finiteness check of W and grad_W: Σ w² or Σ w·g is non-finite whenever an
    entry of the row is, in a vector line or in the tail."""
    rng = np.random.default_rng(1)
    w, g = (rng.normal(size=40).astype(dtype) for _ in range(2))
    (w if array == "w" else g)[position] = bad
    ww, wg, _ = row_passes.row_sums(w, g)
    assert not (math.isfinite(ww) and math.isfinite(wg))


def test_stream_to_an_array_not_aligned_to_its_itemsize_writes_plainly():
    rng = np.random.default_rng(0)
    raw = np.zeros(8 * 100 + 3, dtype=np.uint8)
    out = raw[3 : 3 + 800].view(np.float64)
    w, g = rng.normal(size=100), rng.normal(size=100)
    row_passes.write_and_sum(w, g, out, w, g, A, C, RATE, row_passes.STREAM, False)
    np.testing.assert_array_equal(out, formula(row_passes.WRITE, w, g))


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 2e-6)])
def test_streamed_layer_matches_the_dense_solve_and_the_plain_write(monkeypatch, dtype, tolerance):
    rng = np.random.default_rng(3)
    m, n = 6, 37
    W = (rng.normal(size=(m, n)) / np.sqrt(n)).astype(dtype)
    b = rng.normal(size=m).astype(dtype)
    grad_W = rng.normal(size=(m, n)).astype(dtype)
    grad_b = rng.normal(size=m).astype(dtype)
    plain = relu.natural_gradient(W, b, grad_W, grad_b, 1e-3)
    assert not row_passes.use_streaming_stores(plain[0], row_passes.STREAMING_MIN_BYTES)
    monkeypatch.setattr(row_passes, "STREAMING_MIN_BYTES", 0)
    assert row_passes.use_streaming_stores(plain[0], row_passes.STREAMING_MIN_BYTES)
    streamed = relu.natural_gradient(W, b, grad_W, grad_b, 1e-3)
    np.testing.assert_array_equal(streamed[0], plain[0])
    np.testing.assert_array_equal(streamed[1], plain[1])
    _, phi = load("relu")
    want_W, want_b = dense_reference(phi, W, b, grad_W, grad_b, 1e-3)
    got = np.concatenate([streamed[0], streamed[1][:, None]], axis=1).astype(np.float64)
    want = np.concatenate([want_W, want_b[:, None]], axis=1)
    scale = np.linalg.norm(want, axis=1, keepdims=True)
    assert np.all(np.abs(got - want) <= tolerance * scale)
