"""fisher_sym.torch.UnitwiseNaturalGradient: every unit's update against the dense solve of the
block its mode declares (built from the definition by conditioning on u, with mpmath's
integrals), the running statistics against direct averages, the model walk, the errors, the
state dict, copies, and the paper's residual block against a simulated random chain."""

import math
import subprocess
import sys

import numpy as np
import pytest
import sympy as sp
import torch
from torch import nn

from fisher_sym import reference
from fisher_sym.torch import (
    ResidualBlock,
    UnitwiseNaturalGradient,
    UnsupportedModelError,
    find_layers,
    mean_field,
)
from fisher_sym.torch.optimizer import RunningMoments
from generated import relu

PHI = {"relu": sp.Max(reference.U, 0), "tanh": sp.tanh(reference.U), "linear": reference.U}


def mlp(widths, activation, seed=0):
    torch.manual_seed(seed)
    modules = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        modules += [nn.Linear(fan_in, fan_out), activation()]
    return nn.Sequential(*modules[:-1]).double()


class Recorder:
    """Each Linear's input x and output u of the last forward pass (u keeps its grad)."""

    def __init__(self, model):
        self.inputs, self.outputs = {}, {}
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.register_forward_hook(self.hook)

    def hook(self, module, args, output):
        self.inputs[module] = args[0].detach().clone()
        output.retain_grad()
        self.outputs[module] = output


def declared_statistics(x, inputs, floor=1e-4):
    n = x.shape[1]
    if inputs == "standard":
        return np.zeros(n), np.ones(n)
    mean, variance = x.mean(axis=0), x.var(axis=0)
    mean_square = float(np.mean(mean**2 + variance))
    if inputs == "scale":
        return np.zeros(n), np.full(n, mean_square)
    return mean, np.maximum(variance, floor * mean_square)


def dense_update(linear, activation, mean, variance, factor, damping):
    """Per unit, (c_i·E[φ'(u)² x*x*ᵀ] + damping·E[x*x*ᵀ])⁻¹ g_i for x ~ N(μ, diag(s²)), the
    block from its definition (reference.dense_fisher_...) with the three integrals by mpmath;
    ``factor(i, I0)`` gives c_i."""
    W = linear.weight.detach().numpy()
    b = linear.bias.detach().numpy()
    g = np.concatenate([linear.weight.grad.numpy(), linear.bias.grad.numpy()[:, None]], axis=1)
    M = reference.input_second_moment(mean, variance)
    rows = []
    for i, (w, bias) in enumerate(zip(W, b, strict=True)):
        sigma = math.sqrt(float(np.sum(variance * w * w)))
        blocks = [float(value) for value in reference.fisher_blocks_mp(
            PHI[activation], sigma, float(w @ mean + bias), dps=20)]
        G = reference.dense_fisher_with_input_statistics(w, mean, variance, blocks)
        rows.append(np.linalg.solve(factor(i, blocks[0]) * G + damping * M, g[i]))
    return np.array(rows)


def measured_factor(delta):
    """c_i = mean(δ_i²)/I0: the bias–bias entry of the measured block over the model's."""
    return lambda i, i0: float(np.mean(delta[:, i] ** 2)) / i0


def unit_factor(i, i0):
    return 1.0


def assert_updates(got, want, tolerance=1e-9):
    for layer, expected in enumerate(want):
        nat_W, nat_b = got[2 * layer].numpy(), got[2 * layer + 1].numpy()
        combined = np.concatenate([nat_W, nat_b[:, None]], axis=1)
        scale = np.abs(expected).max()
        assert np.abs(combined - expected).max() <= tolerance * scale, (layer, combined, expected)


def applied_update(model, step, lr):
    before = [p.detach().clone() for p in model.parameters()]
    step()
    return [(b - p.detach()) / lr for b, p in zip(before, model.parameters(), strict=True)]


