"""Random networks of the paper (Amari, Karakida & Oizumi 2019, Secs. 2 and 6) in NumPy, float64.

A plain network computes, for l = 1, …, L,

    u^l = W^l x^{l−1} + b^l,      x^l = φ(u^l)                      (eqs. 1–2; the output x^L too)

and a residual one x^l = α x^{l−1} + V^l φ(u^l) (eq. 77, V fixed, only W and b trained), with
W^l_ij ~ N(0, σ_w²/n_{l−1}), b^l_i ~ N(0, σ_b²), V^l_ij ~ N(0, σ_v²/n) and x^0 ~ N(0, I).
The output is y = x^L + ε with ε ~ N(0, I), so the Fisher information of all (W, b) is

    G = E_x[Jᵀ J],      J = ∂x^L/∂θ                                   (eq. 23)

and the rows of J that belong to unit i of layer m are δ_i ⊗ x*^{m−1}: the back-propagated
vector δ_i = ∂x^L/∂u^m_i (length n_L) times the unit's input x* = (x^{m−1}, 1). Every
quantity of the study is a product of such factors, so nothing here forms J:

- ``backward`` gives ∂x^L/∂u^m for every unit (cost n_L·n² per layer and input: for n_L = 1);
- ``forward_tangents`` pushes a few chosen directions forward (cost n² per layer, direction and
  input: for sampled units of a wide output layer).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special

_SQRT_2 = np.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _relu(u):
    return np.maximum(u, 0.0), (u > 0).astype(np.float64)


def _tanh(u):
    t = np.tanh(u)
    return t, 1.0 - t * t


def _erf(u):
    return special.erf(u), (2.0 / np.sqrt(np.pi)) * np.exp(-u * u)


def _gelu(u):
    cdf = 0.5 * special.erfc(-u / _SQRT_2)
    return u * cdf, cdf + u * _INV_SQRT_2PI * np.exp(-0.5 * u * u)


def _linear(u):
    return u, np.ones_like(u)


#: φ and φ' for the activations of the study, as the generated modules define them
#: (erf is erf(u), gelu is u·Φ(u)).
ACTIVATIONS = {"relu": _relu, "tanh": _tanh, "erf": _erf, "gelu": _gelu, "linear": _linear}


@dataclass(frozen=True)
class Network:
    """A random network: ``weights[l]``, ``biases[l]`` (and ``mixers[l]`` = V^{l+1}) for layer
    l + 1; widths[0] is the input width. ``alpha`` is None for a plain network."""

    activation: str
    weights: tuple
    biases: tuple
    mixers: tuple | None = None
    alpha: float | None = None

    @property
    def depth(self) -> int:
        return len(self.weights)

    @property
    def widths(self) -> list[int]:
        return [self.weights[0].shape[1]] + [w.shape[0] for w in self.weights]

    @property
    def residual(self) -> bool:
        return self.alpha is not None

    @property
    def output_width(self) -> int:
        return self.widths[-1]

    @property
    def parameter_count(self) -> int:
        return sum(w.size + b.size for w, b in zip(self.weights, self.biases, strict=True))


def random_network(
    activation: str,
    width: int,
    depth: int,
    output_width: int,
    sigma_w: float,
    sigma_b: float,
    rng: np.random.Generator,
    residual: tuple[float, float] | None = None,
) -> Network:
    """Draw a network of ``depth`` layers of ``width`` units (the last of ``output_width``).
    ``residual`` = (σ_v, α) makes it residual (then the output width must equal the width)."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}")
    widths = [width] * depth + [output_width]
    if residual is not None and output_width != width:
        raise ValueError("a residual network keeps its width: output_width must equal width")
    weights, biases, mixers = [], [], []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        weights.append(rng.normal(0.0, sigma_w / np.sqrt(fan_in), size=(fan_out, fan_in)))
        biases.append(rng.normal(0.0, sigma_b, size=fan_out))
        if residual is not None:
            mixers.append(rng.normal(0.0, residual[0] / np.sqrt(fan_out), size=(fan_out, fan_out)))
    if residual is None:
        return Network(activation, tuple(weights), tuple(biases))
    return Network(activation, tuple(weights), tuple(biases), tuple(mixers), float(residual[1]))


@dataclass
class Forward:
    """One batch through the network: ``inputs[l]`` = x^l (l = 0 … L − 1, the inputs of layers
    1 … L), ``slopes[l]`` = φ'(u^{l+1}), ``output`` = x^L; arrays of shape (batch, width)."""

    inputs: list
    slopes: list
    output: np.ndarray


def forward(net: Network, x0: np.ndarray) -> Forward:
    phi = ACTIVATIONS[net.activation]
    inputs, slopes, x = [], [], x0
    for layer in range(net.depth):
        inputs.append(x)
        value, slope = phi(x @ net.weights[layer].T + net.biases[layer])
        slopes.append(slope)
        x = value if not net.residual else net.alpha * x + value @ net.mixers[layer].T
    return Forward(inputs, slopes, x)


