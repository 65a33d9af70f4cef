"""Which units a model has: its (nn.Linear, activation) pairs and the generated module of each.

A *unit layer* is an ``nn.Linear`` whose outputs u = W x + b go through one activation φ; its
units are the rows (W_i, b_i). In a model tree the pairs are found among the leaf modules in
registration order (nested containers are flattened): a Linear followed by a supported
activation module is one pair, a Linear followed by nothing (the model's last leaf) or by
another Linear is linear. Anything else is ambiguous, and the user names the pairs instead:
``layers=[(linear, "relu"), (linear2, "cubic"), ...]``, where a name is any module in
``generated/`` (built-in or written by ``python -m derive --expr ... --name NAME``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from torch import nn

from fisher_sym import activations


class UnsupportedModelError(ValueError):
    """A model (or a ``layers`` list) whose parameters cannot all be given unit blocks."""


@dataclass(frozen=True)
class UnitLayer:
    """One (Linear, φ) pair: ``name`` is the Linear's path in the model, ``activation`` the
    name of φ's generated module and ``kernels`` that module."""

    name: str
    linear: nn.Linear
    activation: str
    kernels: ModuleType


def _parameter_module(name: str, parameters: dict[str, float]) -> str:
    """Module name of a built-in with parameters, as ``python -m derive`` names it."""
    return activations.builtin(name, parameters).name


def _torch_activation(module: nn.Module) -> str | None:
    """The generated-module name of a torch activation module, or None if it is not one.

    Raises UnsupportedModelError for a supported class with unsupported settings."""
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.ReLU6):  # before Hardtanh: ReLU6 derives from it
        return "relu6"
    if isinstance(module, nn.LeakyReLU):
        return _parameter_module("leaky_relu", {"negative_slope": module.negative_slope})
    if isinstance(module, nn.ELU):
        return _parameter_module("elu", {"alpha": module.alpha})
    if isinstance(module, nn.Hardtanh):
        if (module.min_val, module.max_val) != (-1.0, 1.0):
            raise UnsupportedModelError(
                f"Hardtanh(min_val={module.min_val}, max_val={module.max_val}) has no derived "
                "module; derive it with --expr and pass layers=[(linear, NAME), ...]"
            )
        return "hardtanh"
    if isinstance(module, nn.GELU):
        if module.approximate != "none":
            raise UnsupportedModelError(
                "GELU(approximate='tanh') has no derived module; use GELU() (exact) or derive "
                "the tanh form with --expr and pass layers=[(linear, NAME), ...]"
            )
        return "gelu"
    if isinstance(module, nn.Softplus):
        if module.beta != 1:
            raise UnsupportedModelError(
                f"Softplus(beta={module.beta}) has no derived module; derive it with --expr and "
                "pass layers=[(linear, NAME), ...]"
            )
        return "softplus"  # its threshold changes φ' by less than exp(−threshold)
    for cls, name in ((nn.Tanh, "tanh"), (nn.Sigmoid, "sigmoid"), (nn.SiLU, "silu"),
                      (nn.Identity, "linear")):
        if isinstance(module, cls):
            return name
    return None


def load_kernels(name: str) -> ModuleType:
    """The generated module ``generated.NAME``, or a clear error with the command that writes it."""
    activations.check_module_name(name)
    try:
        return importlib.import_module(f"generated.{name}")
    except ModuleNotFoundError as error:
        if error.name != f"generated.{name}":
            raise
        with_parameters = any(name.startswith(f"{known}_") for known in
                              activations.known_activations())
        hint = (" (a built-in with parameters: python -m derive --activation NAME --param K=V)"
                if with_parameters else "")
        raise UnsupportedModelError(
            f"no generated module {name!r}: derive it first with python -m derive{hint}"
        ) from None


def _check_linear(name: str, linear: nn.Module) -> None:
    if not isinstance(linear, nn.Linear):
        raise UnsupportedModelError(
            f"{name} is a {type(linear).__name__}, not an nn.Linear: unit blocks are derived for "
            "fully connected layers only"
        )
    if linear.bias is None:
        raise UnsupportedModelError(
            f"{name} has no bias: the unit blocks are those of (w, b); use nn.Linear(bias=True)"
        )


def find_layers(model: nn.Module) -> list[UnitLayer]:
    """The unit layers of ``model`` found among its leaf modules in registration order."""
    leaves = [(name, module) for name, module in model.named_modules()
              if not any(True for _ in module.children())]
    layers = []
    for position, (name, module) in enumerate(leaves):
        if not isinstance(module, nn.Linear):
            continue
        _check_linear(name, module)
        following = leaves[position + 1] if position + 1 < len(leaves) else None
        if following is None or isinstance(following[1], nn.Linear):
            activation = "linear"
        else:
            activation = _torch_activation(following[1])
            if activation is None:
                raise UnsupportedModelError(
                    f"cannot tell the activation of {name}: it is followed by {following[0]} "
                    f"({type(following[1]).__name__}); pass layers=[(linear, 'ACTIVATION'), ...]"
                )
        layers.append(UnitLayer(name, module, activation, load_kernels(activation)))
    return layers


def named_layers(model: nn.Module, pairs) -> list[UnitLayer]:
    """Unit layers from explicit ``(linear, activation)`` pairs: an activation is a name in
    ``generated/`` or a torch activation module."""
    names = {id(module): name for name, module in model.named_modules()}
    layers = []
    for pair in pairs:
        try:
            linear, activation = pair
        except (TypeError, ValueError):
            raise UnsupportedModelError(
                f"layers must be (linear, activation) pairs, got {pair!r}"
            ) from None
        name = names.get(id(linear))
        if name is None:
            raise UnsupportedModelError(f"{linear!r} in layers is not a module of the model")
        _check_linear(name, linear)
        if isinstance(activation, nn.Module):
            resolved = _torch_activation(activation)
            if resolved is None:
                raise UnsupportedModelError(
                    f"{type(activation).__name__} (for {name}) is not a supported activation"
                )
            activation = resolved
        elif not isinstance(activation, str):
            raise UnsupportedModelError(
                f"the activation of {name} must be a name or a module, got {activation!r}"
            )
        layers.append(UnitLayer(name, linear, activation, load_kernels(activation)))
    return layers


def check_distinct(layers: list[UnitLayer]) -> None:
    """Raise UnsupportedModelError if a Linear appears in two pairs."""
    seen = {}
    for layer in layers:
        if id(layer.linear) in seen:
            raise UnsupportedModelError(f"{layer.name} appears twice in layers")
        seen[id(layer.linear)] = layer.name
