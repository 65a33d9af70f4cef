"""The compared methods: a name, a label, a grid of learning rates (and dampings), a builder.

Every builder takes (model, lr, damping, loss, seed) and returns a ``torch.optim.Optimizer``;
those with a curvature estimate also have ``estimate_factors(out)`` (see ``curvature``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from experiments.training import curvature

try:
    from fisher_sym.torch import UnitwiseNaturalGradient
except ImportError:  # pragma: no cover - until fisher_sym.torch exists
    UnitwiseNaturalGradient = None

#: Log grids, steps of √10: six learning rates, three dampings (``quick``: learning rates two
#: to four, the upper two dampings). A first run with five learning rates per method chose the
#: largest for every first-order method on the teacher task, so the grids reach one step higher.
NATURAL_LRS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
DAMPINGS = (1e-3, 3e-2, 1.0)


@dataclass(frozen=True)
class Method:
    name: str
    label: str
    lrs: tuple[float, ...]
    dampings: tuple[float | None, ...]
    build: Callable[..., torch.optim.Optimizer]
    exact_only: bool = False  # needs a network small enough for the dense G
    available: bool = True
    note: str = ""

    def grid(self, quick: bool) -> list[tuple[float, float | None]]:
        lrs = self.lrs[1:4] if quick else self.lrs
        dampings = self.dampings
        if quick and len(dampings) > 1:
            dampings = dampings[1:]
        return [(lr, damping) for lr in lrs for damping in dampings]


def _torch_optimizer(kind: str):
    def build(model, lr, damping, loss, seed):
        parameters = [p for p in model.parameters() if p.requires_grad]
        if kind == "sgd":
            return torch.optim.SGD(parameters, lr=lr)
        if kind == "momentum":
            return torch.optim.SGD(parameters, lr=lr, momentum=0.9)
        return torch.optim.Adam(parameters, lr=lr)

    return build


def _curvature(cls):
    def build(model, lr, damping, loss, seed):
        return cls(model, lr=lr, damping=damping, loss=loss, seed=seed)

    return build


def _fisher_sym(inputs: str):
    def build(model, lr, damping, loss, seed):
        if UnitwiseNaturalGradient is None:
            raise RuntimeError("fisher_sym.torch is not available")
        torch.manual_seed(seed)
        return UnitwiseNaturalGradient(
            model, lr=lr, damping=damping, inputs=inputs, fisher="sampled", loss=loss
        )

    return build


METHODS: dict[str, Method] = {
    method.name: method
    for method in (
        Method(
            "sgd", "SGD", (0.01, 0.03, 0.1, 0.3, 1.0, 3.0), (None,), _torch_optimizer("sgd")
        ),
        Method(
            "momentum", "SGD, momentum 0.9", (0.003, 0.01, 0.03, 0.1, 0.3, 1.0), (None,),
            _torch_optimizer("momentum"),
        ),
        Method(
            "adam", "Adam", (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2), (None,),
            _torch_optimizer("adam"),
        ),
        *(
            Method(
                f"fisher_sym_{inputs}", f"fisher_sym ({inputs})", NATURAL_LRS, DAMPINGS,
                _fisher_sym(inputs), available=UnitwiseNaturalGradient is not None,
                note="fisher_sym.torch.UnitwiseNaturalGradient, fisher='sampled'",
            )
            for inputs in ("standard", "scale", "moments")
        ),
        Method(
            "unit_block", "unit-wise block (mini-batch)", NATURAL_LRS, DAMPINGS,
            _curvature(curvature.UnitBlockNaturalGradient),
        ),
        Method(
            "quasi_diagonal", "quasi-diagonal", NATURAL_LRS, DAMPINGS,
            _curvature(curvature.QuasiDiagonalNaturalGradient),
        ),
        Method("kfac", "K-FAC", NATURAL_LRS, DAMPINGS, _curvature(curvature.KFAC)),
        Method(
            "exact", "exact natural gradient", NATURAL_LRS, DAMPINGS,
            _curvature(curvature.ExactNaturalGradient), exact_only=True,
        ),
    )
}  # fmt: skip
