"""The natural-gradient methods that the study compares with fisher_sym's optimizer.

Every method here preconditions the gradient of ``nn.Linear`` layers (weight and bias, a unit's
parameters ordered (w_1, …, w_n, b) as everywhere in fisher_sym) with a damped estimate of the
Fisher information, and follows the protocol of ``fisher_sym.torch.UnitwiseNaturalGradient``::

    out = model(x)
    opt.zero_grad()
    opt.estimate_factors(out)     # an extra backward with targets sampled from the model
    loss_value(out, y, loss).backward()
    opt.step()

The curvature of a sample is that of its negative log-likelihood under the model's own
predictive distribution (the Fisher, not the empirical Fisher): targets ŷ are drawn from
N(f(x), I) for ``"mse"`` and from softmax(f(x)) for ``"cross_entropy"``, and
δ = ∂ℓ(f(x), ŷ)/∂s is back-propagated to each layer's pre-activations s = W x + b. With
x* = (x, 1) a layer's input with a 1 appended, the Fisher block of units i and j is
E[δ_i δ_j x* x*ᵀ].

- ``UnitBlockNaturalGradient``: each unit's (n+1)×(n+1) block E[δ_i² x* x*ᵀ], averaged over
  the mini-batch, plus damping·I, solved exactly (Kurita 1994; Ollivier 2015).
- ``QuasiDiagonalNaturalGradient``: of that block only the diagonal and the bias row and
  column (Ollivier 2015, "Riemannian metrics for neural networks I", Sec. 3.2): an arrowhead
  matrix, solved in O(n) per unit.
- ``KFAC``: per layer F ≈ A ⊗ S with A = E[x* x*ᵀ], S = E[δ δᵀ] (Martens & Grosse 2015),
  running averages of both, and the factored Tikhonov damping of Sec. 6.3 there:
  (A + π√λ I) ⊗ (S + √λ/π I), π² = (tr A/(n+1)) / (tr S/m).
- ``ExactNaturalGradient``: G = E_x[Jᵀ H J] over the mini-batch, with J the per-sample
  Jacobian of the network's output for every parameter (torch.func) and H the Fisher of the
  output distribution (I for ``"mse"``, diag(p) − p pᵀ for ``"cross_entropy"``), in closed
  form instead of sampled; (G + λI)⁻¹ g by a dense Cholesky solve. Only for small networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap

LOSSES = ("mse", "cross_entropy")


def loss_value(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """The mean loss over the batch: ½|f − y|² (a Gaussian of unit variance) or cross-entropy."""
    if loss == "mse":
        return 0.5 * (out - y).pow(2).sum(dim=1).mean()
    if loss == "cross_entropy":
        return F.cross_entropy(out, y)
    raise ValueError(f"loss must be one of {LOSSES}, not {loss!r}")


def sample_targets(out: torch.Tensor, loss: str, generator: torch.Generator) -> torch.Tensor:
    """Targets drawn from the model's predictive distribution at ``out``."""
    with torch.no_grad():
        if loss == "mse":
            noise = torch.randn(out.shape, generator=generator, dtype=out.dtype)
            return out + noise
        probabilities = torch.softmax(out, dim=1)
        return torch.multinomial(probabilities, 1, generator=generator).squeeze(1)


def linear_layers(model: nn.Module) -> list[nn.Linear]:
    """The trainable ``nn.Linear`` modules of ``model``; another trainable parameter is an error."""
    layers = [
        module
        for module in model.modules()
        if isinstance(module, nn.Linear) and module.weight.requires_grad
    ]
    covered = {id(p) for layer in layers for p in (layer.weight, layer.bias)}
    for name, parameter in model.named_parameters():
        if parameter.requires_grad and id(parameter) not in covered:
            raise ValueError(f"parameter {name!r} is not the weight or bias of an nn.Linear")
    for layer in layers:
        if layer.bias is None:
            raise ValueError(f"{layer} has no bias; the methods here expect (w, b) per unit")
    return layers


def with_ones(x: torch.Tensor) -> torch.Tensor:
    """x* = (x, 1) for each row of a batch."""
    return torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)


class LayerRecorder:
    """Forward hooks that keep each layer's input and output of the last training forward pass."""

    def __init__(self, layers: list[nn.Linear]):
        self.inputs: list[torch.Tensor | None] = [None] * len(layers)
        self.outputs: list[torch.Tensor | None] = [None] * len(layers)
        self.handles = [
            layer.register_forward_hook(self._hook(index)) for index, layer in enumerate(layers)
        ]

    def _hook(self, index: int):
        def hook(module, args, output):
            if torch.is_grad_enabled():  # evaluation passes run under no_grad
                self.inputs[index] = args[0].detach()
                self.outputs[index] = output

        return hook

    def backpropagated(self, out: torch.Tensor, loss: str, generator: torch.Generator):
        """(ŷ, [δ per layer]): δ_b = ∂ℓ(f(x_b), ŷ_b)/∂s_b for each sample b, ŷ from the model."""
        targets = sample_targets(out, loss, generator)
        total = loss_value(out, targets, loss) * out.shape[0]
        deltas = torch.autograd.grad(total, self.outputs, retain_graph=True)
        return targets, [delta.detach() for delta in deltas]


