"""Activations exercised by the engine tests, as SymPy expressions in the activation symbol."""

import sympy as sp

from fisher_sym.activations import U

CLOSED_FORM_CASES = {
    "relu": sp.Max(0, U),
    "leaky": sp.Max(U, U / 100),
    "elu": sp.Piecewise((U, U > 0), (sp.exp(U) - 1, True)),
    "hardtanh": sp.Min(sp.Max(U, -1), 1),
    "relu6": sp.Min(sp.Max(U, 0), 6),
    "erf": sp.erf(U),
    "cubic": U**3 / 3 + U,
    "linear": U,
    "squared_relu": sp.Max(0, U) ** 2,
}


def derive_user_module(expression, name, folder):
    """``python -m derive --expr EXPRESSION --name NAME --out FOLDER``, then the module it
    wrote, imported from there."""
    import importlib.util

    from derive.cli import main

    assert main(["--expr", expression, "--name", name, "--out", str(folder)]) == 0
    spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
