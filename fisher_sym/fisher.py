"""The unit-wise Fisher block in dyadic form, its damped inverse, and the stable form of both.

Conventions: a unit u = w·x + b with x ~ N(0, I_n); parameters ordered (w_1, …, w_n, b);
r = |w|, ŵ = (w/r, 0) and e0 = (0, …, 0, 1) in R^(n+1). With A00, A0n, Ann the Gaussian
integrals of ``gaussian.py``, the Fisher block is

    G = A00·I + (Ann − A00)·ŵŵᵀ + A0n·(e0ŵᵀ + ŵe0ᵀ).

Every operator α·I + (a 2×2 matrix on span{ŵ, e0}) is stored as that pair (``Dyadic``): the
product of two such operators is the pair of products, because ŵ ⊥ e0 are unit vectors and
I acts as α on their orthogonal complement. The inverse coefficients of

    (G + λI)⁻¹ = Ā00·I + X·ŵŵᵀ + Y·(e0ŵᵀ + ŵe0ᵀ) + Z·e0e0ᵀ

are *solved for* from (G + λI)·(G + λI)⁻¹ = I in this algebra, never typed in.

The solved coefficients are then rewritten for floating point (``stable_inverse_coefficients``):
with A0n = A00·m1 and Ann = A00·(v + m1²), where m1 and v are the mean and variance of z under
the density ∝ φ'(rz+b)² φ(z), and s = A00 + λ, a = A00/s, l = λ/s, each coefficient is
1/s times a rational function of (a, l, m1, v, q) with q = 1 − v supplied separately. Forming
D = A00·Ann − A0n² directly cancels catastrophically in the tails (and underflows); the
rewritten forms have no such subtraction.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import sympy as sp

A00, A0N, ANN = sp.symbols("A00 A0n Ann", positive=True)
DAMPING = sp.Symbol("damping", nonnegative=True)
ABAR00, X, Y, Z = sp.symbols("Abar00 X Y Z", real=True)

# Inputs of the stable form: s = A00 + damping, a = A00/s, l = damping/s, and the
# moments m1 = A0n/A00, v = Ann/A00 − m1², q = 1 − v of the tilted density.
S, SCALED_A00, SCALED_DAMPING = sp.symbols("s a l", nonnegative=True)
MEAN, VARIANCE, ONE_MINUS_VARIANCE = sp.symbols("m1 v q", real=True)


@dataclass(frozen=True)
class Dyadic:
    """The operator ``identity``·I + ``block`` on span{ŵ, e0} (block ordered ŵ, e0)."""

    identity: sp.Expr
    block: sp.Matrix

    def __matmul__(self, other: Dyadic) -> Dyadic:
        return Dyadic(self.identity * other.identity, self.block @ other.block)

    def __add__(self, other: Dyadic) -> Dyadic:
        return Dyadic(self.identity + other.identity, self.block + other.block)

    def simplify(self) -> Dyadic:
        return Dyadic(sp.simplify(self.identity), self.block.applyfunc(sp.simplify))

    @staticmethod
    def from_coefficients(diagonal, ww, cross, e0e0) -> Dyadic:
        """diagonal·I + ww·ŵŵᵀ + cross·(e0ŵᵀ + ŵe0ᵀ) + e0e0·e0e0ᵀ."""
        return Dyadic(diagonal, sp.Matrix([[diagonal + ww, cross], [cross, diagonal + e0e0]]))

    def coefficients(self) -> tuple[sp.Expr, sp.Expr, sp.Expr, sp.Expr]:
        """(diagonal, ww, cross, e0e0); the block must be symmetric."""
        (top, cross), (cross_below, bottom) = self.block.tolist()
        assert sp.simplify(cross - cross_below) == 0, "not a symmetric dyadic"
        return (self.identity, top - self.identity, cross, bottom - self.identity)

    def dense(self, w: sp.Matrix) -> sp.Matrix:
        """The (n+1)×(n+1) matrix of this operator for the weight vector ``w`` (r > 0)."""
        n = w.shape[0]
        norm = sp.sqrt(sum(component**2 for component in w))
        w_hat = sp.Matrix([*(w / norm), 0])
        e0 = sp.Matrix([0] * n + [1])
        diagonal, ww, cross, e0e0 = self.coefficients()
        return (
            diagonal * sp.eye(n + 1)
            + ww * w_hat * w_hat.T
            + cross * (e0 * w_hat.T + w_hat * e0.T)
            + e0e0 * e0 * e0.T
        )


def fisher_block() -> Dyadic:
    """G = A00·I + (Ann − A00)·ŵŵᵀ + A0n·(e0ŵᵀ + ŵe0ᵀ)."""
    return Dyadic.from_coefficients(A00, ANN - A00, A0N, 0)


def damped_fisher_block() -> Dyadic:
    """G + λI."""
    return fisher_block() + Dyadic(DAMPING, DAMPING * sp.eye(2))


@cache
def inverse_coefficients() -> dict[sp.Symbol, sp.Expr]:
    """{Ā00, X, Y, Z} of (G + λI)⁻¹, solved from (G + λI)·M = I with M in dyadic form."""
    unknown = Dyadic.from_coefficients(ABAR00, X, Y, Z)
    product = damped_fisher_block() @ unknown
    equations = [product.identity - 1, *(product.block - sp.eye(2))]
    (solution,) = sp.solve(equations, [ABAR00, X, Y, Z], dict=True)
    return {symbol: sp.factor(solution[symbol]) for symbol in (ABAR00, X, Y, Z)}


def _mixed_sign_terms(expression: sp.Expr) -> int:
    """How many terms of the sum carry the minority sign: 0 means no cancellation is possible."""
    terms = sp.Add.make_args(expression)
    negative = sum(1 for term in terms if term.could_extract_minus_sign())
    return min(negative, len(terms) - negative)


def _fewest_mixed_signs(polynomial: sp.Expr) -> sp.Expr:
    """``polynomial`` written in v or in q = 1 − v, whichever mixes signs least.

    A sum whose terms share one sign cannot cancel; this is the rule that turns, e.g.,
    A00² − A00·Ann + A0n² (which cancels when the tilted density is nearly standard normal)
    into A00²·q, and keeps D = A00·Ann − A0n² as A00²·v.
    """
    forms = [
        sp.expand(polynomial),
        sp.expand(polynomial.subs(VARIANCE, 1 - ONE_MINUS_VARIANCE)),
    ]
    return min(forms, key=lambda form: (_mixed_sign_terms(form), len(str(form))))


def _rewrite_factors(product: sp.Expr) -> sp.Expr:
    """Apply ``_fewest_mixed_signs`` to each factor of a product, keeping the factoring."""
    return sp.Mul(
        *(
            _fewest_mixed_signs(base) ** exponent
            for base, exponent in (factor.as_base_exp() for factor in sp.Mul.make_args(product))
        )
    )


@cache
def stable_inverse_coefficients() -> dict[sp.Symbol, sp.Expr]:
    """{Ā00, X, Y, Z} as (1/s)·(rational function of a, l, m1, v, q) without cancellation.

    Derived from ``inverse_coefficients`` by the substitutions A0n = A00·m1,
    Ann = A00·(v + m1²), A00 = s·a, λ = s·l, then ``_fewest_negative_terms`` on the numerator
    and denominator of each coefficient.
    """
    substitution = {
        A0N: A00 * MEAN,
        ANN: A00 * (VARIANCE + MEAN**2),
    }
    scaling = {A00: S * SCALED_A00, DAMPING: S * SCALED_DAMPING}
    stable = {}
    for symbol, expression in inverse_coefficients().items():
        scaled = sp.cancel(expression.subs(substitution).subs(scaling) * S)
        assert not scaled.has(S), f"{symbol} is not homogeneous of degree -1 in (A00, damping)"
        numerator, denominator = sp.fraction(sp.factor(scaled))
        stable[symbol] = _rewrite_factors(numerator) / _rewrite_factors(denominator) / S
    return stable
