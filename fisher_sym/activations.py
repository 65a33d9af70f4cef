"""Activations: the registry of named activations and the safe parser for user expressions.

An activation is a SymPy expression φ(u) in the real symbol ``U``. Everything downstream
(Gaussian integrals, inverse coefficients, generated kernels) starts from that expression.
Built-ins are listed in ``REGISTRY``; each entry states its formula and its parameters.
User expressions are parsed by walking Python's ``ast`` against a whitelist: nothing is
ever passed to ``eval``.
"""

from __future__ import annotations

import ast
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import sympy as sp

U = sp.Symbol("u", real=True)

_NAME_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class ActivationError(ValueError):
    """An activation name, parameter or expression that fisher_sym cannot accept."""


@dataclass(frozen=True)
class Activation:
    """A named activation φ(u) with the parameter values it was built with."""

    name: str
    expression: sp.Expr
    command: str
    parameters: dict[str, float] = field(default_factory=dict)
    summary: str = ""


@dataclass(frozen=True)
class _Builtin:
    build: Callable[..., sp.Expr]
    defaults: dict[str, float]
    summary: str


def _rational(value: float) -> sp.Expr:
    """The exact rational of a float parameter, so derivations stay exact."""
    return sp.Rational(str(value))


REGISTRY: dict[str, _Builtin] = {
    "linear": _Builtin(lambda: U, {}, "φ(u) = u"),
    "relu": _Builtin(lambda: sp.Max(0, U), {}, "φ(u) = max(0, u)"),
    "leaky_relu": _Builtin(
        lambda negative_slope: sp.Piecewise((U, U > 0), (negative_slope * U, True)),
        {"negative_slope": 0.01},
        "φ(u) = u for u > 0, negative_slope·u otherwise",
    ),
    "elu": _Builtin(
        lambda alpha: sp.Piecewise((U, U > 0), (alpha * (sp.exp(U) - 1), True)),
        {"alpha": 1.0},
        "φ(u) = u for u > 0, alpha·(exp(u) − 1) otherwise",
    ),
    "relu6": _Builtin(lambda: sp.Min(sp.Max(U, 0), 6), {}, "φ(u) = min(max(u, 0), 6)"),
    "hardtanh": _Builtin(lambda: sp.Min(sp.Max(U, -1), 1), {}, "φ(u) = min(max(u, −1), 1)"),
    "erf": _Builtin(lambda: sp.erf(U), {}, "φ(u) = erf(u)"),
    "gelu": _Builtin(
        lambda: U * (1 + sp.erf(U / sp.sqrt(2))) / 2, {}, "φ(u) = u·Φ(u) (exact GELU)"
    ),
    "tanh": _Builtin(lambda: sp.tanh(U), {}, "φ(u) = tanh(u)"),
    "sigmoid": _Builtin(lambda: 1 / (1 + sp.exp(-U)), {}, "φ(u) = 1/(1 + exp(−u))"),
    "softplus": _Builtin(lambda: sp.log(1 + sp.exp(U)), {}, "φ(u) = log(1 + exp(u))"),
    "silu": _Builtin(lambda: U / (1 + sp.exp(-U)), {}, "φ(u) = u·sigmoid(u)"),
}


def known_activations() -> list[str]:
    """Names of the built-in activations, sorted."""
    return sorted(REGISTRY)


def builtin(name: str, parameters: dict[str, float] | None = None) -> Activation:
    """The built-in activation ``name`` with ``parameters`` overriding its defaults."""
    if name not in REGISTRY:
        raise ActivationError(
            f"unknown activation {name!r}; known activations: {', '.join(known_activations())}"
        )
    entry = REGISTRY[name]
    parameters = dict(parameters or {})
    unknown = sorted(set(parameters) - set(entry.defaults))
    if unknown:
        allowed = ", ".join(sorted(entry.defaults)) or "none"
        raise ActivationError(
            f"activation {name!r} has no parameter {', '.join(unknown)}; its parameters: {allowed}"
        )
    for key, value in parameters.items():
        if not math.isfinite(value):
            raise ActivationError(f"parameter {key} must be a finite number, not {value!r}")
    values = {**entry.defaults, **parameters}
    expression = entry.build(**{key: _rational(value) for key, value in values.items()})
    changed = {key: value for key, value in sorted(values.items()) if value != entry.defaults[key]}
    module_name = name + "".join(f"_{key}_{_format_value(value)}" for key, value in changed.items())
    command = f"python -m derive --activation {name}" + "".join(
        f" --param {key}={value!r}" for key, value in changed.items()
    )
    return Activation(module_name, expression, command, values, entry.summary)


def _format_value(value: float) -> str:
    """A parameter value as it appears in a module name: 0.5 -> 0p5, -1 -> m1."""
    text = repr(float(value))
    if "e" not in text:  # 1e+300 keeps its exponent's zeros
        text = text.rstrip("0").rstrip(".")
    return text.replace("-", "m").replace(".", "p").replace("+", "")


def check_module_name(name: str) -> str:
    """Return ``name`` if it is a valid generated-module name, else raise ActivationError."""
    if not _NAME_PATTERN.match(name) or name in {"__init__"}:
        raise ActivationError(
            f"invalid activation name {name!r}: use lower-case letters, digits and '_', "
            "starting with a letter"
        )
    return name


# --- the safe parser -------------------------------------------------------------------------

