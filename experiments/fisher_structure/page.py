"""docs/fisher_structure.md and its figures, rendered from the JSON results."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from . import report

FIGURES = Path("figures") / "fisher_structure"


def _fmt(x, digits=3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if x == 0:
        return "0"
    if abs(x) >= 1e4 or abs(x) < 1e-3:
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}"


def _fit_cell(fit):
    if math.isnan(fit["slope"]):
        return "–"
    return f"{fit['slope']:+.2f} [{fit['low']:+.2f}, {fit['high']:+.2f}]"


def _minutes(seconds):
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _key(record):
    names = ("architecture", "activation", "phase", "depth", "output", "width", "seed")
    return tuple(record[k] for k in names)


def _families_run(data):
    """For each family of the configuration, the runs (numbered from 1) that measured its
    networks: "1", "1, 2", ..., "not run", or with "(k of m networks)" if only some were."""
    config = data["config"]
    measured = {_key(r): r.get("run", 0) + 1 for r in data["structure"]}
    out = []
    for f in config["families"]:
        expected = [
            (f["architecture"], a, p, f["depth"], o, w, s)
            for a in f["activations"]
            for p in f["phases"]
            for o in f["outputs"]
            for w in f["widths"]
            for s in range(f.get("seeds") or config["seeds"])
        ]
        numbers = sorted({measured[k] for k in expected if k in measured})
        have = sum(k in measured for k in expected)
        if not numbers:
            out.append("not run")
        elif have < len(expected):
            out.append(f"{', '.join(map(str, numbers))} ({have} of {len(expected)} networks)")
        else:
            out.append(", ".join(map(str, numbers)))
    return out


def _absent_cells(data) -> list:
    """The cells of the issue's grid without a measured network, grouped by architecture,
    L, n_L and phase: "plain L=4 chaotic n_L = 1: n = 1024 (relu, tanh)"."""
    have = {
        (r["architecture"], r["depth"], r["output"], r["phase"], r["activation"], r["width"])
        for r in data["structure"]
    }
    out = []
    for arch, outputs in (("plain", ("n", "1")), ("residual", ("n",))):
        for depth in (3, 4, 5):
            for output in outputs:
                for phase in ("ordered", "edge", "chaotic"):
                    missing = {}
                    for width in (32, 64, 128, 256, 512, 1024):
                        acts = [
                            a
                            for a in ("relu", "tanh", "erf", "gelu")
                            if (arch, depth, output, phase, a, width) not in have
                        ]
                        if acts:
                            missing.setdefault(tuple(acts), []).append(str(width))
                    for acts, widths in missing.items():
                        which = "" if len(acts) == 4 else f" ({', '.join(acts)})"
                        sizes = "every n" if len(widths) == 6 else f"n = {', '.join(widths)}"
                        out.append(f"{arch} L={depth} {phase} n_L = {output}: {sizes}{which}")
    return out


def _load(results_dir: Path):
    runs = {}
    for name in ("full", "quick", "tiny"):
        path = results_dir / f"fisher_structure_{name}.json"
        if path.exists():
            runs[name] = json.loads(path.read_text())
    return runs


def render(results_dir: Path, docs_dir: Path, prefer: str = "full", draw: bool = True) -> Path:
    """Write docs_dir/fisher_structure.md (and, with ``draw``, its figures) from the JSON
    results in results_dir: the full run's if there is one, else the quick run's."""
    runs = _load(results_dir)
    if prefer == "tiny":
        name = "tiny"
    else:
        name = "full" if "full" in runs else "quick"
    data = runs[name]
    figures = docs_dir / FIGURES
    figures.mkdir(parents=True, exist_ok=True)
    prefix = f"{name}_"
    groups = report.group(data["structure"])
    edge = lambda key: key[2] == "edge" and key[3] == 3  # noqa: E731
    if draw:
        report.figure_metric_panels(
            groups,
            [("within max", "-o"), ("within max noise", ":")],
            figures / f"{prefix}within_max.png",
            "Off-diagonal blocks within a layer: max |G_ik| / √(d_i d_k) (dotted: noise floor)",
            "relative max-norm",
            edge,
            reference=-0.5,
        )
        report.figure_metric_panels(
            groups,
            [("within rms", "-o"), ("between rms", "--s"), ("within rms noise", ":")],
            figures / f"{prefix}offdiag_rms.png",
            "RMS of off-diagonal entries / √(d_i d_k) (within a layer: solid, between layers: "
            "dashed, dotted: noise)",
            "relative RMS",
            edge,
            reference=-0.5,
        )
        report.figure_metric_panels(
            groups,
            [("frobenius share", "-o")],
            figures / f"{prefix}frobenius_share.png",
            "Frobenius share of the off-diagonal blocks ‖G − G*‖_F / ‖G‖_F",
            "share",
            edge,
        )
        report.figure_metric_panels(
            groups,
            [("domino off", "-o"), ("domino diagonal", "--s")],
            figures / f"{prefix}domino.png",
            "Domino lemma: RMS of Σ B B / (χ factor) − δ (off-diagonal solid, diagonal dashed)",
            "relative error",
            edge,
            reference=-0.5,
        )
        report.figure_metric_panels(
            groups,
            [
                ("unit hidden standard max", "-o"),
                ("unit hidden statistics max", "--s"),
                ("unit hidden noise max", ":"),
            ],
            figures / f"{prefix}unit_blocks.png",
            "Hidden-layer unit blocks, max-norm error / max |G_ii| (solid: N(0, I) block, dashed: "
            "input statistics, dotted: noise)",
            "relative max-norm error",
            edge,
        )
        if data["natural_gradient"]:
            report.figure_natural(
                data["natural_gradient"], figures / f"{prefix}natural_gradient.png"
            )
    text = _page(runs, name, data, groups, prefix)
    path = docs_dir / "fisher_structure.md"
    path.write_text(text)
    return path


def _page(runs, name, data, groups, prefix) -> str:
    config = data["config"]
    sampling = config["sampling"]
    out = []
    add = out.append
    add("# The paper's theorems, measured\n")
    add(
        "<!-- Generated by `python -m experiments.fisher_structure` from "
        f"experiments/results/fisher_structure_{name}.json; do not edit by hand. -->\n"
    )
    add(
        "Amari, Karakida & Oizumi (AISTATS 2019) prove, for wide random networks, that the "
        "Fisher information G is unit-wise block diagonal up to terms of order "
        "$1/\\sqrt{n}$ (Theorem 1, plain networks; Theorem 2, residual networks), by the "
        "domino lemma (eq. 37), and that each diagonal block is the back-propagated factor "
        "$\\chi^L_{m+1}$ times the block of a single unit with inputs $N(0, I)$. The paper "
        "has no simulations. This page measures all of it on random networks, with "
        "fisher_sym's generated blocks as the analytic side. Every number and figure below is "
        "written by the command from its JSON results.\n"
    )
    add("## Commands and run times\n")
    rows = []
    for run_name, run in runs.items():
        if run_name == "tiny":
            continue
        # a run extended with --only-missing lists its runs; the records each added carry
        # its index ("run"), the first run's none
        parts = run.get("runs") or [
            {
                **run,
                "structure": len(run["structure"]),
                "natural_gradient": len(run["natural_gradient"]),
            }
        ]
        for number, part in enumerate(parts, 1):
            env = "OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 " if part.get("threads") == "1" else ""
            rows.append(
                [
                    f"`{env}{part['command']}`" + (f" (run {number})" if len(parts) > 1 else ""),
                    _minutes(part["wall_seconds"]),
                    part["structure"],
                    part["natural_gradient"],
                    f"`experiments/results/fisher_structure_{run_name}.json`",
                ]
            )
    add(
        _table(
            [
                "command",
                "wall time (before rendering)",
                "networks (blocks)",
                "networks (natural gradient)",
                "results",
            ],
            rows,
        )
    )
    if any(len(run.get("runs", ())) > 1 for run in runs.values()):
        add(
            "\nEach run with `--only-missing` measured the networks of the configuration that "
            "the results lacked when it started (with `--part I/K`, of those families every "
            "K-th from the I-th; K such runs ran at a time, one per core) and merged them into "
            "the same file; the table of networks measured says which run measured each row."
        )
    add(
        "\nMeasured on a shared machine with 2 CPU cores (other sessions' jobs running at "
        "the same time, so the times are upper bounds), NumPy with OpenBLAS, float64. "
        "Single-threaded BLAS is faster there: two BLAS threads per process spin against "
        "the other jobs. `--render-only` re-renders this page and the figures from the "
        "JSON files without running anything. The figures and tables below are from the "
        f"`{name}` run.\n"
    )

    if not data.get("complete", True):
        add(
            '!!! warning "Partial run"\n    The run was stopped before its last families; '
            "the tables hold what it finished.\n"
        )
    add(_summary(data, groups))
    add("## Set-up\n")
    add(
        f"- Networks as in the paper: $W_{{ij}} \\sim N(0, \\sigma_w^2/n)$, "
        f"$b_i \\sim N(0, \\sigma_b^2)$ with $\\sigma_b = {config['sigma_b']}$, inputs "
        "$x^0 \\sim N(0, I_n)$, every layer $x^l = \\varphi(u^l)$ including the output, "
        "Gaussian output noise of unit variance, so $G = \\mathrm{E}_x[J^\\top J]$ with "
        "$J = \\partial x^L / \\partial \\theta$ over all weights and biases. Residual "
        f"networks: $x^l = \\alpha x^{{l-1}} + V \\varphi(u^l)$, $\\alpha = {config['alpha']}$, "
        f"$V_{{ij}} \\sim N(0, \\sigma_v^2/n)$, $\\sigma_v = {config['sigma_v']}$, V fixed (not "
        "a parameter, as in Sec. 6); their output width is n (the skip path keeps it)."
    )
    add(
        "- Phases: $\\sigma_w$ = 0.75, 1 and 1.5 times the edge of chaos "
        "(`meanfield.edge_of_chaos`, $\\chi^* = 1$ at the fixed point); the table gives "
        "$\\sigma_w$ and $\\chi^*$."
    )
    phase_rows = {}
    for r in data["structure"] + data["natural_gradient"]:
        phase_rows[(r["activation"], r["phase"])] = (r["sigma_w"], r["chi_star"])
    add("")
    add(
        _table(
            ["activation", "phase", "σ_w", "χ*"],
            [[a, p, _fmt(s), _fmt(c)] for (a, p), (s, c) in sorted(phase_rows.items())],
        )
    )
    add("")
    families = []
    several = len(data.get("runs", ())) > 1
    for f, where in zip(config["families"], _families_run(data)):
        families.append(
            [
                f["architecture"],
                ", ".join(f["activations"]),
                ", ".join(f["phases"]),
                f["depth"],
                ", ".join("n" if o == "n" else "1" for o in f["outputs"]),
                ", ".join(str(w) for w in f["widths"]),
                f.get("seeds") or config["seeds"],
            ]
            + ([where] if several else [])
        )
    add("Networks measured (each combination of the row's entries, at every width):\n")
    add(
        _table(
            ["architecture", "activations", "phases", "L", "n_L", "widths n", "networks per width"]
            + (["run"] if several else []),
            families,
        )
    )
    add("")
    widest = max(r["width"] for r in data["structure"])
    deepest = max(r["depth"] for r in data["structure"] if r["width"] == widest)
    size = deepest * widest * (widest + 1)
    add(
        f"- **What is sampled.** G has about $L n^2$ rows ({size:,} at n = {widest}, "
        f"L = {deepest}), so it is never "
        f"formed. In each layer {sampling['units']} units are drawn (the one output unit "
        f"when n_L = 1); for every pair of drawn units the entries of their block on "
        f"{sampling['coordinates']} drawn input coordinates and the bias are estimated, and "
        f"for {sampling['full_units']} units per layer the whole $(n+1)^2$ diagonal block. "
        "An entry is $\\mathrm{E}_x[(\\delta_i \\cdot \\delta_k)\\, x^*_j x^*_h]$ with "
        "$\\delta_i = \\partial x^L / \\partial u_i$, which is pushed forward from the unit "
        "(forward-mode, cost $n^2$ per layer, input and unit), so no Jacobian is formed."
    )
    add(
        f"- **Inputs and noise floor.** {sampling['samples']} inputs per network, in batches "
        f"of {sampling['batch']} that alternate between two halves. Half the difference of "
        "the two halves' estimates has the same variance as the estimator's error: its "
        "max-norm and RMS are the *noise floor*, drawn dotted beside each measurement; RMS "
        "values and Frobenius norms are reported with the noise's mean square subtracted "
        "(an unbiased estimate of the structure's own). N is fixed across widths: for "
        "n_L = n both an off-diagonal entry and its sampling error scale like "
        "$n^{-1/2}$ (the per-input product $\\delta_i \\cdot \\delta_k$ is itself a sum of "
        "n terms of random sign), so their ratio, about $N^{-1/2}$, does not change with n; "
        "the floor is measured, not assumed."
    )
    add(
        "- **Normalisation.** An entry between units i and k is divided by "
        "$\\sqrt{d_i d_k}$, $d_i$ the mean diagonal entry of unit i's block over the sampled "
        "coordinates: G in coordinates where every unit's block has a unit mean diagonal. "
        "Without it sizes compare layers rather than structure (with n_L = 1 the output "
        "unit's block is O(1), the hidden units' O(1/n)). The **Frobenius share** "
        "$\\|G - G^*\\|_F / \\|G\\|_F$ ($G^*$ the unit-block-diagonal part), in the same "
        "coordinates, is extrapolated from the sampled entries by the true number of "
        "weight–weight, weight–bias and bias–bias entries of each kind (the raw share is in "
        "the JSON)."
    )
    add(
        "- **Fits.** Exponents are least squares of log value on log n over all networks and "
        f"widths; the 95% interval is a bootstrap ({report.FIT_BOOTSTRAP} draws) that redraws "
        "the networks at each width with replacement."
    )
    add("")

    # --- 1. theorems 1 and 2
    add("## 1. Theorems 1 and 2: off-diagonal blocks against n\n")
    rows = []
    for key, recs in groups.items():
        widths = sorted({r["width"] for r in recs})
        if len(widths) < 2:
            continue
        cells = [report.label(key)]
        for metric in ("within max", "within rms", "between max", "between rms"):
            w, v, _, _ = report.series(recs, metric)
            cells.append(_fit_cell(report.fit_exponent(w, v)))
        w_share, v_share, uw, share = report.series(recs, "frobenius share")
        cells.append(
            f"{_fmt(share[0])} → {_fmt(share[-1])}, "
            f"{_fit_cell(report.fit_exponent(w_share, v_share))}"
        )
        _, _, _, noise = report.series(recs, "within rms noise")
        _, _, _, sig = report.series(recs, "within rms")
        cells.append(f"{_fmt(sig[-1])} / {_fmt(noise[-1])}")
        dead = sum(r["blocks"].get("dead_units", 0) for r in recs)
        cells.append(f"{dead}")
        rows.append(cells)
    add(
        "Exponents p of $\\text{value} \\propto n^p$ (the paper: −1/2) with 95% intervals; "
        "the Frobenius share at the smallest and largest width and its exponent; and, at the "
        "largest width, "
        "the within-layer RMS against its noise floor; *dead units*: sampled units whose "
        "block is 0 for every input (left out), over all networks of the row.\n"
    )
    add(
        _table(
            [
                "network",
                "within: max",
                "within: RMS",
                "between: max",
                "between: RMS",
                "Frobenius share",
                "RMS / noise (largest n)",
                "dead units",
            ],
            rows,
        )
    )
    add("")
    add(f"![within max]({FIGURES / (prefix + 'within_max.png')})\n")
    add(f"![off-diagonal RMS]({FIGURES / (prefix + 'offdiag_rms.png')})\n")
    add(f"![Frobenius share]({FIGURES / (prefix + 'frobenius_share.png')})\n")
    add(_findings_blocks(groups))

    # --- 2. domino
    add("## 2. The domino lemma (eq. 37)\n")
    add(
        "For each input, $\\sum_{i_L} B^{i_L}_{i_m} B^{i_L}_{i'_m}$ over pairs of drawn "
        "coordinates of $x^m$ ($B = \\partial x^L/\\partial x^m$, pushed forward from "
        "$x^m$), divided by the mean-field factor: $\\chi^L_{m+1}$ "
        "(`MeanField.chi_product(m + 1)`, $\\bar\\chi$ for residual networks), times "
        "$n_L/n$ when $n_L = 1$ (the last layer's weights have variance $\\sigma_w^2/n$ but "
        "only $n_L$ outputs are summed). The table gives the RMS over inputs, pairs and "
        "layers $m < L$ of its off-diagonal part and of the diagonal minus 1, with the "
        "fitted exponents, and the mean of the diagonal minus 1 (the bias of the "
        "mean-field factor).\n"
    )
    rows = []
    for key, recs in groups.items():
        widths = sorted({r["width"] for r in recs})
        if len(widths) < 2:
            continue
        cells = [report.label(key)]
        for metric in ("domino off", "domino diagonal"):
            w, v, _, means = report.series(recs, metric)
            cells.append(f"{_fmt(means[0])} → {_fmt(means[-1])}")
            cells.append(_fit_cell(report.fit_exponent(w, v)))
        _, _, _, bias = report.series(recs, "domino bias")
        cells.append(f"{_fmt(bias[0])} → {_fmt(bias[-1])}")
        rows.append(cells)
    add(
        _table(
            [
                "network",
                "off-diagonal RMS",
                "exponent",
                "diagonal − 1, RMS",
                "exponent",
                "diagonal − 1, mean",
            ],
            rows,
        )
    )
    add("")
    add(f"![domino]({FIGURES / (prefix + 'domino.png')})\n")
    add(_chi_index_table(groups))

    # --- 3. unit blocks
    add("## 3. Unit blocks against the analytic ones\n")
    add(
        "For the units with a whole diagonal block $G_{ii}$, the analytic block is "
        "$c \\cdot E[\\varphi'(w \\cdot x + b)^2 x^* x^{*\\top}]$ from the generated "
        "module's `fisher_blocks`, with c the mean-field factor of section 2 (times "
        "$\\sigma_v^2$ for a residual unit), and x either $N(0, I)$ (the paper's assumption, "
        "*standard*) or $N(\\mu, \\operatorname{diag} s^2)$ with each input coordinate's "
        "mean and variance measured over the inputs (*statistics*, the block of "
        "`natural_gradient(..., input_mean, input_variance)`, dense: "
        "$T^\\top G_{\\mathrm{std}}(r', b') T$, [inputs with a mean and a variance]"
        "(input_statistics.md)). Errors are relative: max-norm "
        "$\\max|G_{ii} - \\text{model}| / \\max|G_{ii}|$ and Frobenius (noise subtracted); "
        "layer 1 sees exactly $N(0, I)$ inputs, the hidden layers do not. Values at the "
        "largest width, mean over units and networks, with the noise floor of $G_{ii}$.\n"
    )
    rows = []
    for key, recs in groups.items():
        largest = max(r["width"] for r in recs)
        top = [r for r in recs if r["width"] == largest]
        m = {k: report._mean([report.METRICS[k](r) for r in top]) for k in report.METRICS}
        rows.append(
            [
                report.label(key),
                largest,
                _fmt(m["unit first standard max"]),
                _fmt(m["unit first noise max"]),
                _fmt(m["unit hidden standard max"]),
                _fmt(m["unit hidden statistics max"]),
                _fmt(m["unit hidden noise max"]),
                _fmt(m["unit hidden standard frobenius"]),
                _fmt(m["unit hidden statistics frobenius"]),
                _fmt(m["unit hidden statistics shape"]),
                _fmt(m["unit hidden noise frobenius"]),
            ]
        )
    add(
        _table(
            [
                "network",
                "n",
                "layer 1 max",
                "noise",
                "hidden max: standard",
                "statistics",
                "noise",
                "hidden Frobenius: standard",
                "statistics",
                "statistics, best scale",
                "noise",
            ],
            rows,
        )
    )
    add("")
    rows = []
    for key, recs in groups.items():
        widths = sorted({r["width"] for r in recs})
        if len(widths) < 2:
            continue
        cells = [report.label(key)]
        for metric in (
            "unit first standard max",
            "unit hidden standard max",
            "unit hidden statistics max",
            "unit hidden statistics frobenius",
        ):
            w, v, _, _ = report.series(recs, metric)
            cells.append(_fit_cell(report.fit_exponent(w, v)))
        rows.append(cells)
    add("Exponents of the errors against n:\n")
    add(
        _table(
            [
                "network",
                "layer 1 max (standard)",
                "hidden max (standard)",
                "hidden max (statistics)",
                "hidden Frobenius (statistics)",
            ],
            rows,
        )
    )
    add("")
    add(f"![unit blocks]({FIGURES / (prefix + 'unit_blocks.png')})\n")
    add(_scale_table(groups))
    add(
        "**How Gaussian are the inputs of layers 2 and 3?** RMS over coordinates of "
        "mean/standard deviation (0 for the paper's $N(0, I)$) and the mean excess kurtosis "
        "(0 for a Gaussian), at the largest width.\n"
    )
    rows = []
    for key, recs in groups.items():
        largest = max(r["width"] for r in recs)
        top = [r for r in recs if r["width"] == largest]
        m = {
            k: report._mean([report.METRICS[k](r) for r in top])
            for k in (
                "input 2 mean/std",
                "input 2 kurtosis",
                "input 3 mean/std",
                "input 3 kurtosis",
            )
        }
        rows.append([report.label(key), largest] + [_fmt(m[k]) for k in m])
    add(
        _table(
            [
                "network",
                "n",
                "layer 2 input: mean/std",
                "excess kurtosis",
                "layer 3 input: mean/std",
                "excess kurtosis",
            ],
            rows,
        )
    )
    add("")
    add(_findings_units(groups))
    add(
        "Why the Frobenius errors differ from the max-norm ones: the diagonal-covariance model "
        "leaves out the covariances between a hidden layer's input coordinates, each of order "
        "$n^{-1/2}$ for a fixed network but $n^2$ of them, so their share of $G_{ii}$'s "
        "Frobenius norm need not vanish with n although every entry does. For tanh and erf the "
        "block's norm is that of its $A_{00} I$ part and the share stays visible; for ReLU and "
        "GELU a rank-one term from the inputs' nonzero means dominates the norm and hides it.\n"
    )

    # --- 4. natural gradients
    add("## 4. $G^{*-1}$ is not $G^{-1}$: natural gradients\n")
    ng = data["natural_gradient"]
    if ng:
        add(
            f"Where the whole G fits (P = {min(r['parameters'] for r in ng)} to "
            f"{max(r['parameters'] for r in ng)} parameters, widths "
            f"{', '.join(str(w) for w in sorted({r['width'] for r in ng}))}), G is estimated "
            f"from at least {config['ng_rows_per_parameter']} rows of J per parameter "
            "(inputs × n_L) and the exact damped natural gradient $(G + \\lambda I)^{-1} g$, "
            "$\\lambda$ = damping × tr G / P, is compared by its cosine with: the unit-wise "
            "one from the exact diagonal blocks $G^*$ (*block diagonal*), the one from the "
            "analytic blocks with input statistics (*analytic*; the N(0, I) blocks are in the "
            "JSON), and the plain gradient. g is the gradient of $\\frac12|y - x^L|^2$ on 32 "
            "fresh inputs with random targets $y \\sim N(0, I)$. *halves*: the cosine "
            "between the exact natural gradients from the two halves of the inputs (the "
            "noise floor).\n"
        )
        rows = []
        for key, recs in report.group(ng).items():
            for width in sorted({r["width"] for r in recs}):
                at = [r for r in recs if r["width"] == width]
                for c_index, cos in enumerate(at[0]["cosines"]):

                    def mean(name, at=at, c_index=c_index):
                        return report._mean([r["cosines"][c_index][name] for r in at])

                    rows.append(
                        [
                            report.label(key),
                            width,
                            at[0]["parameters"],
                            _fmt(cos["damping"]),
                            _fmt(mean("block_diagonal")),
                            _fmt(mean("analytic_statistics")),
                            _fmt(mean("analytic_standard")),
                            _fmt(mean("gradient")),
                            _fmt(mean("halves")),
                        ]
                    )
        add(
            _table(
                [
                    "network",
                    "n",
                    "P",
                    "damping",
                    "block diagonal",
                    "analytic",
                    "analytic N(0, I)",
                    "gradient",
                    "halves",
                ],
                rows,
            )
        )
        add("")
        add(f"![natural gradient]({FIGURES / (prefix + 'natural_gradient.png')})\n")
        add(_findings_natural(ng))
    add("## What is left out\n")
    if ng:
        widest_ng = max(r["width"] for r in ng)
        twice = 2 * widest_ng
        size = 3 * twice * (twice + 1)
        add(
            f"- Widths above {widest_ng} for the exact natural gradient: at n = {twice}, "
            f"L = 3, G has {size:,} rows ({size * size:.1e} entries) and its estimate needs "
            f"{config['ng_rows_per_parameter'] * size:,} rows of J."
        )
    if len(data.get("runs", ())) > 1:
        depths = sorted({r["depth"] for r in data["structure"]})
        between = [d for d in range(min(depths), max(depths) + 1) if d not in depths]
        unrun = sum(1 for row in _families_run(data) if row == "not run" or "of" in row)
        absent = _absent_cells(data)
        add(
            "- Every combination outside the table of networks measured above"
            + (
                f": L = {', '.join(map(str, between))} (the issue's L from 3 to 5),"
                if between
                else ":"
            )
            + " residual networks with n_L = 1 (the skip path keeps n_L = n), the natural "
            "gradient at L = 4 and 5"
            + (
                "; of the issue's grid (L = 3 to 5, the four activations, the three phases, "
                "n = 32 to 1024, n_L = 1 and n) no network at: " + "; ".join(absent)
                if absent
                else "; the issue's grid (L = 3 to 5, the four activations, the three phases, "
                "n = 32 to 1024, n_L = 1 and n) has networks in every cell"
            )
            + (
                f"; {unrun} of the table's rows (marked in its last column) were not, or only "
                "in part, measured when the later runs were stopped"
                if unrun
                else ""
            )
            + ". The first run was sized to the 30 minutes it may take on the shared machine; "
            "the later ones added the rest of the issue's grid with `--only-missing`."
        )
    else:
        add(
            "- Every combination outside the table of networks measured above (the widths, "
            "depths, phases and output widths of the issue that are not in it): the full run "
            "is sized to the 30 minutes it may take on the shared machine."
        )
    add(
        "- The max-norm over *all* entries of G: it is taken over the sampled entries, "
        "whose number grows only with the squared number of sampled units; the RMS is the "
        "better-determined statistic of the two."
    )
    add("")
    return "\n".join(out) + "\n"


def _range(values):
    values = [v for v in values if v == v]
    return f"{_fmt(min(values))} to {_fmt(max(values))}" if values else "–"


def _findings_blocks(groups) -> str:
    """Findings written from the numbers (no number typed by hand)."""
    lines = ["**Findings (computed from the table).**\n"]
    for arch, output, text in (
        ("plain", "n", "plain networks, n_L = n"),
        ("plain", "1", "plain networks, n_L = 1"),
        ("residual", "n", "residual networks"),
    ):
        slopes, shares_small, shares_large = [], [], []
        for key, recs in groups.items():
            if key[0] != arch or key[4] != output or len({r["width"] for r in recs}) < 2:
                continue
            w, v, _, _ = report.series(recs, "within rms")
            slopes.append(report.fit_exponent(w, v)["slope"])
            _, _, _, share = report.series(recs, "frobenius share")
            shares_small.append(share[0])
            shares_large.append(share[-1])
        if slopes:
            lines.append(
                f"- {text}: within-layer RMS exponents {_range(slopes)}; Frobenius "
                f"share {_range(shares_small)} at the smallest width, "
                f"{_range(shares_large)} at the largest."
            )
    return "\n".join(lines) + "\n"


def _findings_units(groups) -> str:
    lines = ["**Findings (computed from the table).**\n"]
    for acts, text in ((("tanh", "erf"), "tanh and erf"), (("relu", "gelu"), "relu and gelu")):
        frob, noise = [], []
        for key, recs in groups.items():
            if key[1] not in acts or key[4] != "n":
                continue
            largest = max(r["width"] for r in recs)
            top = [r for r in recs if r["width"] == largest]
            frob.append(
                report._mean([report.METRICS["unit hidden statistics shape"](r) for r in top])
            )
            noise.append(
                report._mean([report.METRICS["unit hidden noise frobenius"](r) for r in top])
            )
        if frob:
            lines.append(
                f"- {text}, n_L = n: hidden-layer Frobenius error of the "
                f"input-statistics block after its best scale {_range(frob)} at the "
                f"largest width (noise subtracted; the noise itself {_range(noise)})."
            )
    for arch, output in (("plain", "n"), ("residual", "n"), ("plain", "1")):
        std, stats, units = [], [], []
        for key, recs in groups.items():
            if key[0] != arch or key[4] != output:
                continue
            largest = max(r["width"] for r in recs)
            top = [r for r in recs if r["width"] == largest]
            std.append(report._mean([report.METRICS["unit hidden standard max"](r) for r in top]))
            stats.append(
                report._mean([report.METRICS["unit hidden statistics max"](r) for r in top])
            )
            units += [
                u["statistics"]
                for r in top
                for u in r["unit_blocks"]
                if u["layer"] > 1 and not u.get("dead")
            ]
        if std:
            off = [u for u in units if not 0.1 <= u["scale"] <= 10]
            lines.append(
                f"- {arch}, n_L = {output}: hidden-layer max-norm error at the largest width "
                f"{_range(std)} with the N(0, I) block, {_range(stats)} with the "
                "input statistics (means over units). Over all "
                f"{len(units)} hidden units of these networks: median "
                f"{_fmt(float(np.median([u['max'] for u in units])))} with the input "
                "statistics; units whose measured block is more than 10 times off the "
                "predicted one (best scale outside [0.1, 10]), one of which can make a "
                f"network's mean large: {len(off)}."
            )
    return "\n".join(lines) + "\n"


def _cosines(ng, name, damping, finite=False):
    """The ``name`` cosines of every network's records at ``damping`` (without NaN where
    ``finite``)."""
    return [
        c[name]
        for r in ng
        for c in r["cosines"]
        if c["damping"] == damping and (not finite or c[name] == c[name])
    ]


def _findings_natural(ng) -> str:
    lines = ["**Findings (computed from the table).**\n"]
    for damping in sorted({c["damping"] for r in ng for c in r["cosines"]}):
        block = _cosines(ng, "block_diagonal", damping)
        grad = _cosines(ng, "gradient", damping)
        ana = _cosines(ng, "analytic_statistics", damping)
        lines.append(
            f"- damping {_fmt(damping)}: cosine of the exact natural gradient with "
            f"the block-diagonal one {_range(block)}, with the analytic unit-wise one "
            f"{_range(ana)}, with the plain gradient {_range(grad)} (mean "
            f"{_fmt(float(np.mean(block)))}, {_fmt(float(np.mean(ana)))}, "
            f"{_fmt(float(np.mean(grad)))})."
        )
    return "\n".join(lines) + "\n"


def _chi_index_table(groups) -> str:
    """Eq. 43 prints χ^L_m where the lemma gives χ^L_{m+1}: the mean normalised diagonal of
    Σ B B with each, at the largest width (1 is right)."""
    rows = []
    for key, recs in groups.items():
        largest = max(r["width"] for r in recs)
        top = [r for r in recs if r["width"] == largest and "chi" in r]
        if not top:
            continue
        ours, printed = [], []
        for r in top:
            for d in r["domino"]:
                ours.append(1 + d["diagonal_bias"])
                printed.append((1 + d["diagonal_bias"]) / r["chi"][d["layer"] - 1])
        chis = [r["chi"][d["layer"] - 1] for r in top for d in r["domino"]]
        rows.append(
            [
                report.label(key),
                largest,
                _range(chis),
                _fmt(float(np.mean(ours))),
                _fmt(float(np.mean(printed))),
            ]
        )
    if not rows:
        return ""
    text = (
        "**Which product of χ (eq. 43).** The lemma leaves the factors of layers "
        "m + 1, …, L; the printed eq. 43 has $\\chi^L_m$, one factor $\\chi^m$ more "
        "([errata](errata.md)). Mean over inputs, units, layers m < L and networks at the "
        "largest width of the diagonal of Σ B B divided by each (1 is right); away from "
        "the edge of chaos, where $\\chi^m \\ne 1$, only $\\chi^L_{m+1}$ gives 1 "
        "(for n_L = n).\n\n"
    )
    return (
        text
        + _table(["network", "n", "χ^m (layers m < L)", "÷ χ^L_{m+1}", "÷ χ^L_m (printed)"], rows)
        + "\n"
    )


def _fit(recs, metric):
    w, v, _, _ = report.series(recs, metric)
    return report.fit_exponent(w, v)


def _summary(data, groups) -> str:
    """The main findings, every number computed here from the results."""
    lines = ["## Main findings\n"]

    def fits(arch, output, metric):
        out = []
        for key, recs in groups.items():
            if key[0] == arch and key[4] == output and len({r["width"] for r in recs}) > 2:
                out.append((key, _fit(recs, metric)))
        return out

    def last(arch, output, metric):
        vals = []
        for key, recs in groups.items():
            if key[0] == arch and key[4] == output:
                _, _, _, means = report.series(recs, metric)
                vals.append(means[-1])
        return vals

    for arch, output, name in (
        ("plain", "n", "Plain networks, n_L = n (Theorem 1)"),
        ("residual", "n", "Residual networks (Theorem 2)"),
        ("plain", "1", "Plain networks, n_L = 1"),
    ):
        f = fits(arch, output, "within rms")
        if not f:
            continue
        slopes = [x["slope"] for _, x in f]
        covers = sum(1 for _, x in f if x["low"] <= -0.5 <= x["high"])
        fb = fits(arch, output, "between rms")
        slopes_b = [x["slope"] for _, x in fb]
        share = last(arch, output, "frobenius share")
        dom = fits(arch, output, "domino off")
        lines.append(
            f"- **{name}.** RMS of the within-layer off-diagonal blocks (relative) falls like "
            f"$n^p$ with p from {_fmt(min(slopes))} to {_fmt(max(slopes))} over "
            f"{len(f)} network families ({covers} of whose 95% intervals contain −1/2); "
            f"between layers p from {_fmt(min(slopes_b))} to {_fmt(max(slopes_b))}. The "
            f"Frobenius share of the off-diagonal part at the largest width is "
            f"{_range(share)}. Domino lemma, off-diagonal: p from "
            f"{_fmt(min(x['slope'] for _, x in dom))} to "
            f"{_fmt(max(x['slope'] for _, x in dom))}."
        )
    ratio_ours, ratio_printed = [], []
    for key, recs in groups.items():
        if key[2] == "edge" or key[4] != "n":
            continue
        largest = max(r["width"] for r in recs)
        for r in recs:
            if r["width"] == largest and "chi" in r:
                for d in r["domino"]:
                    ratio_ours.append(1 + d["diagonal_bias"])
                    ratio_printed.append((1 + d["diagonal_bias"]) / r["chi"][d["layer"] - 1])
    if ratio_ours:
        lines.append(
            f"- **Eq. 43's factor.** Off the edge of chaos (n_L = n, largest width) the "
            f"diagonal of Σ B B over $\\chi^L_{{m+1}}$ is {_range(ratio_ours)}, over the "
            f"printed $\\chi^L_m$ {_range(ratio_printed)}: the lemma's $\\chi^L_{{m+1}}$ is "
            "right ([errata](errata.md))."
        )
    scales_1, scales_n = [], []
    for key, recs in groups.items():
        largest = max(r["width"] for r in recs)
        vals = [
            u["statistics"]["scale"]
            for r in recs
            if r["width"] == largest
            for u in r["unit_blocks"]
            if not u.get("dead") and u["layer"] > 1
        ]
        (scales_1 if key[4] == "1" else scales_n).extend(vals)
    if scales_1 and scales_n:
        q1 = np.percentile(scales_1, [10, 90])
        qn = np.percentile(scales_n, [10, 90])
        lines.append(
            f"- **The back-propagated factor per unit** (measured over predicted, hidden units, "
            f"largest widths): 10–90% range {_fmt(qn[0])} to {_fmt(qn[1])} for n_L = n, "
            f"{_fmt(q1[0])} to {_fmt(q1[1])} for n_L = 1."
        )
    for arch in ("plain", "residual"):
        std, stats, kurt, mean_std, noise = [], [], [], [], []
        for key, recs in groups.items():
            if key[0] != arch or key[4] != "n":
                continue
            largest = max(r["width"] for r in recs)
            top = [r for r in recs if r["width"] == largest]
            pick = lambda m, top=top: report._mean([report.METRICS[m](r) for r in top])  # noqa: E731
            std.append(pick("unit hidden standard max"))
            stats.append(pick("unit hidden statistics max"))
            noise.append(pick("unit hidden noise max"))
            kurt.append(pick("input 3 kurtosis"))
            mean_std.append(pick("input 3 mean/std"))
        if std:
            lines.append(
                f"- **Unit blocks, {arch}, n_L = n, hidden layers, largest width.** Max-norm "
                f"error {_range(std)} with the paper's N(0, I) block, {_range(stats)} with the "
                f"measured input means and variances (noise floor {_range(noise)}; median over "
                f"the {len(std)} network families {_fmt(float(np.median(std)))} and "
                f"{_fmt(float(np.median(stats)))}, a family's mean can be made by one unit whose "
                "block is far from its predicted size, section 3); "
                f"the inputs of layer 3 have "
                f"mean/std (RMS over coordinates) {_range(mean_std)} and excess kurtosis "
                f"{_range(kurt)}."
            )
    ng = data["natural_gradient"]
    if ng:
        for damping in sorted({c["damping"] for r in ng for c in r["cosines"]}):

            def pick(name, d=damping):
                return _cosines(ng, name, d, finite=True)

            lines.append(
                f"- **Natural gradient, damping {_fmt(damping)}·tr G/P, n ≤ "
                f"{max(r['width'] for r in ng)}.** Mean cosine with the exact one: "
                f"{_fmt(float(np.mean(pick('block_diagonal'))))} for the exact unit blocks "
                f"($G^{{*-1}}$), {_fmt(float(np.mean(pick('analytic_statistics'))))} for the "
                f"analytic unit blocks, {_fmt(float(np.mean(pick('gradient'))))} for the plain "
                f"gradient (two halves of the inputs agree to "
                f"{_fmt(float(np.mean(pick('halves'))))})."
            )
    return "\n".join(lines) + "\n"


def _scale_table(groups) -> str:
    """Measured over predicted back-propagated factor, per hidden unit (the best scale of the
    input-statistics block): the domino lemma's factor unit by unit."""
    rows = []
    for key, recs in groups.items():
        largest = max(r["width"] for r in recs)
        scales = [
            u["statistics"]["scale"]
            for r in recs
            if r["width"] == largest
            for u in r["unit_blocks"]
            if not u.get("dead") and u["layer"] > 1
        ]
        if not scales:
            continue
        q = np.percentile(scales, [10, 50, 90])
        rows.append(
            [report.label(key), largest, len(scales), _fmt(q[1]), f"{_fmt(q[0])} to {_fmt(q[2])}"]
        )
    text = (
        "**The factor unit by unit.** The scale that best fits the input-statistics block "
        "to a hidden unit's measured block, $\\langle G_{ii}, M\\rangle / "
        "\\langle M, M\\rangle$, is the measured back-propagated factor over the "
        "predicted one: 1 when the domino lemma holds for that unit. Median and 10–90% "
        "range over the hidden units with a whole block, at the largest width.\n\n"
    )
    return text + _table(["network", "n", "units", "median", "10% to 90%"], rows) + "\n"
