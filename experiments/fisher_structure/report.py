"""Fits, figures and the docs page, rendered from the JSON results alone."""

from __future__ import annotations

import math
from collections import defaultdict

import numpy as np

FIT_BOOTSTRAP = 2000


def group(records, keys=("architecture", "activation", "phase", "depth", "output")):
    groups = defaultdict(list)
    for r in records:
        groups[tuple(r[k] for k in keys)].append(r)
    return dict(sorted(groups.items(), key=lambda kv: tuple(str(x) for x in kv[0])))


def _slopes(x, y):
    """Least-squares slopes of the rows of y on the rows of x."""
    xc = x - x.mean(axis=1, keepdims=True)
    return np.sum(xc * (y - y.mean(axis=1, keepdims=True)), axis=1) / np.sum(xc * xc, axis=1)


def fit_exponent(widths, values, seed=0) -> dict:
    """Least squares of log value on log n over every (width, network); 95% interval from a
    bootstrap that redraws the networks at each width with replacement."""
    widths, values = np.asarray(widths, float), np.asarray(values, float)
    keep = values > 0
    widths, values = widths[keep], values[keep]
    if np.unique(widths).size < 2:
        return {"slope": math.nan, "low": math.nan, "high": math.nan}
    x, y = np.log(widths), np.log(values)
    slope = _slopes(x[None, :], y[None, :])[0]
    rng = np.random.default_rng(seed)
    by_width = [np.flatnonzero(widths == w) for w in np.unique(widths)]
    picks = np.concatenate(
        [idx[rng.integers(0, idx.size, size=(FIT_BOOTSTRAP, idx.size))] for idx in by_width], axis=1
    )
    low, high = np.percentile(_slopes(x[picks], y[picks]), [2.5, 97.5])
    return {"slope": float(slope), "low": float(low), "high": float(high)}


# --- what is read from a record ----------------------------------------------------------------


def _mean(values):
    values = [v for v in values if v == v]
    return float(np.mean(values)) if values else math.nan


METRICS = {
    "within max": lambda r: r["blocks"]["within"]["max"],
    "within max noise": lambda r: r["blocks"]["within"]["noise_max"],
    "within rms": lambda r: r["blocks"]["within"]["rms"],
    "within rms noise": lambda r: r["blocks"]["within"]["noise_rms"],
    "between max": lambda r: r["blocks"]["between"]["max"],
    "between max noise": lambda r: r["blocks"]["between"]["noise_max"],
    "between rms": lambda r: r["blocks"]["between"]["rms"],
    "between rms noise": lambda r: r["blocks"]["between"]["noise_rms"],
    "frobenius share": lambda r: r["blocks"]["frobenius_share"],
    "domino diagonal": lambda r: _mean([d["diagonal_rms"] for d in r["domino"]]),
    "domino bias": lambda r: _mean([d["diagonal_bias"] for d in r["domino"]]),
    "domino off": lambda r: _mean([d["off_rms"] for d in r["domino"]]),
}


def _unit_metric(kind, model, norm):
    def read(r):
        rows = [
            u
            for u in r["unit_blocks"]
            if (u["layer"] == 1) == (kind == "first") and not u.get("dead")
        ]
        if model == "noise":
            return _mean([u["noise_max" if norm == "max" else "noise_frobenius"] for u in rows])
        return _mean([u[model][norm] for u in rows])

    return read


for _kind in ("first", "hidden"):
    for _model in ("standard", "statistics", "noise"):
        for _norm in ("max", "frobenius"):
            METRICS[f"unit {_kind} {_model} {_norm}"] = _unit_metric(_kind, _model, _norm)
    METRICS[f"unit {_kind} statistics shape"] = _unit_metric(_kind, "statistics", "shape")
    METRICS[f"unit {_kind} statistics scale"] = _unit_metric(_kind, "statistics", "scale")

for _layer in (2, 3):
    METRICS[f"input {_layer} mean/std"] = lambda r, i=_layer - 1: (
        r["inputs"][i]["mean_over_std_rms"] if i < len(r["inputs"]) else math.nan
    )
    METRICS[f"input {_layer} kurtosis"] = lambda r, i=_layer - 1: (
        r["inputs"][i]["excess_kurtosis_mean"] if i < len(r["inputs"]) else math.nan
    )