def train_step(model, opt, x, y, loss, seed, before=None):
    """Forward, estimate_factors (targets drawn after seeding with ``seed``), the training
    loss's backward; ``before(out)`` runs first, on the same graph."""
    out = model(x)
    if before is not None:
        before(out)
    opt.zero_grad()
    torch.manual_seed(seed)
    opt.estimate_factors(out)
    value = (0.5 * ((out - y) ** 2).sum(dim=1).mean() if loss == "mse"
             else nn.functional.cross_entropy(out, y))
    value.backward()
    return out


def sampled_errors(model, recorder, out, loss, seed):
    """δ = ∂ℓ/∂u per sample for targets drawn as the optimizer draws them (same seed)."""
    torch.manual_seed(seed)
    with torch.no_grad():
        if loss == "mse":
            targets = out + torch.randn_like(out)
        else:
            targets = torch.multinomial(torch.softmax(out.detach(), -1), 1).squeeze(-1)
    sampled = (0.5 * ((out - targets) ** 2).sum() if loss == "mse"
               else nn.functional.cross_entropy(out, targets, reduction="sum"))
    us = [recorder.outputs[m] for m in model if isinstance(m, nn.Linear)]
    return [d.numpy() for d in torch.autograd.grad(sampled, us, retain_graph=True)]


@pytest.mark.parametrize(
    "activation, inputs, fisher, loss",
    [
        ("relu", "moments", "sampled", "mse"),
        ("tanh", "scale", "sampled", "cross_entropy"),
        ("relu", "standard", "empirical", "mse"),
        ("tanh", "moments", "none", "cross_entropy"),
    ],
)
def test_every_unit_update_is_the_dense_solve_of_its_declared_block(activation, inputs, fisher,
                                                                    loss):
    model = mlp([4, 5, 3], {"relu": nn.ReLU, "tanh": nn.Tanh}[activation], seed=1)
    recorder = Recorder(model)
    torch.manual_seed(2)
    x = torch.randn(64, 4, dtype=torch.float64) * 1.5 + 0.5
    y = (torch.randn(64, 3, dtype=torch.float64) if loss == "mse"
         else torch.randint(0, 3, (64,)))
    damping, lr = 1e-2, 0.1
    opt = UnitwiseNaturalGradient(model, lr=lr, damping=damping, inputs=inputs, fisher=fisher,
                                  loss=loss)
    sampled = []
    train_step(model, opt, x, y, loss, seed=3, before=lambda out: sampled.extend(
        sampled_errors(model, recorder, out, loss, seed=3) if fisher == "sampled" else []))
    linears = [m for m in model if isinstance(m, nn.Linear)]
    if fisher == "sampled":
        deltas = sampled
    else:  # the training loss is a mean over the batch: rows·∂L/∂u is each sample's δ
        deltas = [recorder.outputs[m].grad.numpy() * x.shape[0] for m in linears]
    want = []
    for linear, act, delta in zip(linears, [activation, "linear"], deltas, strict=True):
        mean, variance = declared_statistics(recorder.inputs[linear].numpy(), inputs)
        factor = unit_factor if fisher == "none" else measured_factor(delta)
        want.append(dense_update(linear, act, mean, variance, factor, damping))
    assert_updates(applied_update(model, opt.step, lr), want)


def test_the_papers_residual_algorithm_solves_the_mean_field_block():
    """inputs = fisher = "mean_field" on a chain of two ReLU blocks: block l's units solve
    c_l·A(N(0, A^{l−1} I)) + λ·E[x*x*ᵀ] with c_l = σ_v² χ^L_{l+1} and A^{l−1} from
    fisher_sym.meanfield, checked here against the recursion written out."""
    torch.manual_seed(6)
    blocks = [ResidualBlock(4, nn.ReLU(), alpha=0.8, sigma_v=1.1, sigma_w=1.3, sigma_b=0.2,
                            dtype=torch.float64) for _ in range(2)]
    model = nn.Sequential(*blocks)
    opt = UnitwiseNaturalGradient(model, lr=1.0, damping=0.05, inputs="mean_field",
                                  fisher="mean_field")
    opt.zero_grad()
    model(torch.randn(8, 4, dtype=torch.float64)).square().sum().backward()
    # the recursion by hand: relu's E[φ(τv)²] = τ²/2, E[φ'(τv)²] = 1/2
    tau1 = math.sqrt(1.3**2 * 1.0 + 0.2**2)
    activity1 = 0.8**2 * 1.0 + 1.1**2 * tau1**2 / 2
    chi2 = 0.8**2 + 1.1**2 * 1.3**2 / 2
    inputs = [1.0, activity1]
    factors = [1.1**2 * chi2, 1.1**2]
    want = [dense_update(block.linear, "relu", np.zeros(4), np.full(4, activity),
                         lambda i, i0, c=factor: c, 0.05)
            for block, activity, factor in zip(blocks, inputs, factors, strict=True)]
    assert_updates(applied_update(model, opt.step, 1.0), want)


