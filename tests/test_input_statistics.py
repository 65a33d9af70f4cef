"""Layers whose input has a mean and a variance (input_mean, input_variance): the derivation
against dense matrices, the kernels against today's at μ = 0, s = 1 (bit for bit), against a
dense solve of the block built by conditioning on u (ReLU's closed form, tanh's mpmath
quadrature), against a Monte-Carlo estimate of the block (tanh), the row program's vector and
scalar parts, the checks, and the CUDA kernels under numba's simulator."""

import math

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from fisher_sym import fisher, reference, row_passes
from fisher_sym.fisher import RowVector
from generated import relu, tanh
from tests.test_layer_kernels import close, cuda_target_environment, cuda_tolerance, run_python

DTYPES = [np.float64, np.float32]


def layer(m, n, dtype, seed):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(m, n)) / np.sqrt(n)
    b = rng.normal(size=m)
    grad_W = rng.normal(size=(m, n))
    grad_b = rng.normal(size=m)
    return tuple(a.astype(dtype) for a in (W, b, grad_W, grad_b))


def statistics(n, seed):
    """A mean like that of a ReLU layer's output and variances over two decades."""
    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(size=n)), 10.0 ** rng.uniform(-1, 1, size=n)


# --- the derivation ----------------------------------------------------------------------------


def test_standardizing_map_and_its_transpose_are_adjoint():
    # (Tu)·v = u·(Tᵀv) for rows u, v whose entries are independent symbols of each entry.
    u = RowVector(fisher.W_J, sp.Symbol("u_b"))
    v = RowVector(fisher.XI_J, sp.Symbol("v_b"))
    left = fisher.standardizing_map(u).dot(v)
    right = u.dot(fisher.standardizing_map_transpose(v))
    assert sp.expand(left - right) == 0


def test_columns_are_what_the_rewriting_into_columns_gives():
    for symbol, meaning in fisher.COLUMNS.items():
        assert fisher._in_columns(meaning) == symbol


def test_update_is_the_dense_solve_of_the_damped_block_in_exact_arithmetic():
    """n = 3, exact rationals: the derived entry and bias equal (Tᵀ(G_std + λI)T)⁻¹g solved
    from the dense matrices, T built from its definition and G_std from the dyadic form at
    w' = s⊙w (chosen with |w'| = 3); the standard unit's along_w and nat_b_std are today's
    _row_coefficients formulas."""
    R = sp.Rational
    s = [R(1, 2), R(2), R(1)]
    w = [R(2), R(1), R(2)]  # s⊙w = (1, 2, 2), r' = 3
    mean = [R(1, 3), R(-2, 5), R(3, 2)]
    g, g_b = [R(1, 7), R(-3, 4), R(2, 3)], R(5, 6)
    b, damping = R(-1, 4), R(1, 10)
    blocks = {fisher.A00: R(3, 5), fisher.A0N: R(1, 4), fisher.ANN: R(7, 10),
              fisher.DAMPING: damping}
    T = sp.zeros(4, 4)
    for j in range(3):
        T[j, j] = s[j]
        T[3, j] = mean[j]
    T[3, 3] = 1
    standard = T * sp.Matrix([*w, b])
    damped_standard = fisher.damped_fisher_block().dense(sp.Matrix(standard[:3]))
    want = (T.T * damped_standard.subs(blocks) * T).LUsolve(sp.Matrix([*g, g_b]))

    update = fisher.input_statistics_update()
    coefficients = {k: v.subs(blocks) for k, v in fisher.inverse_coefficients().items()}
    entries = [{fisher.W_J: w[j], fisher.MEAN_J: mean[j], fisher.VARIANCE_J: s[j] ** 2,
                fisher.PRECISION_J: 1 / s[j] ** 2, fisher.SCALED_MEAN_J: mean[j] / s[j] ** 2,
                fisher.G_CENTERED_J: g[j] - mean[j] * g_b} for j in range(3)]
    sums = {row_sum: sum(row_sum.summand.subs(entry) for entry in entries)
            for row_sum in update.row_sums}
    standardized = {k: v.subs(sums).subs(fisher.BIAS, b) for k, v in update.standardized.items()}
    assert standardized[fisher.STD_RADIUS] == 3 and standardized[fisher.STD_BIAS] == standard[3]
    known = {**coefficients, **standardized, fisher.GRAD_BIAS: g_b}
    along_w = update.along_w.subs(known)
    nat_b_std = update.standardized_bias_update.subs(known)
    r, wg = standardized[fisher.STD_RADIUS], standardized[fisher.STD_W_DOT_G]
    X, Y, Z, Abar00 = (coefficients[k] for k in (fisher.X, fisher.Y, fisher.Z, fisher.ABAR00))
    assert along_w == (X * (wg / r) + Y * g_b) / r  # as in _row_coefficients
    assert nat_b_std == Abar00 * g_b + Y * (wg / r) + Z * g_b
    known |= {fisher.ALONG_W: along_w, fisher.STD_NAT_B: nat_b_std}
    got = [update.entry.subs(entry).subs(known) for entry in entries]
    got.append(update.bias.subs(sums).subs(known))
    assert got == list(want)


