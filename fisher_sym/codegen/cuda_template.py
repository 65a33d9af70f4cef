"""The GPU part of a generated module: ``natural_gradient_cuda`` and ``natural_gradient_step_cuda``.

Written with numba.cuda and compiled on first use: importing a generated module never imports
numba.cuda, so it needs neither a GPU nor numba-cuda; the CUDA functions raise RuntimeError
when neither a GPU nor numba's CUDA simulator (NUMBA_ENABLE_CUDASIM=1, set before numba.cuda
is first imported) is there.

Launch: a 2-D block of ``_CUDA["threads"]`` threads, ``width`` threads along a row (x) and
``threads // width`` rows (y); width is 32 (a warp per row) for short rows and grows to the
whole block (a block per row) for long ones, so that each thread handles ≥ 8 elements. Each
row is read once, coalesced (threads stride the row by ``width``), into five float64 partial
sums (|w|², w·g, |g|², Σ w·0, Σ g·0: the last two are NaN exactly when the row holds a NaN or
±inf), reduced in shared memory; one thread per row evaluates the coefficients; the row is
then written (or W updated in place) from the same addresses, while they are in L2.

Per-row coefficients on the device. numba.cuda compiles a CPU ``@numba.njit`` function called
from device code as a device function (from its Python source), so the fused kernel calls
the module's ``_device_row_head`` (``device_row_head`` below) and, through it, the runtime and
special-function helpers directly: 3 array passes (read W and grad_W, write the result).
Their work arrays come from ``special.scratch``, a thread-local array on the device
(``special.register_device_scratch``). For a closed form the head is ``_row_head`` itself. On
the numerical path it is the fast rule alone (``runtime.trapezoid_moments``), its table
passed to the kernel as an argument, in global memory (numba would put a global array in
constant memory, 64 KiB, smaller than the table); the split quadrature (panel stacks,
``np.unique``) does not compile for the device, so a unit the fast rule refuses is left to
the host (status _ROW_DEFERRED, its row sums kept): its head by the CPU kernel, its row then
written by a second kernel that reads only such rows. Both heads compile for sm_90 (checked
by compiling to PTX and assembling it, tests/test_cuda_compile.py). Where the fused kernel
does not compile (an activation on the numerical path without the fast rule, or numba's
older built-in numba.cuda), the first launch warns once and falls back to two kernels with
the coefficients on the host: the row sums (one read of W, grad_W), the m coefficients by
the CPU kernel, then the write pass (a second read): 5 instead of 3 array passes, but
correct on every GPU.
"""