class _LayerwisePreconditioner(torch.optim.Optimizer):
    """Shared part of the methods that precondition each layer's (m, n+1) gradient [W | b]."""

    def __init__(self, model: nn.Module, lr: float, damping: float, loss: str, seed: int = 0):
        if damping < 0:
            raise ValueError(f"damping must be ≥ 0, not {damping}")
        self.layers = linear_layers(model)
        parameters = [p for layer in self.layers for p in (layer.weight, layer.bias)]
        super().__init__(parameters, {"lr": lr, "damping": damping})
        self.loss = loss
        self.recorder = LayerRecorder(self.layers)
        self.generator = torch.Generator().manual_seed(seed)
        self.factors: list = [None] * len(self.layers)
        self.last_targets = None

    def estimate_factors(self, out: torch.Tensor) -> None:
        self.last_targets, deltas = self.recorder.backpropagated(out, self.loss, self.generator)
        for index, (x, delta) in enumerate(zip(self.recorder.inputs, deltas, strict=True)):
            self.factors[index] = self._estimate(index, with_ones(x), delta)

    def _estimate(self, index: int, x_star: torch.Tensor, delta: torch.Tensor):
        raise NotImplementedError

    def _solve(self, factors, grad: torch.Tensor, damping: float) -> torch.Tensor:
        raise NotImplementedError

    @torch.no_grad()
    def natural_gradients(self) -> list[torch.Tensor]:
        """Each layer's preconditioned gradient [nat_W | nat_b], shape (m, n+1)."""
        damping = self.param_groups[0]["damping"]
        result = []
        for layer, factors in zip(self.layers, self.factors, strict=True):
            grad = torch.cat([layer.weight.grad, layer.bias.grad[:, None]], dim=1)
            result.append(self._solve(factors, grad, damping))
        return result

    @torch.no_grad()
    def step(self, closure=None):
        lr = self.param_groups[0]["lr"]
        for layer, natural in zip(self.layers, self.natural_gradients(), strict=True):
            layer.weight -= lr * natural[:, :-1]
            layer.bias -= lr * natural[:, -1]


class UnitBlockNaturalGradient(_LayerwisePreconditioner):
    """Each unit's block G_i = E[δ_i² x* x*ᵀ] from the mini-batch; (G_i + λI)⁻¹ g_i exactly."""

    def _estimate(self, index, x_star, delta):
        batch, width = x_star.shape
        outer = (x_star[:, :, None] * x_star[:, None, :]).reshape(batch, width * width)
        blocks = delta.pow(2).T @ outer / batch
        return blocks.reshape(-1, width, width)

    def _solve(self, blocks, grad, damping):
        eye = torch.eye(blocks.shape[-1], dtype=blocks.dtype)
        factor = torch.linalg.cholesky(blocks + damping * eye)
        return torch.cholesky_solve(grad[:, :, None], factor).squeeze(-1)


class QuasiDiagonalNaturalGradient(_LayerwisePreconditioner):
    """Of each unit block only diag(G_i) and the bias row E[δ_i² x]: Ollivier's quasi-diagonal.

    With d_j = G_jj + λ, d_b = G_bb + λ and c_j = G_jb, the solve of the arrowhead matrix is
    nat_b = (g_b − Σ_j c_j g_j/d_j) / (d_b − Σ_j c_j²/d_j),  nat_j = (g_j − c_j nat_b)/d_j.
    """

    def _estimate(self, index, x_star, delta):
        squared = delta.pow(2)
        batch = x_star.shape[0]
        diagonal = squared.T @ x_star.pow(2) / batch  # (m, n+1), the last column G_bb
        bias_row = squared.T @ x_star[:, :-1] / batch  # (m, n): G_jb
        return diagonal, bias_row

    def _solve(self, factors, grad, damping):
        diagonal, bias_row = factors
        d = diagonal[:, :-1] + damping
        d_bias = diagonal[:, -1] + damping
        g, g_bias = grad[:, :-1], grad[:, -1]
        schur = d_bias - (bias_row.pow(2) / d).sum(dim=1)
        nat_bias = (g_bias - (bias_row * g / d).sum(dim=1)) / schur
        nat = (g - bias_row * nat_bias[:, None]) / d
        return torch.cat([nat, nat_bias[:, None]], dim=1)


