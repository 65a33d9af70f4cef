"""The registry and the safe expression parser."""

import pytest
import sympy as sp

from fisher_sym import activations
from fisher_sym.activations import U, ActivationError, parse_expression


def test_relu_is_registered_as_max_zero_u():
    relu = activations.builtin("relu")
    assert relu.name == "relu"
    assert sp.simplify(relu.expression - sp.Max(0, U)) == 0


def test_unknown_activation_lists_the_known_ones():
    with pytest.raises(ActivationError, match="known activations: .*relu"):
        activations.builtin("nope")


def test_unknown_parameter_is_refused():
    with pytest.raises(ActivationError, match="no parameter"):
        activations.builtin("relu", {"alpha": 1.0})


@pytest.mark.parametrize(
    "text, expected",
    [
        ("u**3/3 + u", U**3 / 3 + U),
        ("Max(0, u)", sp.Max(0, U)),
        ("exp(-u**2) * 2.5", sp.Rational(5, 2) * sp.exp(-(U**2))),
        ("Piecewise((u, u > 0), (exp(u) - 1, True))", sp.Piecewise((U, U > 0), (sp.exp(U) - 1, True))),
        ("-u + pi", -U + sp.pi),
    ],
)
def test_parser_builds_the_same_expression_as_sympy(text, expected):
    assert sp.simplify(parse_expression(text) - expected) == 0


@pytest.mark.parametrize(
    "text, message",
    [
        ("__import__('os').system('true')", "not allowed"),
        ("u.__class__", "unsupported syntax"),
        ("(lambda: 1)()", "not allowed"),
        ("exp(x)", "unknown name 'x'"),
        ("u +", "malformed"),
        ("u[0]", "unsupported syntax"),
        ("exp(u, base=2)", "keyword"),
        ("", "empty"),
        ("u ** 1000", "exponents"),
        ("'u'", "unsupported syntax"),
        ("True", "not an expression"),
    ],
)
def test_parser_refuses_unsafe_or_malformed_input(text, message):
    with pytest.raises(ActivationError, match=message):
        parse_expression(text)


def test_module_names_are_checked():
    assert activations.check_module_name("cubic_2") == "cubic_2"
    for bad in ("Cubic", "2x", "a-b", "../x", "", "__init__"):
        with pytest.raises(ActivationError):
            activations.check_module_name(bad)
