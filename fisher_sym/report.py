"""Accuracy report: a generated module against the mpmath reference over a standard grid.

For each quantity (A00, A0n, Ann, Abar00, X, Y, Z) the report gives the maximum relative
error over the grid points where the true value is a normal double, and where it occurs;
``mean_field_accuracy`` does the same for ``mean_field`` (E[φ], E[φ²], E[φ'²]) over tau.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import signal
from dataclasses import dataclass, field

import mpmath
import sympy as sp

from fisher_sym import reference

RADII = (0.0, 1e-3, 0.1, 1.0, 10.0, 1e4)
BIASES = (-50.0, -30.0, -10.0, -1.0, 0.0, 1.0, 10.0, 30.0, 50.0)
DAMPINGS = (0.0, 1e-3)
QUANTITIES = ("A00", "A0n", "Ann", "Abar00", "X", "Y", "Z")
_TINY = 2.2250738585072014e-308
#: Seconds the mpmath reference may take for one grid point of ``--report`` before the point
#: is skipped (e.g. GELU far in its tails, where φ'² − 1 needs hundreds of digits in mpmath).
#: The docs pages' grid has no such limit: a clock would leave out different points on
#: different machines, and the pages must come out the same wherever they are rebuilt.
REFERENCE_TIME_LIMIT = 20.0


class ReferenceTimeout(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: float | None):
    """Raise ReferenceTimeout in the block after ``seconds`` of wall time (None: no limit)."""
    if seconds is None:
        yield
        return

    def expire(signum, frame):
        raise ReferenceTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Worst:
    error: float = 0.0
    where: str = "-"
    skipped: list[str] = field(default_factory=list)

    def update(self, got: float, want: mpmath.mpf, where: str) -> None:
        if not _TINY <= abs(want) <= 1.7976931348623157e308:
            return
        error = float(abs(mpmath.mpf(got) - want) / abs(want)) if math.isfinite(got) else math.inf
        if error > self.error:
            self.error, self.where = error, where


def accuracy(
    module_name: str, phi: sp.Expr, radii=RADII, biases=BIASES, dampings=DAMPINGS,
    time_limit: float | None = REFERENCE_TIME_LIMIT,
):
    """{quantity: Worst} for ``generated.<module_name>`` against ``fisher_sym.reference``. A grid
    point is skipped where the reference does not converge (ArithmeticError) or, with a
    ``time_limit``, takes longer than that many seconds."""
    module = importlib.import_module(f"generated.{module_name}")
    worst = {quantity: Worst() for quantity in QUANTITIES}
    for r in radii:
        for b in biases:
            try:
                with _time_limit(time_limit):
                    blocks = reference.fisher_blocks_mp(phi, r, b)
            except (ReferenceTimeout, ArithmeticError):
                for entry in worst.values():
                    entry.skipped.append(f"r={r:g}, b={b:g}")
                continue
            if r == 0.0:
                blocks = (blocks[0], mpmath.mpf(0), blocks[0])
            for quantity, got, want in zip(QUANTITIES, module.fisher_blocks(r, b), blocks):
                worst[quantity].update(got, want, f"r={r:g}, b={b:g}")
            for damping in dampings:
                if float(blocks[0]) + damping == 0.0:
                    continue
                try:
                    with _time_limit(time_limit):
                        want = reference.inverse_coefficients_of(phi, r, b, damping)
                except (ReferenceTimeout, ArithmeticError):
                    for quantity in QUANTITIES[3:]:
                        worst[quantity].skipped.append(f"r={r:g}, b={b:g}, damping={damping:g}")
                    continue
                got = module.inverse_coefficients(r, b, damping)
                for quantity, g, w in zip(QUANTITIES[3:], got, want):
                    worst[quantity].update(g, w, f"r={r:g}, b={b:g}, damping={damping:g}")
    return worst


def format_table(rows: dict[str, dict[str, Worst]]) -> str:
    """A Markdown table: one row per activation, the max relative error of each quantity."""
    lines = [
        "| activation | " + " | ".join(QUANTITIES) + " |",
        "|---" * (len(QUANTITIES) + 1) + "|",
    ]
    for name, worst in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{worst[q].error:.1e}" for q in QUANTITIES) + " |")
    return "\n".join(lines)


# --- the mean field -----------------------------------------------------------------------------

#: The tau grid of ``mean_field_accuracy``: from 0 to 1e4.
MEAN_FIELD_TAUS = (0.0, 1e-8, 1e-4, 0.01, 0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 100.0, 1e3, 1e4)
MEAN_FIELD_QUANTITIES = ("E[φ]", "E[φ²]", "E[φ'²]")


def mean_field_accuracy(module_name: str, phi: sp.Expr, taus=MEAN_FIELD_TAUS, dps: int = 40):
    """{quantity: Worst} for ``generated.<module_name>.mean_field`` against
    ``reference.mean_field_mp`` at ``dps`` digits on ``taus``. Where E[φ(τv)] is 0 (an odd φ,
    by symmetry) its error is |got| / E[|φ(τv)|] instead of a relative one."""
    module = importlib.import_module(f"generated.{module_name}")
    worst = {quantity: Worst() for quantity in MEAN_FIELD_QUANTITIES}
    for tau in taus:
        where = f"tau={tau:g}"
        got = module.mean_field(tau)
        want = reference.mean_field_mp(phi, tau, dps)
        for quantity, g, w in zip(MEAN_FIELD_QUANTITIES, got, want, strict=True):
            if w == 0:
                scale = reference.mean_abs_mp(phi, tau)
                error = float(abs(g) / scale) if scale else float(g != 0) * math.inf
                if error > worst[quantity].error:
                    worst[quantity].error, worst[quantity].where = error, where
            else:
                worst[quantity].update(g, w, where)
    return worst


def format_mean_field_table(rows: dict[str, dict[str, Worst]]) -> str:
    """A Markdown table: one row per activation, the max error of each mean-field quantity."""
    lines = [
        "| activation | " + " | ".join(MEAN_FIELD_QUANTITIES) + " |",
        "|---" * (len(MEAN_FIELD_QUANTITIES) + 1) + "|",
    ]
    for name, worst in rows.items():
        cells = " | ".join(f"{worst[q].error:.1e}" for q in MEAN_FIELD_QUANTITIES)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)
