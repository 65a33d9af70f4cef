"""Emit generated modules: render, compare with what is on disk, write atomically.

Rendering is deterministic (no timestamps, sorted terms), so regenerating an unchanged
derivation gives byte-identical files and ``--check`` can compare text.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fisher_sym import __version__
from fisher_sym.activations import Activation
from fisher_sym.codegen import cpu
from fisher_sym.gaussian import derive_integrals


@dataclass(frozen=True)
class GeneratedModule:
    """One rendered module: its file name and its source text."""

    filename: str
    source: str


def command_for(activation: Activation, expression: str | None = None) -> str:
    """The command line that regenerates ``activation``, for the module header."""
    if expression is not None:
        return f'python -m derive --expr "{expression}" --name {activation.name}'
    base = activation.name.split("_")[0] if activation.parameters else activation.name
    parameters = "".join(f" --param {key}={value!r}" for key, value in activation.parameters.items())
    return f"python -m derive --activation {base if parameters else activation.name}{parameters}"


def render_module(activation: Activation, command: str) -> GeneratedModule:
    """Derive ``activation`` and render its module (no file is touched)."""
    integrals = derive_integrals(activation.expression)
    source = cpu.render(activation.name, activation.expression, integrals, command, __version__)
    return GeneratedModule(f"{activation.name}.py", source)


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename, so
    a reader never sees a partial file and a failure leaves the old file in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def stale_files(modules: list[GeneratedModule], folder: Path) -> list[Path]:
    """The files in ``folder`` that are missing or differ from the rendered ``modules``."""
    stale = []
    for module in modules:
        path = folder / module.filename
        if not path.exists() or path.read_text(encoding="utf-8") != module.source:
            stale.append(path)
    return stale


def write_modules(modules: list[GeneratedModule], folder: Path) -> list[Path]:
    """Write every module whose file differs; return the paths written."""
    written = []
    for path in stale_files(modules, folder):
        module = next(m for m in modules if m.filename == path.name)
        write_atomically(path, module.source)
        written.append(path)
    return written
