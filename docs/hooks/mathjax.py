"""MkDocs hook: ship MathJax with the built site, from an installed package, so that neither
building nor reading the site needs the network.

MathJax 3 comes from the PyPI package django-static-mathjax (a plain copy of MathJax's files;
it does not need Django, and this hook does not import it). Its single-file SVG build
``es5/tex-svg.js`` needs no web fonts; it is added to the site as
``javascripts/mathjax/tex-svg.js`` together with MathJax's licence.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File

SITE_FOLDER = "javascripts/mathjax"
FILES = {"es5/tex-svg.js": "tex-svg.js", "LICENSE": "LICENSE"}


def _mathjax_folder() -> Path:
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise PluginError(
            "MathJax is not installed: install the docs extra, python -m pip install -e '.[docs]'"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "static" / "mathjax"
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise PluginError(f"the installed mathjax package lacks {', '.join(missing)} in {folder}")
    return folder


def on_files(files, config):
    folder = _mathjax_folder()
    for source, target in FILES.items():
        files.append(
            File.generated(config, f"{SITE_FOLDER}/{target}", abs_src_path=str(folder / source))
        )
    return files
