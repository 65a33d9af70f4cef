"""UnitwiseNaturalGradient: the unit-wise natural gradient of every (Linear, φ) pair of a model,
through the generated kernels.

For unit i of a layer (its row (W_i, b_i), input x, pre-activation u_i = W_i·x + b_i,
back-propagated error δ_i = ∂ℓ/∂u_i = φ'(u_i)·e_i with e_i = ∂ℓ/∂φ(u_i)) the Fisher block is
E[δ_i² x*x*ᵀ], x* = (x, 1). The paper's mean-field approximation takes e_i² independent of x:

    G_i ≈ c_i · A_i,    A_i = E[φ'(u_i)² x*x*ᵀ] (the generated block of the input statistics),
                        c_i = E[e_i²]          (the back-propagated factor, χ^L_{m+1} in the paper)

and the update is W_i, b_i ← W_i, b_i − lr·(c_i·A_i + λ·E[x*x*ᵀ])⁻¹ g_i, computed by the kernels
as (A_i + (λ/c_i)·E[x*x*ᵀ])⁻¹ (g_i / c_i) (per-unit damping λ/c_i). c_i is estimated from the
bias–bias entry of the block, which the mini-batch gives directly: E[δ_i²] = c_i·A00(r', b'), so
c_i = E[δ_i²] / A00(r', b'), with r' = |s⊙W_i| and b' = μ·W_i + b_i at the input statistics
(μ, s²). See docs/pytorch.md.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from fisher_sym.torch.layers import (
    UnitLayer,
    UnsupportedModelError,
    check_distinct,
    find_layers,
    named_layers,
)
from fisher_sym.torch.residual import ResidualBlock
from fisher_sym.torch.residual import mean_field as residual_mean_field

INPUT_MODES = ("standard", "scale", "moments", "mean_field")
FISHER_MODES = ("sampled", "empirical", "none", "mean_field")
LOSSES = ("mse", "cross_entropy")
#: A unit's factor is at least this fraction of its layer's largest (a unit the loss does not
#: see would otherwise get an unbounded step).
FACTOR_FLOOR = 1e-12


def _check_nonnegative(value, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a real number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be finite and ≥ 0, got {value!r}")
    return number


def _check_choice(value, name: str, choices) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class RunningMoments:
    """Running per-coordinate mean and variance of a stream of batches (rows of a matrix).

    Batch t (t = 1, 2, …) is merged with weight 1 − β_t, β_t = min(decay, 1 − 1/t): the
    first 1/(1 − decay) batches are averaged exactly (the warm-up), later ones decay
    geometrically. The variance merge is that of a two-component mixture, so that no
    E[x²] − E[x]² is ever formed. Under torch.distributed the batch's moments are those of the
    union of every process's batch (two all-reduces), so every process holds the same state.
    """

    def __init__(self, size: int, decay: float):
        self.decay = decay
        self.batches = 0
        self.mean = torch.zeros(size, dtype=torch.float64)
        self.variance = torch.zeros(size, dtype=torch.float64)

    def update(self, rows: torch.Tensor, centre: bool = True) -> None:
        """Merge a batch (rows × size). ``centre=False`` tracks E[x²] in ``variance`` with a
        zero mean (for the mean square of e.g. δ)."""
        rows = rows.detach().reshape(-1, self.mean.numel())
        if _distributed():
            mean, variance = self._union_moments(rows.to(torch.float64), centre)
        elif centre:  # two passes in the rows' dtype (torch.var_mean over dim 0 is 10× slower)
            mean = rows.mean(dim=0)
            variance = ((rows - mean) ** 2).mean(dim=0)
        else:
            variance = torch.linalg.vector_norm(rows, dim=0, dtype=torch.float64) ** 2
            variance = variance / rows.shape[0]
            mean = torch.zeros_like(variance)
        mean, variance = mean.to("cpu", torch.float64), variance.to("cpu", torch.float64)
        self.batches += 1
        keep = min(self.decay, 1.0 - 1.0 / self.batches)
        shift = mean - self.mean
        self.mean = keep * self.mean + (1.0 - keep) * mean
        self.variance = (keep * self.variance + (1.0 - keep) * variance
                         + keep * (1.0 - keep) * shift**2)

    @staticmethod
    def _union_moments(rows: torch.Tensor, centre: bool):
        """Mean and variance of the rows of every process: the count and the sum, then the
        squares about the common mean (no E[x²] − E[x]²)."""
        count = torch.tensor([float(rows.shape[0])], dtype=torch.float64, device=rows.device)
        total = rows.sum(dim=0)
        dist.all_reduce(count)
        dist.all_reduce(total)
        mean = total / count if centre else torch.zeros_like(total)
        squares = ((rows - mean) ** 2).sum(dim=0)
        dist.all_reduce(squares)
        return mean, squares / count

    def state(self) -> dict:
        return {"batches": self.batches, "mean": self.mean.clone(),
                "variance": self.variance.clone()}

    def load(self, state: dict) -> None:
        if state["mean"].shape != self.mean.shape:
            raise ValueError(
                f"saved statistics have shape {tuple(state['mean'].shape)}, the layer "
                f"{tuple(self.mean.shape)}"
            )
        self.batches = int(state["batches"])
        self.mean = state["mean"].to(torch.float64).cpu().clone()
        self.variance = state["variance"].to(torch.float64).cpu().clone()


class _LayerState:
    """What the optimizer keeps per unit layer: input moments, the mean square of δ, the
    recorded outputs u of the last forward pass, and the mean-field constants if any."""

    def __init__(self, layer: UnitLayer, decay: float):
        self.layer = layer
        out_features, in_features = layer.linear.weight.shape
        self.shape = (out_features, in_features)
        self.inputs = RunningMoments(in_features, decay)
        self.errors = RunningMoments(out_features, decay)
        self.outputs: torch.Tensor | None = None
        self.mean_field_activity: float | None = None
        self.mean_field_factor: float | None = None
        #: (errors.batches, factors): the factors are recomputed only after new errors
        self.factors: tuple[int, np.ndarray] | None = None
        self.buffers: tuple[torch.Tensor, torch.Tensor] | None = None


class UnitwiseNaturalGradient(torch.optim.Optimizer):
    """Unit-wise natural gradient descent on the (Linear, φ) pairs of ``model``.

    - ``lr``; ``damping`` λ ≥ 0, in the units of the Fisher block: the update is
      (c_i A_i + λ·E[x*x*ᵀ])⁻¹ g_i.
    - ``inputs``, the input distribution of each layer's block: ``"standard"`` N(0, I) (the
      paper's assumption); ``"scale"`` N(0, A·I), A the running mean square of the layer's
      inputs; ``"moments"`` N(μ, diag(s²)), running per-input means and variances;
      ``"mean_field"`` N(0, A^{l−1}·I) from the mean field of a chain of ``ResidualBlock``s
      (the paper's Sec. 6 algorithm; ``input_activity`` is A^0).
    - ``fisher``, the back-propagated factor c_i: ``"sampled"`` from a backward pass with
      targets drawn from the model (``estimate_factors``); ``"empirical"`` from the backward
      pass of the training loss; ``"none"`` c_i = 1; ``"mean_field"`` σ_v² χ^L_{l+1} of the
      residual chain.
    - ``loss``: the model's output distribution for ``"sampled"``, ``"mse"`` (N(f, I)) or
      ``"cross_entropy"`` (softmax).
    - ``statistics_decay``: of the running statistics (warm-up: the first 1/(1 − decay)
      batches are averaged exactly); ``variance_floor``: an input variance is at least this
      fraction of the layer's mean square input (a constant input would give a singular
      block); ``factor_every``: ``estimate_factors`` runs its backward pass on every k-th call
      only.
    - ``layers``: explicit ``[(linear, activation), …]`` pairs instead of the ones found in the
      model; ``others``: ``"error"`` (a parameter in no pair is an error) or ``"sgd"`` (plain
      SGD with ``lr`` on those).
    """

    def __init__(self, model: nn.Module, lr: float = 0.1, damping: float = 1e-3,
                 inputs: str = "moments", fisher: str = "sampled", loss: str = "mse",
                 statistics_decay: float = 0.95, variance_floor: float = 1e-4,
                 factor_every: int = 1, layers=None, others: str = "error",
                 input_activity: float = 1.0):
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        lr = _check_nonnegative(lr, "lr")
        damping = _check_nonnegative(damping, "damping")
        self.inputs = _check_choice(inputs, "inputs", INPUT_MODES)
        self.fisher = _check_choice(fisher, "fisher", FISHER_MODES)
        self.loss = _check_choice(loss, "loss", LOSSES)
        self.others = _check_choice(others, "others", ("error", "sgd"))
        decay = _check_nonnegative(statistics_decay, "statistics_decay")
        if decay >= 1:
            raise ValueError(f"statistics_decay must be < 1, got {decay}")
        self.variance_floor = _check_nonnegative(variance_floor, "variance_floor")
        if not (isinstance(factor_every, int) and factor_every >= 1):
            raise ValueError(f"factor_every must be a positive integer, got {factor_every!r}")
        self.factor_every = factor_every

        unit_layers = find_layers(model) if layers is None else named_layers(model, layers)
        check_distinct(unit_layers)
        if not unit_layers:
            raise UnsupportedModelError("the model has no nn.Linear layer")
        self._layers = [_LayerState(layer, decay) for layer in unit_layers]
        groups = [{"params": [s.layer.linear.weight, s.layer.linear.bias], "layer": s.layer.name}
                  for s in self._layers]
        in_pairs = {id(p) for group in groups for p in group["params"]}
        rest = [(name, p) for name, p in model.named_parameters()
                if p.requires_grad and id(p) not in in_pairs]
        if rest and self.others == "error":
            names = ", ".join(name for name, _ in rest[:5]) + (" …" if len(rest) > 5 else "")
            raise UnsupportedModelError(
                f"parameters in no (Linear, activation) pair: {names}; pass others='sgd' to "
                "train them by plain SGD"
            )
        if rest:
            groups.append({"params": [p for _, p in rest], "layer": None})
        super().__init__(groups, {"lr": lr, "damping": damping})
        if "mean_field" in (self.inputs, self.fisher):
            self._set_mean_field(model, input_activity)
        self._factor_calls = 0
        self._hooks = [s.layer.linear.register_forward_hook(self._forward_hook(s))
                       for s in self._layers]

    # --- recording -------------------------------------------------------------------------

    def _forward_hook(self, state: _LayerState):
        def hook(module, args, output):
            if not (module.training and torch.is_grad_enabled()):
                return
            if self.inputs in ("scale", "moments"):
                state.inputs.update(args[0])
            if self.fisher == "sampled":
                state.outputs = output
            elif self.fisher == "empirical" and output.requires_grad:
                rows = output.shape[:-1].numel()
                # The loss is taken as a mean over the rows: rows·∂L/∂u is a sample's δ.
                output.register_hook(lambda grad: state.errors.update(grad * rows, centre=False))
        return hook

    def _set_mean_field(self, model: nn.Module, input_activity: float) -> None:
        owners = {}
        for module in model.modules():
            if isinstance(module, ResidualBlock):
                owners[id(module.linear)] = module
        blocks = [owners.get(id(s.layer.linear)) for s in self._layers]
        if any(block is None for block in blocks):
            missing = [s.layer.name for s, block in zip(self._layers, blocks, strict=True)
                       if block is None]
            raise UnsupportedModelError(
                f"inputs or fisher 'mean_field' needs every layer in a ResidualBlock; not: "
                f"{', '.join(missing)}"
            )
        activations = {s.layer.activation for s in self._layers}
        if len(activations) != 1:
            raise UnsupportedModelError("'mean_field' needs one activation for the whole chain")
        field = residual_mean_field(blocks, activations.pop(), input_activity)
        for s, activity, factor in zip(self._layers, field.input_activity, field.factor,
                                       strict=True):
            s.mean_field_activity, s.mean_field_factor = float(activity), float(factor)

    def estimate_factors(self, outputs: torch.Tensor) -> None:
        """With ``fisher="sampled"``: draw targets from the model's distribution at ``outputs``
        (N(f, I) for "mse", softmax(f) for "cross_entropy"), back-propagate the summed negative
        log-likelihood to every layer's pre-activations u (not to the parameters; the graph is
        kept for the training loss's backward) and merge the batch's E[δ²] into the running
        factors. Call it after the forward pass and before ``loss.backward()``. Does nothing
        for the other ``fisher`` modes, and on calls that ``factor_every`` skips."""
        if self.fisher != "sampled":
            return
        self._factor_calls += 1
        if (self._factor_calls - 1) % self.factor_every:
            return
        recorded = [s.outputs for s in self._layers]
        if any(u is None for u in recorded):
            raise RuntimeError("estimate_factors needs a forward pass of the model in training "
                               "mode with gradients enabled first")
        with torch.no_grad():
            if self.loss == "mse":
                targets = outputs + torch.randn_like(outputs)
            else:
                probabilities = torch.softmax(outputs.detach().reshape(-1, outputs.shape[-1]), -1)
                targets = torch.multinomial(probabilities, 1).squeeze(-1)
        if self.loss == "mse":
            sampled = 0.5 * ((outputs - targets) ** 2).sum()
        else:
            sampled = nn.functional.cross_entropy(
                outputs.reshape(-1, outputs.shape[-1]), targets, reduction="sum")
        errors = torch.autograd.grad(sampled, recorded, retain_graph=True, allow_unused=True)
        for s, delta in zip(self._layers, errors, strict=True):
            if delta is None:
                raise RuntimeError(f"{s.layer.name} does not reach the outputs given to "
                                   "estimate_factors")
            s.errors.update(delta, centre=False)
            s.outputs = None

    # --- the update --------------------------------------------------------------------------

    def _input_statistics(self, s: _LayerState):
        """(input_mean, input_variance) for the kernels: None, a scalar or per-input arrays."""
        if self.inputs == "standard":
            return None, None
        if self.inputs == "mean_field":
            return None, s.mean_field_activity
        if s.inputs.batches == 0:
            raise RuntimeError(f"{s.layer.name}: no input statistics yet; run a forward pass "
                               "in training mode before step()")
        mean, variance = s.inputs.mean.numpy(), s.inputs.variance.numpy()
        mean_square = float(np.mean(mean**2 + variance))
        floor = max(self.variance_floor * mean_square, np.finfo(np.float64).tiny)
        if self.inputs == "scale":
            return None, max(mean_square, floor)
        return mean, np.maximum(variance, floor)

    def _factors(self, s: _LayerState, statistics):
        """c_i of every unit (float64), or None where c_i = 1."""
        if self.fisher == "none":
            return None
        if self.fisher == "mean_field":
            return np.full(s.shape[0], s.mean_field_factor)
        if s.errors.batches == 0:
            hint = ("call estimate_factors(outputs) before loss.backward()"
                    if self.fisher == "sampled" else "run loss.backward() before step()")
            raise RuntimeError(f"{s.layer.name}: no back-propagated errors yet; {hint}")
        if s.factors is not None and s.factors[0] == s.errors.batches:
            return s.factors[1]  # no new errors since (factor_every > 1): kept, as K-FAC
            # implementations keep their inverses between updates
        r, b = _standardized_units(s.layer.linear, statistics)
        a00 = s.layer.kernels.fisher_blocks(r, b)[0]
        squares = s.errors.variance.numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            factors = np.where(a00 > 0, squares / a00, 0.0)
        largest = factors.max()
        if not np.isfinite(largest):
            raise FloatingPointError(f"{s.layer.name}: the back-propagated factor overflows")
        factors = (np.maximum(factors, FACTOR_FLOOR * largest) if largest > 0
                   else np.ones_like(a00))
        s.factors = (s.errors.batches, factors)
        return factors

    def _natural_gradient(self, s: _LayerState, damping: float):
        """(nat_W, nat_b) of one layer as tensors, or raise naming the layer and units."""
        linear = s.layer.linear
        weight, bias = linear.weight, linear.bias
        if tuple(weight.shape) != s.shape:
            raise ValueError(f"{s.layer.name}: the weight's shape changed from {s.shape} to "
                             f"{tuple(weight.shape)}")
        if weight.grad is None or bias.grad is None:
            return None
        grad_w, grad_b = weight.grad.detach(), bias.grad.detach()
        statistics = self._input_statistics(s)
        factors = self._factors(s, statistics)
        if factors is None:
            unit_damping = damping
        elif np.all(factors == factors[0]):
            unit_damping = damping / float(factors[0])  # one factor per layer (mean field)
        else:
            unit_damping = damping / factors
        if s.buffers is None or s.buffers[0].dtype != weight.dtype or (
                s.buffers[0].device != weight.device):
            s.buffers = (torch.empty_like(weight, memory_format=torch.contiguous_format),
                         torch.empty_like(bias))
        nat_w, nat_b = s.buffers  # reused: fresh pages cost a fault each step
        arguments = [_kernel_array(t) for t in (weight.detach(), bias.detach(),
                                                 grad_w.contiguous(), grad_b.contiguous())]
        out = (_kernel_array(nat_w), _kernel_array(nat_b))
        function = _layer_function(s.layer.kernels, weight)
        try:  # the kernel finds non-finite values (naming the units) and overflows itself
            function(*arguments, damping=unit_damping, out=out, input_mean=statistics[0],
                     input_variance=statistics[1])
        except (ValueError, FloatingPointError) as error:
            raise type(error)(f"{s.layer.name}: {error}; no parameter was changed") from error
        if factors is None:
            return nat_w, nat_b, None
        # The step applies nat/c_i; it must stay finite in the parameters' dtype.
        scale = torch.as_tensor(1.0 / factors, dtype=torch.float64, device=weight.device)
        limit = torch.finfo(weight.dtype).max
        low, high = torch.aminmax(nat_w)  # a bound on every row at once; row by row if it fails
        bound = max(-float(low), float(high), float(nat_b.abs().max())) * float(scale.max())
        if not bound < limit:
            largest = torch.maximum(nat_w.abs().amax(dim=1), nat_b.abs()).to(torch.float64)
            if not bool((largest * scale).max() < limit):
                raise FloatingPointError(f"{s.layer.name}: the update overflows "
                                         f"{weight.dtype}; no parameter was changed")
        return nat_w, nat_b, scale.to(weight.dtype)

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every unit by its natural gradient (and of the other parameters by
        SGD with ``others="sgd"``). All updates are computed before any parameter is changed:
        an error (a non-finite gradient, a changed shape, an overflow) names the layer and the
        units and leaves every parameter as it was."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        updates = []
        for s, group in zip(self._layers, self.param_groups, strict=False):
            damping = _check_nonnegative(group["damping"], f"{s.layer.name}: damping")
            lr = _check_nonnegative(group["lr"], f"{s.layer.name}: lr")
            nat = self._natural_gradient(s, damping)
            if nat is not None:
                updates.append((group["params"], nat, lr))
        for group in self.param_groups[len(self._layers):]:
            lr = _check_nonnegative(group["lr"], "lr")
            for p in group["params"]:
                if p.grad is not None:
                    if not torch.isfinite(p.grad).all():
                        raise ValueError("non-finite gradient in a parameter outside the unit "
                                         "layers; no parameter was changed")
                    updates.append(([p], (p.grad, None, None), lr))
        for params, (nat_w, nat_b, scale), lr in updates:
            if scale is None:
                for p, nat in zip(params, (nat_w, nat_b)[:len(params)], strict=True):
                    p.add_(nat, alpha=-lr)
            else:  # p −= lr·nat/c, one pass
                params[0].addcmul_(nat_w, scale[:, None], value=-lr)
                params[1].addcmul_(nat_b, scale, value=-lr)
        return loss

    # --- state --------------------------------------------------------------------------------

    def state_dict(self):
        """torch.optim's state dict plus the running statistics of every layer (float64)."""
        state = super().state_dict()
        state["unitwise"] = {
            "layers": [s.layer.name for s in self._layers],
            "inputs": [s.inputs.state() for s in self._layers],
            "errors": [s.errors.state() for s in self._layers],
            "factor_calls": self._factor_calls,
        }
        return state

    def load_state_dict(self, state_dict):
        state_dict = dict(state_dict)
        unitwise = state_dict.pop("unitwise", None)
        if unitwise is None:
            raise ValueError("not a UnitwiseNaturalGradient state dict (no running statistics)")
        names = [s.layer.name for s in self._layers]
        if list(unitwise["layers"]) != names:
            raise ValueError(f"the state dict's layers {unitwise['layers']} are not {names}")
        super().load_state_dict(state_dict)
        for s, inputs, errors in zip(self._layers, unitwise["inputs"], unitwise["errors"],
                                     strict=True):
            s.inputs.load(inputs)
            s.errors.load(errors)
            s.factors = None
        self._factor_calls = int(unitwise["factor_calls"])

    @property
    def unit_layers(self) -> list[UnitLayer]:
        """The (Linear, φ) pairs this optimizer updates, in order."""
        return [s.layer for s in self._layers]

    def remove_hooks(self) -> None:
        """Detach the forward hooks from the model (the optimizer then records nothing)."""
        for handle in self._hooks:
            handle.remove()
        self._hooks = []