CUDA_API = '''\
# --- GPU kernels (numba.cuda, compiled on first use) ------------------------------------------

# threads: threads per block (tests lower it to keep the simulator quick); device_coefficients:
# None until the first launch tries the fused kernel, then whether it compiled for the device;
# table: ``_cuda_device_table``; no_unit_damping: ``_cuda_unit_damping``'s empty device array.
_CUDA = {"threads": 256, "device_coefficients": None, "kernels": None, "table": None,
         "no_unit_damping": None}
# numba.cuda once imported. The kernels name it as a module global, where the CUDA simulator
# substitutes its fake module while a simulated kernel runs.
_cuda = None


@numba.njit(parallel=True, cache=True)
def _row_heads_kernel(sums, b, grad_b, damping, unit_damping, lr, step, limits, heads, status):
    """Host side of the two-kernel GPU path: heads[i] = (Abar00, along_w, mode, value_b)."""
    for i in numba.prange(sums.shape[0]):
        damping_i = damping if unit_damping.size == 0 else unit_damping[i]
        code, mode, Abar00, along_w, value_b = _row_head(
            sums[i, 0], sums[i, 1], sums[i, 2], sums[i, 3], sums[i, 4],
            np.float64(b[i]), np.float64(grad_b[i]), damping_i, lr, step, limits,
        )
        status[i] = code
        heads[i, 0] = Abar00
        heads[i, 1] = along_w
        heads[i, 2] = mode
        heads[i, 3] = value_b


def _cuda_build():
    """Import numba.cuda and compile-on-demand the kernels (once per process)."""
    global _cuda
    if _CUDA["kernels"] is not None:
        return _CUDA["kernels"]
    try:
        from numba import cuda as _cuda
    except ImportError as error:  # numba without its CUDA target
        raise RuntimeError(
            "the CUDA kernels need numba's CUDA target: pip install 'fisher_sym[cuda]' "
            "(numba-cuda)"
        ) from error
    if not _cuda.is_available():
        raise RuntimeError(
            "no CUDA GPU is available (numba.cuda.is_available() is False). To run the CUDA "
            "kernels in numba's CUDA simulator, set NUMBA_ENABLE_CUDASIM=1 in the environment "
            "before numba.cuda is first imported."
        )
    special.register_device_scratch()  # work arrays of the coefficients: thread-local
    threads = _CUDA["threads"]
    float64 = numba.float64
    row_head = _cuda.jit(device=True)(_device_row_head.py_func)

    @_cuda.jit(device=True)
    def block_reduce(sums, count, k, tx, width):
        # Tree sum of sums[q, k0 : k0 + width] into sums[q, k0] (k0 = first thread of the row).
        s = width // 2
        while s > 0:
            if tx < s:
                for q in range(count):
                    sums[q, k] += sums[q, k + s]
            _cuda.syncthreads()
            s //= 2

    @_cuda.jit(device=True)
    def row_sums(W, G, i, tx, width, sums, k):
        ww = wg = gg = w_check = g_check = 0.0
        if i < W.shape[0]:
            for j in range(tx, W.shape[1], width):
                x = np.float64(W[i, j])
                y = np.float64(G[i, j])
                ww += x * x
                wg += x * y
                gg += y * y
                w_check += x * 0.0
                g_check += y * 0.0
        sums[0, k] = ww
        sums[1, k] = wg
        sums[2, k] = gg
        sums[3, k] = w_check
        sums[4, k] = g_check
        _cuda.syncthreads()
        block_reduce(sums, 5, k, tx, width)

    @_cuda.jit(device=True)
    def finish_rows(W, b, G, lr, step, cast_limit, nat_W, nat_b, status, head, sums, i, ty, tx,
                    k, width):
        # head[:, ty] = (Abar00, along_w, mode, value_b) of row i; all threads of the block call.
        m, n = W.shape
        mode = head[2, ty] if i < m else 0.0
        Abar00 = head[0, ty]
        along_w = head[1, ty]
        if _cuda.syncthreads_or(1 if mode == 2.0 else 0):
            # Near overflow: compute the row without writing it, and keep it only if finite.
            bad = 0.0
            if mode == 2.0:
                for j in range(tx, n, width):
                    x = np.float64(W[i, j])
                    nat = Abar00 * np.float64(G[i, j]) + along_w * x
                    value = x - lr * nat if step else nat
                    if not (math.isfinite(nat) and abs(value) < cast_limit):
                        bad = 1.0
            sums[0, k] = bad
            _cuda.syncthreads()
            block_reduce(sums, 1, k, tx, width)
            if tx == 0 and mode == 2.0:
                if sums[0, k] == 0.0:
                    head[2, ty] = 1.0
                else:
                    head[2, ty] = 0.0
                    status[i] = _ROW_OVERFLOW
            _cuda.syncthreads()
            mode = head[2, ty] if i < m else 0.0
        if mode == 1.0:
            if tx == 0:
                if step:
                    b[i] = head[3, ty]
                else:
                    nat_b[i] = head[3, ty]
            # in the arrays' dtype, as the CPU kernels' row_passes.write_and_sum
            rate = W.dtype.type(lr)
            a = W.dtype.type(Abar00)
            c = W.dtype.type(along_w)
            for j in range(tx, n, width):
                x = W[i, j]
                nat = a * G[i, j] + c * x
                if step:
                    W[i, j] = x - rate * nat
                else:
                    nat_W[i, j] = nat

    @_cuda.jit
    def fused(W, b, G, gb, damping, unit_damping, lr, step, limits, nat_W, nat_b, status, table,
              deferred_sums):
        sums = _cuda.shared.array((5, threads), float64)
        head = _cuda.shared.array((4, threads), float64)
        tx = _cuda.threadIdx.x
        ty = _cuda.threadIdx.y
        width = _cuda.blockDim.x
        i = _cuda.blockIdx.x * _cuda.blockDim.y + ty
        k = ty * width + tx
        row_sums(W, G, i, tx, width, sums, k)
        if tx == 0 and i < W.shape[0]:
            damping_i = damping if unit_damping.shape[0] == 0 else unit_damping[i]
            code, mode, Abar00, along_w, value_b = row_head(
                sums[0, k], sums[1, k], sums[2, k], sums[3, k], sums[4, k],
                np.float64(b[i]), np.float64(gb[i]), damping_i, lr, step, limits, table,
            )
            status[i] = code
            if code == _ROW_DEFERRED:  # kept for the host (mode 0: not written here)
                for q in range(5):
                    deferred_sums[i, q] = sums[q, k]
            head[0, ty] = Abar00
            head[1, ty] = along_w
            head[2, ty] = mode
            head[3, ty] = value_b
        _cuda.syncthreads()
        finish_rows(W, b, G, lr, step, limits[2], nat_W, nat_b, status, head, sums, i, ty, tx,
                    k, width)

    @_cuda.jit
    def sums_only(W, G, out):
        sums = _cuda.shared.array((5, threads), float64)
        tx = _cuda.threadIdx.x
        ty = _cuda.threadIdx.y
        width = _cuda.blockDim.x
        i = _cuda.blockIdx.x * _cuda.blockDim.y + ty
        k = ty * width + tx
        row_sums(W, G, i, tx, width, sums, k)
        if tx == 0 and i < W.shape[0]:
            for q in range(5):
                out[i, q] = sums[q, k]

    @_cuda.jit
    def apply(W, b, G, heads, lr, step, limits, nat_W, nat_b, status):
        sums = _cuda.shared.array((5, threads), float64)
        head = _cuda.shared.array((4, threads), float64)
        tx = _cuda.threadIdx.x
        ty = _cuda.threadIdx.y
        width = _cuda.blockDim.x
        i = _cuda.blockIdx.x * _cuda.blockDim.y + ty
        k = ty * width + tx
        if tx == 0 and i < W.shape[0]:
            for q in range(4):
                head[q, ty] = heads[i, q]
        _cuda.syncthreads()
        finish_rows(W, b, G, lr, step, limits[2], nat_W, nat_b, status, head, sums, i, ty, tx,
                    k, width)

    _CUDA["kernels"] = (_cuda, fused, sums_only, apply, threads)
    return _CUDA["kernels"]


def _cuda_device_table():
    """``_DEVICE_TABLE`` with its arrays on the GPU (copied once), or a placeholder argument."""
    if _CUDA["table"] is None:
        if _DEVICE_TABLE is None:
            _CUDA["table"] = (_cuda.to_device(np.zeros(1)),)
        elif numba.config.ENABLE_CUDASIM:
            _CUDA["table"] = _DEVICE_TABLE  # the simulator runs the head's njit calls on the host
        else:
            _CUDA["table"] = tuple(
                _cuda.to_device(part) if isinstance(part, np.ndarray) else part
                for part in _DEVICE_TABLE
            )
    return _CUDA["table"]


def _cuda_unit_damping(unit_damping):
    """A layer kernel's ``unit_damping`` (host, float64) on the GPU: copied if it has an entry
    per unit, else an empty device array made once (the kernels then take the scalar)."""
    if unit_damping.size:
        return _cuda.to_device(unit_damping)
    if _CUDA["no_unit_damping"] is None:
        _CUDA["no_unit_damping"] = _cuda.to_device(runtime.NO_UNIT_DAMPING)
    return _CUDA["no_unit_damping"]


def _unit_damping_of(unit_damping, units):
    """``unit_damping`` of the units ``units`` (indices) only, for the host's heads."""
    return unit_damping[units] if unit_damping.size else unit_damping


def _cuda_damping(damping, m):
    """``runtime.check_layer_damping`` of a GPU call's damping: a real number, or an array of
    shape (m,) on the host or on the device (``__cuda_array_interface__``: its m numbers are
    copied to the host to be checked)."""
    if _cuda_is_device_array(damping):
        if not getattr(damping, "__cuda_ndarray__", False):
            damping = _cuda.as_cuda_array(damping)
        damping = damping.copy_to_host()
    return runtime.check_layer_damping(damping, m)


def _cuda_launch_shape(m, n, threads):
    width = 32
    while width < threads and width * 8 < n:
        width *= 2
    rows = threads // width
    return ((m + rows - 1) // rows,), (width, rows)


def _cuda_is_device_array(array):
    return getattr(array, "__cuda_ndarray__", False) or hasattr(array, "__cuda_array_interface__")


def _cuda_span(array):
    """(first, last) byte address of a device array, for the overlap check."""
    if hasattr(array, "__cuda_array_interface__"):
        start = array.__cuda_array_interface__["data"][0]
    else:  # the simulator's device arrays wrap a NumPy array
        start = array.__array_interface__["data"][0]
    return start, start + array.nbytes


def _cuda_arrays(cuda, arrays, names):
    """(device arrays, False) if every array is a device array (converted without copies), or
    (None, True) if none is (NumPy arrays, to be copied over)."""
    on_device = [_cuda_is_device_array(array) for array in arrays]
    if all(on_device):
        converted = tuple(
            array if getattr(array, "__cuda_ndarray__", False) else cuda.as_cuda_array(array)
            for array in arrays
        )
        return converted, False
    if any(on_device):
        raise TypeError(
            f"{', '.join(names)} must all be device arrays (__cuda_array_interface__) or all "
            "NumPy arrays, not a mix"
        )
    return None, True


def _cuda_run(W, b, grad_W, grad_b, damping, unit_damping, lr, step, nat_W, nat_b):
    """Launch on device arrays (``unit_damping``: on the host, ``runtime.check_layer_damping``);
    returns the status of each row (on the host)."""
    cuda, fused, sums_only, apply, threads = _cuda_build()
    m, n = W.shape
    dtype = np.dtype(W.dtype)
    limits = runtime.element_limits(dtype)
    status = cuda.device_array(m, dtype=np.uint8)
    if m == 0:
        return np.empty(0, dtype=np.uint8)
    grid, block = _cuda_launch_shape(m, n, threads)
    if _CUDA["device_coefficients"] is not False:
        deferred_sums = cuda.device_array((m if _DEVICE_TABLE is not None else 1, 5))
        try:
            fused[grid, block](W, b, grad_W, grad_b, damping, _cuda_unit_damping(unit_damping),
                               lr, step, limits, nat_W, nat_b, status, _cuda_device_table(),
                               deferred_sums)
            _CUDA["device_coefficients"] = True
        except (numba.core.errors.NumbaError, TypeError) as error:
            # A compile error of the device coefficients (numba's built-in numba.cuda raises
            # TypeError for the keyword-argument calls, numba-cuda a TypingError); the arguments
            # were checked already, and a launch failure is neither.
            import warnings

            _CUDA["device_coefficients"] = False
            warnings.warn(
                "the per-unit coefficients do not compile for the GPU "
                f"({type(error).__name__}: {str(error).splitlines()[0]}); using the two-kernel "
                "path with the coefficients on the host (one extra read of W and grad_W)",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            host_status = status.copy_to_host()
            deferred = np.flatnonzero(host_status == _ROW_DEFERRED)
            if deferred.size == 0:
                return host_status
            return _cuda_finish_deferred(
                apply, (grid, block), (W, b, grad_W, grad_b, nat_W, nat_b), damping,
                unit_damping, lr, step, limits, host_status, deferred, deferred_sums,
            )
    # The two-kernel path: every unit's row sums, then all of them finished on the host.
    sums = cuda.device_array((m, 5), dtype=np.float64)
    sums_only[grid, block](W, grad_W, sums)
    return _cuda_finish_deferred(
        apply, (grid, block), (W, b, grad_W, grad_b, nat_W, nat_b), damping, unit_damping, lr,
        step, limits, np.empty(m, dtype=np.uint8), np.arange(m), sums,
    )


def _cuda_finish_deferred(apply, launch, arrays, damping, unit_damping, lr, step, limits,
                          host_status, deferred, deferred_sums):
    """The units left to the host (``deferred``, not written yet: those the fused kernel
    marked _ROW_DEFERRED, or every unit on the two-kernel path): their heads by the CPU kernel
    from their row sums on the device, then their rows written by ``apply``, which skips every
    other row (mode 0). Returns the rows' status."""
    W, b, grad_W, grad_b, nat_W, nat_b = arrays
    heads = np.zeros((W.shape[0], 4))  # mode (column 2) 0: not written by ``apply``
    part_heads = np.empty((deferred.size, 4))
    part_status = np.empty(deferred.size, dtype=np.uint8)
    _row_heads_kernel(deferred_sums.copy_to_host()[deferred], b.copy_to_host()[deferred],
                      grad_b.copy_to_host()[deferred], damping,
                      _unit_damping_of(unit_damping, deferred), lr, step, limits, part_heads,
                      part_status)
    heads[deferred] = part_heads
    host_status[deferred] = part_status
    status = _cuda.to_device(host_status)
    grid, block = launch
    apply[grid, block](W, b, grad_W, _cuda.to_device(heads), lr, step, limits, nat_W, nat_b,
                       status)
    return status.copy_to_host()


def natural_gradient_cuda(W, b, grad_W, grad_b, damping=0.0, out=None, input_mean=None,
                          input_variance=None):
    """``natural_gradient`` on a CUDA GPU: the same math, arguments and errors.

    Arrays exposing ``__cuda_array_interface__`` (numba device arrays, CuPy arrays, PyTorch CUDA
    tensors: detach them first) are used in place, without copies, and the result is a pair of
    numba device arrays (wrap them with cupy.asarray / torch.as_tensor, also without copies);
    ``out`` is then a pair of such arrays, written in place. NumPy arrays are copied to the GPU
    and the result is copied back as NumPy arrays (into ``out`` if given). Device arrays must be
    C-contiguous and all of one float dtype; their non-finite values are found by the kernel.
    Raises RuntimeError if there is no GPU and the CUDA simulator is not enabled.
    ``damping``: a real number, or an array of shape (m,) on the host or the device (its m
    numbers are copied and checked on the host). ``input_mean`` and ``input_variance`` (NumPy
    arrays or scalars) are checked on the host, before anything is copied or launched.
    """
    if np.ndim(damping) == 0 and not _cuda_is_device_array(damping):
        runtime.check_damping(damping)  # before looking for a GPU, as lr
    cuda = _cuda_build()[0]
    names = ("W", "b", "grad_W", "grad_b")
    device, from_host = _cuda_arrays(cuda, (W, b, grad_W, grad_b), names)
    if from_host:
        W, b, grad_W, grad_b = runtime.check_layer_shapes(W, b, grad_W, grad_b)
        if out is not None:
            out = runtime.check_out(out, W, b)
        runtime.check_layer_values(W, b, grad_W, grad_b, out)
        damping, unit_damping = _cuda_damping(damping, W.shape[0])
        statistics = _cuda_statistics_of(input_mean, input_variance, W)
        dW, db, dgW, dgb = (cuda.to_device(array) for array in (W, b, grad_W, grad_b))
        nat_W = cuda.device_array(W.shape, dtype=W.dtype)
        nat_b = cuda.device_array(b.shape, dtype=b.dtype)
    else:
        runtime.check_device_layer_shapes(*device)
        dW, db, dgW, dgb = device
        damping, unit_damping = _cuda_damping(damping, dW.shape[0])
        statistics = _cuda_statistics_of(input_mean, input_variance, dW)
        if out is None:
            nat_W = cuda.device_array(dW.shape, dtype=dW.dtype)
            nat_b = cuda.device_array(db.shape, dtype=db.dtype)
        else:
            if not isinstance(out, tuple) or len(out) != 2:
                raise TypeError(f"out must be a tuple (nat_W, nat_b), got {type(out).__name__}")
            converted, from_host_out = _cuda_arrays(cuda, out, ("out[0]", "out[1]"))
            if from_host_out:
                raise TypeError("out must hold device arrays when the inputs are device arrays")
            nat_W, nat_b = runtime.check_device_out(converted, dW, db, device, _cuda_span)
    if statistics is None:
        status = _cuda_run(dW, db, dgW, dgb, damping, unit_damping, 0.0, False, nat_W, nat_b)
    else:
        status = _cuda_run_statistics(dW, db, dgW, dgb, damping, unit_damping, 0.0, False,
                                      nat_W, nat_b, statistics)
    runtime.raise_for_row_status(status, input_statistics=statistics is not None)
    if not from_host:
        return nat_W, nat_b
    if out is None:
        return nat_W.copy_to_host(), nat_b.copy_to_host()
    nat_W.copy_to_host(out[0])
    nat_b.copy_to_host(out[1])
    return out


def natural_gradient_step_cuda(W, b, grad_W, grad_b, lr, damping=0.0, input_mean=None,
                               input_variance=None):
    """``natural_gradient_step`` on a CUDA GPU: W -= lr·nat_W, b -= lr·nat_b in place.

    Device arrays (``__cuda_array_interface__``) are updated in place without copies; NumPy
    arrays are copied to the GPU and W, b are updated in place from the result. Same checks,
    errors and per-unit semantics as ``natural_gradient_step``, ``damping`` (a real number or
    an array of shape (m,), host or device, as in ``natural_gradient_cuda``), ``input_mean``
    and ``input_variance`` included. Returns (W, b).
    """
    lr = runtime.check_learning_rate(lr)
    if np.ndim(damping) == 0 and not _cuda_is_device_array(damping):
        runtime.check_damping(damping)  # before looking for a GPU
    cuda = _cuda_build()[0]
    names = ("W", "b", "grad_W", "grad_b")
    device, from_host = _cuda_arrays(cuda, (W, b, grad_W, grad_b), names)
    if from_host:
        W, b, grad_W, grad_b = runtime.check_step_arguments(W, b, grad_W, grad_b)
        runtime.check_layer_values(W, b, grad_W, grad_b, (W, b), step=True)
        damping, unit_damping = _cuda_damping(damping, W.shape[0])
        statistics = _cuda_statistics_of(input_mean, input_variance, W)
        dW, db, dgW, dgb = (cuda.to_device(array) for array in (W, b, grad_W, grad_b))
    else:
        runtime.check_device_layer_shapes(*device)
        dW, db, dgW, dgb = device
        runtime.check_device_no_overlap(((dW, "W"), (db, "b")), ((dgW, "grad_W"), (dgb, "grad_b")),
                                        _cuda_span)
        damping, unit_damping = _cuda_damping(damping, dW.shape[0])
        statistics = _cuda_statistics_of(input_mean, input_variance, dW)
    if statistics is None:
        status = _cuda_run(dW, db, dgW, dgb, damping, unit_damping, lr, True, dW, db)
    else:
        status = _cuda_run_statistics(dW, db, dgW, dgb, damping, unit_damping, lr, True, dW, db,
                                      statistics)
    if from_host:
        dW.copy_to_host(W)
        db.copy_to_host(b)
    runtime.raise_for_row_status(status, step=True, input_statistics=statistics is not None)
    return W, b
'''