def test_running_moments_are_the_exact_average_during_warm_up_then_a_geometric_mixture():
    """Equal batches: for t ≤ 1/(1 − β) the moments of all rows so far; after, the mean and
    variance of the mixture of the batches with weights (1 − β_t)·Π_{s>t} β_s, computed
    directly from the rows."""
    rng = np.random.default_rng(4)
    batches = [rng.normal(loc=rng.normal(), scale=rng.uniform(0.5, 2), size=(8, 3))
               for _ in range(9)]
    moments = RunningMoments(3, decay=0.75)  # warm-up: 4 batches
    weights = []
    for t, batch in enumerate(batches, start=1):
        moments.update(torch.as_tensor(batch))
        keep = min(0.75, 1 - 1 / t)
        weights = [w * keep for w in weights] + [1 - keep]
        rows = np.concatenate(batches[:t])
        row_weights = np.repeat(weights, 8) / 8
        mean = row_weights @ rows
        variance = row_weights @ (rows - mean) ** 2
        if t <= 4:
            np.testing.assert_allclose(mean, rows.mean(axis=0), rtol=1e-13, atol=1e-15)
            np.testing.assert_allclose(variance, rows.var(axis=0), rtol=1e-13)
        np.testing.assert_allclose(moments.mean.numpy(), mean, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(moments.variance.numpy(), variance, rtol=1e-13)


def test_pairs_are_found_in_a_model_tree():
    model = nn.Sequential(
        nn.Linear(3, 4), nn.ReLU(),
        nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Dropout(0.0)),
        nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 4), nn.ELU(), nn.Linear(4, 2),
    )
    found = [(layer.name, layer.activation) for layer in find_layers(model)]
    assert found == [("0", "relu"), ("2.0", "tanh"), ("3", "gelu"), ("5", "elu"), ("7", "linear")]


@pytest.mark.parametrize(
    "model, message",
    [
        (nn.Sequential(nn.Linear(3, 3), nn.LeakyReLU(0.2)), "leaky_relu_negative_slope_0p2"),
        (nn.Sequential(nn.Linear(3, 3), nn.Hardtanh(-2.0, 2.0)), "Hardtanh"),
        (nn.Sequential(nn.Linear(3, 3), nn.GELU("tanh")), "GELU"),
        (nn.Sequential(nn.Linear(3, 3), nn.Softmax(-1)), "Softmax"),
        (nn.Sequential(nn.Linear(3, 3, bias=False), nn.ReLU()), "no bias"),
    ],
)
def test_unsupported_layers_are_named(model, message):
    with pytest.raises(UnsupportedModelError, match=message):
        UnitwiseNaturalGradient(model)


def test_parameters_outside_the_pairs_are_an_error_or_trained_by_sgd():
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.LayerNorm(4), nn.Linear(4, 2)).double()
    with pytest.raises(UnsupportedModelError, match="2.weight"):
        UnitwiseNaturalGradient(model)
    opt = UnitwiseNaturalGradient(model, lr=0.5, fisher="none", inputs="standard", others="sgd")
    x = torch.randn(16, 3, dtype=torch.float64)
    opt.zero_grad()
    model(x).square().sum().backward()
    norm = model[2]
    want = [norm.weight - 0.5 * norm.weight.grad, norm.bias - 0.5 * norm.bias.grad]
    want = [w.detach().clone() for w in want]
    opt.step()
    torch.testing.assert_close(norm.weight.detach(), want[0], rtol=0, atol=0)
    torch.testing.assert_close(norm.bias.detach(), want[1], rtol=0, atol=0)


