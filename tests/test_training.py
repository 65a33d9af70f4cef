"""experiments.training: each method's update against an independent dense computation, and a
tiny configuration of the whole study (tuning, seeds, results file, page).

The dense references build the Fisher from per-sample gradients taken one sample at a time
with ``torch.autograd.grad`` (no hooks, no torch.func), then solve with ``torch.linalg.solve``.
"""

import json
import math
from dataclasses import replace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("sklearn")

from torch import nn  # noqa: E402

from experiments.training import curvature, harness, page, prose  # noqa: E402
from experiments.training.methods import METHODS  # noqa: E402
from experiments.training.tasks import FixedResidualBlock  # noqa: E402


@pytest.fixture(autouse=True)
def float64_one_thread():
    # One thread: on a shared machine two threads on these tiny matrices only contend.
    previous = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(previous[0])
    torch.set_num_threads(previous[1])


def tiny_network(outputs: int, residual: bool = False) -> nn.Module:
    torch.manual_seed(3)
    if residual:
        return nn.Sequential(FixedResidualBlock(4, "tanh", 0.7, 1.0), nn.Linear(4, outputs))
    return nn.Sequential(
        nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3), nn.Tanh(), nn.Linear(3, outputs)
    )


def batch(loss: str, outputs: int, size: int = 7):
    generator = torch.Generator().manual_seed(5)
    x = torch.randn(size, 4, generator=generator)
    if loss == "mse":
        return x, torch.randn(size, outputs, generator=generator)
    return x, torch.randint(0, outputs, (size,), generator=generator)


def per_sample_gradients(model, x, targets, loss) -> torch.Tensor:
    """(B, P): ∇θ ℓ(f(x_b), ŷ_b) for each sample, one backward per sample."""
    parameters = list(model.parameters())
    rows = []
    for b in range(x.shape[0]):
        value = curvature.loss_value(model(x[b : b + 1]), targets[b : b + 1], loss)
        grads = torch.autograd.grad(value, parameters)
        rows.append(torch.cat([g.reshape(-1) for g in grads]))
    return torch.stack(rows)


def mean_gradient(model) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters()])


def unit_indices(model) -> list[list[int]]:
    """For every unit of every nn.Linear: the indices of (w_1, …, w_n, b) in the flat vector."""
    offsets, offset = {}, 0
    for p in model.parameters():
        offsets[id(p)] = offset
        offset += p.numel()
    units = []
    for layer in curvature.linear_layers(model):
        m, n = layer.weight.shape
        for i in range(m):
            start = offsets[id(layer.weight)] + i * n
            units.append([*range(start, start + n), offsets[id(layer.bias)] + i])
    return units


def prepared(cls, loss, outputs, damping=0.03, residual=False, size=7):
    model = tiny_network(outputs, residual)
    optimizer = cls(model, lr=0.1, damping=damping, loss=loss, seed=11)
    x, y = batch(loss, outputs, size)
    out = model(x)
    optimizer.zero_grad()
    optimizer.estimate_factors(out)
    curvature.loss_value(out, y, loss).backward()
    return model, optimizer, x