def backward(net: Network, fwd: Forward) -> list:
    """∂x^L/∂u^l for every layer: a list of arrays of shape (batch, n_L, n_l)."""
    batch, out = fwd.output.shape
    grad_x = np.broadcast_to(np.eye(out), (batch, out, out))  # ∂x^L/∂x^L
    deltas = [None] * net.depth
    for layer in reversed(range(net.depth)):
        if net.residual:
            delta = (grad_x @ net.mixers[layer]) * fwd.slopes[layer][:, None, :]
            grad_x = net.alpha * grad_x + delta @ net.weights[layer]
        else:
            delta = grad_x * fwd.slopes[layer][:, None, :]
            grad_x = delta @ net.weights[layer]
        deltas[layer] = delta
    return deltas


def forward_tangents(net: Network, fwd: Forward, layer: int, start: np.ndarray) -> np.ndarray:
    """Push directions d x^{layer} forward to the output: ``start`` has shape (k, n) (the same
    k directions for every input; layer is 1-based, 1 … L − 1); returns ∂x^L along them,
    shape (batch, k, n_L)."""
    batch, k = fwd.output.shape[0], start.shape[0]
    tangent = np.ascontiguousarray(np.broadcast_to(start, (batch,) + start.shape))
    for index in range(layer, net.depth):  # layer index+1 in 1-based numbering
        # one (batch·k) × n matrix product per layer: BLAS, not a stack of small products
        pre = (tangent.reshape(batch * k, -1) @ net.weights[index].T).reshape(batch, k, -1)
        inner = pre * fwd.slopes[index][:, None, :]
        if net.residual:
            mixed = (inner.reshape(batch * k, -1) @ net.mixers[index].T).reshape(batch, k, -1)
            tangent = net.alpha * tangent + mixed
        else:
            tangent = inner
    return tangent


def unit_deltas(net: Network, fwd: Forward, layer: int, units: np.ndarray) -> np.ndarray:
    """δ_i = ∂x^L/∂u^{layer}_i for the chosen units by forward tangents: (batch, k, n_L)."""
    slopes = fwd.slopes[layer - 1][:, units]
    if layer == net.depth:
        if net.residual:
            direct = np.broadcast_to(
                net.mixers[-1][:, units].T, (slopes.shape[0], units.size, net.output_width)
            )
        else:
            direct = np.broadcast_to(
                np.eye(net.output_width)[units], (slopes.shape[0], units.size, net.output_width)
            )
        return direct * slopes[:, :, None]
    if net.residual:
        start = net.mixers[layer - 1][:, units].T
    else:
        start = np.eye(net.widths[layer])[units]
    return forward_tangents(net, fwd, layer, start) * slopes[:, :, None]


def input_jacobian(net: Network, fwd: Forward, layer: int, units: np.ndarray) -> np.ndarray:
    """Columns of B^L_{m+1} = ∂x^L/∂x^m (m = layer, 1 … L − 1) for the chosen coordinates of
    x^m: shape (batch, k, n_L). Its Gram matrix over k is the domino lemma's Σ B B (eq. 37)."""
    return forward_tangents(net, fwd, layer, np.eye(net.widths[layer])[units])


def linear_fisher(net: Network) -> np.ndarray:
    """The exact Fisher information of a plain *linear* network for x^0 ~ N(0, I):
    δ^m = ∂x^L/∂u^m does not depend on x, and x^{m−1} = M_m x^0 + c_m, so
    G[(m,i,j),(l,k,h)] = (δ^m_i · δ^l_k) E[x*^{m−1}_j x*^{l−1}_h] with
    E[x* x*ᵀ] = [[M Mᵀ' + c c'ᵀ, c], [c'ᵀ, 1]]. Parameters ordered layer by layer, unit by
    unit, (w_1 … w_n, b) within a unit."""
    if net.activation != "linear" or net.residual:
        raise ValueError("linear_fisher is exact for plain linear networks only")
    maps, offsets = [np.eye(net.widths[0])], [np.zeros(net.widths[0])]
    for w, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        maps.append(w @ maps[-1])
        offsets.append(w @ offsets[-1] + b)
    out = net.output_width
    deltas = [None] * net.depth
    back = np.eye(out)
    for layer in reversed(range(net.depth)):
        deltas[layer] = back
        back = back @ net.weights[layer]
    factors = []  # per layer: (δ: n_L × n_l, M*: (n_{l-1}+1) × n_0, c*: n_{l-1}+1)
    for layer in range(net.depth):
        m_star = np.vstack([maps[layer], np.zeros(net.widths[0])])
        c_star = np.append(offsets[layer], 1.0)
        factors.append((deltas[layer], m_star, c_star))
    blocks = []
    for d1, m1, c1 in factors:
        row = []
        for d2, m2, c2 in factors:
            moment = m1 @ m2.T + np.outer(c1, c2)
            row.append(np.kron(d1.T @ d2, moment))
        blocks.append(row)
    return np.block(blocks)


def jacobian(net: Network, fwd: Forward, deltas: list) -> np.ndarray:
    """The full per-input Jacobian J (batch, n_L, P) in the parameter order of linear_fisher."""
    parts = []
    for layer in range(net.depth):
        x_star = np.concatenate([fwd.inputs[layer], np.ones((fwd.inputs[layer].shape[0], 1))], 1)
        part = deltas[layer][:, :, :, None] * x_star[:, None, None, :]
        parts.append(part.reshape(part.shape[0], part.shape[1], -1))
    return np.concatenate(parts, axis=2)
