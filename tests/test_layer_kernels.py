"""The single-pass layer kernels: natural_gradient(out=), natural_gradient_step, their checks,
and the CUDA kernels under numba's CUDA simulator (in a subprocess: the simulator must be
enabled before numba.cuda is first imported). Correctness only; benchmarks/ does the timing."""

import functools
import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from fisher_sym import runtime
from generated import relu

ROOT = Path(__file__).resolve().parents[1]
DTYPES = [np.float64, np.float32]


def close(got, want, dtype):
    """The largest difference in units of the dtype's epsilon, relative to each value of want
    (plus 1e-3 of its largest, for values near zero): for the simulator checks."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = np.abs(want) + np.abs(want).max() * 1e-3
    return float(np.max(np.abs(got - want) / scale) / np.finfo(dtype).eps)


def layer(m, n, dtype, seed=0):
    """m units with a w = 0 unit (b > 0: the r = 0 convention), a dead unit (w = 0, b < 0) and
    a unit with its bias in the tail."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(m, n)) / np.sqrt(n)
    b = rng.normal(size=m)
    W[1], b[1] = 0.0, 0.7
    W[2], b[2] = 0.0, -1.0
    b[3] = -4.0 * np.linalg.norm(W[3])
    grad_W = rng.normal(size=(m, n))
    grad_b = rng.normal(size=m)
    return tuple(a.astype(dtype) for a in (W, b, grad_W, grad_b))


def float64_reference(W, b, grad_W, grad_b, damping):
    """The natural gradient of the same (cast) values, computed in float64."""
    return relu.natural_gradient(*(a.astype(np.float64) for a in (W, b, grad_W, grad_b)), damping)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("damping", [0.0, 1e-3])
def test_out_is_written_in_place_and_equals_the_allocating_call(dtype, damping):
    W, b, grad_W, grad_b = layer(7, 33, dtype)
    want_W, want_b = relu.natural_gradient(W, b, grad_W, grad_b, damping)
    out = (np.full_like(W, np.nan), np.full_like(b, np.nan))
    got = relu.natural_gradient(W, b, grad_W, grad_b, damping, out=out)
    assert got[0] is out[0] and got[1] is out[1]
    np.testing.assert_array_equal(out[0], want_W)
    np.testing.assert_array_equal(out[1], want_b)
    assert not out[0][2].any() and out[1][2] == 0.0 or damping > 0  # dead unit: pseudo-inverse


def row_coefficients(W, b, grad_W, grad_b, damping):
    """(Abar00, along_w) per unit in float64, from the public coefficients and the decomposition
    nat_w = Abar00·g + along_w·w, along_w = (X·(ŵ·g) + Y·g_b)/r (0 at r = 0)."""
    W, b, grad_W, grad_b = (a.astype(np.float64) for a in (W, b, grad_W, grad_b))
    r = np.linalg.norm(W, axis=1)
    Abar00, X, Y, _ = relu.inverse_coefficients(r, b, damping)
    safe_r = np.where(r > 0, r, 1.0)
    along_w = np.where(r > 0, (X * np.einsum("ij,ij->i", W, grad_W) / safe_r + Y * grad_b) / safe_r,
                       0.0)
    return Abar00, along_w


def row_terms(W, b, grad_W, grad_b, damping):
    """|Abar00|·|grad_W| + |along_w|·|W| per entry: the sizes of the two terms of nat_W."""
    Abar00, along_w = row_coefficients(W, b, grad_W, grad_b, damping)
    return (np.abs(Abar00)[:, None] * np.abs(grad_W.astype(np.float64))
            + np.abs(along_w)[:, None] * np.abs(W.astype(np.float64)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 33, 300])
