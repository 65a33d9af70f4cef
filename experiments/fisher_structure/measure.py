"""Measurements on one random network: sampled blocks of its Fisher information, the domino
lemma, unit blocks against the analytic ones, and (small widths) natural gradients.

The Fisher G = E_x[Jᵀ J] is estimated from inputs drawn in batches; the batches alternate
between two halves, and half the difference of the two halves' estimates has the variance of
the estimator's error: its size is the noise floor that every structural number is shown
beside (and, squared, subtracted from the squared structural norms, which makes them
unbiased).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import analytic
from .network import Forward, Network, backward, forward, input_jacobian, jacobian, unit_deltas


@dataclass(frozen=True)
class Sampling:
    """How much of G is measured: ``samples`` inputs (in batches of ``batch``, an even number
    of batches), ``units`` sampled units per layer, of which ``full_units`` get their whole
    (n+1)² diagonal block, and ``coordinates`` input coordinates (plus the bias) per sampled
    unit for the sampled entries of every block between sampled units."""

    samples: int = 2048
    batch: int = 256
    units: int = 8
    full_units: int = 2
    coordinates: int = 32


def _x_star(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x, np.ones((x.shape[0], 1))], axis=1)


class _Accumulator:
    """Sums over the inputs of one half."""

    def __init__(self, units_total, coords, full_dims):
        self.sub = np.zeros((units_total, coords, units_total, coords))
        self.full = [np.zeros((d, d)) for d in full_dims]
        self.count = 0


def measure_structure(
    net: Network,
    batches,
    module,
    field,
    sampling: Sampling,
    rng: np.random.Generator,
    sigma_v: float | None = None,
    keep_entries: bool = False,
) -> dict:
    """All sampled-block measurements of one network. ``batches`` yields input arrays x^0 of
    shape (batch, n_0); consecutive batches go to alternate halves. ``keep_entries`` adds
    "entries": (sampled G, units per layer, coordinates per layer) for checks."""
    depth, widths = net.depth, net.widths
    out = net.output_width
    units = [
        np.sort(rng.choice(widths[m], min(sampling.units, widths[m]), replace=False))
        for m in range(1, depth + 1)
    ]
    coords = [
        np.sort(rng.choice(widths[m - 1], min(sampling.coordinates, widths[m - 1]), replace=False))
        for m in range(1, depth + 1)
    ]
    q = min(len(c) for c in coords) + 1
    coords = [c[: q - 1] for c in coords]
    layer_of = np.concatenate([np.full(len(u), m) for m, u in enumerate(units, start=1)])
    full = [(m, i) for m, u in enumerate(units, start=1) for i in u[: sampling.full_units]]
    halves = [
        _Accumulator(len(layer_of), q, [widths[m - 1] + 1 for m, _ in full]) for _ in range(2)
    ]
    moments = [np.zeros((4, widths[m - 1])) for m in range(1, depth + 1)]
    domino = {m: np.zeros(5) for m in range(1, depth)}  # Σ diag err, Σ diag err², n, Σ off², n
    # x-space columns ∂x^L/∂x^m_i: χ^L_{m+1} (χ̄ for a residual net), no column of V enters
    domino_factor = {m: analytic.mean_field_factor(field, m, out, widths[m]) for m in domino}

    for index, x0 in enumerate(batches):
        acc = halves[index % 2]
        fwd = forward(net, x0)
        deltas, inputs_z = [], []
        for m in range(1, depth + 1):
            if m < depth:
                cols = input_jacobian(net, fwd, m, units[m - 1])
                gram = cols @ cols.transpose(0, 2, 1) / domino_factor[m]
                diag = np.diagonal(gram, axis1=1, axis2=2) - 1.0
                off = gram[:, ~np.eye(len(units[m - 1]), dtype=bool)]
                domino[m] += [diag.sum(), (diag**2).sum(), diag.size, (off**2).sum(), off.size]
                if net.residual:
                    delta = unit_deltas(net, fwd, m, units[m - 1])
                else:
                    delta = cols * fwd.slopes[m - 1][:, units[m - 1]][:, :, None]
            else:
                delta = unit_deltas(net, fwd, m, units[m - 1])
            deltas.append(delta)
            x_star = _x_star(fwd.inputs[m - 1])
            inputs_z.append(x_star[:, np.append(coords[m - 1], widths[m - 1])])
            x = fwd.inputs[m - 1]
            moments[m - 1] += [x.sum(0), (x**2).sum(0), (x**3).sum(0), (x**4).sum(0)]
        delta = np.concatenate(deltas, axis=1)  # (B, U, n_L)
        z = np.concatenate(
            [
                np.repeat(zz[:, None, :], len(u), axis=1)
                for zz, u in zip(inputs_z, units, strict=True)
            ],
            axis=1,
        )
        products = delta @ delta.transpose(0, 2, 1)  # (B, U, U): δ_i · δ_k
        for i in range(products.shape[1]):
            weighted = products[:, i, :, None] * z  # (B, U, q)
            acc.sub[i] += np.einsum("ba,bkc->akc", z[:, i, :], weighted, optimize=True)
        for f, (m, unit) in enumerate(full):
            position = int(np.searchsorted(units[m - 1], unit))
            offset = sum(len(u) for u in units[: m - 1])
            weight = np.sum(delta[:, offset + position, :] ** 2, axis=1)
            x_star = _x_star(fwd.inputs[m - 1])
            acc.full[f] += (x_star * weight[:, None]).T @ x_star
        acc.count += x0.shape[0]

    count = halves[0].count + halves[1].count
    if halves[0].count != halves[1].count:
        raise ValueError("the two halves must hold the same number of inputs")
    g_sub = (halves[0].sub + halves[1].sub) / count
    noise_sub = (halves[0].sub - halves[1].sub) / count
    result = {
        "samples": count,
        "blocks": _block_statistics(g_sub, noise_sub, layer_of, widths, q),
        "domino": _domino_statistics(domino),
    }
    if keep_entries:
        result["entries"] = (g_sub, units, coords)
    stats = [_input_statistics(mom, count) for mom in moments]
    result["inputs"] = [
        {k: v for k, v in s.items() if k not in ("mean", "variance")} for s in stats
    ]
    result["unit_blocks"] = []
    for f, (m, unit) in enumerate(full):
        g = (halves[0].full[f] + halves[1].full[f]) / count
        noise = (halves[0].full[f] - halves[1].full[f]) / count
        if not np.any(g):  # a dead unit: its block is 0 for every input
            result["unit_blocks"].append({"layer": m, "dead": True})
            continue
        factor = analytic.mean_field_factor(field, m, out, widths[m], sigma_v)
        w, b = net.weights[m - 1][unit], float(net.biases[m - 1][unit])
        paper = factor * analytic.unit_block(module, w, b)
        with_stats = factor * analytic.unit_block(
            module, w, b, stats[m - 1]["mean"], stats[m - 1]["variance"]
        )
        entry = {
            "layer": m,
            "noise_frobenius": _norm(noise) / _norm(g),
            "noise_max": np.abs(noise).max() / np.abs(g).max(),
        }
        for name, model in (("standard", paper), ("statistics", with_stats)):
            entry[name] = _block_errors(g, noise, model)
        result["unit_blocks"].append(entry)
    return result


def _norm(a):
    return float(np.sqrt(np.sum(a * a)))


def _debiased(sq_signal, sq_noise):
    return float(np.sqrt(max(sq_signal - sq_noise, 0.0)))


def _block_errors(g, noise, model) -> dict:
    """Relative errors of an analytic block against the measured one: Frobenius (noise
    subtracted in square), max-norm, the best scale and the error left after it."""
    scale = np.sum(g * model) / np.sum(model * model)
    g_norm_sq = np.sum(g * g)
    noise_sq = np.sum(noise * noise)
    return {
        "frobenius": _debiased(np.sum((g - model) ** 2), noise_sq) / np.sqrt(g_norm_sq),
        "max": float(np.abs(g - model).max() / np.abs(g).max()),
        "scale": float(scale),
        "shape": _debiased(np.sum((g - scale * model) ** 2), noise_sq) / np.sqrt(g_norm_sq),
    }


def _block_statistics(g, noise, layer_of, widths, q) -> dict:
    """Off-diagonal blocks between sampled units. Each entry between units i and k is divided
    by √(d_i d_k), d_i the mean diagonal entry of unit i's block over the sampled coordinates
    (G in per-unit normalised coordinates: with n_L = 1 the output unit's block is O(1) and
    the hidden units' O(1/n), so raw sizes compare layers, not structure). The Frobenius
    share is extrapolated from the sampled entries to the whole of G by their true counts
    (weight-weight, weight-bias, bias-bias), raw and normalised."""
    units = len(layer_of)
    unit_scale = np.array([np.mean([g[i, a, i, a] for a in range(q)]) for i in range(units)])
    # a unit whose δ vanishes for every input (a dead ReLU unit, or a whole ReLU network
    # behind a dead output unit when n_L = 1) has a zero block: it is left out and counted
    alive = unit_scale > 0
    same_unit = np.eye(units, dtype=bool) & alive[:, None]
    same_layer = layer_of[:, None] == layer_of[None, :]
    both = alive[:, None] & alive[None, :]
    kinds = {
        "within": same_layer & ~np.eye(units, dtype=bool) & both,
        "between": ~same_layer & both,
        "diagonal": same_unit,
    }
    result = {"diagonal_mean": float(unit_scale.mean()), "dead_units": int((~alive).sum())}
    if not all(mask.any() for mask in kinds.values()):
        nan = float("nan")
        for kind in ("within", "between"):
            result[kind] = dict.fromkeys(("max", "noise_max", "rms", "raw_rms", "noise_rms"), nan)
        for key in (
            "frobenius_share",
            "frobenius_share_within",
            "frobenius_share_raw",
            "frobenius_share_within_raw",
        ):
            result[key] = nan
        return result
    bias = np.zeros(q, dtype=bool)
    bias[-1] = True
    entry_kinds = {
        "ww": ~bias[:, None] & ~bias[None, :],
        "wb": bias[:, None] ^ bias[None, :],
        "bb": bias[:, None] & bias[None, :],
    }
    squared = {"raw": {}, "normalised": {}}
    for kind, mask in kinds.items():
        pairs = np.argwhere(mask)
        if pairs.size == 0:
            squared["raw"][kind] = squared["normalised"][kind] = 0.0
            continue
        norm = np.sqrt(unit_scale[pairs[:, 0]] * unit_scale[pairs[:, 1]])[:, None, None]
        raw_values = np.stack([g[i, :, k, :] for i, k in pairs])
        raw_noises = np.stack([noise[i, :, k, :] for i, k in pairs])
        values, noises = raw_values / norm, raw_noises / norm
        if kind != "diagonal":
            result[kind] = {
                "max": float(np.abs(values).max()),
                "noise_max": float(np.abs(noises).max()),
                "rms": _debiased(np.mean(values**2), np.mean(noises**2)),
                "raw_rms": float(np.sqrt(np.mean(values**2))),
                "noise_rms": float(np.sqrt(np.mean(noises**2))),
            }
        for label, (vals, nois) in (
            ("raw", (raw_values, raw_noises)),
            ("normalised", (values, noises)),
        ):
            total = 0.0
            for ek, emask in entry_kinds.items():
                mean_sq = max(np.mean(vals[:, emask] ** 2) - np.mean(nois[:, emask] ** 2), 0.0)
                total += mean_sq * _true_count(kind, ek, layer_of, widths)
            squared[label][kind] = total
    for label, sq in squared.items():
        suffix = "" if label == "normalised" else "_raw"
        off = sq["within"] + sq["between"]
        result["frobenius_share" + suffix] = float(np.sqrt(off / (off + sq["diagonal"])))
        result["frobenius_share_within" + suffix] = float(
            np.sqrt(sq["within"] / (sq["within"] + sq["diagonal"]))
        )
    return result


def _true_count(kind, entry_kind, layer_of, widths) -> float:
    """How many entries of this kind the whole G has (the sampled ones stand for them)."""
    depth = len(widths) - 1

    def per_pair(m, ll):  # entries of one block between a unit of layer m and one of layer ll
        fan_m, fan_l = widths[m - 1], widths[ll - 1]
        return {"ww": fan_m * fan_l, "wb": fan_m + fan_l, "bb": 1}[entry_kind]

    total = 0.0
    for m in range(1, depth + 1):
        for ll in range(1, depth + 1):
            if kind == "diagonal" and m == ll:
                total += widths[m] * per_pair(m, ll)
            elif kind == "within" and m == ll:
                total += widths[m] * (widths[m] - 1) * per_pair(m, ll)
            elif kind == "between" and m != ll:
                total += widths[m] * widths[ll] * per_pair(m, ll)
    return total


def _domino_statistics(domino: dict) -> list:
    rows = []
    for m, (s, s2, n, off2, n_off) in domino.items():
        if n == 0:
            continue
        mean = s / n
        rows.append(
            {
                "layer": m,
                "diagonal_bias": float(mean),
                "diagonal_rms": float(np.sqrt(s2 / n)),
                "off_rms": float(np.sqrt(off2 / n_off)) if n_off else float("nan"),
            }
        )
    return rows


def _input_statistics(moments, count) -> dict:
    mean = moments[0] / count
    variance = np.maximum(moments[1] / count - mean**2, 1e-300)
    third = moments[2] / count - 3 * mean * moments[1] / count + 2 * mean**3
    fourth = (
        moments[3] / count
        - 4 * mean * moments[2] / count
        + 6 * mean**2 * moments[1] / count
        - 3 * mean**4
    )
    return {
        "mean": mean,
        "variance": variance,
        "mean_over_std_rms": float(np.sqrt(np.mean(mean**2 / variance))),
        "skewness_rms": float(np.sqrt(np.mean((third / variance**1.5) ** 2))),
        "excess_kurtosis_mean": float(np.mean(fourth / variance**2 - 3.0)),
        "variance_mean": float(variance.mean()),
    }


# --- natural gradients (small widths: the whole G) ---------------------------------------------


def full_fisher(net: Network, batches) -> tuple[np.ndarray, np.ndarray]:
    """The whole estimated G from alternate halves: (G, half the difference of the halves)."""
    sums = [None, None]
    counts = [0, 0]
    for index, x0 in enumerate(batches):
        fwd = forward(net, x0)
        jac = jacobian(net, fwd, backward(net, fwd))
        rows = jac.reshape(-1, jac.shape[2])
        part = rows.T @ rows
        h = index % 2
        sums[h] = part if sums[h] is None else sums[h] + part
        counts[h] += x0.shape[0]
    if counts[0] != counts[1]:
        raise ValueError("the two halves must hold the same number of inputs")
    total = counts[0] + counts[1]
    return (sums[0] + sums[1]) / total, (sums[0] - sums[1]) / total


def unit_slices(net: Network) -> list:
    """(layer, unit, slice of the parameter vector) in the order of ``jacobian``."""
    slices, start = [], 0
    for m, w in enumerate(net.weights, start=1):
        size = w.shape[1] + 1
        for unit in range(w.shape[0]):
            slices.append((m, unit, slice(start, start + size)))
            start += size
    return slices


def loss_gradient(net: Network, x0: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Gradient of the mean of ½|y − x^L|² over a batch, in the parameter order of G."""
    fwd = forward(net, x0)
    jac = jacobian(net, fwd, backward(net, fwd))
    return np.einsum("bop,bo->p", jac, fwd.output - targets) / x0.shape[0]


def natural_gradients(
    net, module, field, g, noise, gradient, damping, statistics, sigma_v=None
) -> dict:
    """Cosines with the exact damped natural gradient (G + λI)⁻¹ g, λ = damping·tr G / P."""
    size = g.shape[0]
    lam = damping * np.trace(g) / size
    if lam == 0:  # every unit dead (a ReLU network behind a dead output unit): G = 0
        return {
            "damping": damping,
            **dict.fromkeys(
                (
                    "block_diagonal",
                    "analytic_statistics",
                    "analytic_standard",
                    "gradient",
                    "halves",
                ),
                float("nan"),
            ),
        }
    exact = np.linalg.solve(g + lam * np.eye(size), gradient)
    half_a = np.linalg.solve(g + noise + lam * np.eye(size), gradient)
    half_b = np.linalg.solve(g - noise + lam * np.eye(size), gradient)
    block_exact = np.empty(size)
    block_stats = np.empty(size)
    block_standard = np.empty(size)
    out = net.output_width
    for m, unit, sl in unit_slices(net):
        eye = lam * np.eye(sl.stop - sl.start)
        block_exact[sl] = np.linalg.solve(g[sl, sl] + eye, gradient[sl])
        factor = analytic.mean_field_factor(field, m, out, net.widths[m], sigma_v)
        w, b = net.weights[m - 1][unit], float(net.biases[m - 1][unit])
        mean, variance = statistics[m - 1]
        model = factor * analytic.unit_block(module, w, b, mean, variance)
        block_stats[sl] = np.linalg.solve(model + eye, gradient[sl])
        block_standard[sl] = np.linalg.solve(
            factor * analytic.unit_block(module, w, b) + eye, gradient[sl]
        )

    def cos(a, b):
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    return {
        "damping": damping,
        "block_diagonal": cos(exact, block_exact),
        "analytic_statistics": cos(exact, block_stats),
        "analytic_standard": cos(exact, block_standard),
        "gradient": cos(exact, gradient),
        "halves": cos(half_a, half_b),
    }


def layer_input_statistics(net: Network, batches) -> list:
    """(mean, variance) of each layer's input over the batches."""
    sums = None
    count = 0
    for x0 in batches:
        fwd = forward(net, x0)
        parts = [(x.sum(0), (x**2).sum(0)) for x in fwd.inputs]
        sums = (
            parts
            if sums is None
            else [(a + c, b + d) for (a, b), (c, d) in zip(sums, parts, strict=True)]
        )
        count += x0.shape[0]
    return [(s / count, np.maximum(s2 / count - (s / count) ** 2, 1e-300)) for s, s2 in sums]


__all__ = ["Sampling", "measure_structure", "full_fisher", "natural_gradients", "Forward"]
