"""A whole training step with fisher_sym.torch.UnitwiseNaturalGradient against the same step
with torch.optim.SGD and torch.optim.Adam: the 784-1024-1024-10 ReLU MLP, batch 128, CPU
float32 (``python -m benchmarks --training``). A step is the forward pass, the optimizer's extra
backward pass where it has one (``estimate_factors``), the loss's backward pass and ``step()``.
"""

from __future__ import annotations

import torch
from torch import nn

WIDTHS = (784, 1024, 1024, 10)
BATCH = 128


def _model(seed=0):
    torch.manual_seed(seed)
    layers = []
    for fan_in, fan_out in zip(WIDTHS[:-1], WIDTHS[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers[:-1])


def contenders():
    """name -> a zero-argument training step, each on its own copy of one model and batch."""
    from fisher_sym.torch import UnitwiseNaturalGradient

    generator = torch.Generator().manual_seed(1)
    x = torch.randn(BATCH, WIDTHS[0], generator=generator)
    y = torch.randint(0, WIDTHS[-1], (BATCH,), generator=generator)

    def step_of(make_optimizer):
        model = _model()
        optimizer = make_optimizer(model)

        def step():
            out = model(x)
            optimizer.zero_grad()
            if isinstance(optimizer, UnitwiseNaturalGradient):
                optimizer.estimate_factors(out)
            nn.functional.cross_entropy(out, y).backward()
            optimizer.step()

        return step

    def unitwise(**options):
        return lambda model: UnitwiseNaturalGradient(model, lr=1e-3, damping=1e-2,
                                                     loss="cross_entropy", **options)

    return {
        "SGD": step_of(lambda model: torch.optim.SGD(model.parameters(), lr=1e-3)),
        "Adam": step_of(lambda model: torch.optim.Adam(model.parameters(), lr=1e-3)),
        "unit-wise, moments, sampled": step_of(unitwise(inputs="moments", fisher="sampled")),
        "unit-wise, moments, sampled every 10": step_of(
            unitwise(inputs="moments", fisher="sampled", factor_every=10)),
        "unit-wise, moments, empirical": step_of(unitwise(inputs="moments", fisher="empirical")),
        "unit-wise, standard, none": step_of(unitwise(inputs="standard", fisher="none")),
    }


def print_training_rows(timed, min_time, max_repeats):
    """Time every contender round-robin with ``timed`` and print a Markdown table."""
    times = timed(contenders(), min_time, max_repeats)
    print(f"Training step, {'-'.join(map(str, WIDTHS))} ReLU MLP, batch {BATCH}, CPU float32, "
          f"torch {torch.__version__} with {torch.get_num_threads()} threads; ms per step "
          "(forward, extra backward if any, backward, step):\n")
    print("| optimizer | ms per step | / SGD | / Adam |")
    print("|---|---|---|---|")
    for name, seconds in times.items():
        print(f"| {name} | {seconds * 1e3:.2f} | {seconds / times['SGD']:.2f} | "
              f"{seconds / times['Adam']:.2f} |")
    print()