def test_results_are_the_float64_ones_to_the_rounding_of_the_dtypes_arithmetic(dtype, n):
    """nat_W is Abar00·g + along_w·w in the dtype's arithmetic (the coefficients rounded to it):
    within eps·(|Abar00·g| + |along_w·w|) + eps/2·|nat| of the float64 result (two roundings of
    each term, one of the sum), which float64 arrays meet to its own rounding; nat_b is
    computed in float64 and rounded once."""
    W, b, grad_W, grad_b = layer(9, n, dtype, seed=n)
    got_W, got_b = relu.natural_gradient(W, b, grad_W, grad_b, 1e-3)
    assert got_W.dtype == dtype and got_b.dtype == dtype
    want_W, want_b = float64_reference(W, b, grad_W, grad_b, 1e-3)
    eps = np.finfo(dtype).eps
    terms = row_terms(W, b, grad_W, grad_b, 1e-3)
    assert np.all(np.abs(got_W - want_W) <= eps * (terms + 0.5 * np.abs(want_W)) + 1e-300)
    np.testing.assert_array_max_ulp(got_b, want_b.astype(dtype), maxulp=1)


def test_float32_writes_are_the_float32_formula_bit_for_bit():
    """Abar00·g + along_w·w in float32 arithmetic, recomputed by NumPy from the float64
    coefficients, equals the kernel's float32 nat_W bit for bit (the step then equals
    W − lr·nat_W, see below)."""
    W, b, grad_W, grad_b = layer(9, 57, np.float32, seed=4)
    got_W, _ = relu.natural_gradient(W, b, grad_W, grad_b, 1e-3)
    Abar00, along_w = row_coefficients(W, b, grad_W, grad_b, 1e-3)
    want = (Abar00.astype(np.float32)[:, None] * grad_W
            + along_w.astype(np.float32)[:, None] * W)
    # the row sums' order differs (SIMD partial sums), which can move a coefficient by an ulp
    # of float64 and, rarely, its float32 rounding: allow 1 ulp where that happened
    np.testing.assert_array_max_ulp(got_W, want, maxulp=1)
    assert np.mean(got_W == want) > 0.99


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_step_equals_the_out_of_place_update(dtype, damping):
    W, b, grad_W, grad_b = layer(8, 45, dtype, seed=3)
    lr = 0.3
    nat_W, nat_b = float64_reference(W, b, grad_W, grad_b, damping)
    want_W = W.astype(np.float64) - lr * nat_W
    want_b = (b.astype(np.float64) - lr * nat_b).astype(dtype)
    W_step, b_step = W.copy(), b.copy()
    returned = relu.natural_gradient_step(W_step, b_step, grad_W, grad_b, lr, damping)
    assert returned[0] is W_step and returned[1] is b_step
    eps = np.finfo(dtype).eps
    terms = row_terms(W, b, grad_W, grad_b, damping)
    bound = eps * (np.abs(want_W) + lr * (terms + 2 * np.abs(nat_W))) + 1e-300
    assert np.all(np.abs(W_step - want_W) <= bound)
    np.testing.assert_array_max_ulp(b_step, want_b, maxulp=1)
    # and exactly W − lr·nat_W in the dtype's arithmetic, with the out-of-place result
    out_W, _ = relu.natural_gradient(W, b, grad_W, grad_b, damping)
    np.testing.assert_array_equal(W_step, W - dtype(lr) * out_W)


def test_non_contiguous_input_is_accepted_and_copied():
    W, b, grad_W, grad_b = layer(6, 20, np.float64)
    wide = np.zeros((6, 40))
    wide[:, ::2] = W
    got = relu.natural_gradient(wide[:, ::2], b, grad_W, grad_b, 1e-3)
    want = relu.natural_gradient(W, b, grad_W, grad_b, 1e-3)
    np.testing.assert_array_equal(got[0], want[0])