def test_explicit_pairs_take_a_generated_module_by_name():
    """A functional activation: the pair is named, and the update is the declared one (tanh's
    block, c = 1, standard inputs) for the dense solve."""

    class Functional(nn.Module):
        def __init__(self):
            super().__init__()
            self.first, self.second = nn.Linear(3, 4), nn.Linear(4, 2)

        def forward(self, x):
            return self.second(torch.tanh(self.first(x)))

    torch.manual_seed(5)
    model = Functional().double()
    opt = UnitwiseNaturalGradient(model, lr=1.0, damping=0.1, inputs="standard", fisher="none",
                                  layers=[(model.first, "tanh"), (model.second, "linear")])
    x = torch.randn(8, 3, dtype=torch.float64)
    opt.zero_grad()
    model(x).sum().backward()
    want = dense_update(model.first, "tanh", np.zeros(3), np.ones(3), unit_factor, 0.1)
    got = applied_update(model, opt.step, 1.0)
    combined = np.concatenate([got[0].numpy(), got[1].numpy()[:, None]], axis=1)
    np.testing.assert_allclose(combined, want, rtol=1e-10, atol=1e-12)


def _trained(seed=0):
    model = mlp([3, 4, 2], nn.Tanh, seed=seed)
    opt = UnitwiseNaturalGradient(model, lr=0.1, damping=1e-2, inputs="moments",
                                  fisher="sampled", loss="mse", statistics_decay=0.5)
    return model, opt


def _steps(model, opt, count, seed):
    generator = torch.Generator().manual_seed(seed)
    for k in range(count):
        x = torch.randn(16, 3, dtype=torch.float64, generator=generator)
        y = torch.randn(16, 2, dtype=torch.float64, generator=generator)
        train_step(model, opt, x, y, "mse", seed=100 + k)
        opt.step()


def test_state_dict_round_trip_continues_exactly(tmp_path):
    model, opt = _trained()
    _steps(model, opt, 3, seed=1)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, tmp_path / "check.pt")
    _steps(model, opt, 3, seed=2)
    saved = torch.load(tmp_path / "check.pt")
    other_model, other_opt = _trained(seed=9)
    other_model.load_state_dict(saved["model"])
    other_opt.load_state_dict(saved["opt"])
    _steps(other_model, other_opt, 3, seed=2)
    for p, q in zip(model.parameters(), other_model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_bad_input_names_the_layer_and_units_and_changes_nothing():
    model, opt = _trained()
    _steps(model, opt, 1, seed=1)
    x = torch.randn(16, 3, dtype=torch.float64)
    train_step(model, opt, x, torch.randn(16, 2, dtype=torch.float64), "mse", seed=3)
    model[2].weight.grad[1, 0] = math.nan
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(ValueError, match=r"2: grad_W has non-finite values \(units 1\)"):
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))
    with pytest.raises(ValueError, match="damping"):
        UnitwiseNaturalGradient(model, damping=-1.0)
    opt.param_groups[0]["damping"] = -1.0
    model[2].weight.grad[1, 0] = 0.0
    with pytest.raises(ValueError, match="0: damping"):
        opt.step()
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters(), strict=True))
    opt.param_groups[0]["damping"] = 1e-2
    model[0].weight = nn.Parameter(torch.zeros(5, 3, dtype=torch.float64))
    model[0].weight.grad = torch.zeros(5, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match="shape changed"):
        opt.step()


def test_sampled_mode_asks_for_estimate_factors():
    model, opt = _trained()
    opt.zero_grad()
    model(torch.randn(4, 3, dtype=torch.float64)).sum().backward()
    with pytest.raises(RuntimeError, match="estimate_factors"):
        opt.step()


