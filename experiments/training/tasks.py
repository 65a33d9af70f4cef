"""The training tasks: data sets (train, validation, test) and the networks that learn them.

- ``teacher_plain``: the paper's setting (Amari, Karakida & Oizumi 2019, Sec. 2 and 6): inputs
  x ~ N(0, I), targets y = teacher(x) + ε from a random tanh network of the student's shape.
- ``teacher_residual``: the same with the residual network of Sec. 6,
  x ← α x + V φ(W x + b), V fixed and random, α < 1, only W, b (and the read-out) trained.
- ``digits``: scikit-learn's handwritten digits (1797 8×8 images shipped with the package),
  an MLP classifier with ReLU units.
- ``wide_teacher``: the larger task: a wider and deeper tanh student (3 hidden layers of 96
  units, ≈ 26 000 parameters, 10 outputs) learning a random teacher of its shape from 8192
  samples, y = teacher(x) + ε. It is chosen because the paper's block-diagonal Fisher is a
  statement about wide networks, so this is where the unit-wise approximation should be
  closest to the truth, while it still trains in minutes on 2 cores; it has too many
  parameters for the exact natural gradient. Teacher and student are drawn with σ_w = 1
  (the ordered side of the edge of chaos): a teacher drawn with σ_w = 1.5, or arg-max labels
  of one, made a task on which every method overfits within two epochs (a first version was
  classification by arg-max labels, 4096 samples), which measures generalization, not
  training.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class Data:
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@dataclass(frozen=True)
class Task:
    """One task: how to make its data and its network, and how long to train."""

    name: str
    title: str
    loss: str  # "mse" or "cross_entropy"
    make_data: Callable[[int], Data]
    make_model: Callable[[int], nn.Module]  # seed → a freshly initialized network
    batch_size: int
    epochs: int
    exact: bool  # small enough for the exact natural gradient (P ≲ 1500)
    description: str


class FixedResidualBlock(nn.Module):
    """x ← α x + V φ(W x + b) with V ~ N(0, σ_v²/n) fixed (a buffer); W, b an nn.Linear.

    The block of ``fisher_sym.torch.ResidualBlock`` (the test compares them), defined here so
    that every method, whenever it runs, trains the same network from the same draws."""

    def __init__(self, n: int, activation: str, alpha: float, sigma_v: float):
        super().__init__()
        self.linear = nn.Linear(n, n)
        self.activation = ACTIVATIONS[activation]()
        self.alpha = alpha
        self.register_buffer("v", torch.randn(n, n) * sigma_v / math.sqrt(n))

    def forward(self, x):
        return self.alpha * x + self.activation(self.linear(x)) @ self.v.T


ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
#: The seed of the residual network's fixed mixing matrices V.
MIXING_SEED = 7


def initialize(model: nn.Module, sigma_w: float, sigma_b: float) -> nn.Module:
    """The paper's random network: W ~ N(0, σ_w²/n), b ~ N(0, σ_b²) for every nn.Linear."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                module.weight.normal_(0.0, sigma_w / math.sqrt(module.in_features))
                module.bias.normal_(0.0, sigma_b)
    return model


def mlp(widths: list[int], activation: str) -> nn.Sequential:
    layers: list[nn.Module] = []
    for index, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if index < len(widths) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def residual_network(width: int, blocks: int, outputs: int, alpha: float, sigma_v: float):
    return nn.Sequential(
        *[FixedResidualBlock(width, "tanh", alpha, sigma_v) for _ in range(blocks)],
        nn.Linear(width, outputs),
    )


def split(x: np.ndarray, y: np.ndarray, sizes: tuple[int, int, int], seed: int, dtype) -> Data:
    order = np.random.default_rng(seed).permutation(len(x))
    cuts = np.cumsum(sizes)
    parts = np.split(order, cuts[:-1])
    x_t = torch.as_tensor(x, dtype=torch.float32)
    y_t = torch.as_tensor(y, dtype=dtype)
    train, val, test = parts[0], parts[1], parts[2][: sizes[2]]
    return Data(x_t[train], y_t[train], x_t[val], y_t[val], x_t[test], y_t[test])


def teacher_data(
    teacher: nn.Module, n_in: int, sizes, seed: int, noise: float, classes: bool
) -> Data:
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(sum(sizes), n_in, generator=generator)
    with torch.no_grad():
        f = teacher(x)
    if classes:
        y = f.argmax(dim=1).numpy()
        return split(x.numpy(), y, sizes, seed, torch.long)
    y = f + noise * torch.randn(f.shape, generator=generator)
    return split(x.numpy(), y.numpy(), sizes, seed, torch.float32)


def seeded(make: Callable[[], nn.Module], seed: int, sigma_w: float, sigma_b: float):
    torch.manual_seed(seed)
    return initialize(make(), sigma_w, sigma_b)