def _standardized_units(linear: nn.Linear, statistics):
    """(r', b') of every unit for inputs N(μ, diag(s²)): r' = |s⊙W_i|, b' = μ·W_i + b_i, as
    float64 NumPy arrays (the sums in the parameters' dtype: they only set the factors c_i)."""
    mean, variance = statistics
    weight, bias = linear.weight.detach(), linear.bias.detach()
    like = {"dtype": weight.dtype, "device": weight.device}
    scaled = weight
    if variance is not None and np.ndim(variance):
        scaled = weight * torch.as_tensor(np.sqrt(variance), **like)
    r = torch.linalg.vector_norm(scaled, dim=1).to(torch.float64)
    if not bool(torch.isfinite(r).all()):  # |s⊙W_i| beyond the parameters' dtype
        r = torch.linalg.vector_norm(scaled.to(torch.float64), dim=1)
    if variance is not None and not np.ndim(variance):
        r = r * math.sqrt(variance)
    b = bias.to(torch.float64)
    if mean is not None:
        b = b + torch.mv(weight, torch.as_tensor(mean, **like)).to(torch.float64)
    return r.cpu().numpy(), b.cpu().numpy()


def _layer_function(kernels, weight: torch.Tensor):
    """The generated layer function for the parameters' device: the CUDA one for CUDA tensors."""
    return kernels.natural_gradient_cuda if weight.is_cuda else kernels.natural_gradient


def _kernel_array(tensor: torch.Tensor):
    """What a kernel takes: a NumPy view of a CPU tensor, the tensor itself on a GPU (it has
    ``__cuda_array_interface__``). Neither copies."""
    if tensor.is_cuda:
        return tensor
    if not tensor.is_contiguous():
        raise ValueError("the kernels need contiguous tensors")
    return tensor.numpy()
