"""The activation-independent part of a generated module: the public API and the layer loops.

Everything here calls ``_tilted_moments(r, b)`` and ``_coefficients(r, b, damping)``, which
the backend renders above it for each activation.
"""

LAYER_API = '''\
@numba.njit(cache=True)
def _fisher_blocks_kernel(r, b):
    A00 = np.empty(r.size)
    A0n = np.empty(r.size)
    Ann = np.empty(r.size)
    for i in range(r.size):
        total, m1, v, _ = _tilted_moments(r[i], b[i])
        A00[i] = total
        A0n[i] = total * m1
        Ann[i] = total * (v + m1 * m1)
    return A00, A0n, Ann


@numba.njit(cache=True)
def _inverse_coefficients_kernel(r, b, damping):
    out = np.empty((4, r.size))
    for i in range(r.size):
        out[0, i], out[1, i], out[2, i], out[3, i] = _coefficients(r[i], b[i], damping)
    return out


@numba.njit(parallel=True, cache=True)
def _natural_gradient_kernel(W, b, grad_W, grad_b, damping, nat_W, nat_b, row_is_finite):
    """Per unit i: (nat_W[i], nat_b[i]) = (G_i + damping·I)⁻¹ (grad_W[i], grad_b[i]).

    With ŵ·g = (w·grad_w)/r the update is
        nat_w = Abar00·grad_w + (X·(ŵ·g) + Y·grad_b)·w/r,
        nat_b = Abar00·grad_b + Y·(ŵ·g) + Z·grad_b.
    """
    m, n = W.shape
    for i in numba.prange(m):
        norm_squared = 0.0
        dot = 0.0
        for j in range(n):
            w = np.float64(W[i, j])
            norm_squared += w * w
            dot += w * np.float64(grad_W[i, j])
        r = math.sqrt(norm_squared)
        Abar00, X, Y, Z = _coefficients(r, np.float64(b[i]), damping)
        g_b = np.float64(grad_b[i])
        if r > 0.0:
            w_hat_dot_g = dot / r
            along_w = (X * w_hat_dot_g + Y * g_b) / r
            nat_b[i] = Abar00 * g_b + Y * w_hat_dot_g + Z * g_b
        else:
            along_w = 0.0
            nat_b[i] = Abar00 * g_b
        # 0·x is 0 for finite x and NaN for ±inf or NaN: a check that cannot overflow itself.
        check = nat_b[i] * 0.0
        for j in range(n):
            nat_W[i, j] = Abar00 * np.float64(grad_W[i, j]) + along_w * np.float64(W[i, j])
            check += nat_W[i, j] * 0.0
        row_is_finite[i] = check == 0.0


def fisher_blocks(r, b):
    """(A00, A0n, Ann) = E[φ'(u)²·(1, z, z²)] with u = rz + b, z ~ N(0, 1), as float64.

    ``r`` = |w| ≥ 0 and ``b`` broadcast like a NumPy ufunc; scalars in give floats out.
    At r = 0: (A00, 0, A00) with A00 the mean of the one-sided limits of φ'(b)².
    """
    r, b = runtime.check_blocks_arguments(r, b)
    A00, A0n, Ann = _fisher_blocks_kernel(r.ravel(), b.ravel())
    return _shaped((A00, A0n, Ann), r.shape)


def inverse_coefficients(r, b, damping=0.0):
    """(Abar00, X, Y, Z) of (G + damping·I)⁻¹ = Abar00·I + X·ŵŵᵀ + Y·(e0ŵᵀ + ŵe0ᵀ) + Z·e0e0ᵀ.

    Broadcasts like ``fisher_blocks``. At r = 0: (1/(A00 + damping), 0, 0, 0). A block that is
    zero in double precision with damping 0 gives (0, 0, 0, 0), the pseudo-inverse.
    """
    damping = runtime.check_damping(damping)
    r, b = runtime.check_blocks_arguments(r, b)
    out = _inverse_coefficients_kernel(r.ravel(), b.ravel(), damping)
    return _shaped(tuple(out), r.shape)


def natural_gradient(W, b, grad_W, grad_b, damping=0.0):
    """Unit-wise natural gradient of a layer: per unit i, (G_i + damping·I)⁻¹ (grad_W[i], grad_b[i]).

    W, grad_W: (m, n); b, grad_b: (m,); all float32 or all float64. Returns (nat_W, nat_b) in
    the input dtype; the coefficients are computed in float64. Raises ValueError/TypeError on
    bad input before any work, and FloatingPointError if a unit's result overflows (a
    numerically singular block: use damping > 0).
    """
    damping = runtime.check_damping(damping)
    W, b, grad_W, grad_b = runtime.check_layer_arguments(W, b, grad_W, grad_b)
    nat_W = np.empty_like(W)
    nat_b = np.empty_like(b)
    row_is_finite = np.empty(W.shape[0], dtype=np.bool_)
    _natural_gradient_kernel(W, b, grad_W, grad_b, damping, nat_W, nat_b, row_is_finite)
    runtime.raise_if_not_finite(row_is_finite)
    return nat_W, nat_b


def _shaped(arrays, shape):
    if shape == ():
        return tuple(float(array[0]) for array in arrays)
    return tuple(array.reshape(shape) for array in arrays)
'''