def build_tasks(quick: bool) -> dict[str, Task]:
    """The four tasks; ``quick`` shrinks the data and the number of epochs."""
    scale = 4 if quick else 1

    # (a) the paper's student and teacher: 16 → 16 → 16 → 1, tanh, σ_w = 1.5, σ_b = 0.3.
    plain_widths = [16, 16, 16, 1]
    sizes_a = (2048 // scale, 512, 1024 // scale)

    def plain_model():
        return mlp(plain_widths, "tanh")

    def plain_data(seed):
        teacher = seeded(plain_model, seed + 10_000, 1.5, 0.3)
        return teacher_data(teacher, 16, sizes_a, seed, noise=0.1, classes=False)

    # (a') residual: 16 → 3 blocks of 16 (α = 0.7, σ_v = 1) → 1.
    def residual_model():
        return residual_network(16, 3, 1, alpha=0.7, sigma_v=1.0)

    def residual_student(seed):
        # Teacher and students share the fixed V (drawn from one seed), so the teacher is
        # reachable; W and b are drawn from ``seed``.
        torch.manual_seed(MIXING_SEED)
        model = residual_model()
        torch.manual_seed(seed)
        return initialize(model, 1.5, 0.3)

    def residual_data(seed):
        teacher = residual_student(seed + 20_000)
        return teacher_data(teacher, 16, sizes_a, seed, noise=0.1, classes=False)

    # (b) digits: 64 → 64 → 64 → 10, ReLU, inputs standardized with the training statistics.
    def digits_data(seed):
        from sklearn.datasets import load_digits

        images, labels = load_digits(return_X_y=True)
        data = split(images, labels, (1077, 360, 360), seed, torch.long)
        mean, std = data.x_train.mean(0), data.x_train.std(0).clamp_min(1e-3)
        return Data(
            (data.x_train - mean) / std, data.y_train,
            (data.x_val - mean) / std, data.y_val,
            (data.x_test - mean) / std, data.y_test,
        )  # fmt: skip

    def digits_model():
        return mlp([64, 64, 64, 10], "relu")

    # (c) wide: 64 → 96 → 96 → 96 → 10, tanh, σ_w = 1, σ_b = 0.3.
    wide_widths = [64, 96, 96, 96, 10]
    sizes_c = (8192 // scale, 1024 // scale, 1024 // scale)

    def wide_model():
        return mlp(wide_widths, "tanh")

    def wide_data(seed):
        teacher = seeded(wide_model, seed + 30_000, 1.0, 0.3)
        return teacher_data(teacher, 64, sizes_c, seed, noise=0.1, classes=False)

    tasks = [
        Task(
            "teacher_plain",
            "Student and teacher, plain tanh network",
            "mse",
            plain_data,
            lambda seed: seeded(plain_model, seed, 1.5, 0.3),
            batch_size=64,
            epochs=3 if quick else 12,
            exact=True,
            description="x ~ N(0, I₁₆), y = teacher(x) + N(0, 0.1²); 16-16-16-1 tanh; "
            "σ_w = 1.5, σ_b = 0.3 for teacher and student; "
            f"{sizes_a[0]} training samples.",
        ),
        Task(
            "teacher_residual",
            "Student and teacher, residual network (Sec. 6)",
            "mse",
            residual_data,
            residual_student,
            batch_size=64,
            epochs=3 if quick else 12,
            exact=True,
            description="x ~ N(0, I₁₆), y = teacher(x) + N(0, 0.1²); three blocks "
            "x ← 0.7 x + V tanh(W x + b) of width 16 with V fixed, N(0, 1/16), the same in "
            "teacher and student, then a linear "
            f"read-out; {sizes_a[0]} training samples.",
        ),
        Task(
            "digits",
            "scikit-learn digits, MLP classifier",
            "cross_entropy",
            digits_data,
            lambda seed: seeded(digits_model, seed, math.sqrt(2.0), 0.0),
            batch_size=64,
            epochs=3 if quick else 15,
            exact=False,
            description="1797 8×8 images, split 1077 / 360 / 360 (train / validation / "
            "test); 64-64-64-10 ReLU, He initialization.",
        ),
        Task(
            "wide_teacher",
            "Wide student and teacher (the larger task)",
            "mse",
            wide_data,
            lambda seed: seeded(wide_model, seed, 1.0, 0.3),
            batch_size=128,
            epochs=2 if quick else 6,
            exact=False,
            description="x ~ N(0, I₆₄), y = teacher(x) + N(0, 0.1² I₁₀); 64-96-96-96-10 tanh; "
            f"σ_w = 1, σ_b = 0.3 for teacher and student; {sizes_c[0]} training samples; "
            "chosen as the wide regime, where the paper's block-diagonal Fisher should hold "
            "best, that still runs in minutes on 2 cores.",
        ),
    ]
    return {task.name: task for task in tasks}