class KFAC(_LayerwisePreconditioner):
    """K-FAC: F ≈ A ⊗ S per layer, running averages (``decay``), factored Tikhonov damping.

    In row-major order (vec of the (m, n+1) gradient [W | b] row by row) the layer's Fisher is
    approximated by S ⊗ A, and the update is (S + √λ/π I)⁻¹ [W | b]-gradient (A + π√λ I)⁻¹.
    """

    def __init__(self, model, lr, damping, loss, seed=0, decay: float = 0.95):
        super().__init__(model, lr, damping, loss, seed)
        self.decay = decay

    def _estimate(self, index, x_star, delta):
        batch = x_star.shape[0]
        a = x_star.T @ x_star / batch
        s = delta.T @ delta / batch
        previous = self.factors[index]
        if previous is not None:
            a = self.decay * previous[0] + (1 - self.decay) * a
            s = self.decay * previous[1] + (1 - self.decay) * s
        return a, s

    @staticmethod
    def damped_factors(a, s, damping):
        """(A + π√λ I, S + √λ/π I) with π² = (tr A/dim A) / (tr S/dim S)."""
        root = damping**0.5
        pi = ((a.trace() / a.shape[0]) / (s.trace() / s.shape[0]).clamp_min(1e-30)) ** 0.5
        pi = pi.clamp(1e-8, 1e8)
        eye_a = torch.eye(a.shape[0], dtype=a.dtype)
        eye_s = torch.eye(s.shape[0], dtype=s.dtype)
        return a + pi * root * eye_a, s + root / pi * eye_s

    def _solve(self, factors, grad, damping):
        a, s = self.damped_factors(*factors, damping)
        right = torch.cholesky_solve(grad.T, torch.linalg.cholesky(a)).T  # grad A⁻¹
        return torch.cholesky_solve(right, torch.linalg.cholesky(s))  # S⁻¹ grad A⁻¹


class ExactNaturalGradient(torch.optim.Optimizer):
    """(G + λI)⁻¹ g with G = (1/B) Σ_b J_bᵀ H_b J_b over every trainable parameter of ``model``."""

    def __init__(self, model: nn.Module, lr: float, damping: float, loss: str, seed: int = 0):
        if damping < 0:
            raise ValueError(f"damping must be ≥ 0, not {damping}")
        self.model = model
        self.names = [n for n, p in model.named_parameters() if p.requires_grad]
        parameters = [p for p in model.parameters() if p.requires_grad]
        super().__init__(parameters, {"lr": lr, "damping": damping})
        self.loss = loss
        self.matrix: torch.Tensor | None = None
        self._inputs: torch.Tensor | None = None
        self._tracing = False
        model.register_forward_pre_hook(self._keep_inputs)

    def _keep_inputs(self, module, args):
        if torch.is_grad_enabled() and not self._tracing:
            self._inputs = args[0].detach()

    def jacobian(self, x: torch.Tensor) -> torch.Tensor:
        """Per-sample Jacobians of the output, (B, k, P), parameters in ``self.names`` order."""
        parameters = {name: p.detach() for name, p in self.model.named_parameters()}
        trainable = {name: parameters[name] for name in self.names}

        def output(params, sample):
            return functional_call(self.model, params, (sample[None],))[0]

        self._tracing = True
        try:
            jacobians = vmap(jacrev(output), in_dims=(None, 0))(trainable, x)
        finally:
            self._tracing = False
        batch = x.shape[0]
        return torch.cat(
            [jacobians[name].reshape(batch, -1, parameters[name].numel()) for name in self.names],
            dim=2,
        )

    def estimate_factors(self, out: torch.Tensor) -> None:
        jac = self.jacobian(self._inputs)
        batch, outputs, size = jac.shape
        if self.loss == "mse":
            weighted = jac
        else:
            p = torch.softmax(out.detach(), dim=1)
            weighted = p[:, :, None] * jac - p[:, :, None] * (p[:, None, :] @ jac)
        self.matrix = jac.reshape(-1, size).T @ weighted.reshape(-1, size) / batch

    @torch.no_grad()
    def natural_gradient(self) -> torch.Tensor:
        grad = torch.cat([p.grad.reshape(-1) for p in self.param_groups[0]["params"]])
        damping = self.param_groups[0]["damping"]
        eye = torch.eye(grad.numel(), dtype=grad.dtype)
        factor = torch.linalg.cholesky(self.matrix + damping * eye)
        return torch.cholesky_solve(grad[:, None], factor).squeeze(1)

    @torch.no_grad()
    def step(self, closure=None):
        natural = self.natural_gradient()
        lr = self.param_groups[0]["lr"]
        offset = 0
        for p in self.param_groups[0]["params"]:
            p -= lr * natural[offset : offset + p.numel()].reshape(p.shape)
            offset += p.numel()
