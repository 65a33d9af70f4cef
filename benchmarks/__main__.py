"""python -m benchmarks: time the ReLU layer kernels against the memory-bandwidth bound and
against the other ways to do the same update. Prints Markdown tables (see docs/benchmarks.md).

Every contender is timed on the same arrays in the same run, round-robin (one call of each
in turn, repeated), so that a background load shifts them alike; each time is the median.
"""

from __future__ import annotations

import argparse
import glob
import importlib
import importlib.util
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings

import numba
import numpy as np

from benchmarks import kernels
from fisher_sym import activations, row_passes
from generated import relu

SHAPES = ((256, 256), (1024, 1024), (4096, 4096), (1024, 16384))
DTYPES = (np.float64, np.float32)
DAMPING = 1e-3
LR = 1e-6


STATISTIC = {"median": statistics.median, "min": min}
SUMMARY = statistics.median
#: Rounds of every contender at least, however long they take: the median of fewer moved
#: single ratios by ±25 % between runs on the shared machine.
MIN_REPEATS = 15


#: The least read before each timed call to evict the caches (``flush_bytes``).
MIN_FLUSH_BYTES = 64 * 2**20
_FLUSH = {"buffer": None}


def largest_cache_bytes():
    """Bytes in the largest CPU cache the OS reports (Linux sysfs), or 0 where it reports none."""
    sizes = [0]
    for path in glob.glob("/sys/devices/system/cpu/cpu*/cache/index*/size"):
        try:
            with open(path) as file:
                text = file.read().strip()
        except OSError:
            continue
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        digits = text[:-1] if text[-1:] in "KMG" else text
        if digits.isdigit():
            sizes.append(int(digits) * scale)
    return max(sizes)


def flush_bytes():
    """Bytes read to evict the caches: twice the largest cache the OS reports, at least
    MIN_FLUSH_BYTES, so that the flush outgrows the cache whatever the machine."""
    return max(MIN_FLUSH_BYTES, 2 * largest_cache_bytes())


def flush_caches():
    """Read ``flush_bytes()``: the caches then hold clean lines of this buffer only, so each
    timed call starts with its arrays in memory and without the previous contender's dirty
    lines to write back (which would bill it for the earlier call's writes), as in training,
    where the forward and backward passes run between two updates."""
    if _FLUSH["buffer"] is None:
        _FLUSH["buffer"] = np.ones(flush_bytes() // 8)
    return kernels.read_all(_FLUSH["buffer"])


def timed(contenders, min_time, max_repeats):
    """Seconds per call of each contender (a dict name -> zero-argument callable): the median
    (or ``--statistic``) over round-robin repeats (at least MIN_REPEATS, then until
    ``min_time`` has passed), after one warm-up call of each; the caches are flushed before
    every timed call (``flush_caches``)."""
    rounds = timed_rounds(contenders, min_time, max_repeats)
    return {name: SUMMARY(values) for name, values in rounds.items()}


def timed_rounds(contenders, min_time, max_repeats):
    """The seconds of every round of ``timed``, per contender: lists of equal length, entry k
    of each from the same round-robin round."""
    for function in contenders.values():
        function()  # warm-up (compilation, page faults of fresh buffers)
    times = {name: [] for name in contenders}
    start = time.perf_counter()
    repeats = 0
    while repeats < max_repeats and (
        repeats < MIN_REPEATS or time.perf_counter() - start < min_time
    ):
        for name, function in contenders.items():
            flush_caches()
            begin = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - begin)
        repeats += 1
    return times


def paired_ratios(numerator, denominator):
    """Quartiles (q1, median, q3) of numerator[k] / denominator[k] over rounds k: two
    contenders compared round by round, each against the other's call of the same round, so
    that the machine's slower and faster spells cancel."""
    q1, median, q3 = statistics.quantiles(
        [a / b for a, b in zip(numerator, denominator, strict=True)], n=4
    )
    return q1, median, q3