DIRECT_DEVICE_HEAD = '''\
# --- GPU per-row head: ``_row_head`` itself, whose coefficients compile for the device ------

# No table: the fused GPU kernel passes a placeholder to ``_device_row_head``.
_DEVICE_TABLE = None


@numba.njit(cache=True)
def _device_row_head(ww, wg, gg, w_check, g_check, b_i, g_b, damping, lr, step, limits, table):
    """``_row_head``, in the fused GPU kernel (``table`` unused)."""
    return _row_head(ww, wg, gg, w_check, g_check, b_i, g_b, damping, lr, step, limits)
'''

FAST_RULE_DEVICE_HEAD = '''\
# --- GPU per-row head: the fast rule alone, its table an argument of the kernel --------------

# The fast rule's table, copied to the GPU once and passed to the fused kernel: a global array
# would be put in the device's constant memory, which holds 64 KiB, less than the table.
_DEVICE_TABLE = _TRAPEZOID_TABLE


@numba.njit(cache=True)
def _device_row_head(ww, wg, gg, w_check, g_check, b_i, g_b, damping, lr, step, limits, table):
    """``_row_head`` by the fast rule alone (``runtime.trapezoid_moments`` over ``table``), for
    the fused GPU kernel, where the split quadrature does not compile: status _ROW_DEFERRED
    where the rule refuses the unit, which the host then finishes (``_cuda_finish_deferred``)."""
    code = _row_input_status(w_check, g_check, b_i, g_b)
    if code != _ROW_OK:
        return code, 0, 0.0, 0.0, 0.0
    r = math.sqrt(ww)
    accepted, moments = runtime.trapezoid_moments(r, b_i, table, STEP_LIMITS)
    if not accepted:
        return _ROW_DEFERRED, 0, 0.0, 0.0, 0.0
    A00, m1, v, q = moments
    coefficients = _coefficients_of_moments(A00, m1, v, q, damping)
    return _row_update(r, coefficients, wg, gg, b_i, g_b, lr, step, limits)
'''


def device_row_head(fast_rule: bool) -> str:
    """The per-row head of the fused GPU kernel: the fast rule's where the module has one,
    else ``_row_head`` itself."""
    return FAST_RULE_DEVICE_HEAD if fast_rule else DIRECT_DEVICE_HEAD
