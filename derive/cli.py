"""Command line: parse arguments, run the pipeline, report.

    python -m derive --activation relu            # writes generated/relu.py
    python -m derive --activation relu --check    # exit 1 if generated/ is stale
    python -m derive --list                       # the built-in activations
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import generated
from fisher_sym import activations
from fisher_sym.activations import ActivationError
from fisher_sym.codegen import emit
from fisher_sym.gaussian import NoClosedForm

DEFAULT_OUT = Path(generated.__file__).resolve().parent
EXIT_STALE = 1
EXIT_USAGE = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m derive",
        description=(
            "Derive the unit-wise Fisher block of an activation symbolically and emit its "
            "numba kernels (fisher_blocks, inverse_coefficients, natural_gradient) as "
            "generated/<name>.py."
        ),
        epilog="Example: python -m derive --activation relu",
    )
    parser.add_argument("--activation", metavar="NAME", help="a built-in activation (see --list)")
    parser.add_argument(
        "--param",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="set a parameter of the built-in activation (repeatable)",
    )
    parser.add_argument("--out", metavar="DIR", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 naming the files that differ from a fresh derivation")
    parser.add_argument("--list", action="store_true", help="list the built-in activations and exit")
    return parser


def _parse_parameters(items: list[str]) -> dict[str, float]:
    parameters = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator or not key:
            raise ActivationError(f"--param expects KEY=VALUE, got {item!r}")
        try:
            parameters[key.strip()] = float(value)
        except ValueError:
            raise ActivationError(f"--param {key}: {value!r} is not a number") from None
    return parameters


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    arguments = parser.parse_args(argv)
    if arguments.list:
        for name in activations.known_activations():
            entry = activations.REGISTRY[name]
            defaults = ", ".join(f"{k}={v}" for k, v in entry.defaults.items())
            print(f"{name:12s} {entry.summary}" + (f"   [{defaults}]" if defaults else ""))
        return 0
    if arguments.activation is None:
        parser.print_usage(sys.stderr)
        print("error: give --activation NAME (or --list)", file=sys.stderr)
        return EXIT_USAGE
    try:
        activation = activations.builtin(arguments.activation, _parse_parameters(arguments.param))
        module = emit.render_module(activation, emit.command_for(activation))
    except (ActivationError, NoClosedForm) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if arguments.check:
        stale = emit.stale_files([module], arguments.out)
        for path in stale:
            print(f"stale: {path} differs from a fresh derivation", file=sys.stderr)
        if stale:
            print("regenerate with: " + emit.command_for(activation), file=sys.stderr)
            return EXIT_STALE
        print(f"up to date: {arguments.out / module.filename}")
        return 0
    written = emit.write_modules([module], arguments.out)
    target = arguments.out / module.filename
    print(f"wrote {target}" if written else f"unchanged: {target}")
    return 0
