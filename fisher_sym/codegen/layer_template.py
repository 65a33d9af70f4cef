"""The activation-independent part of a generated module: the public API and the layer loops.

Everything here calls ``_tilted_moments(r, b)`` and ``_coefficients(r, b, damping)``, which
the backend renders above it for each activation; the backend appends the GPU part
(``cuda_template``) after it.

The layer kernels are one pass over memory: each unit's row of W and grad_W is read once
(three float64 sums: |w|², w·g, |g|²), its coefficients are evaluated, and the row is written
while it is still in cache. The checks that would need a second pass (non-finite values in W
or grad_W, overflow of the result) are folded into that pass: see ``_layer_kernel``.
"""

CPU_LAYER_API = '''\
@numba.njit(cache=True)
def _fisher_blocks_kernel(r, b):
    A00 = np.empty(r.size)
    A0n = np.empty(r.size)
    Ann = np.empty(r.size)
    for i in range(r.size):
        total, m1, v, _ = _tilted_moments(r[i], b[i])
        if total == math.inf:  # a polynomial φ' far out: A0n may still be finite
            A00[i], A0n[i], Ann[i] = _overflowing_blocks(r[i], b[i])
            continue
        A00[i] = total
        A0n[i] = total * m1
        Ann[i] = total * (v + m1 * m1)
    return A00, A0n, Ann


@numba.njit(cache=True)
def _inverse_coefficients_kernel(r, b, damping, unit_damping):
    out = np.empty((4, r.size))
    for i in range(r.size):
        damping_i = damping if unit_damping.size == 0 else unit_damping[i]
        out[0, i], out[1, i], out[2, i], out[3, i] = _coefficients(r[i], b[i], damping_i)
    return out


# Row status codes written by the layer kernels (see runtime.raise_for_row_status).
_ROW_OK = 0
_ROW_W_NOT_FINITE = 1
_ROW_GRAD_W_NOT_FINITE = 2
_ROW_B_NOT_FINITE = 3
_ROW_GRAD_B_NOT_FINITE = 4
_ROW_OVERFLOW = 5
# The fused GPU kernel left the unit to the host (its fast rule refused it); never returned.
_ROW_DEFERRED = 6


@numba.njit(cache=True)
def _first_non_finite(w, g):
    """_ROW_W_NOT_FINITE or _ROW_GRAD_W_NOT_FINITE if that row holds a NaN or ±inf, else _ROW_OK."""
    for j in range(w.size):
        if not math.isfinite(w[j]):
            return _ROW_W_NOT_FINITE
    for j in range(g.size):
        if not math.isfinite(g[j]):
            return _ROW_GRAD_W_NOT_FINITE
    return _ROW_OK


@numba.njit(cache=True)
def _row_coefficients(r, coefficients, wg, g_b):
    """(Abar00, along_w, nat_b) of one unit, all float64, from r = |w|, its coefficients
    (Abar00, X, Y, Z) and its row sum w·grad_w.

    With ŵ·g = (w·grad_w)/r the unit's natural gradient is
        nat_w = Abar00·grad_w + along_w·w,    along_w = (X·(ŵ·g) + Y·grad_b)/r,
        nat_b = Abar00·grad_b + Y·(ŵ·g) + Z·grad_b,
    and at r = 0 (no direction) nat_w = Abar00·grad_w, nat_b = Abar00·grad_b.
    """
    Abar00, X, Y, Z = coefficients
    if r > 0.0:
        w_hat_dot_g = wg / r
        along_w = (X * w_hat_dot_g + Y * g_b) / r
        nat_b = Abar00 * g_b + Y * w_hat_dot_g + Z * g_b
    else:
        along_w = 0.0
        nat_b = Abar00 * g_b
    return Abar00, along_w, nat_b


@numba.njit(cache=True)
def _normal_or_zero(x, tiny, limit):
    """Whether x is 0 or tiny ≤ |x| ≤ limit (False for NaN)."""
    return x == 0.0 or tiny <= abs(x) <= limit


@numba.njit(cache=True)
def _row_input_status(w_check, g_check, b_i, g_b):
    """_ROW_OK, or why a unit's inputs are not finite (``_row_head``)."""
    if not w_check == 0.0:
        return _ROW_W_NOT_FINITE
    if not g_check == 0.0:
        return _ROW_GRAD_W_NOT_FINITE
    if not math.isfinite(b_i):
        return _ROW_B_NOT_FINITE
    if not math.isfinite(g_b):
        return _ROW_GRAD_B_NOT_FINITE
    return _ROW_OK


@numba.njit(cache=True)
def _row_head(ww, wg, gg, w_check, g_check, b_i, g_b, damping, lr, step, limits):
    """(status, mode, Abar00, along_w, value_b) of one unit from its row sums (float64).

    ``w_check``/``g_check`` are NaN iff the row of W/grad_W holds a NaN or ±inf, else 0.
    ``limits`` = (tiny, limit, cast_limit) of the dtype (``runtime.element_limits``).
    See ``_row_update`` for the modes.
    """
    code = _row_input_status(w_check, g_check, b_i, g_b)
    if code != _ROW_OK:
        return code, 0, 0.0, 0.0, 0.0
    r = math.sqrt(ww)
    return _row_update(r, _coefficients(r, b_i, damping), wg, gg, b_i, g_b, lr, step, limits)


@numba.njit(cache=True)
def _row_update(r, coefficients, wg, gg, b_i, g_b, lr, step, limits):
    """``_row_head`` of a unit with finite inputs, from r = |w| and its coefficients.

    value_b is nat_b, or b − lr·nat_b for a step, in float64. mode 1: write the row in the
    dtype's arithmetic, unchecked: every entry is certainly finite (the bound
    B = |Abar00|·|grad_w| + |along_w|·|w| on each entry, or for a step |w| + max(1, |lr|)·B,
    which bounds nat_w too, formed in the dtype before lr scales it, is at most ``limit``,
    half the dtype's largest value) and Abar00, along_w (and lr) round to normal numbers of the
    dtype or zero, so rounding them loses no more than half an ulp; mode 2: otherwise, compute
    the row in float64 and write it, rounded once, only if every entry is finite (below
    ``cast_limit``, from where a float64 value rounds to ±inf in the dtype); mode 0: do not
    write (status _ROW_OVERFLOW).
    """
    tiny, limit, cast_limit = limits
    Abar00, along_w, nat_b = _row_coefficients(r, coefficients, wg, g_b)
    bound = abs(Abar00) * math.sqrt(gg) + abs(along_w) * r
    value_b = nat_b
    if step:
        bound = r + max(1.0, abs(lr)) * bound
        value_b = b_i - lr * nat_b
    if not (math.isfinite(nat_b) and abs(value_b) < cast_limit):
        return _ROW_OVERFLOW, 0, 0.0, 0.0, 0.0
    representable = (_normal_or_zero(Abar00, tiny, limit) and _normal_or_zero(along_w, tiny, limit)
                     and (not step or _normal_or_zero(lr, tiny, limit)))
    if bound <= limit and representable:  # False for NaN
        return _ROW_OK, 1, Abar00, along_w, value_b
    return _ROW_OK, 2, Abar00, along_w, value_b


@numba.njit(cache=True)
def _write_checked_row(w, g, lr, step, Abar00, along_w, out):
    """Mode 2 of ``_row_head``: compute the row in float64, write it to ``out`` (w itself for a
    step), rounded once, only if every entry is finite in the dtype. Returns whether it was
    written."""
    row = np.empty_like(w)
    finite = True
    for j in range(w.size):
        nat = Abar00 * np.float64(g[j]) + along_w * np.float64(w[j])
        row[j] = np.float64(w[j]) - lr * nat if step else nat
        finite = finite and math.isfinite(nat) and math.isfinite(row[j])
    if finite:
        out[:] = row
    return finite


@numba.njit(parallel=True, cache=True)
def _layer_kernel(W, b, grad_W, grad_b, damping, unit_damping, lr, step, nat_W, nat_b,
                  streaming_min_bytes, runs):
    """Per unit i (in parallel runs of units): a status, and
    (nat_W[i], nat_b[i]) = (G_i + damping_i·I)⁻¹ (grad_W[i], grad_b[i])           (step False),
    or in place W[i] -= lr·nat_W[i], b[i] -= lr·nat_b[i] (nat_W, nat_b are W, b) (step True),
    with damping_i = unit_damping[i], or ``damping`` when unit_damping is empty. Returns
    (argument_error, status): ``runtime.layer_argument_error``, checked before anything
    is written (nothing is, if it is not 0), and the units' status codes, or None when every
    unit is _ROW_OK.

    The units are split into ``runs`` runs of consecutive units, one per thread that numba
    launches (``numba.config.NUMBA_NUM_THREADS``; with fewer active threads, one takes whole
    runs). A run reads row i of W and grad_W from memory for its sums (|w|², w·g, |g|²),
    evaluates the unit's coefficients, then writes row i, still in cache, in the same loop
    that reads row i + 1 for its sums (``row_passes.write_and_sum``): the memory traffic of
    one triad, with no pause in the reads. A non-finite w_j or g_j makes Σ w² or Σ w·g
    non-finite, so the inputs' finiteness check costs no extra pass (``_first_non_finite``
    then says which array, on such a row only). Rows of a nat_W of ``streaming_min_bytes`` or
    more (``row_passes.use_streaming_stores``) are written with non-temporal stores, which
    skip the read of the lines they overwrite, and fenced once per run.
    """
    argument_error = runtime.layer_argument_error(
        W, b, grad_W, grad_b, nat_W, nat_b, step, lr, damping, unit_damping
    )
    if argument_error:
        return argument_error, None
    limits = runtime.array_element_limits(W)
    write = row_passes.write_mode(nat_W, step, streaming_min_bytes)
    m = W.shape[0]
    status = np.empty(m, dtype=np.uint8)
    runs = min(m, runs)
    for run in numba.prange(runs):
        first = run * m // runs
        last = (run + 1) * m // runs
        ww, wg, gg = row_passes.row_sums(W[first], grad_W[first])
        for i in range(first, last):
            w_check = 0.0
            g_check = 0.0
            if not (math.isfinite(ww) and math.isfinite(wg)):
                bad = _first_non_finite(W[i], grad_W[i])
                if bad == _ROW_W_NOT_FINITE:
                    w_check = math.nan
                elif bad == _ROW_GRAD_W_NOT_FINITE:
                    g_check = math.nan
            damping_i = damping if unit_damping.size == 0 else unit_damping[i]
            code, mode, Abar00, along_w, value_b = _row_head(
                ww, wg, gg, w_check, g_check, np.float64(b[i]), np.float64(grad_b[i]),
                damping_i, lr, step, limits,
            )
            status[i] = code
            w = W[i]
            g = grad_W[i]
            out = w if step else nat_W[i]
            has_next = i + 1 < last
            following = i + 1 if has_next else i
            written = False
            if mode == 1:
                ww, wg, gg = row_passes.write_and_sum(
                    w, g, out, W[following], grad_W[following], Abar00, along_w, lr, write,
                    has_next,
                )
                written = True
            else:
                if mode == 2:
                    written = _write_checked_row(w, g, lr, step, Abar00, along_w, out)
                    if not written:
                        status[i] = _ROW_OVERFLOW
                if has_next:
                    ww, wg, gg = row_passes.row_sums(W[following], grad_W[following])
            if written:
                if step:
                    b[i] = value_b
                else:
                    nat_b[i] = value_b
        if write == row_passes.STREAM:
            row_passes.fence()  # the run's streamed rows, ordered before the kernel returns
    for i in range(m):
        if status[i] != _ROW_OK:
            return 0, status
    return 0, None


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

    Broadcasts like ``fisher_blocks``; ``damping`` (≥ 0) is a real number or an array that
    broadcasts with ``r`` and ``b``. At r = 0: (1/(A00 + damping), 0, 0, 0). A block that is
    zero in double precision with damping 0 gives (0, 0, 0, 0), the pseudo-inverse. Where the
    inverse exceeds the double range (damping 0 and a block that is singular in double
    precision, e.g. a bounded φ' at r beyond about 1e154) a coefficient is ±inf, with a
    RuntimeWarning, as NumPy's 1/x; use damping > 0.
    """
    r, b, damping, unit_damping = runtime.check_blocks_damping(r, b, damping)
    out = _inverse_coefficients_kernel(r.ravel(), b.ravel(), damping, unit_damping.ravel())
    runtime.warn_if_overflow(out)
    return _shaped(tuple(out), r.shape)


def natural_gradient(W, b, grad_W, grad_b, damping=0.0, out=None, input_mean=None,
                     input_variance=None):
    """Unit-wise natural gradient: per unit i, (G_i + damping_i·I)⁻¹ (grad_W[i], grad_b[i]).

    W, grad_W: (m, n); b, grad_b: (m,); all float32 or all float64. Returns (nat_W, nat_b) in
    the input dtype; the row sums, the coefficients and nat_b are computed in float64, each
    entry of nat_W in the input dtype (see docs/numerics.md). One pass over W and grad_W,
    parallel over units.

    ``damping``: a real number ≥ 0, the same for every unit (damping_i = damping), or an
    array of shape (m,), any real dtype, one per unit (used as a float64 copy); an entry
    negative, NaN or inf raises ValueError naming the units.

    ``out``: optional tuple (nat_W, nat_b) of preallocated C-contiguous, writeable arrays of the
    right shapes and dtype, not overlapping the inputs; they are filled in place and returned
    (no allocation per call). After an exception their contents are unspecified.

    Raises ValueError/TypeError on bad input (shapes, dtypes, ``out``, damping, non-finite
    values) without touching the inputs, and FloatingPointError naming the units whose result
    overflows (a numerically singular block: use damping > 0). Types, dtypes and layout are
    checked before the kernel runs, shapes, damping, b, grad_b and overlaps by the kernel
    before it writes anything; non-finite values in W and grad_W are detected inside the
    kernel's single pass, so checking them costs no second pass over memory.

    ``input_mean`` (shape (n,); None: 0) and ``input_variance`` (shape (n,) or a scalar, > 0;
    None: 1) describe the layer's input x ~ N(μ, diag(s²)): the block is then
    G_i = E[φ'(u)² x*x*ᵀ] of that input, and the damping acts in the standardized coordinates,
    (G_i + damping_i·E[x*x*ᵀ])⁻¹ (docs/input_statistics.md); still one pass, O(n) per unit.
    Bad statistics (shape, dtype, NaN or inf, a variance ≤ 0, or one so small that
    1/variance overflows double precision) raise ValueError or TypeError before any work.
    """
    if input_mean is not None or input_variance is not None:
        return _statistics_natural_gradient(W, b, grad_W, grad_b, damping, out, input_mean,
                                            input_variance)
    unit_damping = runtime.NO_UNIT_DAMPING
    if not (type(damping) is float and runtime.is_layer_call(W, b, grad_W, grad_b)):
        W, b, grad_W, grad_b = runtime.check_layer_shapes(W, b, grad_W, grad_b)
        damping, unit_damping = runtime.check_layer_damping(damping, W.shape[0])
    if out is None:
        nat_W = np.empty_like(W)
        nat_b = np.empty_like(b)
    elif runtime.is_out_call(out, W):
        nat_W, nat_b = out
    else:
        nat_W, nat_b = runtime.check_out(out, W, b)
    argument_error, status = _layer_kernel(
        W, b, grad_W, grad_b, damping, unit_damping, 0.0, False, nat_W, nat_b,
        row_passes.STREAMING_MIN_BYTES, numba.config.NUMBA_NUM_THREADS,
    )
    if argument_error or status is not None:
        runtime.raise_for_layer_errors(
            argument_error, status, (W, b, grad_W, grad_b), out, damping=damping,
            unit_damping=unit_damping,
        )
    return nat_W, nat_b


def natural_gradient_step(W, b, grad_W, grad_b, lr, damping=0.0, input_mean=None,
                          input_variance=None):
    """In place: W -= lr·nat_W and b -= lr·nat_b, the unit-wise natural-gradient step.

    The same computation as ``natural_gradient`` with the update fused into its single pass:
    one read of W and grad_W and one write of W, the memory traffic of a plain SGD step.
    W and b must be C-contiguous, writeable arrays (they are updated in place, and returned);
    grad_W and grad_b must not overlap them. ``lr`` must be a finite real number; ``damping``:
    a real number or an array of shape (m,), as in ``natural_gradient``. Returns (W, b).

    Bad arguments (shapes, dtypes, lr, damping, non-finite b or grad_b) raise ValueError or
    TypeError before anything is written. A unit whose row of W or grad_W holds a NaN or ±inf
    (ValueError), or whose update overflows (FloatingPointError), is left unchanged and named
    in the exception; the other units have then been updated. ``input_mean`` and
    ``input_variance``: as in ``natural_gradient``.
    """
    if input_mean is not None or input_variance is not None:
        return _statistics_natural_gradient_step(W, b, grad_W, grad_b, lr, damping, input_mean,
                                                 input_variance)
    unit_damping = runtime.NO_UNIT_DAMPING
    if not (type(lr) is float and type(damping) is float
            and runtime.is_layer_call(W, b, grad_W, grad_b, step=True)):
        lr = runtime.check_learning_rate(lr)
        W, b, grad_W, grad_b = runtime.check_step_arguments(W, b, grad_W, grad_b)
        damping, unit_damping = runtime.check_layer_damping(damping, W.shape[0])
    argument_error, status = _layer_kernel(
        W, b, grad_W, grad_b, damping, unit_damping, lr, True, W, b,
        row_passes.STREAMING_MIN_BYTES, numba.config.NUMBA_NUM_THREADS,
    )
    if argument_error or status is not None:
        runtime.raise_for_layer_errors(
            argument_error, status, (W, b, grad_W, grad_b), step=True, lr=lr, damping=damping,
            unit_damping=unit_damping,
        )
    return W, b


def _shaped(arrays, shape):
    if shape == ():
        return tuple(float(array[0]) for array in arrays)
    return tuple(array.reshape(shape) for array in arrays)
'''