def series(records, metric):
    """(widths, per-network values, per-width means)."""
    widths = [r["width"] for r in records]
    values = [METRICS[metric](r) for r in records]
    unique = sorted(set(widths))
    means = [_mean([v for w, v in zip(widths, values, strict=True) if w == u]) for u in unique]
    return widths, values, unique, means


def label(key):
    arch, act, phase, depth, output = key
    out = "n_L = n" if output == "n" else "n_L = 1"
    return f"{arch} L={depth} {act} {phase} {out}"


# --- figures -----------------------------------------------------------------------------------


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _width_ticks(ax):
    widths = sorted({float(x) for line in ax.lines for x in line.get_xdata()})
    if widths:
        ax.set_xticks(widths)
        ax.set_xticklabels([f"{w:g}" for w in widths])
        ax.minorticks_off()


def figure_metric_panels(groups, panels, path, title, ylabel, select, reference=None):
    """One panel per (architecture, output), lines per activation at the edge of chaos;
    ``reference``: the slope of a grey guide line (−1/2: the paper's rate)."""
    plt = _plt()
    combos = [("plain", "n"), ("plain", "1"), ("residual", "n")]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), sharey=True)
    colors = {"relu": "C0", "tanh": "C1", "erf": "C2", "gelu": "C3"}
    for ax, (arch, output) in zip(axes, combos, strict=True):
        for key, records in groups.items():
            if key[0] != arch or key[4] != output or not select(key):
                continue
            for metric, style in panels:
                _, _, widths, means = series(records, metric)
                if all(m != m for m in means):
                    continue
                ax.loglog(
                    widths, means, style, color=colors.get(key[1], "k"), label=f"{key[1]}: {metric}"
                )
        ax.set_title(f"{arch}, {'n_L = n' if output == 'n' else 'n_L = 1'}")
        ax.set_xlabel("width n")
        ax.grid(True, which="both", alpha=0.3)
        if reference is not None and ax.lines:
            x0 = min(min(line.get_xdata()) for line in ax.lines)
            x1 = max(max(line.get_xdata()) for line in ax.lines)
            y0 = float(
                np.exp(
                    np.mean(
                        [
                            np.log(line.get_ydata()[0])
                            for line in ax.lines
                            if line.get_ydata()[0] > 0
                        ]
                    )
                )
            )
            ax.loglog(
                [x0, x1],
                [y0, y0 * (x1 / x0) ** reference],
                color="0.5",
                lw=3,
                alpha=0.4,
                label=f"n^{reference:g}",
            )
        _width_ticks(ax)
    axes[0].set_ylabel(ylabel)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1:]:
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab, strict=True):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.16, 1, 0.95))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def figure_natural(records, path):
    plt = _plt()
    groups = group(records)
    combos = [("plain", "n"), ("plain", "1"), ("residual", "n")]
    dampings = sorted({c["damping"] for r in records for c in r["cosines"]})
    fig, axes = plt.subplots(
        len(dampings), 3, figsize=(14, 3.6 * len(dampings)), sharey=True, squeeze=False
    )
    colors = {"relu": "C0", "tanh": "C1", "erf": "C2", "gelu": "C3"}
    styles = {"block_diagonal": "-o", "analytic_statistics": "--s", "gradient": ":^"}
    for row, damping in enumerate(dampings):
        for ax, (arch, output) in zip(axes[row], combos, strict=True):
            for key, recs in groups.items():
                if key[0] != arch or key[4] != output:
                    continue
                widths = sorted({r["width"] for r in recs})
                for name, style in styles.items():
                    means = [
                        _mean(
                            [
                                c[name]
                                for r in recs
                                if r["width"] == w
                                for c in r["cosines"]
                                if c["damping"] == damping
                            ]
                        )
                        for w in widths
                    ]
                    ax.semilogx(
                        widths,
                        means,
                        style,
                        color=colors.get(key[1], "k"),
                        label=f"{key[1]}: {name}",
                    )
            ax.set_title(
                f"{arch}, {'n_L = n' if output == 'n' else 'n_L = 1'}, λ = {damping:g}·tr G/P",
                fontsize=9,
            )
            ax.set_xlabel("width n")
            ax.grid(True, which="both", alpha=0.3)
            _width_ticks(ax)
        axes[row][0].set_ylabel("cosine with exact natural gradient")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=4, fontsize=7)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=90)
    plt.close(fig)