@pytest.mark.parametrize(
    "make_out, error, message",
    [
        (lambda W, b: [np.empty_like(W), np.empty_like(b)], TypeError, "tuple"),
        (lambda W, b: (np.empty_like(W),), TypeError, "tuple"),
        (lambda W, b: (np.empty(W.shape, np.float32), np.empty_like(b)), TypeError, "dtype"),
        (lambda W, b: (np.empty((5, 7)), np.empty_like(b)), ValueError, "shape"),
        (lambda W, b: (np.empty_like(W), np.empty(b.size + 1)), ValueError, "shape"),
        (lambda W, b: (np.empty(W.shape[::-1]).T, np.empty_like(b)), ValueError, "C-contiguous"),
        (lambda W, b: (W, np.empty_like(b)), ValueError, "overlap"),
        (lambda W, b: (np.empty_like(W), b), ValueError, "overlap"),
        (lambda W, b: ([[0.0]], np.empty_like(b)), TypeError, "numpy array"),
    ],
)
def test_bad_out_is_refused_before_anything_is_written(make_out, error, message):
    W, b, grad_W, grad_b = layer(5, 6, np.float64)
    out = make_out(W, b)
    before = [np.array(a, copy=True) for a in (W, b, grad_W, grad_b)]
    with pytest.raises(error, match=message):
        relu.natural_gradient(W, b, grad_W, grad_b, out=out)
    for array, copy in zip((W, b, grad_W, grad_b), before, strict=True):
        np.testing.assert_array_equal(array, copy)


def test_read_only_out_is_refused():
    W, b, grad_W, grad_b = layer(5, 6, np.float64)
    nat_W = np.empty_like(W)
    nat_W.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        relu.natural_gradient(W, b, grad_W, grad_b, out=(nat_W, np.empty_like(b)))


@pytest.mark.parametrize(
    "lr, error", [(np.nan, ValueError), (np.inf, ValueError), (-np.inf, ValueError),
                  ("0.1", TypeError), (None, TypeError), (True, TypeError), (1j, TypeError)]
)
def test_bad_learning_rate_is_refused_before_anything_is_written(lr, error):
    W, b, grad_W, grad_b = layer(5, 6, np.float64)
    W0, b0 = W.copy(), b.copy()
    with pytest.raises(error, match="lr"):
        relu.natural_gradient_step(W, b, grad_W, grad_b, lr)
    np.testing.assert_array_equal(W, W0)
    np.testing.assert_array_equal(b, b0)


def test_step_refuses_arrays_it_cannot_update_in_place():
    W, b, grad_W, grad_b = layer(5, 6, np.float64)
    with pytest.raises(ValueError, match="C-contiguous"):
        relu.natural_gradient_step(np.asfortranarray(W), b, grad_W, grad_b, 0.1)
    frozen = W.copy()
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        relu.natural_gradient_step(frozen, b, grad_W, grad_b, 0.1)
    with pytest.raises(ValueError, match="overlap"):
        relu.natural_gradient_step(W, b, W, grad_b, 0.1)
    with pytest.raises(ValueError, match="damping"):
        relu.natural_gradient_step(W, b, grad_W, grad_b, 0.1, damping=-1.0)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda a: a.update(grad_W=np.ones((5, 7))), "grad_W must have W's shape"),
        (lambda a: a.update(grad_b=np.ones(6)), "grad_b must have b's shape"),
        (lambda a: a.update(b=np.ones(4)), "b must have shape \\(5,\\)"),
        (lambda a: a.update(lr=math.inf), "lr must be finite"),
        (lambda a: a.update(damping=math.nan), "damping must be finite"),
        (lambda a: a.update(damping=-0.5), "damping must be finite and non-negative"),
        (lambda a: a["b"].__setitem__(3, np.nan), "b has non-finite values"),
    ],
)
def test_arguments_the_kernel_checks_are_refused_before_the_step_writes(change, message):
    """Shapes, lr, damping and b are checked by the kernel itself, before its first write,
    when the arguments pass the attribute tests: the thorough checks' messages, nothing
    written."""
    W, b, grad_W, grad_b = layer(5, 6, np.float64)
    arguments = {"W": W, "b": b, "grad_W": grad_W, "grad_b": grad_b, "lr": 0.1, "damping": 0.0}
    change(arguments)
    W0, b0 = arguments["W"].copy(), arguments["b"].copy()
    with pytest.raises(ValueError, match=message):
        relu.natural_gradient_step(**arguments)
    np.testing.assert_array_equal(arguments["W"], W0)
    np.testing.assert_array_equal(arguments["b"], b0)


