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

Inputs with a mean and a variance, x ~ N(μ, diag(s²)), make the unit the standard unit at
r' = |s⊙w|, b' = μ·w + b, carried through a linear map T (``input_statistics_update``): the
map, its inverse and the dyadic inverse applied between them are derived entry by entry
(``RowVector``, ``row_sum``), which gives each entry of the update and the row sums it needs.
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


# --- Inputs with a mean and a variance ----------------------------------------------------------
#
# With x = μ + s⊙ξ, ξ ~ N(0, I_n) and s > 0, the extended input is x* = Tᵀξ* (ξ* = (ξ, 1)) for
#
#     T = [[diag(s), 0], [μᵀ, 1]],    Tθ = (s⊙w, μ·w + b),
#
# so u = θ·x* = (Tθ)·ξ*: the unit is a standard unit (input N(0, I)) with parameters
# θ' = Tθ, and its block is G = E[φ'(u)² x*x*ᵀ] = Tᵀ G_std(r', b') T, r' = |s⊙w|,
# b' = μ·w + b. The kernels damp it as (G + λ·TᵀT)⁻¹ = T⁻¹ (G_std + λI)⁻¹ T⁻ᵀ, where
# TᵀT = E[x*x*ᵀ]: damping in the standardized coordinates (docs/input_statistics.md says
# why). A vector of R^(n+1) is written entry-wise (``RowVector``): its j-th entry is an
# expression in the j-th entries w, g, mean, s of the row, and sums over j are symbols
# (``row_sum``), so the derivation holds for every n.

#: The j-th entries of a unit's row: weight, loss gradient, input mean μ_j and deviation s_j.
W_J, G_J, MEAN_J = sp.symbols("w g mean", real=True)
STD_J = sp.Symbol("s", positive=True)
#: A standard normal input entry ξ_j (for x_j = μ_j + s_j·ξ_j).
XI_J = sp.Symbol("xi", real=True)
#: The row's scalars: the bias and its gradient. g_b is known before a row is summed, so it may
#: stay inside a row sum (``row_sum``); everything else outside a sum is found after it.
BIAS, GRAD_BIAS = sp.symbols("b g_b", real=True)
#: Columns the kernels compute once per layer from input_mean and input_variance.
VARIANCE_J, PRECISION_J = sp.symbols("variance precision", positive=True)
SCALED_MEAN_J = sp.Symbol("scaled_mean", real=True)
#: g_j − μ_j·g_b: the weight gradient with the input centered (for a gradient that averages
#: δ·x*, the average of δ·(x_j − μ_j)).
G_CENTERED_J = sp.Symbol("g_centered", real=True)
#: What each column stands for (``_in_columns`` writes expressions in them).
COLUMNS = {
    VARIANCE_J: STD_J**2,
    MEAN_J: MEAN_J,
    PRECISION_J: 1 / STD_J**2,
    SCALED_MEAN_J: MEAN_J / STD_J**2,
    G_CENTERED_J: G_J - MEAN_J * GRAD_BIAS,
}
#: The unknown entry v_j of a map being inverted (``_solve_map``).
UNKNOWN_J = sp.Symbol("v", real=True)
ENTRY_SYMBOLS = (W_J, G_J, MEAN_J, STD_J, XI_J, VARIANCE_J, PRECISION_J, SCALED_MEAN_J,
                 G_CENTERED_J, UNKNOWN_J)
#: The standardized unit: r' = |s⊙w|, b' = μ·w + b, and w'·g' with g' = T⁻ᵀg.
STD_RADIUS = sp.Symbol("r_std", nonnegative=True)
STD_BIAS, STD_W_DOT_G = sp.symbols("b_std wg_std", real=True)
#: The standard unit's update at (r', b'): nat' = (Ā00·g'_w + along_w·w', nat_b_std).
ALONG_W, STD_NAT_B = sp.symbols("along_w nat_b_std", real=True)


class RowSum(sp.Symbol):
    """Σ_j of a per-entry expression (``summand``), named after its factors: Σ_j w_j·g_j is
    ``sum_w_g``."""

    def __new__(cls, summand: sp.Expr):
        factors = []
        for factor in sp.Mul.make_args(summand):
            base, exponent = factor.as_base_exp()
            if not (base.is_Symbol and exponent.is_Integer and exponent > 0):
                raise ValueError(f"a row sum of a product of columns, got {summand}")
            factors += [str(base)] * int(exponent)
        symbol = super().__new__(cls, "sum_" + "_".join(sorted(factors, key=_column_order)),
                                 real=True)
        symbol.summand = summand
        return symbol

    def __getnewargs_ex__(self):
        return ((self.summand,), {})


def _column_order(name: str) -> tuple[int, str]:
    """Columns before the row's own entries, in the order of ENTRY_SYMBOLS."""
    order = [str(symbol) for symbol in (VARIANCE_J, MEAN_J, PRECISION_J, SCALED_MEAN_J, W_J,
                                        G_J, G_CENTERED_J)]
    return (order.index(name) if name in order else len(order), name)