def layer(m, n, dtype, seed=0):
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((m, n)) / np.sqrt(n)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    grad_W = rng.standard_normal((m, n)).astype(dtype)
    grad_b = rng.standard_normal(m).astype(dtype)
    return W, b, grad_W, grad_b


def cpu_row(m, n, dtype, min_time, max_repeats):
    """Every CPU contender on one layer, and the hand-written NumPy version's disagreement."""
    W, b, grad_W, grad_b = layer(m, n, dtype)
    itemsize = np.dtype(dtype).itemsize
    nat_W, nat_b = np.empty_like(W), np.empty_like(b)
    # The triad runs on the kernels' own arrays and the SGD steps on the step's W: the same
    # pages (how much of an array the OS backs with huge pages varies, and moved single
    # contenders by up to 30 % in a trial), so that the ratios compare kernels, not mappings.
    W_step, b_step = W.copy(), b.copy()
    W_sgd = W_np = W_step
    a, x, y = nat_W.ravel(), W.ravel(), grad_W.ravel()
    scalar = dtype(0.5)
    lr = dtype(LR)
    totals = np.empty(numba.config.NUMBA_NUM_THREADS)  # one run per thread, as the kernels
    write = (row_passes.STREAM
             if row_passes.use_streaming_stores(nat_W, row_passes.STREAMING_MIN_BYTES)
             else row_passes.WRITE)
    contenders = {
        "triad": lambda: kernels.triad(a, x, y, scalar),
        "nat_out": lambda: relu.natural_gradient(W, b, grad_W, grad_b, DAMPING, out=(nat_W, nat_b)),
        "nat_alloc": lambda: relu.natural_gradient(W, b, grad_W, grad_b, DAMPING),
        "step": lambda: relu.natural_gradient_step(W_step, b_step, grad_W, grad_b, LR, DAMPING),
        "sgd_numba": lambda: kernels.sgd_step(W_sgd, grad_W, lr),
        "loop_out": lambda: kernels.bare_row_pipeline(W, grad_W, nat_W, write, LR, totals),
        "loop_step": lambda: kernels.bare_row_pipeline(
            W_step, grad_W, W_step, row_passes.STEP, LR, totals
        ),
        "sgd_numpy": lambda: kernels.numpy_sgd_step(W_np, grad_W, lr),
        "numpy_closed_form": lambda: kernels.numpy_relu_natural_gradient(
            W, b, grad_W, grad_b, DAMPING
        ),
    }
    t = timed(contenders, min_time, max_repeats)
    # The hand-written NumPy version must agree (relative to each row's largest entry).
    numpy_W, _ = kernels.numpy_relu_natural_gradient(W, b, grad_W, grad_b, DAMPING)
    ours_W, _ = relu.natural_gradient(W, b, grad_W, grad_b, DAMPING)
    scale = np.abs(ours_W.astype(np.float64)).max(axis=1, keepdims=True)
    disagreement = float(np.max(np.abs(numpy_W - ours_W) / scale))
    bandwidth = 3 * m * n * itemsize / t["triad"]
    return {"m": m, "n": n, "dtype": np.dtype(dtype).name, "bandwidth": bandwidth,
            "disagreement": disagreement, **t}


