"""Command line: parse arguments, run the pipeline, report.

    python -m derive --activation relu            # writes generated/relu.py
    python -m derive --activation relu --check    # exit 1 if generated/ is stale
    python -m derive --list                       # the built-in activations
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import generated
from fisher_sym import activations, docs, input_statistics_docs
from fisher_sym.activations import ActivationError
from fisher_sym.codegen import emit
from fisher_sym.gaussian import NoClosedForm

DEFAULT_OUT = Path(generated.__file__).resolve().parent
DOCS_OUT = DEFAULT_OUT.parent / "docs" / "activations"
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
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--activation", metavar="NAME", help="a built-in activation (see --list)")
    source.add_argument(
        "--expr",
        metavar="EXPRESSION",
        help='a user activation written in u, e.g. "u**3/3 + u" (needs --name)',
    )
    source.add_argument("--all", action="store_true", help="every built-in activation")
    parser.add_argument("--name", metavar="NAME", help="module name for --expr (or to rename)")
    parser.add_argument(
        "--param",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="set a parameter of the built-in activation (repeatable)",
    )
    parser.add_argument("--out", metavar="DIR", type=Path, default=DEFAULT_OUT,
                        help=f"output folder (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 naming the files that differ from a fresh derivation "
        "(alone: check every module in the output folder against the command it records)",
    )
    parser.add_argument("--list", action="store_true", help="list the built-in activations and exit")
    parser.add_argument(
        "--docs",
        action="store_true",
        help=f"also write the activations' pages and plots into {DOCS_OUT} "
        "(with --check: compare them; slow)",
    )
    parser.add_argument(
        "--derivation-pages",
        action="store_true",
        help=f"also write the pages rendered from the activation-independent derivation "
        f"({DOCS_OUT.parent / input_statistics_docs.PAGE}; with --check: compare them; "
        "fast, and alone needs no activation)",
    )
    parser.add_argument(
        "--report",
        action="store_true",
        help="after generating, print the max relative error of every quantity against "
        "40-digit mpmath over a standard (r, b) grid (slow: about a minute per activation)",
    )
    parser.add_argument(
        "--mean-field-report",
        action="store_true",
        help="after generating, print the max error of mean_field (E[φ], E[φ²], E[φ'²]) "
        "against 40-digit mpmath over tau from 0 to 1e4 (seconds to a minute per activation)",
    )
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
    if arguments.derivation_pages and not (arguments.activation or arguments.expr
                                           or arguments.all):
        return _derivation_pages(arguments.check)
    try:
        selected = _selected_activations(arguments)
        modules = [emit.render_module(activation) for activation in selected]
    except (ActivationError, NoClosedForm) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except _UsageError as error:
        parser.print_usage(sys.stderr)
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    for activation, module in zip(selected, modules, strict=True):
        print(f"{module.filename}: {activation.summary}; derivation path: {module.path}")
    if arguments.docs and arguments.out.resolve() != DEFAULT_OUT:
        print("error: --docs documents the modules in generated/; drop --out", file=sys.stderr)
        return EXIT_USAGE
    if arguments.check:
        stale = emit.stale_files(modules, arguments.out)
        for path in stale:
            activation = next(a for a, m in zip(selected, modules) if m.filename == path.name)
            print(f"stale: {path} (regenerate: {activation.command})", file=sys.stderr)
        if arguments.docs:
            for activation in selected:
                for path in docs.stale_docs([activation], DOCS_OUT):
                    print(f"stale: {path} (regenerate: {activation.command} --docs)",
                          file=sys.stderr)
                    stale.append(path)
        if arguments.derivation_pages:
            stale += input_statistics_docs.stale_page(DOCS_OUT.parent)
        if stale:
            return EXIT_STALE
        print(f"up to date: {', '.join(m.filename for m in modules)} in {arguments.out}")
        return 0
    written = set(emit.write_modules(modules, arguments.out))
    for module in modules:
        target = arguments.out / module.filename
        print(f"wrote {target}" if target in written else f"unchanged: {target}")
    if arguments.docs:
        for path in docs.write_docs(selected, DOCS_OUT):
            print(f"wrote {path}")
    if arguments.derivation_pages:
        _derivation_pages(check=False)
    if arguments.report:
        if arguments.out.resolve() != DEFAULT_OUT:
            print("error: --report reads the modules in generated/", file=sys.stderr)
            return EXIT_USAGE
        from fisher_sym import report

        rows = {a.name: report.accuracy(a.name, a.expression) for a in selected}
        print(report.format_table(rows))
        for name, worst in rows.items():
            for quantity, entry in worst.items():
                print(f"{name} {quantity}: max relative error {entry.error:.2e} at {entry.where}")
                if entry.skipped:
                    print(f"{name} {quantity}: no mpmath reference within the time limit at "
                          f"{'; '.join(entry.skipped)}")
    if arguments.mean_field_report:
        if arguments.out.resolve() != DEFAULT_OUT:
            print("error: --mean-field-report reads the modules in generated/", file=sys.stderr)
            return EXIT_USAGE
        from fisher_sym import report

        rows = {a.name: report.mean_field_accuracy(a.name, a.expression) for a in selected}
        grid = ", ".join(f"{tau:g}" for tau in report.MEAN_FIELD_TAUS)
        print(f"mean_field against 40-digit mpmath, max error over tau in {{{grid}}}")
        print("(relative; where E[φ] = 0 by symmetry, |E[φ]| / E[|φ|]):")
        print(report.format_mean_field_table(rows))
        for name, worst in rows.items():
            for quantity, entry in worst.items():
                print(f"{name} {quantity}: max error {entry.error:.2e} at {entry.where}")
    return 0


class _UsageError(Exception):
    pass


def _derivation_pages(check: bool) -> int:
    """Write (or with ``check`` compare) the pages of the activation-independent derivation."""
    folder = DOCS_OUT.parent
    if check:
        stale = input_statistics_docs.stale_page(folder)
        for path in stale:
            print(f"stale: {path} (regenerate: python -m derive --derivation-pages)",
                  file=sys.stderr)
        if stale:
            return EXIT_STALE
        print(f"up to date: {folder / input_statistics_docs.PAGE}")
        return 0
    written = input_statistics_docs.write_page(folder)
    print(f"wrote {written[0]}" if written else f"unchanged: {folder / input_statistics_docs.PAGE}")
    return 0


def _recorded_activations(folder: Path) -> list[activations.Activation]:
    """The activations of every module in ``folder``, from the command each one records."""
    selected = []
    for path in sorted(folder.glob("*.py")):
        if path.name == "__init__.py":
            continue
        words = shlex.split(emit.recorded_command(path))
        if words[:3] != ["python", "-m", "derive"]:
            raise _UsageError(f"{path} records an unexpected command: {words}")
        recorded = build_parser().parse_args(words[3:])
        recorded.out, recorded.check = folder, False
        selected += _selected_activations(recorded)
    if not selected:
        raise _UsageError(f"no generated modules in {folder}")
    return selected


def _selected_activations(arguments: argparse.Namespace) -> list[activations.Activation]:
    parameters = _parse_parameters(arguments.param)
    if arguments.expr is not None:
        if arguments.name is None:
            raise _UsageError("--expr needs --name NAME for the generated module")
        if parameters:
            raise _UsageError("--param applies to built-in activations, not to --expr")
        return [activations.from_expression(arguments.expr, arguments.name)]
    if arguments.all:
        if parameters or arguments.name:
            raise _UsageError("--all takes no --param or --name")
        return [activations.builtin(name) for name in activations.known_activations()]
    if arguments.activation is None and arguments.check:
        return _recorded_activations(arguments.out)
    if arguments.activation is None:
        raise _UsageError("give --activation NAME, --expr EXPRESSION --name NAME, or --all")
    activation = activations.builtin(arguments.activation, parameters)
    if arguments.name:
        activation = activations.renamed(activation, arguments.name)
    return [activation]