# --- the kernels at μ = 0, s = 1 ---------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_mean_and_unit_variance_give_todays_results_bit_for_bit(dtype):
    """Every entry as without statistics, to the bit: the program's sums are then the same
    products in the same order (variance·w·w = w·w, g − mean·g_b = g), its entry
    (Abar00·g)·1 + along_w·w, and nat_b gains only exact zeros. (An exact zero entry could
    change sign, −0 against +0: g − mean·g_b is +0 for g = −0 and g_b < 0; no such entry
    here.)"""
    W, b, grad_W, grad_b = layer(9, 37, dtype, seed=3)
    W[1], b[1] = 0.0, 0.7  # r = 0
    W[2], b[2] = 0.0, -1.0  # a dead unit
    n = W.shape[1]
    for damping in (0.0, 1e-3):
        want = relu.natural_gradient(W, b, grad_W, grad_b, damping)
        for mean, variance in ((np.zeros(n), 1.0), (None, np.ones(n)), (np.zeros(n), None)):
            got = relu.natural_gradient(W, b, grad_W, grad_b, damping, input_mean=mean,
                                        input_variance=variance)
            for x, y in zip(got, want, strict=True):
                assert x.tobytes() == y.tobytes()
        W_step, b_step = W.copy(), b.copy()
        relu.natural_gradient_step(W_step, b_step, grad_W, grad_b, 0.3, damping)
        W_stats, b_stats = W.copy(), b.copy()
        relu.natural_gradient_step(W_stats, b_stats, grad_W, grad_b, 0.3, damping,
                                   input_mean=np.zeros(n), input_variance=1.0)
        assert W_stats.tobytes() == W_step.tobytes() and b_stats.tobytes() == b_step.tobytes()


# --- against dense solves of the block built by conditioning on u ------------------------------


def relu_blocks(sigma, m):
    """ReLU's (I0, I1, I2) = E[1{σv + m > 0} v^k] in closed form: (Φ(t), φ(t), Φ(t) − tφ(t)),
    t = m/σ; at σ = 0 the mean of the one-sided limits of 1{m > 0}."""
    if sigma == 0.0:
        value = 1.0 if m > 0 else (0.5 if m == 0 else 0.0)
        return value, 0.0, value
    t = m / sigma
    Phi = 0.5 * math.erfc(-t / math.sqrt(2))
    phi = math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    return Phi, phi, Phi - t * phi


def dense_solve(W, b, grad_W, grad_b, damping, mean, variance, blocks):
    """Per unit, (E[φ'² x*x*ᵀ] + damping·E[x*x*ᵀ])⁻¹ g with the block from
    ``reference.dense_fisher_with_input_statistics``, and the condition number of the matrix."""
    M = reference.input_second_moment(mean, variance)
    rows, conditions = [], []
    for w, bias, g, g_b in zip(W, b, grad_W, grad_b, strict=True):
        sigma = math.sqrt(float(np.sum(variance * w * w)))
        G = reference.dense_fisher_with_input_statistics(
            w, mean, variance, blocks(sigma, float(w @ mean + bias))
        )
        A = G + damping * M
        rows.append(np.linalg.solve(A, np.append(g, g_b)))
        conditions.append(np.linalg.cond(A))
    return np.array(rows), np.array(conditions)


