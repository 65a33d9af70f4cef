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


class NumbaPrinter(PythonCodePrinter):
    """Python printer using the ``math`` module, with infinities as ``math.inf``."""

    def __init__(self) -> None:
        super().__init__({"fully_qualified_modules": True, "standard": "python3"})

    def _print_Infinity(self, expr: sp.Expr) -> str:
        return "math.inf"

    def _print_NegativeInfinity(self, expr: sp.Expr) -> str:
        return "-math.inf"

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
