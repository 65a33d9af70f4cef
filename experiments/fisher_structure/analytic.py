"""The analytic unit block the study compares with the exact Fisher, built from what fisher_sym
generates.

A unit of layer m with weights w and bias b, input x ~ N(μ, diag s²), in a network whose
back-propagated factor is c (c = χ^L_{m+1}·n_L/n for a plain network, σ_v² χ̄^L_{m+1} for a
residual one; ``mean_field_factor``), has the block

    c · Tᵀ G_std(r', b') T,    T = [[diag s, 0], [μᵀ, 1]],  r' = |s ⊙ w|,  b' = μ·w + b,

with G_std = A00 I + (Ann − A00) ŵŵᵀ + A0n (e0ŵᵀ + ŵe0ᵀ) the module's ``fisher_blocks`` at
(r', b') (docs/input_statistics.md). μ = 0, s = 1 is the paper's N(0, I) block.
"""

from __future__ import annotations

import numpy as np

from fisher_sym import meanfield


def standard_block(module, r: float, b: float, direction: np.ndarray) -> np.ndarray:
    """G_std at (r, b) as a dense (n+1) × (n+1) matrix; ``direction`` is w/|w| (length n)."""
    a00, a0n, ann = (float(v) for v in module.fisher_blocks(r, b))
    n = direction.size
    w_hat = np.append(direction, 0.0)
    e0 = np.zeros(n + 1)
    e0[-1] = 1.0
    return (
        a00 * np.eye(n + 1)
        + (ann - a00) * np.outer(w_hat, w_hat)
        + a0n * (np.outer(e0, w_hat) + np.outer(w_hat, e0))
    )


def unit_block(
    module,
    w: np.ndarray,
    b: float,
    mean: np.ndarray | None = None,
    variance: np.ndarray | None = None,
) -> np.ndarray:
    """E[φ'(w·x + b)² x* x*ᵀ] for x ~ N(mean, diag variance) (N(0, I) when both are None)."""
    n = w.size
    mean = np.zeros(n) if mean is None else mean
    scale = np.ones(n) if variance is None else np.sqrt(variance)
    w_std = scale * w
    r = float(np.linalg.norm(w_std))
    b_std = float(mean @ w + b)
    block = standard_block(module, r, b_std, w_std / r)
    transform = np.zeros((n + 1, n + 1))
    transform[np.arange(n), np.arange(n)] = scale
    transform[n, :n] = mean
    transform[n, n] = 1.0
    return transform.T @ block @ transform


def mean_field_factor(
    field: meanfield.MeanField,
    layer: int,
    output_width: int,
    width: int,
    sigma_v: float | None = None,
) -> float:
    """The back-propagated factor Σ_o δ_o² / φ'(u)² that the domino lemma predicts for a unit of
    ``layer`` (1-based): χ^L_{layer+1}, times n_L/n for a narrow output (the last layer's
    weights have variance σ_w²/n but there are only n_L output units: eq. 39 with the weight
    variance of eq. 16 corrected, docs/errata.md), times σ_v² for a residual unit (its
    output enters through a column of V)."""
    depth = field.depth
    factor = field.chi_product(layer + 1, depth)
    if layer < depth and output_width != width:
        factor *= output_width / width
    if sigma_v is not None:
        factor *= sigma_v**2
    return factor
