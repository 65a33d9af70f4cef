"""docs/training.md and its figures, rendered from the results file alone."""

from __future__ import annotations

import math
import os
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from experiments.training.methods import METHODS  # noqa: E402

COLORS = {
    "sgd": "#999999", "momentum": "#555555", "adam": "#1f77b4",
    "fisher_sym_standard": "#d62728", "fisher_sym_scale": "#ff7f0e",
    "fisher_sym_moments": "#e377c2", "unit_block": "#2ca02c", "quasi_diagonal": "#9467bd",
    "kfac": "#8c564b", "exact": "#17becf",
}  # fmt: skip
FIRST_ORDER = ("sgd", "momentum", "adam")


def _finals(runs: list[dict], key: str) -> list[float]:
    """The last logged value of every seed that did not diverge."""
    return [run[key][-1] for run in runs if not run["diverged"] and run[key][-1] is not None]


def _bests(runs: list[dict]) -> list[float]:
    """The least validation loss over the epochs of every seed that did not diverge."""
    return [
        min(v for v in run["val_loss"][1:] if v is not None)
        for run in runs
        if not run["diverged"] and any(v is not None for v in run["val_loss"][1:])
    ]


def _mean_spread(values: list[float], digits: int = 3) -> str:
    if not values:
        return "diverged"
    mean = statistics.fmean(values)
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:.{digits}g} ± {spread:.1g}"


def _curve(runs: list[dict], key: str):
    """Per epoch: mean, min and max over the seeds that did not diverge."""
    kept = [run[key] for run in runs if not run["diverged"]]
    if not kept:
        return [], [], []
    length = min(len(values) for values in kept)
    columns = [[values[i] for values in kept] for i in range(length)]
    return (
        [statistics.fmean(c) for c in columns],
        [min(c) for c in columns],
        [max(c) for c in columns],
    )


def figure(name: str, task: dict, directory: Path) -> Path:
    classification = task["loss"] == "cross_entropy"
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for method_name, runs in task["runs"].items():
        color = COLORS.get(method_name)
        label = METHODS[method_name].label
        for axis, key, x_key in (
            (axes[0], "train_loss", None),
            (axes[1], "val_metric" if classification else "val_loss", None),
            (axes[2], "train_loss", "cpu_seconds"),
        ):  # fmt: skip
            mean, low, high = _curve(runs, key)
            if not mean:
                continue
            if x_key is None:
                x = list(range(len(mean)))
            else:  # a log axis of time, from the end of the first epoch
                x = _curve(runs, x_key)[0][1 : len(mean)]
                mean, low, high = mean[1:], low[1:], high[1:]
            axis.plot(x, mean, color=color, label=label)
            axis.fill_between(x, low, high, color=color, alpha=0.2, linewidth=0)
    axes[0].set(xlabel="epoch", ylabel="training loss", yscale="log")
    axes[1].set(
        xlabel="epoch",
        ylabel="validation accuracy" if classification else "validation loss",
        yscale="linear" if classification else "log",
    )
    axes[2].set(
        xlabel="CPU seconds in training steps (one thread), from epoch 1",
        ylabel="training loss",
        xscale="log",
        yscale="log",
    )
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{task['title']}: mean over seeds, band from min to max")
    fig.tight_layout()
    path = directory / f"{name}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def time_to_reach(runs: list[dict], target: float) -> str:
    """Epochs and seconds until the training loss first falls to ``target``, mean over the
    seeds that reach it (and how many do)."""
    reached = []
    for run in runs:
        times = run["cpu_seconds"]
        for epoch, (value, seconds) in enumerate(zip(run["train_loss"], times, strict=True)):
            if value is not None and value <= target:
                reached.append((epoch, seconds))
                break
    if not reached:
        return "never"
    epochs = statistics.fmean(e for e, _ in reached)
    seconds = statistics.fmean(s for _, s in reached)
    share = "" if len(reached) == len(runs) else f" ({len(reached)} of {len(runs)} seeds)"
    return f"{epochs:.1f} / {seconds:.3g} s{share}"


def _edge(value, values) -> str:
    """A mark for a chosen value at the edge of its grid (the optimum may lie beyond)."""
    values = sorted({v for v in values if v is not None})
    if value is None or len(values) < 2 or values[0] < value < values[-1]:
        return ""
    return " (edge)"


