"""The study's configurations and the loop that runs them; results are plain JSON records."""

from __future__ import annotations

import functools
import importlib
import itertools
import time
from dataclasses import asdict, dataclass

import numpy as np

from fisher_sym import meanfield

from . import measure
from .network import random_network

#: σ_w of each phase as a multiple of the edge of chaos σ_w (χ* = 1) at the study's σ_b.
PHASES = {"ordered": 0.75, "edge": 1.0, "chaotic": 1.5}


@dataclass(frozen=True)
class Family:
    """A set of networks measured at every width: architecture, activations, phases, depth,
    output width ("1" or "n")."""

    architecture: str  # "plain" or "residual"
    activations: tuple
    phases: tuple
    depth: int
    outputs: tuple
    widths: tuple
    seeds: int | None = None  # None: the configuration's


@dataclass(frozen=True)
class Config:
    """One run of the study. Seeds: network s of a family uses ``seed``·1000 + s for its
    weights and, separately, for its inputs and sampled units."""

    name: str
    families: tuple
    seeds: int
    sampling: measure.Sampling
    ng_families: tuple
    ng_seeds: int
    ng_rows_per_parameter: int = 8  # inputs × n_L ≥ this × P for the whole G
    dampings: tuple = (1e-3, 1e-1)
    sigma_b: float = 0.3
    sigma_v: float = 1.0
    alpha: float = 0.5
    seed: int = 2019
    batch_ng: int = 64
    ng_after: int | None = None  # run the natural gradients after this many families


ACTIVATIONS = ("relu", "tanh", "erf", "gelu")
WIDTHS = (32, 64, 128, 256, 512, 1024)


def quick_config() -> Config:
    return Config(
        name="quick",
        families=(
            Family("plain", ("relu", "tanh"), ("edge",), 3, ("n", "1"), (32, 64, 128, 256)),
            Family("residual", ("relu", "tanh"), ("edge",), 3, ("n",), (32, 64, 128, 256)),
        ),
        seeds=3,
        sampling=measure.Sampling(samples=1024, batch=256, units=6, full_units=2, coordinates=24),
        ng_families=(
            Family("plain", ("relu", "tanh"), ("edge",), 3, ("n", "1"), (8, 16)),
            Family("residual", ("relu", "tanh"), ("edge",), 3, ("n",), (8, 16)),
        ),
        ng_seeds=2,
        ng_rows_per_parameter=16,
        dampings=(1e-2, 1e-1),
    )


