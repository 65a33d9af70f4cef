"""Training runs, the tuning grid and the seeds; results as one JSON file.

A run trains one method on one task from one seed and records, after every epoch, the loss on
the whole training set, the validation loss, the validation and test metric (accuracy for
classification, the loss for regression) and the seconds spent in training steps so far
(forward, every backward, the optimizer's step; no evaluation). Tuning trains each point of a
method's grid once (seed ``tuning_seed``) and keeps the lowest final validation loss; the
chosen point is then trained from every seed in ``seeds``.
"""

from __future__ import annotations

import json
import math
import platform
import statistics
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from experiments.training.curvature import loss_value
from experiments.training.methods import METHODS, Method
from experiments.training.tasks import Data, Task, build_tasks

#: A run whose training loss exceeds this (or is not finite) has diverged and stops.
DIVERGED = 1e6


@dataclass(frozen=True)
class Config:
    quick: bool = False
    tasks: tuple[str, ...] = ("teacher_plain", "teacher_residual", "digits", "wide_teacher")
    methods: tuple[str, ...] = tuple(METHODS)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    tuning_seed: int = 100
    data_seed: int = 0
    epochs: int | None = None  # None: the task's own
    max_steps_per_epoch: int | None = None  # the test's tiny configuration
    grid_points: int | None = None  # the first points of each grid only (the test's)
    #: Times the grid is extended one step past an edge where the best point lies.
    extensions: int = 2
    results: str = "docs/figures/training/results.json"
    command: str = "python -m experiments.training"
    extra: dict = field(default_factory=dict)


