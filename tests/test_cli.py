"""The command line: python -m derive."""

import subprocess
import sys

from derive.cli import DEFAULT_OUT, main
from fisher_sym import activations


def run(*arguments):
    return subprocess.run([sys.executable, "-m", "derive", *arguments], capture_output=True,
                          text=True, timeout=300)


def test_check_passes_on_the_committed_tree():
    result = run("--activation", "relu", "--check")
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_check_fails_and_names_the_stale_file(tmp_path):
    (tmp_path / "relu.py").write_text("# edited by hand\n")
    assert main(["--activation", "relu", "--out", str(tmp_path), "--check"]) == 1
    assert (tmp_path / "relu.py").read_text() == "# edited by hand\n"


def test_check_reports_a_missing_file(tmp_path, capsys):
    assert main(["--activation", "relu", "--out", str(tmp_path), "--check"]) == 1
    assert "relu.py" in capsys.readouterr().err


def test_out_writes_a_module_equal_to_the_committed_one(tmp_path):
    assert main(["--activation", "relu", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "relu.py").read_bytes() == (DEFAULT_OUT / "relu.py").read_bytes()


def test_unknown_activation_exits_2_listing_the_known_ones(tmp_path):
    result = run("--activation", "swishy", "--out", str(tmp_path))
    assert result.returncode == 2
    assert "unknown activation 'swishy'" in result.stderr and "relu" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_list_shows_the_builtins():
    result = run("--list")
    listed = [line.split()[0] for line in result.stdout.splitlines()]
    assert result.returncode == 0 and listed == activations.known_activations()
    assert "relu" in listed


def test_help_describes_every_option():
    result = run("--help")
    assert result.returncode == 0
    for option in ("--activation", "--out", "--check", "--list", "--param"):
        assert option in result.stdout


def test_missing_activation_is_a_usage_error():
    result = run()
    assert result.returncode == 2 and "--activation" in result.stderr


def test_user_expression_is_generated_and_bad_ones_touch_nothing(tmp_path):
    assert main(["--expr", "u**3/3 + u", "--name", "cubic", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "cubic.py").read_bytes() == (DEFAULT_OUT / "cubic.py").read_bytes()
    before = sorted(tmp_path.iterdir())
    # u**7: φ'² = 49 u¹² needs Gaussian moments beyond the kernels' order 12 (degree 10 + 2);
    # sin(u): φ'² = cos² u oscillates, with no limit at ±∞ (sympy's limit raised ValueError);
    # log(u), 1/u, sqrt(u): φ' is not real and finite on the whole line (modules were written
    # that failed at import)
    for bad in ("u**3/3 +", "__import__('os')", "Heaviside(u)", "3", "exp(u**2)", "u**7",
                "sin(u)", "log(u)", "1/u", "sqrt(u)"):
        result = run("--expr", bad, "--name", "bad", "--out", str(tmp_path))
        assert result.returncode == 2 and result.stderr.startswith("error:"), bad
    assert sorted(tmp_path.iterdir()) == before


def test_param_names_the_module_and_is_recorded(tmp_path):
    assert main(["--activation", "leaky_relu", "--param", "negative_slope=0.2",
                 "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.iterdir()
    assert path.name == "leaky_relu_negative_slope_0p2.py"
    assert "--param negative_slope=0.2" in path.read_text()
    assert main(["--check", "--out", str(tmp_path)]) == 0


def test_a_continuous_product_with_heaviside_is_not_refused(tmp_path):
    """u·Heaviside(u) is ReLU: the u·δ(u) in its derivative vanishes, so it is not refused as
    discontinuous (u·Heaviside(u − 1), which jumps at 1, is), and its blocks are those of the
    module derived from max(0, u)."""
    import numpy as np

    from generated import relu
    from tests.activation_cases import derive_user_module

    module = derive_user_module("u*Heaviside(u)", "step_relu", tmp_path)
    r = np.array([0.0, 0.01, 0.5, 1.0, 3.0, 1e3])
    b = np.array([0.5, -1.0, 0.3, -30.0, 2.0, 7.0])
    for got, want in zip(module.fisher_blocks(r, b), relu.fisher_blocks(r, b), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-15, atol=0.0)
    result = run("--expr", "u*Heaviside(u - 1)", "--name", "jump", "--out", str(tmp_path))
    assert result.returncode == 2 and "discontinuous" in result.stderr


def test_param_values_name_distinct_modules_and_must_be_finite(tmp_path):
    """1e300 and 1e3 name different modules (the exponent's zeros were once stripped, so that
    both wrote elu_alpha_1e3.py); a non-finite value is refused and writes nothing."""
    from fisher_sym.activations import builtin

    assert builtin("elu", {"alpha": 1e300}).name == "elu_alpha_1e300"
    assert builtin("elu", {"alpha": 1e3}).name == "elu_alpha_1000"
    assert builtin("elu", {"alpha": 1e-5}).name == "elu_alpha_1em05"
    for value in ("nan", "inf", "-inf"):
        result = run("--activation", "elu", "--param", f"alpha={value}", "--out", str(tmp_path))
        assert result.returncode == 2 and "finite" in result.stderr, value
    assert list(tmp_path.iterdir()) == []