def test_numpy_scalars_and_python_floats_give_the_same_step():
    """lr and damping as NumPy scalars or ints take the thorough checks; the result is the
    same as with Python floats (the kernels' own checks)."""
    W, b, grad_W, grad_b = layer(7, 9, np.float32)
    fast = relu.natural_gradient_step(W.copy(), b.copy(), grad_W, grad_b, 0.25, 1.0)
    checked = relu.natural_gradient_step(W.copy(), b.copy(), grad_W, grad_b, np.float32(0.25), 1)
    np.testing.assert_array_equal(fast[0], checked[0])
    np.testing.assert_array_equal(fast[1], checked[1])


@pytest.mark.parametrize("name, row", [("W", 2), ("grad_W", 4)])
def test_non_finite_rows_are_reported_and_the_step_leaves_only_them_unchanged(name, row):
    W, b, grad_W, grad_b = layer(6, 10, np.float64)
    arrays = {"W": W, "grad_W": grad_W}
    arrays[name][row, 3] = np.nan
    with pytest.raises(ValueError, match=f"{name} has non-finite values \\(units {row}\\)"):
        relu.natural_gradient(W, b, grad_W, grad_b)
    W_step, b_step = W.copy(), b.copy()
    with pytest.raises(ValueError, match=f"units {row}\\); those units were left unchanged"):
        relu.natural_gradient_step(W_step, b_step, grad_W, grad_b, 0.1, 1e-3)
    np.testing.assert_array_equal(W_step[row], W[row])
    assert b_step[row] == b[row]
    others = np.arange(6) != row
    assert np.all(W_step[others] != W[others]) and np.all(b_step[others] != b[others])


def test_non_finite_bias_is_refused_before_anything_is_written():
    W, b, grad_W, grad_b = layer(4, 5, np.float64)
    grad_b[1] = np.inf
    W0 = W.copy()
    with pytest.raises(ValueError, match="grad_b has non-finite"):
        relu.natural_gradient_step(W, b, grad_W, grad_b, 0.1)
    np.testing.assert_array_equal(W, W0)


def test_overflowing_unit_raises_and_the_step_leaves_it_unchanged():
    W = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([-37.5, 0.0])  # unit 0: A00 ≈ 5e-309, its inverse ≈ 1e308 × the gradient
    grad_W = np.full((2, 2), 1e3)
    grad_b = np.array([1e3, 1.0])
    with pytest.raises(FloatingPointError, match="units 0"):
        relu.natural_gradient(W, b, grad_W, grad_b)
    W_step, b_step = W.copy(), b.copy()
    with pytest.raises(FloatingPointError, match="units 0: .*left unchanged"):
        relu.natural_gradient_step(W_step, b_step, grad_W, grad_b, 1.0)
    np.testing.assert_array_equal(W_step[0], W[0])
    assert b_step[0] == b[0] and b_step[1] != b[1]


def test_float32_coefficients_beyond_float32_are_applied_in_float64():
    """A unit far in ReLU's tail (b/r = −13.5) has Abar00 ≈ 1.3e41, beyond float32; its row is
    small enough (grad_w = 1e-40) for a finite result. Rounded to float32 the coefficient would
    be inf and the row inf or NaN; the kernel computes such a row in float64 instead, rounded
    once, in both the natural gradient and the step."""
    W = np.zeros((2, 4), np.float32)
    W[0, 0], W[1] = 1.0, 0.5
    b = np.array([-13.5, 0.0], np.float32)
    grad_W = np.zeros((2, 4), np.float32)
    grad_W[0], grad_W[1] = np.float32(1e-40), 1.0
    grad_b = np.zeros(2, np.float32)
    assert relu.inverse_coefficients(1.0, -13.5)[0] > float(np.finfo(np.float32).max)
    got_W, got_b = relu.natural_gradient(W, b, grad_W, grad_b)
    want_W, want_b = float64_reference(W, b, grad_W, grad_b, 0.0)
    assert np.all(np.isfinite(got_W)) and np.all(np.isfinite(got_b))
    np.testing.assert_array_max_ulp(got_W[0], want_W[0].astype(np.float32), maxulp=1)
    W_step, b_step = W.copy(), b.copy()
    relu.natural_gradient_step(W_step, b_step, grad_W, grad_b, 1e-3)
    np.testing.assert_array_max_ulp(W_step[0], (W[0] - 1e-3 * want_W[0]).astype(np.float32),
                                    maxulp=1)