def test_cpu_tensors_reach_the_kernels_without_copies(monkeypatch):
    model = mlp([3, 4, 2], nn.ReLU, seed=0).float()
    opt = UnitwiseNaturalGradient(model, lr=0.1, inputs="standard", fisher="none")
    opt.zero_grad()
    model(torch.randn(8, 3)).sum().backward()
    seen = []
    original = relu.natural_gradient

    def spy(W, b, grad_W, grad_b, **kwargs):
        seen.append([a.__array_interface__["data"][0] for a in (W, b, grad_W, grad_b)]
                    + [a.__array_interface__["data"][0] for a in kwargs["out"]])
        return original(W, b, grad_W, grad_b, **kwargs)

    monkeypatch.setattr(relu, "natural_gradient", spy)
    opt.step()
    linear = model[0]
    tensors = [linear.weight, linear.bias, linear.weight.grad, linear.bias.grad]
    assert seen[0][:4] == [t.data_ptr() for t in tensors]
    assert len(set(seen[0])) == 6  # out: two fresh buffers, no alias of the inputs


def test_residual_block_is_the_papers_block():
    torch.manual_seed(0)
    block = ResidualBlock(6, "tanh", alpha=0.8, sigma_v=1.2, sigma_w=1.5, sigma_b=0.1,
                          dtype=torch.float64)
    assert not any(p is block.mixing for p in block.parameters())
    x = torch.randn(5, 6, dtype=torch.float64)
    want = 0.8 * x + torch.tanh(x @ block.linear.weight.T + block.linear.bias) @ block.mixing.T
    torch.testing.assert_close(block(x), want, rtol=1e-15, atol=1e-15)


def test_residual_mean_field_matches_a_simulated_wide_chain():
    """Input activity A^{l−1} and the factor σ_v² χ^L_{l+1} = (1/n)·Σ_{i,s} (∂x^L_i/∂φ(u_s))²
    of a width-400 chain of 4 tanh blocks against their values in 6 random chains: within
    5 standard errors of the mean over chains."""
    n, depth, chains = 400, 4, 6
    activity, factor = [], []
    for seed in range(chains):
        generator = torch.Generator().manual_seed(seed)
        blocks = [ResidualBlock(n, "tanh", alpha=0.7, sigma_v=1.3, sigma_w=1.4, sigma_b=0.2,
                                generator=generator, dtype=torch.float64) for _ in range(depth)]
        x = torch.randn(n, dtype=torch.float64, generator=generator)
        inputs, hidden = [], []
        with torch.no_grad():
            for block in blocks:
                inputs.append(x)
                hidden.append(torch.tanh(block.linear(x)))
                x = block(x)

        def output(h, layer, blocks=blocks, inputs=inputs):
            y = blocks[layer].alpha * inputs[layer] + h @ blocks[layer].mixing.T
            for block in blocks[layer + 1:]:
                y = block(y)
            return y

        activity.append([float((x_in**2).mean()) for x_in in inputs])
        factor.append([
            float((torch.autograd.functional.jacobian(
                lambda h, layer=layer: output(h, layer), hidden[layer], vectorize=True) ** 2
            ).sum()) / n
            for layer in range(depth)
        ])
    field = mean_field(blocks, "tanh")
    for measured, predicted in ((np.array(activity), field.input_activity),
                                (np.array(factor), field.factor)):
        spread = measured.std(axis=0, ddof=1) / math.sqrt(chains)
        assert np.all(np.abs(measured.mean(axis=0) - predicted) <= 5 * spread), (
            measured.mean(axis=0), predicted, spread)