def full_config() -> Config:
    """The first thirteen families were sized for at most 30 minutes on 2 shared cores
    (single-threaded BLAS): every activation in every phase; n = 1024 (2 networks) for
    plain networks with n_L = n, 512 otherwise (256 for the residual networks off the edge
    of chaos); L = 5, and the natural gradient at n = 32, for relu and tanh only. The
    families after them extend this to the rest of the issue's grid (n = 1024 for n_L = 1
    and residual networks, L = 5 for erf and gelu and with n_L = 1, L = 4, L = 4 and 5 off
    the edge of chaos); they were run later, with ``--only-missing``, which runs only the
    networks not yet in the saved results. Families run in this order, most needed first;
    the results are saved after each."""
    two = ("relu", "tanh")
    late = ("erf", "gelu")
    others = ("ordered", "chaotic")
    return Config(
        name="full",
        families=(
            Family("plain", ACTIVATIONS, ("edge",), 3, ("n",), WIDTHS[:-1]),
            Family("plain", ACTIVATIONS, ("edge",), 3, ("n",), WIDTHS[-1:], seeds=2),
            Family("residual", ACTIVATIONS, ("edge",), 3, ("n",), WIDTHS[:-2]),
            Family("residual", ACTIVATIONS, ("edge",), 3, ("n",), WIDTHS[-2:-1], seeds=2),
            Family("plain", ACTIVATIONS, ("edge",), 3, ("1",), WIDTHS[:-1]),
            Family("plain", ACTIVATIONS, others, 3, ("n",), WIDTHS[:-1]),
            Family("plain", ACTIVATIONS, others, 3, ("n",), WIDTHS[-1:], seeds=2),
            Family("plain", ACTIVATIONS, others, 3, ("1",), WIDTHS[:-1]),
            Family("residual", ACTIVATIONS, others, 3, ("n",), WIDTHS[:-2]),
            Family("plain", two, ("edge",), 5, ("n",), WIDTHS[:-2]),
            Family("plain", two, ("edge",), 5, ("n",), WIDTHS[-2:-1], seeds=2),
            Family("residual", two, ("edge",), 5, ("n",), WIDTHS[:-2]),
            Family("residual", two, ("edge",), 5, ("n",), WIDTHS[-2:-1], seeds=2),
            # added later, run with --only-missing: the rest of the grid
            Family("plain", ACTIVATIONS, ("edge",), 3, ("1",), WIDTHS[-1:], seeds=2),
            Family("residual", ACTIVATIONS, ("edge",), 3, ("n",), WIDTHS[-1:], seeds=2),
            Family("plain", late, ("edge",), 5, ("n",), WIDTHS[:-2]),
            Family("plain", late, ("edge",), 5, ("n",), WIDTHS[-2:-1], seeds=2),
            Family("residual", late, ("edge",), 5, ("n",), WIDTHS[:-2]),
            Family("residual", late, ("edge",), 5, ("n",), WIDTHS[-2:-1], seeds=2),
            Family("plain", ACTIVATIONS, ("edge",), 5, ("1",), WIDTHS[:-1]),
            Family("plain", ACTIVATIONS, others, 3, ("1",), WIDTHS[-1:], seeds=2),
            Family("residual", ACTIVATIONS, others, 3, ("n",), WIDTHS[-2:], seeds=2),
            Family("plain", ACTIVATIONS, others, 5, ("n",), WIDTHS[:-1]),
            Family("plain", ACTIVATIONS, ("edge",), 5, ("1",), WIDTHS[-1:], seeds=2),
            Family("plain", ACTIVATIONS, ("edge",), 5, ("n",), WIDTHS[-1:], seeds=2),
            Family("residual", ACTIVATIONS, ("edge",), 5, ("n",), WIDTHS[-1:], seeds=2),
            Family("plain", ACTIVATIONS, ("edge",), 4, ("n", "1"), WIDTHS[:-1]),
            Family("residual", ACTIVATIONS, ("edge",), 4, ("n",), WIDTHS[:-1]),
            Family("plain", ACTIVATIONS, ("edge",), 4, ("n", "1"), WIDTHS[-1:], seeds=2),
            Family("residual", ACTIVATIONS, ("edge",), 4, ("n",), WIDTHS[-1:], seeds=2),
            Family("residual", ACTIVATIONS, others, 4, ("n",), WIDTHS[:-1]),
            Family("plain", ACTIVATIONS, others, 4, ("n", "1"), WIDTHS[:-1]),
            Family("residual", ACTIVATIONS, others, 5, ("n",), WIDTHS[:-1]),
            Family("plain", ACTIVATIONS, others, 5, ("1",), WIDTHS[:-1]),
            Family("plain", ACTIVATIONS, others, 4, ("n", "1"), WIDTHS[-1:], seeds=2),
            Family("plain", ACTIVATIONS, others, 5, ("n", "1"), WIDTHS[-1:], seeds=2),
            Family("residual", ACTIVATIONS, others, 4, ("n",), WIDTHS[-1:], seeds=2),
            Family("residual", ACTIVATIONS, others, 5, ("n",), WIDTHS[-1:], seeds=2),
        ),
        seeds=3,
        sampling=measure.Sampling(samples=2048, batch=256, units=8, full_units=2, coordinates=32),
        ng_families=(
            Family("plain", ACTIVATIONS, ("edge",), 3, ("n",), (8, 16, 24)),
            Family("plain", ACTIVATIONS, ("edge",), 3, ("1",), (8, 16, 24)),
            Family("residual", ACTIVATIONS, ("edge",), 3, ("n",), (8, 16, 24)),
            Family("plain", two, ("edge",), 3, ("n", "1"), (32,)),
            Family("residual", two, ("edge",), 3, ("n",), (32,)),
        ),
        ng_seeds=2,
        ng_rows_per_parameter=16,
        dampings=(1e-2, 1e-1),
        ng_after=5,
    )


def tiny_config() -> Config:
    """For the test suite: seconds."""
    return Config(
        name="tiny",
        families=(
            Family("plain", ("tanh",), ("edge",), 3, ("n", "1"), (8, 16)),
            Family("residual", ("relu",), ("edge",), 3, ("n",), (8, 16)),
        ),
        seeds=2,
        sampling=measure.Sampling(samples=256, batch=64, units=4, full_units=1, coordinates=4),
        ng_families=(Family("plain", ("tanh",), ("edge",), 3, ("1",), (4, 6)),),
        ng_seeds=1,
        dampings=(1e-2,),
    )


def _module(name):
    return importlib.import_module(f"generated.{name}")


@functools.cache
def _phase(activation: str, phase: str, sigma_b: float) -> tuple[float, float]:
    """(σ_w, χ*) of a phase."""
    module = _module(activation)
    sigma_w = PHASES[phase] * meanfield.edge_of_chaos(module, sigma_b)
    return sigma_w, meanfield.fixed_point(module, sigma_w, sigma_b).chi


def _build(config: Config, family: Family, activation, phase, output, width, seed):
    module = _module(activation)
    sigma_w, chi_star = _phase(activation, phase, config.sigma_b)
    out = width if output == "n" else 1
    rng = np.random.default_rng(
        [
            config.seed,
            seed,
            width,
            out,
            family.depth,
            ACTIVATIONS.index(activation) if activation in ACTIVATIONS else 9,
            list(PHASES).index(phase),
            family.architecture == "residual",
        ]
    )
    residual = (config.sigma_v, config.alpha) if family.architecture == "residual" else None
    net = random_network(
        activation, width, family.depth, out, sigma_w, config.sigma_b, rng, residual
    )
    if residual is None:
        field_ = meanfield.plain_network(module, sigma_w, config.sigma_b, family.depth)
    else:
        field_ = meanfield.residual_network(
            module, sigma_w, config.sigma_b, config.sigma_v, config.alpha, family.depth
        )
    spec = {
        "architecture": family.architecture,
        "activation": activation,
        "phase": phase,
        "depth": family.depth,
        "output": output,
        "width": width,
        "seed": seed,
        "sigma_w": sigma_w,
        "chi_star": chi_star,
        "chi": [float(c) for c in field_.chi],
    }
    return module, net, field_, rng, spec