def test_a_unit_near_overflow_that_stays_finite_is_written():
    # The bound |Abar00|·|g| + |along_w|·|w| exceeds half the largest float32, so every entry is
    # checked; they are finite, so the row is written like any other.
    W, b, grad_W, grad_b = layer(5, 4, np.float32)
    grad_W[0] = np.float32(1.2e38)
    got_W, _ = relu.natural_gradient(W, b, grad_W, grad_b, 1.0)
    want_W, _ = float64_reference(W, b, grad_W, grad_b, 1.0)
    assert np.all(np.isfinite(got_W))
    # a row near overflow is computed in float64 and rounded once
    np.testing.assert_array_max_ulp(got_W[0], want_W[0].astype(np.float32), maxulp=1)


def run_python(code, env_extra):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **env_extra}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


SIMULATOR_CHECK = """
import json
import warnings
import numpy as np
from numba import config, cuda
from generated import relu
from tests.test_layer_kernels import close, layer

report = {}
# (6, 40): a warp per row, several rows per block; (5, 300) under the simulator and (5, 2100)
# on a GPU: a block per row.
if config.ENABLE_CUDASIM:
    relu._CUDA["threads"] = 64  # keep the simulator quick: 64 Python threads per block
    WIDE = 300
else:
    WIDE = 2100  # a block of the module's 256 threads per row from n > 1024
CASES = [(np.float64, 6, 40, 0.0), (np.float64, 5, WIDE, 1e-3),
         (np.float32, 6, 40, 1e-3), (np.float32, 5, WIDE, 0.0)]
for dtype, m, n, damping in CASES:
    key = f"{np.dtype(dtype).name} {m}x{n} damping={damping}"
    W, b, gW, gb = layer(m, n, dtype, seed=n)
    cpu = relu.natural_gradient(W, b, gW, gb, damping)
    host = relu.natural_gradient_cuda(W, b, gW, gb, damping)  # NumPy in, NumPy out
    assert isinstance(host[0], np.ndarray) and host[0].dtype == dtype
    device = [cuda.to_device(a) for a in (W, b, gW, gb)]
    out = (cuda.device_array_like(device[0]), cuda.device_array_like(device[1]))
    got = relu.natural_gradient_cuda(*device, damping, out=out)
    assert got[0] is out[0]
    W_cpu, b_cpu = W.copy(), b.copy()
    relu.natural_gradient_step(W_cpu, b_cpu, gW, gb, 0.3, damping)
    relu.natural_gradient_step_cuda(device[0], device[1], device[2], device[3], 0.3, damping)
    W_host, b_host = W.copy(), b.copy()
    relu.natural_gradient_step_cuda(W_host, b_host, gW, gb, 0.3, damping)
    report[key] = {
        "host": max(close(host[0], cpu[0], dtype), close(host[1], cpu[1], dtype)),
        "device_out": max(close(out[0].copy_to_host(), cpu[0], dtype),
                          close(out[1].copy_to_host(), cpu[1], dtype)),
        "step_device": max(close(device[0].copy_to_host(), W_cpu, dtype),
                           close(device[1].copy_to_host(), b_cpu, dtype)),
        "step_host": max(close(W_host, W_cpu, dtype), close(b_host, b_cpu, dtype)),
        # w = 0 with b < 0 and no damping: a zero block, the pseudo-inverse gives 0
        "dead_unit_zero": bool(damping > 0 or (not host[0][2].any() and host[1][2] == 0)),
    }

# the two-kernel path with the coefficients on the host (the fallback on real GPUs)
relu._CUDA["device_coefficients"] = False
for dtype, damping in ((np.float32, 0.0), (np.float64, 1e-3)):
    W, b, gW, gb = layer(6, 40, dtype)
    cpu = relu.natural_gradient(W, b, gW, gb, damping)
    host = relu.natural_gradient_cuda(W, b, gW, gb, damping)
    W_cpu, b_cpu = W.copy(), b.copy()
    relu.natural_gradient_step(W_cpu, b_cpu, gW, gb, 0.3, damping)
    relu.natural_gradient_step_cuda(W, b, gW, gb, 0.3, damping)
    report[f"host coefficients {np.dtype(dtype).name}"] = {
        "natural_gradient": max(close(host[0], cpu[0], dtype), close(host[1], cpu[1], dtype)),
        "step": max(close(W, W_cpu, dtype), close(b, b_cpu, dtype)),
    }

errors = {}
for device_coefficients in (None, False):
    relu._CUDA["device_coefficients"] = device_coefficients
    W, b, gW, gb = layer(6, 40, np.float64)
    gW[4, 1] = np.nan
    try:
        relu.natural_gradient_cuda(W, b, gW, gb)
    except ValueError as error:
        errors[f"nan {device_coefficients}"] = str(error)
    W = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([-37.5, 0.0])
    W_step, b_step = W.copy(), b.copy()
    try:
        relu.natural_gradient_step_cuda(W_step, b_step, np.full((2, 2), 1e3),
                                        np.array([1e3, 1.0]), 1.0)
    except FloatingPointError as error:
        errors[f"overflow {device_coefficients}"] = str(error)
        errors[f"overflow unit kept {device_coefficients}"] = bool(
            (W_step[0] == W[0]).all() and b_step[0] == b[0] and b_step[1] != b[1])
    try:
        relu.natural_gradient_step_cuda(cuda.to_device(W), b, W, b, 0.1)
    except TypeError as error:
        errors["mixed"] = str(error)
    try:
        dW, db = cuda.to_device(W), cuda.to_device(b)
        relu.natural_gradient_cuda(dW, db, dW, db, out=(dW, cuda.to_device(b)))
    except ValueError as error:
        errors["overlap"] = str(error)
report["errors"] = errors
print(json.dumps(report))
"""


