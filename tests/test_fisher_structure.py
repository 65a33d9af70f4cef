"""experiments.fisher_structure: the measurement code against cases with a known answer.

A plain linear network's Fisher is known exactly (δ = ∂x^L/∂u does not depend on the input and
the layers' inputs are affine in x^0), and for inputs whose empirical mean is 0 and
covariance I *exactly* the estimator has no sampling error at all, so the sampled entries, the
whole G and the noise floor are checked to rounding. The back-propagated factors are checked
against torch.func, the analytic block against fisher_sym.reference's independent
construction, and a tiny run of the command writes its results and its page.
"""

import json

import numpy as np
import pytest

from experiments.fisher_structure import __main__ as command
from experiments.fisher_structure import analytic, measure
from experiments.fisher_structure import network as net_module
from fisher_sym import meanfield, reference
from generated import linear, relu


def _whitened(rng, count, width):
    """Inputs with empirical mean exactly 0 and covariance exactly I (to rounding)."""
    x = rng.normal(size=(count, width))
    x -= x.mean(axis=0)
    chol = np.linalg.cholesky(x.T @ x / count)
    return np.linalg.solve(chol, x.T).T


def _parameter_index(net, layer, unit, coordinate):
    offset = sum(
        w.size + b.size
        for w, b in zip(net.weights[: layer - 1], net.biases[: layer - 1], strict=True)
    )
    return offset + unit * (net.widths[layer - 1] + 1) + coordinate


@pytest.mark.parametrize("output_width", [1, 7])
def test_sampled_blocks_and_whole_fisher_equal_the_exact_fisher_of_a_linear_network(output_width):
    rng = np.random.default_rng(5)
    width, depth = 7, 3
    net = net_module.random_network("linear", width, depth, output_width, 1.2, 0.4, rng)
    exact = net_module.linear_fisher(net)
    batches = [_whitened(rng, 40, width) for _ in range(2)]
    field = meanfield.plain_network(linear, 1.2, 0.4, depth)
    sampling = measure.Sampling(samples=80, batch=40, units=3, full_units=1, coordinates=3)
    result = measure.measure_structure(
        net, batches, linear, field, sampling, rng, keep_entries=True
    )
    g_sub, units, coords = result["entries"]
    index = [
        (m, i, j)
        for m, (us, cs) in enumerate(zip(units, coords, strict=True), start=1)
        for i in us
        for j in list(cs) + [net.widths[m - 1]]
    ]
    positions = [_parameter_index(net, m, i, j) for m, i, j in index]
    expected = exact[np.ix_(positions, positions)]
    measured = g_sub.reshape(len(positions), len(positions))
    np.testing.assert_allclose(measured, expected, rtol=1e-10, atol=1e-12 * np.abs(exact).max())
    for block in ("within", "between"):  # both halves are exact: no noise floor
        assert result["blocks"][block]["noise_max"] < 1e-12
    whole, noise = measure.full_fisher(net, batches)
    np.testing.assert_allclose(whole, exact, rtol=1e-10, atol=1e-12 * np.abs(exact).max())
    assert np.abs(noise).max() < 1e-12 * np.abs(exact).max()


def test_domino_lemma_holds_on_average_for_a_linear_network_with_chi_from_layer_m_plus_1():
    """E[(B^L_{m+1}ᵀ B^L_{m+1})_ii] = σ_w^{2(L−m)} = χ^L_{m+1} for a linear network with n_L = n:
    the mean of the normalised diagonal is 1 within its sampling error. The printed eq. 43
    (χ^L_m, one factor χ^m = σ_w² more) is off by 1/σ_w² ≈ 2 (docs/errata.md)."""
    rng = np.random.default_rng(11)
    width, depth, sigma_w = 96, 3, 0.7
    net = net_module.random_network("linear", width, depth, width, sigma_w, 0.2, rng)
    field = meanfield.plain_network(linear, sigma_w, 0.2, depth)
    sampling = measure.Sampling(samples=64, batch=32, units=24, full_units=0, coordinates=2)
    result = measure.measure_structure(
        net, [rng.normal(size=(32, width)) for _ in range(2)], linear, field, sampling, rng
    )
    for row in result["domino"]:
        # 24 units, each diagonal a mean of ~n squares: relative spread ~ (2/n)^½ / √24
        assert abs(row["diagonal_bias"]) < 0.15
        assert row["off_rms"] < 3 / np.sqrt(width)
        printed = (1 + row["diagonal_bias"]) / field.chi[row["layer"] - 1]
        assert abs(printed - 1) > 0.5