def assert_matches_dense(module, arrays, damping, mean, variance, blocks, tolerance):
    W, b, grad_W, grad_b = arrays
    nat_W, nat_b = module.natural_gradient(W, b, grad_W, grad_b, damping, input_mean=mean,
                                           input_variance=variance)
    got = np.concatenate([nat_W, nat_b[:, None]], axis=1)
    want, conditions = dense_solve(*(a.astype(np.float64) for a in arrays), damping, mean,
                                   np.broadcast_to(variance, mean.shape), blocks)
    scale = np.linalg.norm(want, axis=1)
    error = np.abs(got - want).max(axis=1)
    # the solve and the kernels both lose up to the condition number times their rounding
    assert np.all(error <= tolerance * conditions * scale), (error / scale, conditions)


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(1, 5),
    seed=st.integers(0, 2**32 - 1),
    mean_scale=st.sampled_from([0.0, 0.3, 3.0]),
    log_variance=st.tuples(st.floats(-1.5, 1.5), st.floats(-1.5, 1.5)),
    damping=st.sampled_from([0.0, 1e-2]),
)
def test_relu_matches_the_dense_solve_of_its_closed_form_block(n, seed, mean_scale,
                                                               log_variance, damping):
    rng = np.random.default_rng(seed)
    arrays = layer(4, n, np.float64, seed)
    mean = mean_scale * rng.normal(size=n)
    low, high = sorted(log_variance)
    variance = 10.0 ** rng.uniform(low, high, size=n)
    assert_matches_dense(relu, arrays, damping, mean, variance, relu_blocks, 1e-14)


def test_float32_relu_matches_the_dense_solve():
    """float32 arrays (and float32 statistics): within float32's rounding of the dense solve
    of the cast values."""
    arrays = layer(6, 7, np.float32, seed=5)
    mean, variance = statistics(7, seed=5)
    assert_matches_dense(relu, arrays, 1e-2, mean.astype(np.float32),
                         variance.astype(np.float32), relu_blocks, 1e-6)


@pytest.mark.parametrize("damping", [0.0, 0.1])
def test_tanh_matches_the_dense_solve_of_its_mpmath_block(damping):
    """tanh (the numerical path) at three units, its (I0, I1, I2) by mpmath quadrature at 20
    digits: a scalar variance, a unit with |w'| = 0 (the direction-average convention), and
    inputs whose mean is several deviations away."""
    phi = sp.tanh(reference.U)
    W, b, grad_W, grad_b = layer(3, 3, np.float64, seed=11)
    W[2] = 0.0
    mean = np.array([0.5, -2.0, 3.0])

    def blocks(sigma, m):
        return reference.fisher_blocks_mp(phi, sigma, m, dps=20)

    assert_matches_dense(tanh, (W, b, grad_W, grad_b), damping, mean, 0.3, blocks, 1e-13)


def test_tanh_solves_the_monte_carlo_block():
    """With nat from the kernel, G·nat + damping·E[x*x*ᵀ]·nat = g, where G·nat is estimated by
    Monte Carlo (reference.monte_carlo_fisher_product, 4·10⁵ draws of x ~ N(μ, diag(s²))):
    every component of the residual within 5 standard errors of the estimate (a chance below
    1e-5 for the 8 components if the kernel is right)."""
    phi = sp.tanh(reference.U)
    W, b, grad_W, grad_b = layer(2, 3, np.float64, seed=2)
    mean, variance = np.array([0.7, -0.4, 1.5]), np.array([0.5, 2.0, 0.1])
    damping = 0.05
    nat_W, nat_b = tanh.natural_gradient(W, b, grad_W, grad_b, damping, input_mean=mean,
                                         input_variance=variance)
    M = reference.input_second_moment(mean, variance)
    for i in range(2):
        nat = np.append(nat_W[i], nat_b[i])
        product, error = reference.monte_carlo_fisher_product(
            phi, W[i], b[i], mean, variance, nat, 400_000, seed=i
        )
        residual = product + damping * M @ nat - np.append(grad_W[i], grad_b[i])
        assert np.all(np.abs(residual) <= 5 * error), (residual, error)