@functools.cache
def cuda_gpu_found():
    """Whether numba.cuda finds a CUDA GPU (asked in a subprocess, without the simulator)."""
    code = """
    import json
    try:
        from numba import cuda
        found = bool(cuda.is_available())
    except ImportError:
        found = False
    print(json.dumps(found))
    """
    return run_python(code, {"NUMBA_ENABLE_CUDASIM": "0"})


CUDA_TARGETS = ["simulator", "gpu"]


def cuda_target_environment(target):
    """The environment of a CUDA check: numba's simulator, or the GPU where one is found."""
    if target == "simulator":
        return {"NUMBA_ENABLE_CUDASIM": "1"}
    if not cuda_gpu_found():
        pytest.skip("no CUDA GPU: numba.cuda.is_available() is False")
    return {"NUMBA_ENABLE_CUDASIM": "0"}


def cuda_tolerance(key, target):
    """Largest ``close`` allowed between a CUDA result and the CPU kernel's. Under the simulator
    a float32 row is computed as on the CPU; only the order of the float64 row sums differs (a
    tree on the GPU, SIMD partial sums on the CPU), and the coefficients of a tail unit without
    damping amplify that ~10×, far below float32 resolution but visible in float64. On a GPU,
    NVVM also contracts a·g + c·w into one FMA by default where the CPU rounds both products:
    an ulp of the larger product, which ``close`` measures against an entry that may be only
    1e-3 of the row's largest."""
    if target == "simulator" and "float32" in key:
        return 2.0
    return 1000.0


@pytest.mark.parametrize("target", CUDA_TARGETS)
def test_cuda_kernels_match_the_cpu_kernels(target):
    report = run_python(SIMULATOR_CHECK, cuda_target_environment(target))
    errors = report.pop("errors")
    for key, values in report.items():
        for label, value in values.items():
            if label == "dead_unit_zero":
                assert value, key
            else:
                assert value <= cuda_tolerance(key, target), (key, label, value)
    for path in ("None", "False"):
        assert "grad_W has non-finite values (units 4)" in errors[f"nan {path}"]
        assert "overflows for units 0" in errors[f"overflow {path}"]
        assert errors[f"overflow unit kept {path}"]
    assert "not a mix" in errors["mixed"]
    assert "overlap" in errors["overlap"]


