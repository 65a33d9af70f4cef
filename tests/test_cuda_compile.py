"""The fused GPU kernel compiles for a real GPU (PTX for sm_90), without one.

The CUDA simulator runs the njit chain on the CPU and so cannot show whether it compiles for
the device. Where numba-cuda and CUDA's NVVM and NVRTC are installed (``fisher_sym[cuda]``
plus a CUDA toolkit), this compiles the fused kernel of closed-form modules to PTX; the compute
capability is supplied by hand, as there is no device to ask. Where the toolkit's ``ptxas`` is
on the PATH, the PTX is also assembled for sm_90, which checks what PTX text cannot: the
device's limits on registers, constant and shared memory, and that a block of the module's
threads fits in an SM's registers (else its launch would fail). Skipped elsewhere.
"""

import functools
import importlib
import shutil
import subprocess
import sys

import pytest

SCRIPT = """
import importlib, os, shutil, subprocess, sys, tempfile
import numba
import numpy as np
from numba import cuda
import numba.cuda.dispatcher as dispatcher

class Device:  # device functions ask the current device for its compute capability
    compute_capability = (9, 0)

dispatcher.get_current_device = lambda: Device()
cuda.is_available = lambda: True
module = importlib.import_module("generated." + sys.argv[1])
fused = module._cuda_build()[1]
table = numba.typeof(module._DEVICE_TABLE or (np.zeros(1),))  # host arrays type as on the GPU
for dtype in ("float64", "float32"):
    matrix = numba.types.Array(getattr(numba.types, dtype), 2, "C")
    vector = numba.types.Array(getattr(numba.types, dtype), 1, "C")
    f64 = numba.types.float64
    unit_damping = numba.types.float64[::1]
    signature = (matrix, vector, matrix, vector, f64, unit_damping, f64, numba.types.boolean,
                 numba.types.UniTuple(f64, 3), matrix, vector, numba.types.uint8[::1], table,
                 numba.types.float64[:, ::1])
    ptx, _ = cuda.compile_ptx(fused.py_func, signature, cc=(9, 0))
    assert ".entry" in ptx
    if shutil.which("ptxas"):
        with tempfile.TemporaryDirectory() as folder:
            source = os.path.join(folder, "fused.ptx")
            with open(source, "w") as file:
                file.write(ptx)
            run = subprocess.run(["ptxas", "-arch=sm_90", "-v", source, "-o",
                                  os.path.join(folder, "fused.cubin")],
                                 capture_output=True, text=True)
            assert run.returncode == 0, run.stderr[-3000:]
            usage = [line for line in run.stderr.splitlines() if "registers" in line][-1]
            # A block launches only if its registers fit in the SM's 64 Ki (allocated per
            # thread in multiples of 8): at 256 threads, at most 256 registers each.
            registers = int(usage.split("Used ", 1)[1].split(" registers", 1)[0])
            threads = module._CUDA["threads"]
            assert -(-registers // 8) * 8 * threads <= 65536, (registers, threads)
            print("assembled", dtype, usage.split(":", 1)[1].strip())
print("compiled")
"""


@functools.cache
def toolchain_missing() -> str:
    if importlib.util.find_spec("numba_cuda") is None:
        return "numba-cuda is not installed (pip install 'fisher_sym[cuda]')"
    probe = subprocess.run(
        [sys.executable, "-c", "from numba import cuda; "
         "cuda.compile_ptx(lambda a: None, 'void(float64[:])', cc=(9, 0))"],
        capture_output=True, text=True, timeout=300,
    )
    if probe.returncode != 0:
        return "no CUDA NVVM/NVRTC to compile PTX with: " + probe.stderr.strip().splitlines()[-1]
    return ""


@pytest.mark.parametrize("name", ["relu", "elu", "cubic", "tanh", "gelu"])
def test_fused_kernel_compiles_for_the_device(name):
    missing = toolchain_missing()
    if missing:
        pytest.skip(missing)
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, name], capture_output=True, text=True, timeout=600
    )
    assert run.returncode == 0 and "compiled" in run.stdout, run.stderr[-3000:]
    if shutil.which("ptxas"):
        assert run.stdout.count("assembled") == 2, run.stdout


STATISTICS_SCRIPT = SCRIPT.replace(
    "fused = module._cuda_build()[1]", "fused = module._cuda_build_statistics()[0]"
).replace(
    "numba.types.float64[:, ::1])",
    "numba.types.float64[:, ::1], numba.types.float64[:, ::1], matrix,\n"
    "                 numba.types.float64[:, ::1],\n"
    "                 numba.types.Tuple((f64, f64, numba.types.boolean)))",
)


@pytest.mark.parametrize("name", ["relu", "tanh"])
def test_fused_kernel_with_input_statistics_compiles_for_the_device(name):
    """The same for the kernel with input_mean and input_variance (``_cuda_build_statistics``:
    its arguments gain the columns and the layer's maxima), a closed form and the fast rule."""
    missing = toolchain_missing()
    if missing:
        pytest.skip(missing)
    assert STATISTICS_SCRIPT != SCRIPT
    run = subprocess.run(
        [sys.executable, "-c", STATISTICS_SCRIPT, name], capture_output=True, text=True,
        timeout=600,
    )
    assert run.returncode == 0 and "compiled" in run.stdout, run.stderr[-3000:]
    if shutil.which("ptxas"):
        assert run.stdout.count("assembled") == 2, run.stdout