def task_table(task: dict) -> list[str]:
    classification = task["loss"] == "cross_entropy"
    metric = "test accuracy" if classification else "test loss"
    # The target: the best final training loss of the first-order methods (mean over seeds).
    baselines = [
        statistics.fmean(_finals(task["runs"][name], "train_loss"))
        for name in FIRST_ORDER
        if name in task["runs"] and _finals(task["runs"][name], "train_loss")
    ]
    target = min(baselines) if baselines else None
    lines = [
        f"| method | lr | damping | training loss | validation loss, final (best) | {metric} "
        "| ms per step, CPU (wall) | epochs / CPU seconds to the best first-order final "
        "training loss "
        "| diverged in tuning |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    order = sorted(
        task["runs"],
        key=lambda m: statistics.fmean(_bests(task["runs"][m]) or [math.inf]),
    )
    for method_name in order:
        runs = task["runs"][method_name]
        chosen = task["chosen"][method_name]
        trials = task["tuning"][method_name]
        damping = "–" if chosen["damping"] is None else f"{chosen['damping']:g}"
        damping += _edge(chosen["damping"], [t["damping"] for t in trials])
        lr = f"{chosen['lr']:g}" + _edge(chosen["lr"], [t["lr"] for t in trials])
        reach = "–" if target is None else time_to_reach(runs, target)
        step_ms = statistics.median(run["median_step_ms"] for run in runs)
        cpu_ms = statistics.median(run["median_step_cpu_ms"] for run in runs)
        diverged = sum(1 for t in trials if not math.isfinite(t["score"]))
        lost = sum(1 for run in runs if run["diverged"])
        name = METHODS[method_name].label + (f" ({lost} seeds diverged)" if lost else "")
        lines.append(
            f"| {name} | {lr} | {damping} "
            f"| {_mean_spread(_finals(runs, 'train_loss'))} "
            f"| {_mean_spread(_finals(runs, 'val_loss'))} ({_mean_spread(_bests(runs))}) "
            f"| {_mean_spread(_finals(runs, 'test_metric'))} "
            f"| {cpu_ms:.2f} ({step_ms:.2f}) | {reach} | {diverged} of {len(trials)} |"
        )
    return lines


def summary_table(results: dict) -> list[str]:
    names = list(results["tasks"])
    lines = [
        "| method | " + " | ".join(names) + " |",
        "| --- | " + " | ".join("---" for _ in names) + " |",
    ]
    for method_name in results["config"]["methods"]:
        if not any(method_name in results["tasks"][t]["runs"] for t in names):
            continue
        cells = []
        for task_name in names:
            runs = results["tasks"][task_name]["runs"].get(method_name)
            if runs is None:
                cells.append("–")
                continue
            finals = _bests(runs)
            step_ms = statistics.median(run["median_step_cpu_ms"] for run in runs)
            mean = f"{statistics.fmean(finals):.3g}" if finals else "diverged"
            cells.append(f"{mean} ({step_ms:.1f} ms)")
        lines.append(f"| {METHODS[method_name].label} | " + " | ".join(cells) + " |")
    return lines


def render(results: dict, page: Path, figures: Path, prose: dict[str, str]) -> str:
    """Write the page and its figures; return the page's text."""
    figures.mkdir(parents=True, exist_ok=True)
    config = results["config"]
    kind = "quick run (`--quick`)" if config["quick"] else "full run"
    other = (
        "[the quick run](training_quick.md)"
        if not config["quick"]
        else "[the full run](training.md)"
    )
    task_times = ", ".join(f"{n}: {t['seconds']:.0f} s" for n, t in results["tasks"].items())
    lines = [
        "# Does it train faster?" + (" (quick run)" if config["quick"] else ""),
        "",
        prose["intro"],
        "",
        "## How these numbers were made",
        "",
        "```bash",
        *[session["command"] for session in results.get("sessions", [config])],
        "```",
        "",
        f"This page shows the {kind}: it took {results['seconds'] / 60:.1f} minutes of wall time "
        f"({task_times}) "
        f"on {results['machine']['platform']}, PyTorch {results['machine']['torch']}, "
        f"commit {results['machine'].get('commit', 'unknown')}, "
        f"{results['machine']['threads']} thread(s), on a machine shared with other jobs. "
        "Times are given as CPU time of the process (`time.process_time`), which on one "
        "thread is the wall-clock time the step would take on an idle core, and (in the "
        "tables) as wall-clock time as measured, which the other jobs inflate. "
        f"Seeds {', '.join(map(str, config['seeds']))} at the chosen "
        f"values, tuning seed {config['tuning_seed']}. See also {other}.",
        "",
        prose["protocol"],
        "",
    ]
    if results.get("skipped"):
        lines += [
            "Not run: " + ", ".join(f"{n} ({why})" for n, why in results["skipped"].items()) + ".",
            "",
        ]
    lines += [
        "## Summary",
        "",
        "Least validation loss over the epochs (the tuning criterion), mean over seeds "
        "(median CPU milliseconds per training step).",
        "",
        *summary_table(results),
        "",
    ]
    for name, task in results["tasks"].items():
        path = figure(name, task, figures)
        lines += [
            f"## {task['title']}",
            "",
            f"{task['description']} {task['parameters']} trained parameters; batch "
            f"{task['batch_size']}, {task['epochs']} epochs; loss: {task['loss']}. "
            f"Tuning and seeds took {task['seconds']:.0f} s.",
            "",
            "Final values (and the least validation loss over the epochs), mean ± standard "
            "deviation over the seeds, lowest least validation loss first; (edge): the chosen "
            "value lies at the edge of the grid as extended:",
            "",
            *task_table(task),
            "",
            f"![{task['title']}]({Path(os.path.relpath(path, page.parent)).as_posix()})",
            "",
        ]
    if config["quick"]:
        lines += ["See [the full run](training.md) for what the results say.", ""]
    else:
        lines += [prose["discussion"], ""]
    text = "\n".join(lines)
    page.write_text(text, encoding="utf-8")
    return text