FAST_RULE_SIMULATOR_CHECK = """
import json
import warnings
import numpy as np
from numba import config, cuda
from fisher_sym import runtime
from generated import tanh
from tests.test_layer_kernels import close, layer

warnings.simplefilter("error", RuntimeWarning)  # the fused kernel must run: no fallback warning
if config.ENABLE_CUDASIM:
    tanh._CUDA["threads"] = 64
deferred_rows = []
finish = tanh._cuda_finish_deferred


def recording(*args):
    deferred_rows.append(sorted(int(i) for i in args[9]))  # deferred
    return finish(*args)


tanh._cuda_finish_deferred = recording


report = {}
for dtype, m, n, damping in [(np.float64, 6, 40, 1e-3), (np.float32, 5, 300, 0.0)]:
    key = f"{np.dtype(dtype).name} {m}x{n} damping={damping}"
    W, b, gW, gb = layer(m, n, dtype, seed=n)
    W[2] = 0.0  # r = 0 and a Gaussian narrower than the table's nodes: the fast rule refuses
    W[4] *= dtype(1e-3)
    r = np.sqrt(np.sum(W.astype(np.float64) ** 2, axis=1))
    refused = [i for i in range(m) if not runtime.trapezoid_moments(
        r[i], float(b[i]), tanh._TRAPEZOID_TABLE, tanh.STEP_LIMITS)[0]]
    cpu = tanh.natural_gradient(W, b, gW, gb, damping)
    deferred_rows.clear()
    host = tanh.natural_gradient_cuda(W, b, gW, gb, damping)
    device = [cuda.to_device(a) for a in (W, b, gW, gb)]
    out = (cuda.device_array_like(device[0]), cuda.device_array_like(device[1]))
    tanh.natural_gradient_cuda(*device, damping, out=out)
    W_cpu, b_cpu = W.copy(), b.copy()
    tanh.natural_gradient_step(W_cpu, b_cpu, gW, gb, 0.3, damping)
    tanh.natural_gradient_step_cuda(device[0], device[1], device[2], device[3], 0.3, damping)
    report[key] = {
        "host": max(close(host[0], cpu[0], dtype), close(host[1], cpu[1], dtype)),
        "device_out": max(close(out[0].copy_to_host(), cpu[0], dtype),
                          close(out[1].copy_to_host(), cpu[1], dtype)),
        "step_device": max(close(device[0].copy_to_host(), W_cpu, dtype),
                           close(device[1].copy_to_host(), b_cpu, dtype)),
        "refused": refused,
        "deferred": deferred_rows[:],
    }
W, b, gW, gb = layer(6, 40, np.float64)
W[2] = 0.0
gW[2, 1] = np.nan
try:
    tanh.natural_gradient_cuda(W, b, gW, gb)
except ValueError as error:
    report["nan"] = str(error)
report["fused"] = tanh._CUDA["device_coefficients"]
print(json.dumps(report))
"""


@pytest.mark.parametrize("target", CUDA_TARGETS)
def test_fast_rule_cuda_kernel_defers_only_refused_units_and_matches_the_cpu_kernels(target):
    """tanh's fused GPU kernel (the fast rule on the device, its table a kernel argument), under
    the simulator or on a GPU: the same results as the CPU kernels, and the units the fast rule
    refuses (found here by calling it on the CPU) are exactly the ones finished on the host."""
    report = run_python(FAST_RULE_SIMULATOR_CHECK, cuda_target_environment(target))
    assert report.pop("fused") is True
    assert "grad_W has non-finite values (units 2)" in report.pop("nan")
    for key, values in report.items():
        refused = values.pop("refused")
        assert 2 in refused and len(refused) < 5, key
        assert values.pop("deferred") == [refused] * 3, key  # three calls, each defers them
        for label, value in values.items():
            assert value <= cuda_tolerance(key, target), (key, label, value)


