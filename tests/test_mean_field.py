"""Generated ``mean_field``: E[φ(τv)] and E[φ(τv)²] against mpmath quadrature, and its API.

One module per way the engine computes the mean field (a polynomial in τ: relu, cubic; Gaussian
terms with a Taylor series near 0: elu; the heat equation and Price's theorem: gelu's mean,
erf; symmetry and quadrature: tanh). The rewritten even parts of the other numerical
activations are checked in test_stable.py.
Every built-in is held to the same bounds by ``python -m derive --all --mean-field-report``.
The references are tanh-sinh quadrature at DIGITS = 22 digits, ten more than the tightest bound
needs (the report uses 40). E[φ'(τv)²] is the module's A00 at r = τ, b = 0, whose accuracy the
block tests establish; here it is checked to be exactly that.
"""

import importlib

import mpmath
import numpy as np
import pytest

from fisher_sym import activations, reference

TAUS = (0.0, 1e-8, 1.0, 100.0, 1e4)
#: Relative error allowed: closed forms (constant, polynomial, Gaussian terms, heat equation or
#: Price's theorem) and the numerical path.
CLOSED_FORM_BOUND = 1e-12
NUMERICAL_BOUND = 1e-9
DIGITS = 22
CASES = ("relu", "cubic", "elu", "erf", "gelu", "tanh")


def activation(name):
    if name == "cubic":
        return activations.from_expression("u**3/3 + u", "cubic")
    return activations.builtin(name)


@pytest.mark.parametrize("name", CASES)
def test_mean_and_second_moment_match_mpmath(name):
    """For an odd φ the mean is 0 by symmetry: there the criterion is absolute, relative to
    E[|φ(τv)|] (the generated value is exactly 0, so the bound is met with room)."""
    module = importlib.import_module(f"generated.{name}")
    phi = activation(name).expression
    functions = (module._activation_mean, module._activation_second_moment)
    labels = ("E[φ(τv)]", "E[φ(τv)²]")
    for index, (function, kind, label) in enumerate(
        zip(functions, module.MEAN_FIELD_KINDS, labels, strict=True)
    ):
        bound = NUMERICAL_BOUND if kind == "numerical" else CLOSED_FORM_BOUND
        for tau in TAUS:
            got = function(tau)
            want = reference.activation_moments_mp(phi, tau, dps=DIGITS)[index]
            if want == 0:
                error = abs(got) / reference.mean_abs_mp(phi, tau) if got else 0.0
            else:
                error = abs(mpmath.mpf(got) - want) / abs(want)
            assert error <= bound, f"{name} {label} at tau={tau}: {error:.2e}"


@pytest.mark.parametrize("name", ("relu", "erf", "tanh"))
def test_mean_field_broadcasts_and_its_slope_is_the_block_a00(name):
    module = importlib.import_module(f"generated.{name}")
    tau = np.array([[0.5, 2.0, 30.0], [1.0, 3.0, 7.0]])
    mean, second, slope = module.mean_field(tau)
    assert mean.shape == second.shape == slope.shape == tau.shape
    assert mean.dtype == second.dtype == slope.dtype == np.float64
    a00, _, _ = module.fisher_blocks(tau, np.zeros_like(tau))
    np.testing.assert_array_equal(slope, a00)
    for index in np.ndindex(tau.shape):
        single = module.mean_field(float(tau[index]))
        assert all(type(x) is float for x in single)
        assert single == (mean[index], second[index], slope[index])


def test_mean_field_at_zero_is_phi_of_zero_and_the_mean_of_the_one_sided_slopes():
    from generated import elu, relu, softplus

    assert relu.mean_field(0.0) == (0.0, 0.0, 0.5)  # φ'(0±)² = 0, 1
    assert elu.mean_field(0.0) == (0.0, 0.0, 1.0)
    with mpmath.workdps(30):  # correctly rounded, as the module prints φ(0) and φ(0)²
        log2 = mpmath.log(2)
        assert softplus.mean_field(0.0) == (float(log2), float(log2**2), 0.25)


def test_bad_tau_is_refused_before_any_work():
    from generated import relu

    with pytest.raises(ValueError, match="non-negative"):
        relu.mean_field(-1e-300)
    with pytest.raises(ValueError, match="non-finite"):
        relu.mean_field([1.0, np.nan])
    with pytest.raises(ValueError, match="non-finite"):
        relu.mean_field(np.inf)
    with pytest.raises(TypeError, match="real numbers"):
        relu.mean_field(1.0 + 2.0j)
    with pytest.raises(TypeError, match="real numbers"):
        relu.mean_field("1.0")


def test_an_overflowing_result_raises_naming_tau():
    from generated import relu

    assert np.isfinite(relu.mean_field(1e150)[1])  # τ²/2 = 5e299
    with pytest.raises(FloatingPointError, match="tau = 9.99999999999999\\d*e\\+199"):
        relu.mean_field([1.0, 1e200])


def test_the_report_measures_relative_and_symmetric_errors(monkeypatch, tmp_path):
    from derive.cli import main
    from fisher_sym import report
    from generated import relu, tanh

    relu_phi, tanh_phi = activation("relu").expression, activation("tanh").expression
    rows = report.mean_field_accuracy("relu", relu_phi, taus=(0.0, 2.0), dps=DIGITS)
    assert all(rows[q].error <= 1e-15 for q in report.MEAN_FIELD_QUANTITIES)
    exact = relu.mean_field
    monkeypatch.setattr(relu, "mean_field", lambda tau: tuple(x * (1 + 1e-9) for x in exact(tau)))
    rows = report.mean_field_accuracy("relu", relu_phi, taus=(2.0,), dps=DIGITS)
    assert all(abs(rows[q].error - 1e-9) < 1e-12 for q in report.MEAN_FIELD_QUANTITIES)
    # E[tanh(τv)] = 0 by symmetry: an error is judged against E[|tanh(τv)|]
    monkeypatch.setattr(tanh, "mean_field", lambda tau: (1e-3, 0.5, 0.5))
    worst = report.mean_field_accuracy("tanh", tanh_phi, taus=(2.0,), dps=15)["E[φ]"]
    scale = reference.mean_abs_mp(tanh_phi, 2.0)
    assert worst.where == "tau=2" and worst.error == pytest.approx(float(1e-3 / scale), rel=1e-12)
    assert main(["--activation", "relu", "--out", str(tmp_path), "--mean-field-report"]) == 2