def source_commit() -> str:
    """The git commit of the working tree (with "+changes" when it differs), or "unknown"."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+changes" if dirty else "")


def train_step(model, optimizer, x, y, loss: str) -> float:
    out = model(x)
    optimizer.zero_grad()
    if hasattr(optimizer, "estimate_factors"):
        optimizer.estimate_factors(out)
    value = loss_value(out, y, loss)
    value.backward()
    optimizer.step()
    return value.item()


@torch.no_grad()
def evaluate(model, x, y, loss: str) -> tuple[float, float]:
    """(loss, metric): the metric is the accuracy for classification and the loss otherwise."""
    out = model(x)
    value = loss_value(out, y, loss).item()
    if loss == "cross_entropy":
        return value, (out.argmax(dim=1) == y).float().mean().item()
    return value, value


def run(task: Task, data: Data, method: Method, lr, damping, seed: int, config: Config) -> dict:
    torch.manual_seed(seed)
    model = task.make_model(seed)
    optimizer = method.build(model, lr, damping, task.loss, seed)
    order = torch.Generator().manual_seed(seed)
    epochs = config.epochs or task.epochs
    record = {
        "seed": seed, "lr": lr, "damping": damping, "diverged": False,
        "train_loss": [], "val_loss": [], "val_metric": [], "test_metric": [], "seconds": [],
        "cpu_seconds": [], "step_seconds": [], "step_cpu_seconds": [],
    }  # fmt: skip

    def log(seconds, cpu_seconds):
        train, _ = evaluate(model, data.x_train, data.y_train, task.loss)
        val, val_metric = evaluate(model, data.x_val, data.y_val, task.loss)
        _, test_metric = evaluate(model, data.x_test, data.y_test, task.loss)
        for key, value in (
            ("train_loss", train), ("val_loss", val), ("val_metric", val_metric),
            ("test_metric", test_metric), ("seconds", seconds), ("cpu_seconds", cpu_seconds),
        ):  # fmt: skip
            record[key].append(value if math.isfinite(value) else None)

    elapsed = cpu_elapsed = 0.0
    log(elapsed, cpu_elapsed)
    samples = len(data.x_train)
    for _ in range(epochs):
        permutation = torch.randperm(samples, generator=order)
        batches = permutation.split(task.batch_size)
        if config.max_steps_per_epoch is not None:
            batches = batches[: config.max_steps_per_epoch]
        for batch in batches:
            start, cpu_start = time.perf_counter(), time.process_time()
            try:
                value = train_step(
                    model, optimizer, data.x_train[batch], data.y_train[batch], task.loss
                )
            except (RuntimeError, ValueError, FloatingPointError) as error:  # e.g. Cholesky fails
                record["error"] = f"{type(error).__name__}: {str(error)[:200]}"
                value = math.inf
            step, cpu_step = time.perf_counter() - start, time.process_time() - cpu_start
            elapsed += step
            cpu_elapsed += cpu_step
            record["step_seconds"].append(step)
            record["step_cpu_seconds"].append(cpu_step)
            if not math.isfinite(value) or value > DIVERGED:
                record["diverged"] = True
                break
        if record["diverged"]:
            break
        log(elapsed, cpu_elapsed)
    record["median_step_ms"] = 1e3 * statistics.median(record.pop("step_seconds"))
    record["median_step_cpu_ms"] = 1e3 * statistics.median(record.pop("step_cpu_seconds"))
    return record


def score(record: dict) -> float:
    """The tuning criterion: the least validation loss over the epochs, as with early stopping
    (∞ for a diverged run). The final one would favour learning rates too small to overfit
    on the tasks that overfit (digits, the wide task)."""
    values = [value for value in record["val_loss"][1:] if value is not None]
    if record["diverged"] or not values:
        return math.inf
    return min(values)


def beyond_edges(trials: list[dict], best: dict) -> list[tuple[float, float | None]]:
    """Grid points one step past the edge where the best point lies (the learning rate with the
    best damping, the damping with the best learning rate), not yet tried."""
    tried = {(t["lr"], t["damping"]) for t in trials}
    points = []
    for key in ("lr", "damping"):
        values = sorted({t[key] for t in trials if t[key] is not None})
        if len(values) < 2:
            continue
        ratio = values[1] / values[0]
        for edge, step in ((values[0], 1 / ratio), (values[-1], ratio)):
            if best[key] == edge:
                point = dict(best, **{key: float(f"{edge * step:.3g}")})
                points.append((point["lr"], point["damping"]))
    return [point for point in points if point not in tried]


def warm_up(task: Task, data: Data, method: Method) -> None:
    """Two untimed steps, so that compilation (numba) falls outside every timed run."""
    lr, damping = method.grid(quick=True)[0]
    model = task.make_model(0)
    optimizer = method.build(model, lr, damping, task.loss, 0)
    for _ in range(2):
        batch = slice(0, task.batch_size)
        train_step(model, optimizer, data.x_train[batch], data.y_train[batch], task.loss)


def applicable(task: Task, method: Method) -> bool:
    return method.available and (task.exact or not method.exact_only)


def study(config: Config, progress=print, merge: bool = False) -> dict:
    """Tune and train every (task, method) of ``config``; write and return the results.

    ``merge``: add the methods to the results file already at ``config.results`` (made with
    the same tasks), keeping what it holds for the other methods; the file is rewritten after
    every (task, method), so that an interrupted study keeps what it finished.
    """
    tasks = build_tasks(config.quick)
    path = Path(config.results)
    previous = json.loads(path.read_text(encoding="utf-8")) if merge else None
    results = {
        "config": asdict(config),
        "machine": {
            "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "commit": source_commit(),
        },
        "tasks": {},
        "skipped": {n: "not available" for n in config.methods if not METHODS[n].available},
        "seconds_before": 0.0 if previous is None else previous["seconds"],
    }  # fmt: skip
    if previous is not None:
        results["sessions"] = previous.get("sessions", [previous["config"]]) + [asdict(config)]
        results["config"] = previous["config"]
        results["config"]["methods"] = list(dict.fromkeys(
            list(previous["config"]["methods"]) + list(config.methods)))  # fmt: skip
        results["tasks"] = previous["tasks"]
        results["skipped"] = {
            name: why for name, why in previous.get("skipped", {}).items()
            if name not in config.methods or not METHODS[name].available
        }  # fmt: skip
        results["skipped"].update(
            {n: "not available" for n in config.methods if not METHODS[n].available}
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    total_start = time.perf_counter()
    for task_name in config.tasks:
        task = tasks[task_name]
        data = task.make_data(config.data_seed)
        task_start = time.perf_counter()
        entry = results["tasks"].get(task_name) or {
            "title": task.title, "loss": task.loss, "description": task.description,
            "parameters": sum(p.numel() for p in task.make_model(0).parameters()
                              if p.requires_grad),
            "epochs": config.epochs or task.epochs, "batch_size": task.batch_size,
            "train_samples": len(data.x_train), "tuning": {}, "chosen": {}, "runs": {},
        }  # fmt: skip
        earlier = entry.get("seconds", 0.0)
        results["tasks"][task_name] = entry
        for method_name in config.methods:
            method = METHODS[method_name]
            if not applicable(task, method):
                continue
            warm_up(task, data, method)
            trials = []
            points = method.grid(config.quick)[: config.grid_points]
            for extension in range(config.extensions + 1):
                for lr, damping in points:
                    record = run(task, data, method, lr, damping, config.tuning_seed, config)
                    trials.append({"lr": lr, "damping": damping, "score": score(record),
                                   "median_step_ms": record["median_step_ms"],
                                   "extension": extension})  # fmt: skip
                best = min(trials, key=lambda trial: trial["score"])
                points = beyond_edges(trials, best)
                if not points or not math.isfinite(best["score"]):
                    break
            entry["tuning"][method_name] = trials
            entry["chosen"][method_name] = {"lr": best["lr"], "damping": best["damping"]}
            entry["runs"][method_name] = [
                run(task, data, method, best["lr"], best["damping"], seed, config)
                for seed in config.seeds
            ]
            progress(
                f"{task_name:>16} {method_name:>22}: lr={best['lr']:g} damping={best['damping']}"
                f" val={best['score']:.4g}  ({time.perf_counter() - task_start:.0f} s)"
            )
            entry["seconds"] = earlier + time.perf_counter() - task_start
            results["seconds"] = (
                results.get("seconds_before", 0.0) + time.perf_counter() - total_start
            )
            path.write_text(json.dumps(results, indent=1, allow_nan=True), encoding="utf-8")
    return results
