"""NumbaPrinter: SymPy expressions as Python source that numba compiles in nopython mode.

Numerical care is applied as rewrite rules before printing (``numerically_stable``), never as
edits to printed text: log(1 + x) becomes log1p(x) and exp(x) − 1 becomes expm1(x).
"""

from __future__ import annotations

import sympy as sp
from sympy.codegen.cfunctions import expm1, log1p
from sympy.printing.pycode import PythonCodePrinter


def _log1p_rule(expression: sp.Expr) -> sp.Expr:
    """log(1 + x) → log1p(x)."""

    def applies(e: sp.Expr) -> bool:
        return isinstance(e, sp.log) and e.args[0].is_Add and sp.Integer(1) in e.args[0].args

    return expression.replace(applies, lambda e: log1p(e.args[0] - 1))


def _expm1_rule(expression: sp.Expr) -> sp.Expr:
    """exp(x) − 1 → expm1(x), inside any sum holding exactly one exponential and a −1."""

    def applies(e: sp.Expr) -> bool:
        if not e.is_Add or sp.Integer(-1) not in e.args:
            return False
        return sum(isinstance(term, sp.exp) for term in e.args) == 1

    def rewrite(e: sp.Expr) -> sp.Expr:
        (exponential,) = [term for term in e.args if isinstance(term, sp.exp)]
        rest = [term for term in e.args if term is not exponential and term != -1]
        return sp.Add(expm1(exponential.args[0]), *rest)

    return expression.replace(applies, rewrite)


STABILITY_RULES = (_log1p_rule, _expm1_rule)


def numerically_stable(expression: sp.Expr) -> sp.Expr:
    """Apply ``STABILITY_RULES`` (log1p, expm1) to ``expression``; nothing else changes."""
    for rule in STABILITY_RULES:
        expression = rule(expression)
    return expression


class Hypot1(sp.Function):
    """√(1 + x²) as ``math.hypot(1.0, x)``: finite where x² overflows (x up to 1e308)."""

    @classmethod
    def eval(cls, x):
        if x.is_Number:
            return sp.sqrt(1 + x**2)
        return None


class NumbaPrinter(PythonCodePrinter):
    """Python printer using the ``math`` module, with infinities as ``math.inf``."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})

    def _print_Infinity(self, expr: sp.Expr) -> str:
        return "math.inf"

    def _print_NegativeInfinity(self, expr: sp.Expr) -> str:
        return "-math.inf"

    def _print_Hypot1(self, expr: sp.Expr) -> str:
        return f"math.hypot(1.0, {self._print(expr.args[0])})"

    def _print_erfcx(self, expr: sp.Expr) -> str:
        return f"special.erfcx({self._print(expr.args[0])})"

    def _print_Float(self, expr: sp.Float) -> str:
        return repr(float(expr))

    def _print_Rational(self, expr: sp.Rational) -> str:
        # Exact in binary where possible (1/2 -> 0.5); otherwise the division, which is
        # correctly rounded and easier to read than 17 digits.
        value = float(expr)
        if sp.Rational(value) == expr:
            return repr(value)
        return f"({expr.p}/{expr.q})"


def print_code(expression: sp.Expr) -> str:
    """``expression`` as a numba-compatible Python expression (after the stability rules)."""
    return NumbaPrinter().doprint(numerically_stable(expression))


def print_assignments(names: list[str], expressions: list[sp.Expr], prefix: str = "t") -> list[str]:
    """Straight-line ``name = expression`` lines, with common subexpressions shared (sympy.cse)."""
    stable = [numerically_stable(expression) for expression in expressions]
    symbols = sp.numbered_symbols(prefix)
    shared, reduced = sp.cse(stable, symbols=symbols)
    printer = NumbaPrinter()
    lines = [f"{symbol} = {printer.doprint(value)}" for symbol, value in shared]
    lines += [f"{name} = {printer.doprint(value)}" for name, value in zip(names, reduced, strict=True)]
    return lines


def _factors(product: sp.Expr) -> list[sp.Expr]:
    """The factors of a product, powers with positive integer exponents written out."""
    coefficient, factors = product.as_coeff_mul()
    if coefficient != 1:
        raise ValueError(f"a program multiplies symbols only, got the coefficient in {product}")
    flat = []
    for factor in factors:
        base, exponent = factor.as_base_exp()
        if not (exponent.is_Integer and exponent > 0):
            raise ValueError(f"a program has no powers but positive integer ones: {product}")
        flat += [base] * int(exponent)
    return flat


class ProgramPrinter:
    """Expressions of symbols with +, − and × as three-address steps (result, operator, left,
    right), in the order SymPy prints them (sums left to right, products left to right), each
    subexpression once: the form ``row_passes.RowProgram`` runs as vectors and
    ``print_program`` as Python."""

    def __init__(self, prefix: str = "t") -> None:
        self.steps: list[tuple[str, str, str, str]] = []
        self._names: dict[sp.Expr, str] = {}
        self._prefix = prefix
        self._temporaries = 0

    def _step(self, operator: str, left: str, right: str) -> str:
        name = f"{self._prefix}{self._temporaries}"
        self._temporaries += 1
        self.steps.append((name, operator, left, right))
        return name

    def operand(self, expression: sp.Expr) -> str:
        """The name holding ``expression``, after the steps that compute it."""
        if expression.is_Symbol:
            return str(expression)
        if expression in self._names:
            return self._names[expression]
        if expression.is_Add:
            terms = expression.as_ordered_terms()
            first = next(term for term in terms if not term.could_extract_minus_sign())
            value = self.operand(first)
            for term in terms:
                if term is first:
                    continue
                if term.could_extract_minus_sign():
                    value = self._step("-", value, self.operand(-term))
                else:
                    value = self._step("+", value, self.operand(term))
        elif expression.is_Mul or expression.is_Pow:
            factors = _factors(expression)
            value = self.operand(factors[0])
            for factor in factors[1:]:
                value = self._step("*", value, self.operand(factor))
        else:
            raise ValueError(f"a program has symbols, +, − and × only, got {expression}")
        self._names[expression] = value
        return value

    def assign(self, name: str, expression: sp.Expr) -> None:
        """Compute ``expression`` into ``name`` (the last step is renamed)."""
        value = self.operand(expression)
        if not self.steps or value != self.steps[-1][0]:
            raise ValueError(f"{name} = {expression} needs at least one step of its own")
        self.steps[-1] = (name, *self.steps[-1][1:])
        self._temporaries -= 1
        self._names[expression] = name
        self._names[sp.Symbol(name, real=True)] = name

    def product(self, expression: sp.Expr) -> tuple[str, str]:
        """(left, right) with left·right = ``expression``, a product: all factors but the last
        multiplied out, and the last one."""
        factors = _factors(expression)
        if len(factors) < 2:
            raise ValueError(f"a product of two factors or more, got {expression}")
        return self.operand(sp.Mul(*factors[:-1], evaluate=False) if len(factors) > 2
                            else factors[0]), self.operand(factors[-1])


def print_program(steps) -> list[str]:
    """Three-address steps as Python lines, in their order (numba keeps it: no reassociation)."""
    return [f"{result} = {left} {operator} {right}" for result, operator, left, right in steps]