def _in_columns(expression: sp.Expr) -> sp.Expr:
    """A per-entry expression in the kernels' columns (``COLUMNS``), term by term: g − μ·g_b
    is ``g_centered``, s^(2k) is ``variance``^k, and a factor 1/s² is ``scaled_mean`` = μ/s²
    with a factor μ, else ``precision`` = 1/s² (odd powers of s stay s)."""
    expression = sp.expand(expression.subs(G_J, G_CENTERED_J + MEAN_J * GRAD_BIAS))
    terms = []
    for term in sp.Add.make_args(expression):
        powers = term.as_powers_dict()
        deviation = int(powers.pop(STD_J, 0))
        mean = int(powers.pop(MEAN_J, 0))
        rest = sp.Mul(*(base**exponent for base, exponent in powers.items()))
        if deviation == -2 and mean >= 1:
            columns = SCALED_MEAN_J * MEAN_J ** (mean - 1)
        elif deviation == -2:
            columns = PRECISION_J
        elif deviation >= 0:
            columns = VARIANCE_J ** (deviation // 2) * STD_J ** (deviation % 2) * MEAN_J**mean
        else:
            raise ValueError(f"not a product of columns: {term}")
        terms.append(rest * columns)
    return sp.Add(*terms)


def row_sum(expression: sp.Expr) -> sp.Expr:
    """Σ_j of a per-entry expression, by linearity: each term is split into a factor found
    after the row's sums (Ā00, X, 1/r', ...) and a summand (entries, columns and g_b); the
    summands of one factor are one ``RowSum``, written in the kernels' columns."""
    grouped: dict[sp.Expr, sp.Expr] = {}
    for term in sp.Add.make_args(sp.expand(expression)):
        if term == 0:
            continue
        outside, summand = term.as_independent(*ENTRY_SYMBOLS, GRAD_BIAS, as_Add=False)
        number, outside = outside.as_coeff_Mul()
        summand = number * summand
        if not summand.has(*ENTRY_SYMBOLS):  # no entry at all: n copies of a scalar
            raise ValueError(f"a row sum of a term without entries: {term}")
        grouped[outside] = grouped.get(outside, 0) + summand
    return sp.Add(*(outside * RowSum(_in_columns(summand))
                    for outside, summand in grouped.items()))


@dataclass(frozen=True)
class RowVector:
    """A vector (v_1, …, v_n, v_b) of R^(n+1): ``entry`` is v_j in the j-th entries, ``bias`` is
    v_b."""

    entry: sp.Expr
    bias: sp.Expr

    def __add__(self, other: RowVector) -> RowVector:
        return RowVector(self.entry + other.entry, self.bias + other.bias)

    def scaled(self, factor: sp.Expr) -> RowVector:
        return RowVector(factor * self.entry, factor * self.bias)

    def dot(self, other: RowVector) -> sp.Expr:
        """Σ_j u_j·v_j + u_b·v_b."""
        return row_sum(self.entry * other.entry) + self.bias * other.bias


E0 = RowVector(sp.Integer(0), sp.Integer(1))


def _apply(operator: Dyadic, vector: RowVector, direction: RowVector) -> RowVector:
    """``operator`` applied to ``vector``, where ŵ = ``direction`` (a unit vector ⊥ e0): it acts
    as its ``identity`` on the complement of span{ŵ, e0} and as its ``block`` on the
    coordinates (ŵ·v, v_b)."""
    along = direction.dot(vector)
    change = (operator.block - operator.identity * sp.eye(2)) @ sp.Matrix([along, vector.bias])
    return vector.scaled(operator.identity) + direction.scaled(change[0]) + E0.scaled(change[1])


Dyadic.apply = _apply


def standardizing_map(vector: RowVector) -> RowVector:
    """Tθ = (s⊙w, μ·w + b): the parameters of the standard unit that computes the same u."""
    return RowVector(STD_J * vector.entry, row_sum(MEAN_J * vector.entry) + vector.bias)


def standardizing_map_transpose(vector: RowVector) -> RowVector:
    """Tᵀv = (s⊙v_w + μ·v_b, v_b); x* = Tᵀξ*."""
    return RowVector(STD_J * vector.entry + MEAN_J * vector.bias, vector.bias)


def _solve_map(apply, target: RowVector) -> RowVector:
    """The v with apply(v) = target, for a map that is invertible entry by entry: the entry
    equation solved for v_j (in terms of v_b), then the bias equation, with that entry
    substituted, for v_b."""
    entry, bias = UNKNOWN_J, sp.Symbol("v_b", real=True)
    entry_only = apply(RowVector(entry, 0)).entry  # the bias equation may sum over entries,
    bias_only = apply(RowVector(0, bias)).entry  # so the entry is found from its own first
    (solved_entry,) = sp.solve(entry_only + bias_only - target.entry, entry)
    image = apply(RowVector(solved_entry, bias))
    (solved_bias,) = sp.solve(image.bias - target.bias, bias)
    return RowVector(sp.simplify(solved_entry.subs(bias, solved_bias)), solved_bias)


@dataclass(frozen=True)
class InputStatisticsUpdate:
    """The natural gradient of a unit with input x ~ N(μ, diag(s²)), damped in standardized
    coordinates, as the kernels evaluate it (``input_statistics_update``).

    standard_input: x* = Tᵀξ*, ξ* = (ξ, 1);
    standardized_parameters, standardized_gradient: θ' = Tθ and g' = T⁻ᵀg;
    second_moment: |Tθ|² = θᵀTᵀTθ = E[(θ·x*)²], the damping's quadratic form;
    standardized_update: nat' = (G_std + λI)⁻¹g' with the standard unit's along_w and
        nat_b_std as symbols;
    columns: the per-layer columns in terms of (mean, variance);
    centered_gradient: g_centered in terms of (g, mean, g_b);
    row_sums: the RowSums the kernels take over each row, in the order they take them;
    standardized: (r', b', w'·g') of the standard unit, from the row sums and b;
    along_w, standardized_bias_update: the standard unit's update, Ā00, X, Y, Z at (r', b'):
        nat' = (Ā00·g' + along_w·w', nat_b_std) — the standard unit's own formulas;
    entry: nat_w_j in the columns (Ā00, along_w, g_b, w_j, g_centered_j);
    bias: nat_b from nat_b_std and the row sums.
    """

    standard_input: RowVector
    standardized_parameters: RowVector
    standardized_gradient: RowVector
    second_moment: sp.Expr
    standardized_update: RowVector
    columns: dict[sp.Symbol, sp.Expr]
    centered_gradient: sp.Expr
    row_sums: tuple[RowSum, ...]
    standardized: dict[sp.Symbol, sp.Expr]
    along_w: sp.Expr
    standardized_bias_update: sp.Expr
    entry: sp.Expr
    bias: sp.Expr


@cache
def input_statistics_update() -> InputStatisticsUpdate:
    """Derive nat = (G + λ·TᵀT)⁻¹g = T⁻¹ (G_std + λI)⁻¹ T⁻ᵀ g entry-wise (see the section's
    comment): the standardized unit θ' = Tθ, the gradient g' = T⁻ᵀg, the dyadic inverse
    applied to it along ŵ' = (w'/r', 0), and nat = T⁻¹nat'."""
    standard_input = standardizing_map_transpose(RowVector(XI_J, 1))
    if standard_input != RowVector(MEAN_J + STD_J * XI_J, 1):
        raise AssertionError("x* = Tᵀξ* does not hold")
    theta = RowVector(W_J, BIAS)
    standard = standardizing_map(theta)
    radius_squared = standard.dot(RowVector(standard.entry, 0))
    gradient = RowVector(G_J, GRAD_BIAS)
    standardized_gradient = _solve_map(standardizing_map_transpose, gradient)
    w_dot_g = RowVector(standard.entry, 0).dot(standardized_gradient)
    direction = RowVector(standard.entry / STD_RADIUS, 0)
    inverse = Dyadic.from_coefficients(ABAR00, X, Y, Z)
    update = inverse.apply(standardized_gradient, direction)
    # nat'_w = Ā00·g'_w + along_w·w': read along_w off the entry, with w'·g' as a symbol.
    remainder = sp.expand(update.entry - ABAR00 * standardized_gradient.entry)
    along_w = sp.simplify(remainder / standard.entry)
    if along_w.has(*ENTRY_SYMBOLS):
        raise AssertionError(f"nat'_w − Ā00·g' is not along w': {remainder}")
    along_w = sp.factor(along_w.subs(w_dot_g, STD_W_DOT_G))
    standardized_bias_update = sp.expand(update.bias).subs(w_dot_g, STD_W_DOT_G)
    standardized_update = RowVector(ABAR00 * standardized_gradient.entry
                                    + ALONG_W * standard.entry, STD_NAT_B)
    result = _solve_map(standardizing_map, standardized_update)
    entry = _in_columns(sp.expand(result.entry))
    entry = sp.collect(sp.expand(entry), [ABAR00, ALONG_W])
    sums = [radius_squared, standard.bias - BIAS, w_dot_g]
    bias = sp.collect(sp.expand(result.bias), [ABAR00, ALONG_W])
    sums += [bias - STD_NAT_B]
    row_sums = []
    for expression in sums:
        for symbol in sorted(expression.atoms(RowSum), key=str):
            if symbol not in row_sums:
                row_sums.append(symbol)
    in_statistics = {STD_J: sp.sqrt(VARIANCE_J)}
    return InputStatisticsUpdate(
        standard_input=standard_input,
        standardized_parameters=standard,
        standardized_gradient=standardized_gradient,
        second_moment=sp.expand(standard.dot(standard)),
        standardized_update=standardized_update,
        columns={symbol: COLUMNS[symbol].subs(in_statistics)
                 for symbol in (VARIANCE_J, MEAN_J, PRECISION_J, SCALED_MEAN_J)},
        centered_gradient=COLUMNS[G_CENTERED_J],
        row_sums=tuple(row_sums),
        standardized={
            STD_RADIUS: sp.sqrt(radius_squared),
            STD_BIAS: standard.bias,
            STD_W_DOT_G: w_dot_g,
        },
        along_w=along_w,
        standardized_bias_update=standardized_bias_update,
        entry=entry,
        bias=bias,
    )