def test_importing_a_module_does_not_import_cuda_and_cuda_calls_say_why_they_cannot_run():
    code = """
    import json, sys
    import numpy as np
    from generated import relu
    imported = "numba.cuda" in sys.modules
    try:
        from numba import cuda
        gpu = cuda.is_available()
    except ImportError:
        gpu = False
    message = None
    if not gpu:
        try:
            relu.natural_gradient_cuda(np.ones((2, 3)), np.ones(2), np.ones((2, 3)), np.ones(2))
        except RuntimeError as error:
            message = str(error)
    print(json.dumps({"imported": imported, "gpu": gpu, "message": message}))
    """
    env = {key: value for key, value in os.environ.items() if key != "NUMBA_ENABLE_CUDASIM"}
    env["NUMBA_ENABLE_CUDASIM"] = "0"
    report = run_python(code, env)
    assert not report["imported"]
    if report["gpu"]:
        pytest.skip("a CUDA GPU is present")
    assert "NUMBA_ENABLE_CUDASIM=1" in report["message"] or "numba-cuda" in report["message"]


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_units_split_into_runs_match_the_dense_solve_whatever_the_thread_count(threads):
    """m = 70 units of n = 5 split into ``threads`` runs of consecutive units (each run writes
    row i in the loop that sums row i + 1): every unit's result is the same bit for bit
    whatever the split, non-finite and overflowing units are reported and left unchanged by
    the step, including at a run's first and last unit, and the units at the runs' edges
    equal the dense solve of their blocks."""
    from tests.test_kernels import dense_reference, load

    W, b, grad_W, grad_b = layer(70, 5, np.float64, seed=5)
    W[33, 2] = np.inf
    W[65], b[65], grad_W[65], grad_b[65] = [1.0, 0, 0, 0, 0], -37.5, 1e3, 1e3  # overflow
    W[23, 0] = np.nan  # the first unit of the second of three runs
    edges = sorted({k * 70 // threads for k in range(threads + 1)} - {70})
    first_units = [i for i in edges if i not in (23, 33, 65)]
    last_units = [i - 1 for i in edges[1:] + [70] if i - 1 not in (23, 33, 65)]

    def step(W, b):
        status = relu._layer_kernel(W, b, grad_W, grad_b, 0.0, runtime.NO_UNIT_DAMPING, 0.1,
                                    True, W, b, 2**62, threads)[1]
        return np.flatnonzero(status)

    W_step, b_step = W.copy(), b.copy()
    assert list(step(W_step, b_step)) == [23, 33, 65]
    np.testing.assert_array_equal(W_step[[23, 33, 65]], W[[23, 33, 65]])
    np.testing.assert_array_equal(b_step[[23, 33, 65]], b[[23, 33, 65]])
    W_one, b_one = W.copy(), b.copy()
    relu._layer_kernel(W_one, b_one, grad_W, grad_b, 0.0, runtime.NO_UNIT_DAMPING, 0.1, True,
                       W_one, b_one, 2**62, 1)
    np.testing.assert_array_equal(W_step, W_one)
    np.testing.assert_array_equal(b_step, b_one)
    good = [i for i in sorted(set(first_units + last_units)) if i != 2]  # 2: a dead unit
    _, phi = load("relu")
    want_W, want_b = dense_reference(phi, W[good], b[good], grad_W[good], grad_b[good], 0.0)
    got_W = (W[good] - W_step[good]) / 0.1
    got_b = (b[good] - b_step[good]) / 0.1
    scale = np.linalg.norm(np.concatenate([want_W, want_b[:, None]], axis=1), axis=1)
    assert np.all(np.abs(got_W - want_W).max(axis=1) <= 1e-8 * scale)
    assert np.all(np.abs(got_b - want_b) <= 1e-8 * scale)
    with pytest.raises(ValueError, match="W has non-finite values \\(units 23, 33\\)"):
        relu.natural_gradient_step(W.copy(), b.copy(), grad_W, grad_b, 0.1)
    keep = np.setdiff1d(np.arange(70), [23, 33])
    with pytest.raises(FloatingPointError, match="units 63:"):  # 65 once 23 and 33 are gone
        relu.natural_gradient(W[keep], b[keep], grad_W[keep], grad_b[keep])