@pytest.mark.parametrize("loss, outputs", [("mse", 2), ("cross_entropy", 3)])
@pytest.mark.parametrize("method", ["unit_block", "quasi_diagonal"])
def test_unit_methods_solve_the_unit_blocks_of_the_sampled_fisher(method, loss, outputs):
    cls = {
        "unit_block": curvature.UnitBlockNaturalGradient,
        "quasi_diagonal": curvature.QuasiDiagonalNaturalGradient,
    }[method]
    model, optimizer, x = prepared(cls, loss, outputs)
    grads = per_sample_gradients(model, x, optimizer.last_targets, loss)
    fisher = grads.T @ grads / x.shape[0]
    g = mean_gradient(model)
    natural = torch.cat([n.reshape(-1) for n in optimizer.natural_gradients()])
    units = unit_indices(model)
    for unit, got in zip(units, natural.split([len(u) for u in units]), strict=True):
        block = fisher[unit][:, unit]
        if method == "quasi_diagonal":  # keep the diagonal and the bias row and column
            mask = torch.eye(len(unit), dtype=torch.bool)
            mask[-1, :] = mask[:, -1] = True
            block = torch.where(mask, block, 0.0)
        expected = torch.linalg.solve(block + 0.03 * torch.eye(len(unit)), g[unit])
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("loss, outputs", [("mse", 2), ("cross_entropy", 3)])
def test_kfac_factors_are_the_fisher_for_one_sample_and_its_update_the_kronecker_solve(
    loss, outputs
):
    # One sample: the layer's Fisher g gᵀ is exactly S ⊗ A (row-major [W | b]).
    model, optimizer, x = prepared(curvature.KFAC, loss, outputs, size=1)
    grads = per_sample_gradients(model, x, optimizer.last_targets, loss)
    units = unit_indices(model)
    start = 0
    for layer, (a, s) in zip(optimizer.layers, optimizer.factors, strict=True):
        m = layer.out_features
        layer_units = units[start : start + m]
        start += m
        order = [i for unit in layer_units for i in unit]
        torch.testing.assert_close(torch.kron(s, a), torch.outer(grads[0, order], grads[0, order]))
    # A batch: the update is the dense solve of the damped Kronecker product.
    model, optimizer, x = prepared(curvature.KFAC, loss, outputs)
    for layer, factors, got in zip(
        optimizer.layers, optimizer.factors, optimizer.natural_gradients(), strict=True
    ):
        a, s = curvature.KFAC.damped_factors(*factors, 0.03)
        grad = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], dim=1)
        expected = torch.linalg.solve(torch.kron(s, a), grad.reshape(-1)).reshape(grad.shape)
        torch.testing.assert_close(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "loss, outputs, residual", [("mse", 2, False), ("cross_entropy", 3, False), ("mse", 1, True)]
)
def test_exact_natural_gradient_is_the_dense_solve_of_jt_h_j(loss, outputs, residual):
    model, optimizer, x = prepared(curvature.ExactNaturalGradient, loss, outputs, residual=residual)
    parameters = list(model.parameters())
    total = sum(p.numel() for p in parameters)
    fisher = torch.zeros(total, total)
    for b in range(x.shape[0]):
        out = model(x[b : b + 1])[0]
        jac = torch.stack([
            torch.cat([
                g.reshape(-1)
                for g in torch.autograd.grad(out[k], parameters, retain_graph=True)
            ])
            for k in range(outputs)
        ])  # fmt: skip
        if loss == "mse":
            h = torch.eye(outputs)
        else:
            p = torch.softmax(out.detach(), dim=0)
            h = torch.diag(p) - torch.outer(p, p)
        fisher += jac.T @ h @ jac / x.shape[0]
    expected = torch.linalg.solve(fisher + 0.03 * torch.eye(total), mean_gradient(model))
    torch.testing.assert_close(optimizer.natural_gradient(), expected, rtol=1e-8, atol=1e-11)
    before = torch.cat([p.detach().reshape(-1) for p in parameters])
    optimizer.step()
    after = torch.cat([p.detach().reshape(-1) for p in parameters])
    torch.testing.assert_close(after, before - 0.1 * expected, rtol=1e-8, atol=1e-11)


@pytest.mark.parametrize("name", ["sgd", "momentum", "adam"])
def test_torch_optimizers_take_the_textbook_steps(name):
    model = tiny_network(2)
    optimizer = METHODS[name].build(model, 0.05, None, "mse", 0)
    x, y = batch("mse", 2)
    theta = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    velocity = torch.zeros_like(theta)
    for _ in range(2):
        optimizer.zero_grad()
        curvature.loss_value(model(x), y, "mse").backward()
        g = mean_gradient(model)
        if name == "sgd":
            theta = theta - 0.05 * g
        elif name == "momentum":
            velocity = 0.9 * velocity + g
            theta = theta - 0.05 * velocity
        optimizer.step()
        if name == "adam":  # the first step of Adam: lr·g/(|g| + ε) after bias correction
            expected = theta - 0.05 * g / (g.abs() + 1e-8)
            torch.testing.assert_close(
                torch.cat([p.detach().reshape(-1) for p in model.parameters()]), expected
            )
            return
    torch.testing.assert_close(
        torch.cat([p.detach().reshape(-1) for p in model.parameters()]), theta
    )