# --- the row program: vector and scalar parts ---------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
def test_program_pass_writes_its_scalar_entry_at_every_alignment(dtype):
    """relu's printed program: at every offset of the row within a 64-byte line the vector
    lines, the peeled head and the tail write what ``_statistics_entry`` gives element by
    element, bit for bit (for STEP: w − rate·entry), and the next row's sums are
    ``_statistics_row_sums``' bit for bit, within n·eps of the exact sums."""
    n = 45
    rng = np.random.default_rng(7)
    w, g, next_w, next_g = (rng.normal(size=n).astype(dtype) for _ in range(4))
    mean, variance = statistics(n, seed=7)
    columns, write_columns, _, _, _ = relu._statistics_columns(mean, variance, w[:0])
    scalars, next_scalars = (0.37, -1.3, 0.6), (-0.8,)
    rounded = tuple(dtype(x) for x in scalars)
    entry = np.array([relu._statistics_entry(w[j], g[j], write_columns[:, j], rounded)
                      for j in range(n)], dtype=dtype)
    sums = relu._statistics_row_sums(next_w, next_g, columns, write_columns, scalars,
                                     next_scalars)
    x, y = next_w.astype(np.float64), next_g.astype(np.float64)
    centered = y - mean * next_scalars[0]
    exact = [variance * x * x, mean * x, centered * x, mean / variance * centered, y * y]
    for value, terms in zip(sums, exact, strict=True):
        assert abs(value - math.fsum(terms)) <= 4 * n * 2**-52 * math.fsum(np.abs(terms))
    for write in (row_passes.WRITE, row_passes.STREAM, row_passes.STEP):
        want = w - dtype(0.01) * entry if write == row_passes.STEP else entry
        for offset in range(64 // np.dtype(dtype).itemsize):
            buffer = np.zeros(n + 64, dtype=dtype)
            out = buffer[offset: offset + n]
            out[:] = w if write == row_passes.STEP else np.nan
            row = out if write == row_passes.STEP else w
            got = relu._statistics_write_and_sum(row, g, out, next_w, next_g, columns,
                                                 write_columns, scalars, next_scalars, 0.01,
                                                 write, True)
            assert out.tobytes() == want.tobytes()
            assert got == sums
            assert not buffer[:offset].any() and not buffer[offset + n:].any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_pair_pass_writes_and_sums_each_row_as_the_single_row_pass(dtype):
    """Two rows written and two summed in one loop: at every offset of the outputs within a
    64-byte line, each row written and each row summed bit for bit as the one-row pass does
    (which the test above holds to the scalar entry), nothing written outside the rows; and
    the same where the two outputs start at different offsets (two one-row passes then)."""
    n = 45
    rng = np.random.default_rng(11)
    rows = [rng.normal(size=n).astype(dtype) for _ in range(8)]
    w0, g0, w1, g1, next_w0, next_g0, next_w1, next_g1 = rows
    mean, variance = statistics(n, seed=11)
    columns, write_columns, _, _, _ = relu._statistics_columns(mean, variance, w0[:0])
    scalars0, scalars1 = (0.37, -1.3, 0.6), (-2.1, 0.45, -0.2)
    next_scalars0, next_scalars1 = (-0.8,), (1.7,)
    single_sums = [relu._statistics_row_sums(x, y, columns, write_columns, scalars0, s)
                   for x, y, s in ((next_w0, next_g0, next_scalars0),
                                   (next_w1, next_g1, next_scalars1))]
    for write in (row_passes.WRITE, row_passes.STREAM, row_passes.STEP):
        for offset in range(64 // np.dtype(dtype).itemsize):
            buffer = np.zeros((2, 128), dtype=dtype)  # rows 512 or 1024 bytes apart
            outs = [buffer[r, offset: offset + n] for r in range(2)]
            wants = []
            for out, w, g, s in zip(outs, (w0, w1), (g0, g1), (scalars0, scalars1),
                                    strict=True):
                want = w.copy() if write == row_passes.STEP else np.full(n, np.nan, dtype)
                row = want if write == row_passes.STEP else w
                relu._statistics_write_and_sum(row, g, want, next_w0, next_g0, columns,
                                               write_columns, s, next_scalars0, 0.01, write,
                                               False)
                wants.append(want)
                out[:] = w if write == row_passes.STEP else np.nan
            rows_written = outs if write == row_passes.STEP else (w0, w1)
            got = relu._statistics_write_and_sum_pair(
                rows_written[0], g0, outs[0], rows_written[1], g1, outs[1], next_w0, next_g0,
                next_w1, next_g1, columns, write_columns, scalars0, scalars1, next_scalars0,
                next_scalars1, 0.01, write, True,
            )
            assert [out.tobytes() for out in outs] == [want.tobytes() for want in wants]
            assert list(got) == single_sums
            assert not buffer[:, :offset].any() and not buffer[:, offset + n:].any()
            if write != row_passes.STREAM or offset == 0:
                continue
            shifted = buffer[1, offset - 1: offset - 1 + n]  # another offset for row 1
            shifted[:] = w1 if write == row_passes.STEP else np.nan
            rows_written = (outs[0], shifted) if write == row_passes.STEP else (w0, w1)
            outs[0][:] = w0 if write == row_passes.STEP else np.nan
            got = relu._statistics_write_and_sum_pair(
                rows_written[0], g0, outs[0], rows_written[1], g1, shifted, next_w0, next_g0,
                next_w1, next_g1, columns, write_columns, scalars0, scalars1, next_scalars0,
                next_scalars1, 0.01, write, True,
            )
            assert [outs[0].tobytes(), shifted.tobytes()] == [want.tobytes() for want in wants]
            assert list(got) == single_sums


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("streaming", [False, True])
@pytest.mark.parametrize("step", [False, True])
@pytest.mark.parametrize("extra", [0, 1])
def test_layer_writes_rows_in_pairs_and_alone_as_row_by_row(dtype, streaming, step, extra):
    """The layer kernel, which writes two rows per loop where it can and one where it cannot
    (a row near overflow, computed in float64; the odd last row; outputs at different offsets
    in a cache line, for non-temporal stores), gives each row bit for bit what the one-row
    pass gives it after its own sums and coefficients. Rows are just long enough for pairs;
    with one element more, consecutive rows start at different offsets."""
    m = 9
    n = row_passes.PAIR_MIN_ROW_BYTES // np.dtype(dtype).itemsize + extra
    W, b, grad_W, grad_b = layer(m, n, dtype, seed=12)
    mean, variance = statistics(n, seed=12)
    # unit 4: its entries could come near overflow, so its row is computed in float64
    grad_W[4, np.argmax(variance)] = dtype(1e38 if dtype == np.float32 else 1e300)
    columns, write_columns, columns64, layer_maxima = relu._statistics_layer_columns(
        mean, variance, W
    )
    limits = relu.runtime.array_element_limits(W)
    W_out, b_out = W.copy(), b.copy()
    nat_W, nat_b = np.full_like(W, np.nan), np.full_like(b, np.nan)
    argument_error, status = relu._statistics_layer_kernel(
        W_out, b_out, grad_W, grad_b, 1e-3, np.empty(0), 0.3, step,
        W_out if step else nat_W, b_out if step else nat_b,
        0 if streaming else 2**62, 1, columns, write_columns, columns64, layer_maxima,
    )
    assert argument_error == 0 and status is None
    write = row_passes.STEP if step else (row_passes.STREAM if streaming else row_passes.WRITE)
    modes = []
    for i in range(m):
        sums = relu._statistics_row_sums(W[i], grad_W[i], columns, write_columns,
                                         (0.0, 0.0, 0.0), (np.float64(grad_b[i]),))
        code, mode, Abar00, along_w, value_b = relu._statistics_head_of(
            i, sums, W, b, grad_W, grad_b, 1e-3, np.empty(0), 0.3, step, limits,
            layer_maxima,
        )
        modes.append(mode)
        scalars = (Abar00, along_w, np.float64(grad_b[i]))
        want = W[i].copy()  # the step updates it in place; natural_gradient overwrites it
        if mode == 1:
            relu._statistics_write_and_sum(want if step else W[i], grad_W[i], want, W[i],
                                           grad_W[i], columns, write_columns, scalars, (0.0,),
                                           0.3, write, False)
        else:
            assert relu._statistics_write_checked_row(W[i], grad_W[i], 0.3, step, scalars,
                                                      columns64, want)
        got_W, got_b = (W_out[i], b_out[i]) if step else (nat_W[i], nat_b[i])
        assert got_W.tobytes() == want.tobytes(), i
        assert got_b == value_b, i
    assert modes.count(2) == 1 and modes[4] == 2


# --- checks and extremes -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "mean, variance, error, message",
    [
        (np.zeros(4), None, ValueError, r"input_mean must have shape \(5,\)"),
        (None, np.ones(6), ValueError, r"input_variance must have shape \(5,\) or a scalar"),
        (None, np.ones((5, 1)), ValueError, "input_variance must have shape"),
        (np.zeros(5), -1.0, ValueError, "input_variance must be positive"),
        (None, np.array([1.0, 0.0, 1.0, 1.0, 1.0]), ValueError, r"positive \(inputs 1"),
        (np.array([0.0, np.nan, 0.0, 0.0, 0.0]), None, ValueError,
         r"input_mean has non-finite values \(inputs 1\)"),
        (None, np.inf, ValueError, "input_variance has non-finite values"),
        (np.zeros(5, complex), None, TypeError, "input_mean must hold real numbers"),
        (None, "1", TypeError, "input_variance must hold real numbers"),
        (None, 1e-310, ValueError, "too small for double precision"),
        (np.full(5, 1e10), 1e-300, ValueError, "too small for double precision"),
    ],
)
def test_bad_statistics_are_refused_before_anything_is_written(mean, variance, error, message):
    W, b, grad_W, grad_b = layer(3, 5, np.float64, seed=0)
    W0, b0 = W.copy(), b.copy()
    with pytest.raises(error, match=message):
        relu.natural_gradient(W, b, grad_W, grad_b, input_mean=mean, input_variance=variance)
    with pytest.raises(error, match=message):
        relu.natural_gradient_step(W, b, grad_W, grad_b, 0.1, input_mean=mean,
                                   input_variance=variance)
    assert W.tobytes() == W0.tobytes() and b.tobytes() == b0.tobytes()


def test_tiny_variances_give_finite_results_or_name_the_units():
    """A variance of 1e-30 scales its entries by 1e30: finite in float64 and float32 (the
    precision column, beyond no float32 limit, is applied in float32 arithmetic); at 1e-40 the
    column is beyond float32, so the rows are computed in float64, and a unit whose entry then
    exceeds float32 raises FloatingPointError naming it (and input_variance), leaving the
    step's unit unchanged. Never a NaN or inf."""
    n = 4
    for dtype in DTYPES:
        W, b, grad_W, grad_b = layer(3, n, dtype, seed=1)
        variance = np.array([1.0, 1e-30, 1.0, 1.0])
        nat_W, nat_b = relu.natural_gradient(W, b, grad_W, grad_b, 1e-3, input_variance=variance)
        assert np.all(np.isfinite(nat_W)) and np.all(np.isfinite(nat_b))
        want, _ = relu.natural_gradient(*(a.astype(np.float64) for a in (W, b, grad_W, grad_b)),
                                        1e-3, input_variance=variance)
        assert close(nat_W, want, dtype) <= 8
    W, b, grad_W, grad_b = layer(3, n, np.float32, seed=1)
    grad_W[1:, 1] = 0.0  # units 1, 2: no gradient along the tiny input
    W[1:, 1] = 0.0
    variance = np.array([1.0, 1e-40, 1.0, 1.0])
    with pytest.raises(FloatingPointError, match=r"units 0: .*input_variance"):
        relu.natural_gradient(W, b, grad_W, grad_b, 1e-3, input_variance=variance)
    W_step, b_step = W.copy(), b.copy()
    with pytest.raises(FloatingPointError, match="units 0: .*left unchanged"):
        relu.natural_gradient_step(W_step, b_step, grad_W, grad_b, 1.0, 1e-3,
                                   input_variance=variance)
    assert W_step[0].tobytes() == W[0].tobytes() and b_step[0] == b[0]
    assert np.all(np.isfinite(W_step)) and np.any(W_step[1] != W[1])


def test_non_finite_rows_are_named_with_statistics():
    W, b, grad_W, grad_b = layer(5, 6, np.float64, seed=4)
    mean, variance = statistics(6, seed=4)
    grad_W[3, 2] = np.inf
    with pytest.raises(ValueError, match=r"grad_W has non-finite values \(units 3\)"):
        relu.natural_gradient(W, b, grad_W, grad_b, input_mean=mean, input_variance=variance)


# --- GPU kernels --------------------------------------------------------------------------------

CUDA_CHECK = """
import json
import numpy as np
from numba import config, cuda
from generated import relu, tanh
from tests.test_layer_kernels import close

# as layer() and statistics() of tests/test_input_statistics.py (not imported: it loads SymPy)
def layer(m, n, dtype, seed):
    rng = np.random.default_rng(seed)
    arrays = (rng.normal(size=(m, n)) / np.sqrt(n), rng.normal(size=m),
              rng.normal(size=(m, n)), rng.normal(size=m))
    return tuple(a.astype(dtype) for a in arrays)

def statistics(n, seed):
    rng = np.random.default_rng(seed)
    return np.abs(rng.normal(size=n)), 10.0 ** rng.uniform(-1, 1, size=n)

report = {}
for module in (relu, tanh):
    if config.ENABLE_CUDASIM:
        module._CUDA["threads"] = 64
for module, dtype, fused in ((relu, np.float64, True), (tanh, np.float64, True),
                             (relu, np.float32, False)):
    key = f"{module.ACTIVATION} {np.dtype(dtype).name} {'fused' if fused else 'two kernels'}"
    module._CUDA["device_coefficients"] = None if fused else False
    W, b, gW, gb = layer(6, 40, dtype, seed=6)
    W[2] *= dtype(1e-3)  # tanh: |w'| below the fast rule's reach, finished on the host
    mean, variance = statistics(40, seed=6)
    given = {"input_mean": mean, "input_variance": variance}
    cpu = module.natural_gradient(W, b, gW, gb, 1e-3, **given)
    host = module.natural_gradient_cuda(W, b, gW, gb, 1e-3, **given)
    report[key] = {"host": max(close(host[0], cpu[0], dtype), close(host[1], cpu[1], dtype))}
    if module is relu:
        device = [cuda.to_device(a) for a in (W, b, gW, gb)]
        W_cpu, b_cpu = W.copy(), b.copy()
        module.natural_gradient_step(W_cpu, b_cpu, gW, gb, 0.3, 1e-3, **given)
        module.natural_gradient_step_cuda(*device, 0.3, 1e-3, **given)
        report[key]["step_device"] = max(close(device[0].copy_to_host(), W_cpu, dtype),
                                         close(device[1].copy_to_host(), b_cpu, dtype))
try:
    relu.natural_gradient_cuda(W, b, gW, gb, input_variance=np.zeros(40))
except ValueError as error:
    report["error"] = str(error)
print(json.dumps(report))
"""


@pytest.mark.parametrize("target", ["simulator", "gpu"])
def test_cuda_kernels_with_statistics_match_the_cpu_kernels(target):
    """The fused kernels (relu's head, tanh's fast rule with a unit deferred to the host) and
    the two-kernel path (float32), natural_gradient_cuda on NumPy arrays and the step on device
    arrays, against the CPU kernels, under the simulator or on a GPU."""
    report = run_python(CUDA_CHECK, cuda_target_environment(target))
    assert "input_variance must be positive" in report.pop("error")
    for key, values in report.items():
        for label, value in values.items():
            assert value <= cuda_tolerance(key, target), (key, label, value)