_FUNCTIONS: dict[str, Callable[..., sp.Expr]] = {
    "exp": sp.exp,
    "log": sp.log,
    "sqrt": sp.sqrt,
    "tanh": sp.tanh,
    "sinh": sp.sinh,
    "cosh": sp.cosh,
    "sin": sp.sin,
    "cos": sp.cos,
    "atan": sp.atan,
    "erf": sp.erf,
    "erfc": sp.erfc,
    "Abs": sp.Abs,
    "abs": sp.Abs,
    "Max": sp.Max,
    "max": sp.Max,
    "Min": sp.Min,
    "min": sp.Min,
    "Heaviside": sp.Heaviside,
    "sign": sp.sign,
    "Piecewise": sp.Piecewise,
}
_CONSTANTS: dict[str, sp.Expr] = {"u": U, "pi": sp.pi, "E": sp.E, "oo": sp.oo}
_BINARY = {
    ast.Add: lambda a, b: a + b,
    ast.Sub: lambda a, b: a - b,
    ast.Mult: lambda a, b: a * b,
    ast.Div: lambda a, b: a / b,
    ast.Pow: lambda a, b: a**b,
}
_COMPARE = {ast.Lt: sp.Lt, ast.LtE: sp.Le, ast.Gt: sp.Gt, ast.GtE: sp.Ge}
_MAX_LENGTH = 2000


def parse_expression(text: str) -> sp.Expr:
    """Parse a user activation written in ``u`` into a SymPy expression, safely.

    Accepted: numbers, ``u``, ``pi``, ``E``, the operators ``+ - * / **``, comparisons (inside
    ``Piecewise((expr, cond), ...)``) and the whitelisted functions in ``_FUNCTIONS``.
    Anything else (attributes, subscripts, keywords, lambdas, other names) raises
    ActivationError. The text is walked as a Python AST; it is never evaluated.
    """
    if not isinstance(text, str) or not text.strip():
        raise ActivationError("the expression is empty")
    if len(text) > _MAX_LENGTH:
        raise ActivationError(f"the expression is longer than {_MAX_LENGTH} characters")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as error:
        raise ActivationError(f"malformed expression {text!r}: {error.msg}") from None
    expression = _convert(tree.body)
    if not isinstance(expression, sp.Expr):
        raise ActivationError(f"{text!r} is not an expression in u")
    extra = expression.free_symbols - {U}
    if extra:
        raise ActivationError(f"unknown symbols in {text!r}: {sorted(map(str, extra))}")
    return expression


def _convert(node: ast.AST) -> sp.Basic:
    if isinstance(node, ast.Constant) and node.value is True:
        return sp.true  # the catch-all condition of a Piecewise
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return sp.Rational(str(node.value)) if isinstance(node.value, float) else sp.Integer(node.value)
    if isinstance(node, ast.Name):
        if node.id not in _CONSTANTS:
            raise ActivationError(
                f"unknown name {node.id!r}: the variable is 'u'; constants: pi, E; "
                f"functions: {', '.join(sorted(_FUNCTIONS))}"
            )
        return _CONSTANTS[node.id]
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _convert(node.left), _convert(node.right)
        if isinstance(node.op, ast.Pow) and right.is_number and abs(right) > 64:
            raise ActivationError("exponents larger than 64 in magnitude are not allowed")
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        operand = _convert(node.operand)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _COMPARE:
        return _COMPARE[type(node.ops[0])](_convert(node.left), _convert(node.comparators[0]))
    if isinstance(node, ast.Tuple):
        return sp.Tuple(*(_convert(element) for element in node.elts))
    if isinstance(node, ast.Call):
        if not isinstance(node.func, ast.Name) or node.func.id not in _FUNCTIONS:
            name = node.func.id if isinstance(node.func, ast.Name) else ast.unparse(node.func)
            raise ActivationError(
                f"function {name!r} is not allowed; allowed: {', '.join(sorted(_FUNCTIONS))}"
            )
        if node.keywords:
            raise ActivationError("keyword arguments are not allowed")
        arguments = [_convert(argument) for argument in node.args]
        if node.func.id == "Piecewise":
            return _piecewise(arguments)
        try:
            return _FUNCTIONS[node.func.id](*arguments)
        except (TypeError, ValueError) as error:
            raise ActivationError(f"bad arguments to {node.func.id}: {error}") from None
    raise ActivationError(f"unsupported syntax: {ast.unparse(node)!r}")


def _piecewise(arguments: list[sp.Basic]) -> sp.Expr:
    pairs = []
    for argument in arguments:
        if not isinstance(argument, sp.Tuple) or len(argument) != 2:
            raise ActivationError("Piecewise takes pairs (expression, condition)")
        value, condition = argument
        if condition is sp.oo:
            condition = sp.true
        pairs.append((value, condition))
    try:
        return sp.Piecewise(*pairs)
    except (TypeError, ValueError) as error:
        raise ActivationError(f"bad Piecewise: {error}") from None


def renamed(activation: Activation, name: str) -> Activation:
    """``activation`` generated under the module name ``name``."""
    command = f"{activation.command} --name {check_module_name(name)}"
    return Activation(name, activation.expression, command, activation.parameters, activation.summary)


def from_expression(text: str, name: str) -> Activation:
    """A user activation from the expression ``text``, to be generated as module ``name``."""
    command = f'python -m derive --expr "{text}" --name {name}'
    return Activation(check_module_name(name), parse_expression(text), command, {}, f"φ(u) = {text}")
