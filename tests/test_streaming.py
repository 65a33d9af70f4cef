"""Non-temporal row writes (fisher_sym.streaming) against the same formula in NumPy, and the
layer kernel's streamed path against a dense solve."""

import numpy as np
import pytest

from fisher_sym import streaming
from generated import relu
from tests.test_kernels import dense_reference, load

DTYPES = [np.float64, np.float32]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [0, 1, 7, 15, 16, 17, 40, 257])
def test_write_row_equals_the_formula_at_every_alignment(dtype, n):
    """Every offset of the row within a 64-byte line: the peeled head, the streamed lines and
    the tail all give NumPy's a·g + c·w in the dtype's arithmetic (a, c rounded to it), bit
    for bit."""
    rng = np.random.default_rng(n)
    w = rng.normal(size=n).astype(dtype)
    g = rng.normal(size=n).astype(dtype)
    a, c = 0.37, -1.3
    want = dtype(a) * g + dtype(c) * w
    for offset in range(64 // np.dtype(dtype).itemsize):
        buffer = np.zeros(n + 64, dtype=dtype)
        out = buffer[offset : offset + n]
        out[:] = np.nan
        streaming.write_row(w, g, out, a, c)
        np.testing.assert_array_equal(out, want)
        assert not buffer[:offset].any() and not buffer[offset + n :].any()  # nothing else


def test_write_row_on_an_array_not_aligned_to_its_itemsize_writes_plainly():
    rng = np.random.default_rng(0)
    raw = np.zeros(8 * 100 + 3, dtype=np.uint8)
    out = raw[3 : 3 + 800].view(np.float64)
    w, g = rng.normal(size=100), rng.normal(size=100)
    streaming.write_row(w, g, out, 0.5, 0.25)
    np.testing.assert_array_equal(out, 0.5 * g + 0.25 * w)


@pytest.mark.parametrize("dtype, tolerance", [(np.float64, 1e-10), (np.float32, 2e-6)])
def test_streamed_layer_matches_the_dense_solve_and_the_plain_write(monkeypatch, dtype, tolerance):
    rng = np.random.default_rng(3)
    m, n = 6, 37
    W = (rng.normal(size=(m, n)) / np.sqrt(n)).astype(dtype)
    b = rng.normal(size=m).astype(dtype)
    grad_W = rng.normal(size=(m, n)).astype(dtype)
    grad_b = rng.normal(size=m).astype(dtype)
    plain = relu.natural_gradient(W, b, grad_W, grad_b, 1e-3)
    assert not streaming.use_streaming_stores(plain[0], streaming.STREAMING_MIN_BYTES)
    monkeypatch.setattr(streaming, "STREAMING_MIN_BYTES", 0)
    assert streaming.use_streaming_stores(plain[0], streaming.STREAMING_MIN_BYTES)
    streamed = relu.natural_gradient(W, b, grad_W, grad_b, 1e-3)
    np.testing.assert_array_equal(streamed[0], plain[0])
    np.testing.assert_array_equal(streamed[1], plain[1])
    _, phi = load("relu")
    want_W, want_b = dense_reference(phi, W, b, grad_W, grad_b, 1e-3)
    got = np.concatenate([streamed[0], streamed[1][:, None]], axis=1).astype(np.float64)
    want = np.concatenate([want_W, want_b[:, None]], axis=1)
    scale = np.linalg.norm(want, axis=1, keepdims=True)
    assert np.all(np.abs(got - want) <= tolerance * scale)