def cpu_rows(min_time, max_repeats, shapes):
    rows = []
    for m, n in shapes:
        for dtype in DTYPES:
            rows.append(cpu_row(m, n, dtype, min_time, max_repeats))
            print(".", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def dense_row(m, n, min_time, max_repeats):
    W, b, grad_W, grad_b = layer(m, n, np.float64)
    G = kernels.relu_dense_blocks(W, b, DAMPING)
    nat_W, nat_b = np.empty_like(W), np.empty_like(b)
    # natural_gradient is timed on its own, before the solves: the BLAS threads of a solve
    # go on spinning after it returns, and on two cores they slowed the next kernel 20–50×.
    t = timed(
        {
            "nat_out": lambda: relu.natural_gradient(
                W, b, grad_W, grad_b, DAMPING, out=(nat_W, nat_b)
            ),
        },
        min_time,
        max_repeats,
    )
    t |= timed(
        {
            "dense_solve": lambda: kernels.dense_solve(G, grad_W, grad_b),
            "dense_build_and_solve": lambda: kernels.dense_solve(
                kernels.relu_dense_blocks(W, b, DAMPING), grad_W, grad_b
            ),
        },
        min_time,
        max_repeats,
    )
    want = kernels.dense_solve(G, grad_W, grad_b)
    got = relu.natural_gradient(W, b, grad_W, grad_b, DAMPING)
    error = max(np.abs(got[0] - want[0]).max(), np.abs(got[1] - want[1]).max())
    return {"m": m, "n": n, "error": error, **t}


def dense_rows(min_time, max_repeats, m=256, widths=(32, 64, 128, 256)):
    return [dense_row(m, n, min_time, max_repeats) for n in widths]


#: The shape of the input-statistics comparison.
STATISTICS_SHAPE = (4096, 4096)


def statistics_row(m, n, dtype, min_time, max_repeats):
    """natural_gradient(out=) with input_mean and input_variance (a mean like a ReLU layer's
    output, variances over two decades) against without, on the same arrays, same rounds."""
    W, b, grad_W, grad_b = layer(m, n, dtype)
    rng = np.random.default_rng(1)
    mean = np.abs(rng.standard_normal(n))
    variance = 10.0 ** rng.uniform(-1.0, 1.0, n)
    out = (np.empty_like(W), np.empty_like(b))
    rounds = timed_rounds(
        {
            "without": lambda: relu.natural_gradient(W, b, grad_W, grad_b, DAMPING, out=out),
            "with": lambda: relu.natural_gradient(W, b, grad_W, grad_b, DAMPING, out=out,
                                                  input_mean=mean, input_variance=variance),
        },
        min_time,
        max_repeats,
    )
    return {"m": m, "n": n, "dtype": np.dtype(dtype).name,
            **{name: SUMMARY(values) for name, values in rounds.items()},
            "paired": paired_ratios(rounds["with"], rounds["without"])}


def print_statistics_rows(min_time, max_repeats):
    m, n = STATISTICS_SHAPE
    print(f"natural_gradient(out=) with input_mean and input_variance (per-input, mean ≥ 0, "
          f"variances 0.1–10) against without, relu, damping {DAMPING}, same rounds; "
          f"{SUMMARY.__name__} ms per call; per round: the ratio of the two calls of each "
          f"round, median [quartiles]. Target: with/without ≤ 1.10.\n")
    print("| m × n | dtype | without ms | with ms | with / without | per round |")
    print("|---|---|---|---|---|---|")
    for dtype in DTYPES:
        row = statistics_row(m, n, dtype, min_time, max_repeats)
        q1, median, q3 = row["paired"]
        print(f"| {m} × {n} | {row['dtype']} | {row['without'] * 1e3:.3f} | "
              f"{row['with'] * 1e3:.3f} | {row['with'] / row['without']:.2f} | "
              f"{median:.2f} [{q1:.2f}, {q3:.2f}] |")
    print()


#: GPU rows: a closed form, and the numerical path (the fast rule on the device).
GPU_ACTIVATIONS = ("relu", "gelu")


def gpu_line(cuda, module, m, n, dtype, min_time, max_repeats):
    W, b, grad_W, grad_b = (cuda.to_device(a) for a in layer(m, n, dtype))
    nat = (cuda.device_array_like(W), cuda.device_array_like(b))
    copy = cuda.device_array_like(W)

    def synchronised(function):
        def run():
            function()
            cuda.synchronize()

        return run

    t = timed(
        {
            "copy": synchronised(lambda: copy.copy_to_device(W)),
            "nat": synchronised(
                lambda: module.natural_gradient_cuda(W, b, grad_W, grad_b, DAMPING, out=nat)
            ),
            "step": synchronised(
                lambda: module.natural_gradient_step_cuda(W, b, grad_W, grad_b, LR, DAMPING)
            ),
        },
        min_time,
        max_repeats,
    )
    itemsize = np.dtype(dtype).itemsize
    bandwidth = 2 * m * n * itemsize / t["copy"]  # a copy reads and writes each element
    bound = 3 * m * n * itemsize / bandwidth
    path = "fused" if module._CUDA["device_coefficients"] else "two kernels"
    return (
        f"| {module.ACTIVATION} | {m} × {n} | {np.dtype(dtype).name} | {bandwidth / 1e9:.0f} | "
        f"{t['nat'] * 1e3:.3f} | "
        f"{bound / t['nat']:.2f} | {t['step'] * 1e3:.3f} | {bound / t['step']:.2f} | {path} |"
    )


def gpu_report(min_time, max_repeats, shapes):
    """GPU kernels against the device-to-device copy bandwidth, or why they are skipped."""
    try:
        from numba import cuda
    except ImportError:
        return ("GPU: skipped (numba's CUDA target is not installed: "
                "pip install 'fisher_sym[cuda]').")
    if os.environ.get("NUMBA_ENABLE_CUDASIM") == "1":
        return "GPU: skipped (NUMBA_ENABLE_CUDASIM=1: the simulator is not timed)."
    if not cuda.is_available():
        return "GPU: skipped (no CUDA GPU: numba.cuda.is_available() is False)."
    lines = [
        "| activation | m × n | dtype | copy GB/s | natural_gradient_cuda ms | of bound | "
        "step_cuda ms | of bound | path |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in GPU_ACTIVATIONS:
        module = importlib.import_module(f"generated.{name}")
        for m, n in shapes:
            for dtype in DTYPES:
                lines.append(gpu_line(cuda, module, m, n, dtype, min_time, max_repeats))
    return "\n".join(lines)


COEFFICIENT_ACTIVATIONS = ("relu", "elu", "erf", "gelu", "tanh", "sigmoid", "softplus", "silu")


def coefficient_rows(min_time, max_repeats, m=1024, n=1024):
    """Seconds per call, per activation, on one thread: ``inverse_coefficients`` of m units,
    ``natural_gradient`` of an (m, n) float64 layer (which evaluates them once per row), and
    the plain SGD step on that layer (the O(n) pass over each row, for scale)."""
    W, b, grad_W, grad_b = layer(m, n, np.float64)
    r = np.linalg.norm(W, axis=1)
    nat_W, nat_b = np.empty_like(W), np.empty_like(b)
    W_sgd = W.copy()
    rows = []
    threads = numba.get_num_threads()
    numba.set_num_threads(1)  # inverse_coefficients is serial: compare one core with one core
    for name in COEFFICIENT_ACTIVATIONS:
        module = importlib.import_module(f"generated.{name}")
        times = timed(
            {
                "coefficients": lambda module=module: module.inverse_coefficients(r, b, DAMPING),
                "layer": lambda module=module: module.natural_gradient(
                    W, b, grad_W, grad_b, DAMPING, out=(nat_W, nat_b)
                ),
                "sgd": lambda: kernels.sgd_step(W_sgd, grad_W, 1e-6),
            },
            min_time,
            max_repeats,
        )
        rows.append({"name": name, "path": module.DERIVATION_PATH.partition(" (")[0], **times})
    numba.set_num_threads(threads)
    return rows


#: The stress grid of ``stress_rows``: r and |b| from 1e-300 to 1e300 (and 0), both signs of b.
STRESS_EXPONENTS = (-300, -200, -100, -50, -20, -12, -8, -5, -3, -1, 0, 1, 2, 3, 5, 8, 12, 20,
                    50, 100, 155, 200, 300)
STRESS_COPIES = 16


def stress_grid():
    """(r, b) over the stress grid: r ∈ {0} ∪ 10^STRESS_EXPONENTS,
    b ∈ {0} ∪ ±10^STRESS_EXPONENTS."""
    magnitudes = [0.0] + [10.0**e for e in STRESS_EXPONENTS]
    biases = [0.0] + [sign * 10.0**e for e in STRESS_EXPONENTS for sign in (1.0, -1.0)]
    return [(r, b) for r in magnitudes for b in biases]


#: Each stress point is timed this many times (one call on STRESS_COPIES units each) and its
#: cost is the least: a shared machine only ever adds time, so the minimum is the unit's own.
STRESS_REPEATS = 5
#: The points that come out worst are timed again, this many of them, STRESS_RETRIES times more.
STRESS_RECHECKED = 8
STRESS_RETRIES = 20


def _stress_cost(module, r, b, repeats):
    """Least seconds per unit of ``inverse_coefficients`` (damping 0) at (r, b) over
    ``repeats`` calls on STRESS_COPIES copies of the point; warnings silenced (printing one
    would be timed)."""
    rs = np.full(STRESS_COPIES, r)
    bs = np.full(STRESS_COPIES, b)
    best = math.inf
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for _ in range(repeats):
            start = time.perf_counter()
            module.inverse_coefficients(rs, bs, 0.0)
            best = min(best, time.perf_counter() - start)
    return best / STRESS_COPIES


def stress_rows(min_time, max_repeats, m=1024, names=None):
    """Per activation, on one thread: seconds per unit of ``inverse_coefficients`` on a typical
    layer (r ~ |N(0, I_64)|/8, b ~ N(0, 1)), and the worst over the stress grid (each point's
    least time over STRESS_REPEATS calls, the worst STRESS_RECHECKED points timed again),
    measured in the same run."""
    rng = np.random.default_rng(0)
    r_typical = np.linalg.norm(rng.normal(size=(m, 64)), axis=1) / 8.0
    b_typical = rng.normal(size=m)
    grid = stress_grid()
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    rows = []
    for name in names or activations.known_activations():
        module = importlib.import_module(f"generated.{name}")
        module.inverse_coefficients(r_typical, b_typical, DAMPING)
        typical = timed(
            {"typical": lambda module=module: module.inverse_coefficients(r_typical, b_typical,
                                                                           DAMPING)},
            min_time / 4, max_repeats,
        )["typical"] / m
        _stress_cost(module, 1.0, 0.0, 1)  # compile the damping-0 path
        costs = sorted(((_stress_cost(module, r, b, STRESS_REPEATS), (r, b)) for r, b in grid),
                       reverse=True)
        rechecked = [(min(cost, _stress_cost(module, *point, STRESS_RETRIES)), point)
                     for cost, point in costs[:STRESS_RECHECKED]]
        worst, worst_point = max(rechecked + costs[STRESS_RECHECKED:STRESS_RECHECKED + 1])
        rows.append({"name": name, "typical": typical, "worst": worst, "point": worst_point})
    numba.set_num_threads(threads)
    return rows


def print_stress(min_time, max_repeats):
    print(f"Worst cost per unit over the stress grid (r and |b| in {{0}} ∪ 10^k, k from "
          f"{STRESS_EXPONENTS[0]} to {STRESS_EXPONENTS[-1]}, both signs of b: "
          f"{len(stress_grid())} points, each the least of {STRESS_REPEATS} calls on "
          f"{STRESS_COPIES} copies, the worst {STRESS_RECHECKED} retimed, no cache flush) against "
          "a typical layer (1024 units, r ≈ 1, b ~ N(0, 1)), inverse_coefficients, one thread, "
          "same run. Target: worst/typical ≤ 20.\n")
    print("| activation | typical µs/unit | worst µs/unit | at (r, b) | worst / typical |")
    print("|---|---|---|---|---|")
    for row in stress_rows(min_time, max_repeats):
        r, b = row["point"]
        print(f"| {row['name']} | {row['typical'] * 1e6:.2f} | {row['worst'] * 1e6:.2f} | "
              f"({r:g}, {b:g}) | {row['worst'] / row['typical']:.1f} |")
    print()


def machine():
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        fields = {
            key.strip(): value.strip()
            for key, value in (line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        }
        cpu = (f"{fields.get('Model name', '?')}, {fields.get('CPU(s)', '?')} CPU(s), "
               f"L2 {fields.get('L2 cache', '?')}, L3 {fields.get('L3 cache', '?')}")
    except (OSError, subprocess.CalledProcessError):
        cpu = platform.processor() or "?"
    return (
        f"{cpu}; cache flush {flush_bytes() / 2**20:.0f} MiB before each timed call; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}, "
        f"NumPy {np.__version__}, numba {numba.__version__} "
        f"({numba.get_num_threads()} threads, threading layer {numba.threading_layer()})"
    )


def print_coefficient_costs(min_time, max_repeats):
    m = n = 1024
    print(f"Per-unit cost of the coefficients (Abar00, X, Y, Z) against the O(n) pass over a "
          f"row, m = {m} units, n = {n}, float64, one thread; µs per unit "
          f"({SUMMARY.__name__} over the repeats). The row pass is the plain SGD step "
          "W -= lr·grad_W (the same memory traffic as natural_gradient); "
          "coefficients/row = their ratio.\n")
    print("| activation | path | coefficients µs | natural_gradient(out=) µs | "
          "SGD step µs | coefficients / row pass |")
    print("|---|---|---|---|---|---|")
    for row in coefficient_rows(min_time, max_repeats, m, n):
        per_unit = {key: row[key] / m * 1e6 for key in ("coefficients", "layer", "sgd")}
        print(f"| {row['name']} | {row['path']} | {per_unit['coefficients']:.2f} | "
              f"{per_unit['layer']:.2f} | {per_unit['sgd']:.2f} | "
              f"{per_unit['coefficients'] / per_unit['sgd']:.2f} |")
    print()


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--min-time", type=float, default=1.0,
                        help="seconds to keep repeating each size (default 1)")
    parser.add_argument("--max-repeats", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="only the two smaller shapes")
    parser.add_argument("--statistic", choices=sorted(STATISTIC), default="median",
                        help="how the repeats of each contender are summarised (default median)")
    parser.add_argument("--coefficients", action="store_true",
                        help="only the per-unit cost of the coefficients, per activation")
    parser.add_argument("--stress", action="store_true",
                        help="only the per-unit cost over the stress grid, per activation")
    parser.add_argument("--statistics", action="store_true",
                        help="only natural_gradient with input statistics against without")
    parser.add_argument("--layers", action="store_true",
                        help="only the CPU layer kernels against the triad and the SGD step")
    parser.add_argument("--training", action="store_true",
                        help="only a whole training step against SGD and Adam (needs torch)")
    parser.add_argument("--threads", type=int, default=None,
                        help="numba threads for every parallel kernel (default: all)")
    arguments = parser.parse_args(argv)
    global SUMMARY
    SUMMARY = STATISTIC[arguments.statistic]
    if arguments.threads:
        numba.set_num_threads(arguments.threads)
    shapes = SHAPES[:2] if arguments.quick else SHAPES
    print(f"Machine: {machine()}\n")
    if arguments.statistics:
        print_statistics_rows(arguments.min_time, arguments.max_repeats)
        return
    if arguments.training:
        from benchmarks import training

        training.print_training_rows(timed, arguments.min_time, arguments.max_repeats)
        return
    if not arguments.layers:
        print_stress(arguments.min_time, arguments.max_repeats)
        if arguments.stress:
            return
        print_coefficient_costs(arguments.min_time, arguments.max_repeats)
        if arguments.coefficients:
            return
        print_statistics_rows(arguments.min_time, arguments.max_repeats)
    rows = cpu_rows(arguments.min_time, arguments.max_repeats, shapes)

    print(f"Contenders on the same arrays, relu, damping {DAMPING}; {arguments.statistic} ms "
          "per call. "
          "bound = 3·m·n·itemsize / triad bandwidth (= the triad's own time);")
    print("of bound = bound / time; step/SGD = natural_gradient_step over the plain SGD step; "
          f"NumPy× = hand-written NumPy closed form (erfc: {kernels.ERFC_SOURCE}) over "
          "natural_gradient(out=).\n")
    print("| m × n | dtype | triad GB/s | natural_gradient(out=) ms | of bound | "
          "natural_gradient (allocating) ms | step ms | SGD numba ms | step/SGD numba | "
          "SGD NumPy ms | step/SGD NumPy | NumPy closed form ms | NumPy× | NumPy agrees to |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        ms = {key: value * 1e3 for key, value in row.items() if isinstance(value, float)}
        print(
            f"| {row['m']} × {row['n']} | {row['dtype']} | {row['bandwidth'] / 1e9:.1f} | "
            f"{ms['nat_out']:.3f} | {row['triad'] / row['nat_out']:.2f} | {ms['nat_alloc']:.3f} | "
            f"{ms['step']:.3f} | {ms['sgd_numba']:.3f} | {row['step'] / row['sgd_numba']:.2f} | "
            f"{ms['sgd_numpy']:.3f} | {row['step'] / row['sgd_numpy']:.2f} | "
            f"{ms['numpy_closed_form']:.3f} | {row['numpy_closed_form'] / row['nat_out']:.1f} | "
            f"{row['disagreement']:.0e} |"
        )

    print("\nThe kernels' loop over rows alone, from the same rounds: each row written with "
          "fixed coefficients in the loop that sums the next, no coefficients, checks or Python "
          "entry (kernels.bare_row_pipeline). What natural_gradient and the step spend beyond "
          "it is theirs; what it spends beyond the triad or the SGD step is the two passes over "
          "each row.\n")
    print("| m × n | dtype | loop (out=) ms | of bound | natural_gradient(out=) / loop | "
          "loop (step) ms | loop (step)/SGD numba | step / loop (step) |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['m']} × {row['n']} | {row['dtype']} | {row['loop_out'] * 1e3:.3f} | "
            f"{row['triad'] / row['loop_out']:.2f} | {row['nat_out'] / row['loop_out']:.2f} | "
            f"{row['loop_step'] * 1e3:.3f} | {row['loop_step'] / row['sgd_numba']:.2f} | "
            f"{row['step'] / row['loop_step']:.2f} |"
        )
    if arguments.layers:
        return

    print("\nExact per-unit inverse by a batched dense solve (numpy.linalg.solve on the stacked "
          "(n+1)×(n+1) blocks, float64), m = 256:\n")
    print("| n | dense solve ms | build blocks + solve ms | natural_gradient(out=) ms | "
          "solve / natural_gradient | max abs difference |")
    print("|---|---|---|---|---|---|")
    dense = dense_rows(arguments.min_time / 2, arguments.max_repeats)
    for row in dense:
        print(f"| {row['n']} | {row['dense_solve'] * 1e3:.2f} | "
              f"{row['dense_build_and_solve'] * 1e3:.2f} | {row['nat_out'] * 1e3:.3f} | "
              f"{row['dense_solve'] / row['nat_out']:.0f} | {row['error']:.1e} |")
    if len(dense) > 1:
        first, last = dense[0], dense[-1]
        slope = np.log(last["dense_solve"] / first["dense_solve"]) / np.log(last["n"] / first["n"])
        print(f"\nDense solve time grows like n^{slope:.1f} over n = {first['n']}…{last['n']} "
              "(O(n³) asymptotically); natural_gradient is O(n) per unit.")

    print()
    print(gpu_report(arguments.min_time, arguments.max_repeats, shapes))
    if importlib.util.find_spec("torch") is not None:
        from benchmarks import training

        training.print_training_rows(timed, arguments.min_time, arguments.max_repeats)


if __name__ == "__main__":
    main()