@pytest.mark.parametrize("residual", [None, (0.8, 0.5)])
def test_back_propagated_factors_match_torch_func(residual):
    torch = pytest.importorskip("torch")
    from torch.func import jacrev, vmap

    rng = np.random.default_rng(3)
    width, depth = 5, 3
    net = net_module.random_network("tanh", width, depth, width, 1.3, 0.3, rng, residual)
    x0 = rng.normal(size=(4, width))
    fwd = net_module.forward(net, x0)
    ours = net_module.jacobian(net, fwd, net_module.backward(net, fwd))

    params = [
        torch.tensor(np.concatenate([w, b[:, None]], axis=1))
        for w, b in zip(net.weights, net.biases, strict=True)
    ]

    def output(flat, x):
        start = 0
        for layer in range(depth):
            shape = params[layer].shape
            block = flat[start : start + shape[0] * shape[1]].reshape(shape)
            start += shape[0] * shape[1]
            u = block[:, :-1] @ x + block[:, -1]
            if residual is None:
                x = torch.tanh(u)
            else:
                x = residual[1] * x + torch.tensor(net.mixers[layer]) @ torch.tanh(u)
        return x

    flat = torch.cat([p.reshape(-1) for p in params])
    theirs = vmap(jacrev(output), in_dims=(None, 0))(flat, torch.tensor(x0)).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    for layer in range(1, depth + 1):  # forward tangents agree with the backward pass
        units = np.arange(width)
        np.testing.assert_allclose(
            net_module.unit_deltas(net, fwd, layer, units),
            net_module.backward(net, fwd)[layer - 1].transpose(0, 2, 1),
            rtol=1e-12,
            atol=1e-14,
        )


def test_analytic_block_with_input_statistics_is_the_reference_construction():
    rng = np.random.default_rng(8)
    n = 6
    w, b = rng.normal(size=n), 0.3
    mean, variance = rng.normal(size=n), rng.uniform(0.3, 2.0, size=n)
    ours = analytic.unit_block(relu, w, b, mean, variance)
    sigma = np.sqrt(np.sum(variance * w * w))
    blocks = relu.fisher_blocks(sigma, mean @ w + b)
    theirs = reference.dense_fisher_with_input_statistics(w, mean, variance, blocks)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-14)
    # and the linear activation's block is E[x* x*ᵀ]
    np.testing.assert_allclose(
        analytic.unit_block(linear, w, b, mean, variance),
        reference.input_second_moment(mean, variance),
        rtol=1e-13,
    )


def test_tiny_run_writes_results_and_page(tmp_path):
    assert (
        command.main(
            ["--tiny", "--results", str(tmp_path / "results"), "--docs", str(tmp_path / "docs")]
        )
        == 0
    )
    data = json.loads((tmp_path / "results" / "fisher_structure_tiny.json").read_text())
    assert data["structure"] and data["natural_gradient"]
    page = (tmp_path / "docs" / "fisher_structure.md").read_text()
    for heading in (
        "## 1. Theorems 1 and 2",
        "## 2. The domino lemma",
        "## 3. Unit blocks",
        "## 4. ",
    ):
        assert heading in page
    assert (tmp_path / "docs" / "figures" / "fisher_structure" / "tiny_domino.png").exists()

    # --only-missing: runs only the networks the saved results lack, keeps the others
    path = tmp_path / "results" / "fisher_structure_tiny.json"
    kept = [r for r in data["structure"] if r["width"] != 16]
    path.write_text(json.dumps({**data, "structure": kept}))
    folders = ["--results", str(tmp_path / "results"), "--docs", str(tmp_path / "docs")]
    assert command.main(["--tiny", "--only-missing", *folders]) == 0
    merged = json.loads(path.read_text())
    assert merged["structure"][: len(kept)] == kept
    added = merged["structure"][len(kept) :]
    assert len(merged["structure"]) == len(data["structure"])
    assert {r["width"] for r in added} == {16} and {r["run"] for r in added} == {1}
    assert merged["natural_gradient"] == data["natural_gradient"]
    assert [r["structure"] for r in merged["runs"]] == [len(kept), len(added)]
    assert merged["complete"]
    assert "| networks per width | run |" in (tmp_path / "docs" / "fisher_structure.md").read_text()


def test_committed_page_is_rendered_from_the_committed_results(tmp_path):
    """docs/fisher_structure.md is what the committed JSON results render to (figures aside)."""
    from pathlib import Path

    from experiments.fisher_structure import page

    root = Path(__file__).resolve().parents[1]
    results = root / "experiments" / "results"
    if not any(results.glob("fisher_structure_*.json")):
        pytest.skip("no committed results")
    written = page.render(results, tmp_path, draw=False)
    committed = (root / "docs" / "fisher_structure.md").read_text()
    assert written.read_text() == committed, (
        "stale: docs/fisher_structure.md; re-render: python -m experiments.fisher_structure "
        "--render-only"
    )