def test_fisher_sym_imports_without_torch():
    code = (
        "import importlib, pkgutil, sys; sys.modules['torch'] = None\n"
        "import fisher_sym, fisher_sym.meanfield, generated\n"
        "for module in pkgutil.iter_modules(generated.__path__):\n"
        "    importlib.import_module('generated.' + module.name)\n"
        "try:\n"
        "    import fisher_sym.torch\n"
        "except ImportError as error:\n"
        "    print('refused:', error)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.startswith("refused:"), result.stdout + result.stderr


DISTRIBUTED = '''
import sys
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from fisher_sym.torch import UnitwiseNaturalGradient

rank, world, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
net = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
generator = torch.Generator().manual_seed(1)
xs = torch.randn(3, 16, 3, generator=generator, dtype=torch.float64) * 2 + 1
ys = torch.randn(3, 16, 2, generator=generator, dtype=torch.float64)
if world > 1:
    dist.init_process_group("gloo", rank=rank, world_size=world)
    model = DistributedDataParallel(net)
else:
    model = net
opt = UnitwiseNaturalGradient(model, lr=0.5, damping=1e-2, inputs="moments", fisher="empirical")
rows = slice(rank * 16 // world, (rank + 1) * 16 // world)
for x, y in zip(xs, ys):
    out = model(x[rows])
    opt.zero_grad()
    (0.5 * ((out - y[rows]) ** 2).sum(dim=1).mean()).backward()
    opt.step()
torch.save(net.state_dict(), f"{path}/rank{rank}of{world}.pt")
'''


def test_distributed_data_parallel_equals_one_process_on_the_whole_batch(tmp_path):
    """Two processes (gloo) on halves of each batch end where one process on whole batches
    does: the gradients are averaged by DDP, and the input moments and the factors are those
    of the union of the halves (all-reduced), so the update is the same up to rounding."""
    import socket

    script = tmp_path / "step.py"
    script.write_text(DISTRIBUTED, encoding="utf-8")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    environment = {**__import__("os").environ, "MASTER_ADDR": "127.0.0.1",
                   "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1"}
    runs = [subprocess.Popen([sys.executable, str(script), str(rank), "2", str(tmp_path)],
                             env=environment, stderr=subprocess.PIPE, text=True)
            for rank in range(2)]
    runs.append(subprocess.Popen([sys.executable, str(script), "0", "1", str(tmp_path)],
                                 env=environment, stderr=subprocess.PIPE, text=True))
    for run in runs:
        _, error = run.communicate(timeout=300)
        assert run.returncode == 0, error
    first, second, alone = (torch.load(tmp_path / name) for name in
                            ("rank0of2.pt", "rank1of2.pt", "rank0of1.pt"))
    for key in alone:
        assert torch.equal(first[key], second[key]), key
        torch.testing.assert_close(first[key], alone[key], rtol=1e-12, atol=1e-14)


CUDA_SIMULATED = '''
import torch
from torch import nn
from fisher_sym.torch import UnitwiseNaturalGradient, optimizer

def run(on_cuda):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 2)).double()
    opt = UnitwiseNaturalGradient(model, lr=0.5, damping=1e-2, inputs="moments",
                                  fisher="sampled")
    if on_cuda:  # the CUDA functions with every argument the optimizer passes
        optimizer._layer_function = lambda kernels, weight: kernels.natural_gradient_cuda
    x = torch.randn(16, 4, dtype=torch.float64) + 1.0
    out = model(x)
    opt.zero_grad()
    opt.estimate_factors(out)
    (0.5 * (out ** 2).sum(dim=1).mean()).backward()
    opt.step()
    return [p.detach().clone() for p in model.parameters()]

cpu, simulated = run(False), run(True)
for p, q in zip(cpu, simulated, strict=True):
    torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-15)
print("same")
'''


def test_cuda_functions_take_the_optimizers_arguments_under_the_simulator():
    """The step through natural_gradient_cuda (numba's CUDA simulator; per-unit damping, input
    statistics, out buffers) equals the step through the CPU kernels. No GPU here: the zero-copy
    path of CUDA tensors (__cuda_array_interface__) is not exercised by this test."""
    import os

    result = subprocess.run([sys.executable, "-c", CUDA_SIMULATED], capture_output=True,
                            text=True, env={**os.environ, "NUMBA_ENABLE_CUDASIM": "1"})
    assert result.returncode == 0 and result.stdout.strip() == "same", result.stderr[-3000:]