def _batches(rng, count, batch, width):
    for _ in range(count // batch):
        yield rng.normal(size=(batch, width))


def key(record) -> tuple:
    """What identifies one network of a run: its family's coordinates, width and seed."""
    names = ("architecture", "activation", "phase", "depth", "output", "width", "seed")
    return tuple(record[k] for k in names)


def family_keys(family, seeds):
    for activation in family.activations:
        for phase in family.phases:
            for output in family.outputs:
                for width in family.widths:
                    for seed in range(family.seeds or seeds):
                        arch, depth = family.architecture, family.depth
                        yield (arch, activation, phase, depth, output, width, seed)


def run(
    config: Config, log=print, checkpoint=None, done=(frozenset(), frozenset()), part=(0, 1)
) -> dict:
    """Run every family and seed; returns {"config", "structure", "natural_gradient",
    "seconds", "complete"}. ``checkpoint`` gets the partial results after each family.
    ``done``: the keys (see :func:`key`) of the networks (block structure, natural gradient)
    already measured, skipped; ``part`` = (i, k): of the families with anything left to run,
    only every k-th from the i-th (to split a run between processes)."""
    start = time.perf_counter()
    structure, natural = [], []

    def partial(complete=False):
        return {
            "config": asdict(config),
            "structure": structure,
            "natural_gradient": natural,
            "seconds": time.perf_counter() - start,
            "complete": complete,
        }

    sampling = config.sampling

    def measure_family(family, seeds, measured, records, measure_network, label):
        """Measure each network of ``family`` not in ``measured`` into ``records``; one log
        line per width (``label`` of the family's coordinates and the last network)."""
        pending = [k for k in family_keys(family, seeds) if k not in measured]
        for _, networks in itertools.groupby(pending, key=lambda k: k[:6]):
            for _, activation, phase, _, output, width, seed in networks:
                t0 = time.perf_counter()
                module, net, field_, rng, spec = _build(
                    config, family, activation, phase, output, width, seed
                )
                records.append({**spec, **measure_network(module, net, field_, rng, width)})
                records[-1]["seconds"] = time.perf_counter() - t0
            log(f"{label(records[-1])} ({time.perf_counter() - start:.0f} s)")

    def structure_family(family):
        def measure_network(module, net, field_, rng, width):
            return measure.measure_structure(
                net,
                _batches(rng, sampling.samples, sampling.batch, width),
                module,
                field_,
                sampling,
                rng,
                config.sigma_v if net.residual else None,
            )

        measure_family(
            family, config.seeds, done[0], structure, measure_network,
            lambda r: (f"{r['architecture']} L={r['depth']} {r['activation']} {r['phase']} "
                       f"n_L={r['output']} n={r['width']}: {r['seconds']:.1f} s per network"),
        )

    def natural_family(family):
        measure_family(
            family, config.ng_seeds, done[1], natural,
            lambda module, net, field_, rng, width: _natural(config, module, net, field_, rng),
            lambda r: (f"natural gradient {r['architecture']} {r['activation']} {r['phase']} "
                       f"n_L={r['output']} n={r['width']}"),
        )

    ng_after = len(config.families) if config.ng_after is None else config.ng_after
    steps = [(structure_family, f) for f in config.families[:ng_after]]
    steps += [(natural_family, f) for f in config.ng_families]
    steps += [(structure_family, f) for f in config.families[ng_after:]]
    steps = [
        (step, family)
        for step, family in steps
        if any(
            k not in done[step is natural_family]
            for k in family_keys(
                family, config.ng_seeds if step is natural_family else config.seeds
            )
        )
    ]
    for step, family in steps[part[0] :: part[1]]:
        step(family)
        if checkpoint is not None:
            checkpoint(partial())
    return partial(complete=True)


def _natural(config, module, net, field_, rng) -> dict:
    size = net.parameter_count
    batch = config.batch_ng
    rows_needed = config.ng_rows_per_parameter * size
    count = max(1024, -(-rows_needed // net.output_width))
    count = -(-count // (2 * batch)) * 2 * batch
    width = net.widths[0]
    g, noise = measure.full_fisher(net, _batches(rng, count, batch, width))
    statistics = measure.layer_input_statistics(net, _batches(rng, 4096, 512, width))
    x0 = rng.normal(size=(32, width))
    targets = rng.normal(size=(32, net.output_width))
    gradient = measure.loss_gradient(net, x0, targets)
    sigma_v = config.sigma_v if net.residual else None
    return {
        "parameters": size,
        "samples": count,
        "cosines": [
            measure.natural_gradients(
                net, module, field_, g, noise, gradient, d, statistics, sigma_v
            )
            for d in config.dampings
        ],
    }
