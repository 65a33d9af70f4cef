"""The residual block of the paper's Sec. 6 and its mean field.

A block maps x ∈ Rⁿ to x ← α·x + V φ(W x + b): W (n × n) and b are trained, V is drawn once,
V_ij ~ N(0, σ_v²/n), and fixed (a buffer, not a parameter), so that it Gaussianizes the units'
outputs and the next block's input is close to N(0, A·I) (paper eq. 77). With α < 1 the activity
A stays bounded with depth (eq. 79). For a chain of blocks whose last output is the network's
output, ``mean_field`` gives the paper's activity A^{l−1} of each block's input and the
back-propagated factor of its units, σ_v² χ^L_{l+1}: the mean square of ∂x^L/∂φ(u_s) summed over
the outputs (the residual χ^l = α² + σ_v² σ_w² E[φ'(τ_l v)²], fisher_sym.meanfield).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from fisher_sym import meanfield
from fisher_sym.torch.layers import load_kernels


class ResidualBlock(nn.Module):
    """x ← α·x + V φ(W x + b) (paper eq. 77): W_ij ~ N(0, σ_w²/n) and b_i ~ N(0, σ_b²) trained,
    V_ij ~ N(0, σ_v²/n) fixed.

    ``activation``: a torch activation module, or the name of a generated module whose φ torch
    has (see ``TORCH_ACTIVATIONS``). ``generator``: a torch.Generator for the draws.
    """

    def __init__(self, n: int, activation, alpha: float, sigma_v: float, sigma_w: float = 1.0,
                 sigma_b: float = 0.0, generator: torch.Generator | None = None,
                 dtype: torch.dtype | None = None, device=None):
        super().__init__()
        if not (isinstance(n, int) and n >= 1):
            raise ValueError(f"n must be a positive integer, got {n!r}")
        for name, value in (("alpha", alpha), ("sigma_v", sigma_v), ("sigma_w", sigma_w),
                            ("sigma_b", sigma_b)):
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number ≥ 0, got {value!r}")
        self.alpha, self.sigma_v, self.sigma_w, self.sigma_b = (
            float(alpha), float(sigma_v), float(sigma_w), float(sigma_b))
        self.linear = nn.Linear(n, n, dtype=dtype, device=device)
        self.activation = activation if isinstance(activation, nn.Module) else torch_activation(
            activation)
        with torch.no_grad():
            kwargs = {"generator": generator}
            self.linear.weight.copy_(
                torch.randn(n, n, dtype=torch.float64, **kwargs) * (sigma_w / math.sqrt(n)))
            self.linear.bias.copy_(torch.randn(n, dtype=torch.float64, **kwargs) * sigma_b)
            mixing = torch.randn(n, n, dtype=torch.float64, **kwargs) * (sigma_v / math.sqrt(n))
        self.register_buffer("mixing", mixing.to(dtype=self.linear.weight.dtype, device=device))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.alpha * x + self.activation(self.linear(x)) @ self.mixing.T

    def extra_repr(self) -> str:
        return (f"alpha={self.alpha}, sigma_v={self.sigma_v}, sigma_w={self.sigma_w}, "
                f"sigma_b={self.sigma_b}")


#: Generated-module names with the torch module that computes the same φ.
TORCH_ACTIVATIONS = {
    "linear": nn.Identity, "relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "elu": nn.ELU,
    "relu6": nn.ReLU6, "hardtanh": nn.Hardtanh, "gelu": nn.GELU, "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid, "softplus": nn.Softplus, "silu": nn.SiLU,
}


def torch_activation(name: str) -> nn.Module:
    """The torch module of a built-in activation name (its default parameters)."""
    if name not in TORCH_ACTIVATIONS:
        raise ValueError(
            f"no torch module for activation {name!r}; pass a module (one of "
            f"{', '.join(sorted(TORCH_ACTIVATIONS))})"
        )
    return TORCH_ACTIVATIONS[name]()


@dataclass(frozen=True)
class ResidualMeanField:
    """Per block l = 1, …, L of a chain: ``input_activity`` A^{l−1} (the mean square of the
    block's input, the variance of each input under the paper's x ~ N(0, A·I)) and ``factor``
    σ_v² χ^L_{l+1} (the back-propagated factor of the block's units); ``field`` is the chain's
    ``fisher_sym.meanfield.MeanField``."""

    input_activity: np.ndarray
    factor: np.ndarray
    field: meanfield.MeanField


def mean_field(blocks, activation: str, input_activity: float = 1.0) -> ResidualMeanField:
    """The mean field of a chain of ResidualBlocks (in order, the last one's output being the
    network's output) at their initial σ_w, σ_b, σ_v, α, for φ = ``activation``."""
    blocks = list(blocks)
    if not blocks or not all(isinstance(block, ResidualBlock) for block in blocks):
        raise ValueError("mean_field needs a non-empty chain of ResidualBlocks")
    field = meanfield.residual_network(
        load_kernels(activation),
        [block.sigma_w for block in blocks], [block.sigma_b for block in blocks],
        [block.sigma_v for block in blocks], [block.alpha for block in blocks],
        len(blocks), input_activity,
    )
    depth = len(blocks)
    activity = np.concatenate(([field.input_activity], field.activity[:-1]))
    factor = np.array([blocks[k].sigma_v ** 2 * field.chi_product(k + 2) for k in range(depth)])
    return ResidualMeanField(activity, factor, field)