def test_fisher_sym_method_steps_through_the_harness():
    # One input mode: the modes differ by a string here, and each compiles its own kernels
    # (tens of seconds on a cold cache); tests/test_torch_optimizer.py checks every mode's update.
    method = METHODS["fisher_sym_moments"]
    if not method.available:
        pytest.skip("fisher_sym.torch is not available")
    torch.set_default_dtype(torch.float32)
    model = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2))  # closed-form kernels
    optimizer = method.build(model, 0.1, 1e-2, "mse", 0)
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    value = harness.train_step(model, optimizer, x, y, "mse")
    assert math.isfinite(value)


def test_the_grid_extends_past_the_edge_where_the_best_point_lies():
    trials = [{"lr": lr, "damping": d} for lr in (0.01, 0.1, 1.0) for d in (1e-3, 3e-2, 1.0)]
    assert harness.beyond_edges(trials, {"lr": 0.1, "damping": 3e-2}) == []
    assert harness.beyond_edges(trials, {"lr": 0.01, "damping": 1.0}) == [
        (0.001, 1.0),
        (0.01, 30.0),
    ]
    sgd = [{"lr": lr, "damping": None} for lr in (0.1, 0.3, 1.0)]
    assert harness.beyond_edges(sgd, {"lr": 1.0, "damping": None}) == [(3.0, None)]


def test_residual_block_is_fisher_sym_s():
    fisher_sym_torch = pytest.importorskip("fisher_sym.torch")
    ours = FixedResidualBlock(4, "tanh", 0.7, 1.0)
    theirs = fisher_sym_torch.ResidualBlock(4, "tanh", 0.7, 1.0)
    theirs.load_state_dict({"linear.weight": ours.linear.weight, "linear.bias": ours.linear.bias,
                            "mixing": ours.v})  # fmt: skip
    x = torch.randn(5, 4)
    torch.testing.assert_close(ours(x), theirs(x))


def test_tiny_study_writes_results_and_page(tmp_path):
    torch.set_default_dtype(torch.float32)
    methods = ("sgd", "unit_block", "kfac", "exact")
    config = harness.Config(
        quick=True, tasks=("teacher_plain", "digits"), methods=methods, seeds=(0, 1),
        epochs=1, max_steps_per_epoch=2, grid_points=2, extensions=1,
        results=str(tmp_path / "results.json"),
    )  # fmt: skip
    results = harness.study(config, progress=lambda line: None)
    stored = json.loads((tmp_path / "results.json").read_text())
    assert set(stored["tasks"]["teacher_plain"]["runs"]) == set(methods)
    assert "exact" not in stored["tasks"]["digits"]["runs"]  # too many parameters for G
    run = stored["tasks"]["digits"]["runs"]["kfac"][1]
    assert run["seed"] == 1 and len(run["train_loss"]) == 2 and run["seconds"][0] == 0.0
    text = page.render(results, tmp_path / "training.md", tmp_path / "figures", prose.PROSE)
    assert (tmp_path / "figures" / "digits.png").exists()
    assert "| K-FAC |" in text and "figures/digits.png" in text
    # A later session adds a method to the same file and keeps the others.
    later = replace(config, methods=("momentum",), tasks=("digits",), command="later")
    merged = harness.study(later, progress=lambda line: None, merge=True)
    assert set(merged["tasks"]["digits"]["runs"]) == {"sgd", "unit_block", "kfac", "momentum"}
    assert merged["tasks"]["digits"]["runs"]["kfac"] == results["tasks"]["digits"]["runs"]["kfac"]
    assert "later" in page.render(merged, tmp_path / "t.md", tmp_path / "figures", prose.PROSE)
