"""Per-unit damping (``damping`` of shape (m,)): the layer kernels against dense solves of
(G_i + damping_i·E[x*x*ᵀ]) with ReLU's closed-form block (E[x*x*ᵀ] = I without input
statistics), ``inverse_coefficients`` against a dense inverse, the checks, the float32 step
near overflow, and the CUDA kernels under numba's simulator."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fisher_sym import reference
from generated import relu
from tests.test_layer_kernels import run_python

DAMPINGS = [0.0, 1e-3, 0.1, 1.0, 10.0]


def layer(m, n, dtype, seed):
    rng = np.random.default_rng(seed)
    arrays = (rng.normal(size=(m, n)) / np.sqrt(n), rng.normal(size=m),
              rng.normal(size=(m, n)), rng.normal(size=m))
    return tuple(a.astype(dtype) for a in arrays)


def relu_blocks(sigma, mean):
    """E[1{σv + mean > 0} v^k], k = 0, 1, 2, v ~ N(0, 1): (Φ(t), φ(t), Φ(t) − tφ(t)), t = mean/σ."""
    t = mean / sigma
    Phi = 0.5 * math.erfc(-t / math.sqrt(2))
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    return Phi, phi, Phi - t * phi


def dense_solve(W, b, grad_W, grad_b, damping, mean, variance):
    """Per unit, (E[φ'² x*x*ᵀ] + damping_i·E[x*x*ᵀ])⁻¹ g for ReLU, as rows (nat_w, nat_b), and
    the condition number of each matrix."""
    M = reference.input_second_moment(mean, variance)
    rows, conditions = [], []
    for w, bias, g, g_b, damping_i in zip(W, b, grad_W, grad_b, damping, strict=True):
        sigma = math.sqrt(float(np.sum(variance * w * w)))
        G = reference.dense_fisher_with_input_statistics(
            w, mean, variance, relu_blocks(sigma, float(w @ mean + bias))
        )
        A = G + damping_i * M
        rows.append(np.linalg.solve(A, np.append(g, g_b)))
        conditions.append(np.linalg.cond(A))
    return np.array(rows), np.array(conditions)


def assert_close_to_dense(got, want, conditions, tolerance):
    scale = np.linalg.norm(want, axis=1)
    error = np.abs(got - want).max(axis=1)
    # the solve and the kernels both lose up to the condition number times their rounding
    assert np.all(error <= tolerance * conditions * scale), (error / scale, conditions)


def check_against_dense(arrays, damping, mean=None, variance=None):
    """natural_gradient and natural_gradient_step with per-unit ``damping`` against the dense
    solve (None: no input statistics, the kernels' own path)."""
    W, b, grad_W, grad_b = arrays
    n = W.shape[1]
    given = {} if mean is None else {"input_mean": mean, "input_variance": variance}
    want, conditions = dense_solve(W, b, grad_W, grad_b, damping,
                                   np.zeros(n) if mean is None else mean,
                                   np.ones(n) if variance is None else variance)
    nat_W, nat_b = relu.natural_gradient(W, b, grad_W, grad_b, damping, **given)
    assert_close_to_dense(np.column_stack([nat_W, nat_b]), want, conditions, 1e-14)
    W_step, b_step = W.copy(), b.copy()
    relu.natural_gradient_step(W_step, b_step, grad_W, grad_b, 0.5, damping, **given)
    got = np.column_stack([W - W_step, b - b_step]) / 0.5
    # W − lr·nat rounds to an ulp of W: allow for it relative to lr·|nat|
    slack = 4e-16 * np.abs(np.column_stack([W, b])).max() / 0.5
    assert np.all(np.abs(got - want).max(axis=1)
                  <= 1e-14 * conditions * np.linalg.norm(want, axis=1) + slack)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    damping=st.lists(st.sampled_from(DAMPINGS), min_size=1, max_size=5),
)
def test_per_unit_damping_matches_the_dense_solve(n, seed, damping):
    damping = np.array(damping)
    check_against_dense(layer(damping.size, n, np.float64, seed), damping)


@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    damping=st.lists(st.sampled_from(DAMPINGS), min_size=1, max_size=5),
)
def test_per_unit_damping_with_input_statistics_matches_the_dense_solve(n, seed, damping):
    """With x ~ N(μ, diag(s²)) unit i solves (G_i + damping_i·E[x*x*ᵀ]) nat = g."""
    damping = np.array(damping)
    rng = np.random.default_rng(seed)
    mean = np.abs(rng.normal(size=n))
    variance = 10.0 ** rng.uniform(-1, 1, size=n)
    check_against_dense(layer(damping.size, n, np.float64, seed), damping, mean, variance)


@pytest.mark.parametrize("statistics", [False, True])
def test_float32_per_unit_damping_matches_the_dense_solve(statistics):
    arrays = layer(5, 7, np.float32, seed=3)
    damping = np.array(DAMPINGS, dtype=np.float32)
    rng = np.random.default_rng(3)
    mean, variance = (rng.normal(size=7), 10.0 ** rng.uniform(-1, 1, size=7)) if statistics \
        else (np.zeros(7), np.ones(7))
    given = {"input_mean": mean, "input_variance": variance} if statistics else {}
    nat_W, nat_b = relu.natural_gradient(*arrays, damping, **given)
    assert nat_W.dtype == np.float32
    want, conditions = dense_solve(*(a.astype(np.float64) for a in arrays),
                                   damping.astype(np.float64), mean, variance)
    assert_close_to_dense(np.column_stack([nat_W, nat_b]).astype(np.float64), want, conditions,
                          1e-6)


@pytest.mark.parametrize("statistics", [False, True])
def test_equal_dampings_give_the_scalar_results_bit_for_bit(statistics):
    """An array of one value and that value as a number: the same float64 damping per unit."""
    W, b, grad_W, grad_b = layer(6, 5, np.float64, seed=1)
    given = {"input_mean": np.full(5, 0.3), "input_variance": 2.0} if statistics else {}
    for dtype in (np.float64, np.float32, np.int64):
        array = np.full(6, 2, dtype=dtype)
        got = relu.natural_gradient(W, b, grad_W, grad_b, array, **given)
        want = relu.natural_gradient(W, b, grad_W, grad_b, 2.0, **given)
        assert got[0].tobytes() == want[0].tobytes() and got[1].tobytes() == want[1].tobytes()


def test_inverse_coefficients_broadcast_damping_and_match_the_dense_inverse():
    """(Abar00, X, Y, Z) read off the dense inverse of (G + damping·I) at w = (r, 0): in the
    basis (ŵ, the other weight, e0) it is [[Ā+X, 0, Y], [0, Ā, 0], [Y, 0, Ā+Z]]."""
    r = np.array([[0.5], [2.0]])
    b = np.array([-1.0, 0.0, 1.5])
    damping = np.array([0.0, 0.1, 3.0])
    got = relu.inverse_coefficients(r, b, damping)
    assert all(value.shape == (2, 3) for value in got)
    for i, j in np.ndindex(2, 3):
        w = np.array([r[i, 0], 0.0])
        G = reference.dense_fisher_with_input_statistics(
            w, np.zeros(2), np.ones(2), relu_blocks(r[i, 0], b[j])
        )
        M = np.linalg.inv(G + damping[j] * np.eye(3))
        Abar00 = M[1, 1]
        want = (Abar00, M[0, 0] - Abar00, M[0, 2], M[2, 2] - Abar00)
        np.testing.assert_allclose([value[i, j] for value in got], want, rtol=1e-12,
                                   atol=1e-13 * abs(Abar00))
    with pytest.raises(ValueError, match="entries 1"):
        relu.inverse_coefficients(r, b, np.array([0.0, -1.0, 0.0]))
    with pytest.raises(ValueError, match="does not broadcast"):
        relu.inverse_coefficients(r, b, np.ones(4))


BAD_DAMPINGS = [
    (np.array([0.0, -1e-3, 0.0, 1.0]), ValueError, r"units 1: -0\.001"),
    (np.array([0.0, 1.0, np.nan, np.inf]), ValueError, r"units 2, 3: nan, …"),
    (np.ones(3), ValueError, r"shape \(4,\).*got shape \(3,\)"),
    (np.ones((4, 1)), ValueError, r"shape \(4,\).*got shape \(4, 1\)"),
    (np.array(["a"] * 4), TypeError, "real numbers"),
]


@pytest.mark.parametrize("statistics", [False, True])
@pytest.mark.parametrize("damping, error, message", BAD_DAMPINGS)
def test_bad_damping_arrays_are_refused_before_any_work(damping, error, message, statistics):
    arrays = layer(4, 3, np.float32, seed=2)
    W, b, grad_W, grad_b = arrays
    saved = [a.copy() for a in arrays]
    given = {"input_mean": np.zeros(3)} if statistics else {}
    out = (np.full_like(W, 7.0), np.full_like(b, 7.0))
    with pytest.raises(error, match=message):
        relu.natural_gradient(W, b, grad_W, grad_b, damping, out=out, **given)
    assert (out[0] == 7.0).all() and (out[1] == 7.0).all()
    with pytest.raises(error, match=message):
        relu.natural_gradient_step(W, b, grad_W, grad_b, 0.1, damping, **given)
    for array, copy in zip(arrays, saved, strict=True):
        assert array.tobytes() == copy.tobytes()


def test_a_float32_damping_array_is_used_as_float64():
    """A float32 array of m numbers is converted to float64 (a copy), not viewed."""
    W, b, grad_W, grad_b = layer(3, 4, np.float64, seed=4)
    damping = np.array([0.5, 0.0, 2.0], dtype=np.float32)
    got = relu.natural_gradient(W, b, grad_W, grad_b, damping)
    want, conditions = dense_solve(W, b, grad_W, grad_b, damping.astype(np.float64),
                                   np.zeros(4), np.ones(4))
    assert_close_to_dense(np.column_stack(got), want, conditions, 1e-14)


def test_float32_step_whose_nat_w_overflows_float32_but_lr_nat_w_does_not():
    """nat_w ≈ 2·(0, 3e38, −1e38) is beyond float32 but lr·nat_w is not: the step must not form
    nat_w in float32 (it would write −inf) but take it in float64 and round W − lr·nat_w once."""
    W = np.array([[1.0, 0.0, 0.0]], np.float32)
    b = np.array([0.0], np.float32)
    grad_W = np.array([[0.0, 3e38, -1e38]], np.float32)
    grad_b = np.array([0.0], np.float32)
    want, _ = dense_solve(W.astype(np.float64), b.astype(np.float64),
                          grad_W.astype(np.float64), grad_b.astype(np.float64), [0.0],
                          np.zeros(3), np.ones(3))
    W_step, b_step = W.copy(), b.copy()
    relu.natural_gradient_step(W_step, b_step, grad_W, grad_b, 1e-3)
    assert np.all(np.isfinite(W_step))
    np.testing.assert_allclose(W_step[0], (W[0] - 1e-3 * want[0, :3]).astype(np.float32),
                               rtol=1e-6)
    np.testing.assert_allclose(b_step, b - 1e-3 * want[:, 3], rtol=1e-6, atol=0)


CUDA_CHECK = """
import json
import numpy as np
from numba import config, cuda
from generated import relu
from tests.test_layer_kernels import close

relu._CUDA["threads"] = 64  # keep the simulator quick
rng = np.random.default_rng(8)
m, n = 5, 12
W, b, gW, gb = (rng.normal(size=(m, n)) / np.sqrt(n), rng.normal(size=m),
                rng.normal(size=(m, n)), rng.normal(size=m))
damping = np.array([0.0, 1e-3, 0.1, 1.0, 10.0])
mean, variance = np.abs(rng.normal(size=n)), 10.0 ** rng.uniform(-1, 1, size=n)
report = {}
for fused in (True, False):
    relu._CUDA["device_coefficients"] = None if fused else False
    for statistics in (False, True):
        given = {"input_mean": mean, "input_variance": variance} if statistics else {}
        key = f"{'fused' if fused else 'two kernels'} statistics={statistics}"
        cpu = relu.natural_gradient(W, b, gW, gb, damping, **given)
        host = relu.natural_gradient_cuda(W, b, gW, gb, damping, **given)
        device = [cuda.to_device(a) for a in (W, b, gW, gb)]
        on_device = relu.natural_gradient_cuda(*device, cuda.to_device(damping), **given)
        W_cpu, b_cpu = W.copy(), b.copy()
        relu.natural_gradient_step(W_cpu, b_cpu, gW, gb, 0.3, damping, **given)
        relu.natural_gradient_step_cuda(*device, 0.3, cuda.to_device(damping), **given)
        W_host, b_host = W.copy(), b.copy()
        relu.natural_gradient_step_cuda(W_host, b_host, gW, gb, 0.3, damping, **given)
        report[key] = {
            "host": max(close(host[0], cpu[0], np.float64), close(host[1], cpu[1], np.float64)),
            "device": max(close(on_device[0].copy_to_host(), cpu[0], np.float64),
                          close(on_device[1].copy_to_host(), cpu[1], np.float64)),
            "step_device": max(close(device[0].copy_to_host(), W_cpu, np.float64),
                               close(device[1].copy_to_host(), b_cpu, np.float64)),
            "step_host": max(close(W_host, W_cpu, np.float64), close(b_host, b_cpu, np.float64)),
        }
errors = {}
W_before = W.copy()
for name, bad in (("negative", np.array([0.0, 1.0, -1.0, 0.0, 0.0])), ("shape", np.ones(4))):
    try:
        relu.natural_gradient_step_cuda(W, b, gW, gb, 0.3, cuda.to_device(bad))
    except ValueError as error:
        errors[name] = str(error)
errors["untouched"] = bool((W == W_before).all())
report["errors"] = errors
print(json.dumps(report))
"""


def test_cuda_kernels_take_per_unit_damping_on_the_host_or_the_device():
    """Under numba's simulator: the fused kernel and the two-kernel path, with and without
    input statistics, damping as a NumPy or a device array, against the CPU kernels (which the
    tests above hold to the dense solve); a bad device array is refused before any work."""
    report = run_python(CUDA_CHECK, {"NUMBA_ENABLE_CUDASIM": "1"})
    errors = report.pop("errors")
    assert "units 2: -1.0" in errors["negative"]
    assert "shape (5,)" in errors["shape"]
    assert errors["untouched"]
    for key, values in report.items():
        for label, value in values.items():
            assert value <= 1000.0, (key, label, value)  # float64 epsilons, as the CUDA tests
