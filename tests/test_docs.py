"""The documentation: generated pages match the derivation, the quickstart runs, the site builds.

The accuracy tables are the slow part of a page (mpmath at 40 digits); the freshness checks
re-render each page with the table it records and recompute one table in full (``slow``).
"""

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from derive import cli
from fisher_sym import activations, docs, input_statistics_docs, report

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = DOCS / "activations"
QUICKSTART = (DOCS / "quickstart.md").read_text(encoding="utf-8")
MKDOCS_YML = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
COMMITTED_PAGES = sorted(path.stem for path in PAGES.glob("*.md"))
ROWS = {quantity: report.Worst(1.5e-15, "r=1, b=0") for quantity in report.QUANTITIES}

slow = pytest.mark.slow
# A script, stylesheet or image that a browser would fetch from another host.
EXTERNAL_RESOURCE = r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["']?((?:https?:)?//[^"' >]*)"""


@cache
def recorded_activations() -> dict[str, activations.Activation]:
    """Every activation in generated/, built from the command its module records."""
    return {
        activation.name: activation for activation in cli._recorded_activations(cli.DEFAULT_OUT)
    }


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block."""
    return re.findall(r"^```([^\n]*)\n(.*?)^```$", text, flags=re.M | re.S)


def needs_gpu(info: str) -> bool:
    return "GPU" in info


PYTHON_BLOCKS = [
    body
    for info, body in fenced_blocks(QUICKSTART)
    if info.startswith("python") and not needs_gpu(info)
]
GPU_BLOCKS = [
    body
    for info, body in fenced_blocks(QUICKSTART)
    if info.startswith("python") and needs_gpu(info)
]
DERIVE_COMMANDS = [
    line
    for info, body in fenced_blocks(QUICKSTART)
    if info.startswith("bash")
    for line in body.splitlines()
    if line.startswith("python -m derive")
]


# --- the generated pages -----------------------------------------------------------------------


def test_input_statistics_page_matches_the_derivation():
    stale = input_statistics_docs.stale_page(DOCS)
    assert not stale, "stale: docs/input_statistics.md; regenerate: python -m derive --derivation-pages"


@pytest.mark.parametrize("name", COMMITTED_PAGES)
def test_committed_page_and_plots_match_the_derivation(name):
    activation = recorded_activations().get(name)
    assert activation is not None, f"docs/activations/{name}.md has no module in generated/"
    stale = docs.stale_docs([activation], PAGES, recompute_accuracy=False)
    assert not stale, f"stale: {[str(p) for p in stale]}; regenerate: {activation.command} --docs"


def test_every_generated_module_has_a_page_listed_in_the_nav():
    for name, activation in recorded_activations().items():
        missing = f"no docs/activations/{name}.md; write it: {activation.command} --docs"
        assert name in COMMITTED_PAGES, missing
    for name in COMMITTED_PAGES:
        assert f"activations/{name}.md" in MKDOCS_YML, f"activations/{name}.md is not in mkdocs.yml"


@slow
@pytest.mark.parametrize("name", ["relu", "sigmoid"])
def test_accuracy_table_is_recomputed_exactly(name):
    """A closed form (relu) and the numerical path (sigmoid, whose tables went stale unnoticed
    once): the committed page, accuracy table included, is what the derivation gives now."""
    activation = recorded_activations()[name]
    committed = (PAGES / f"{name}.md").read_text(encoding="utf-8")
    assert docs.render_activation_page(activation) == committed


def test_docs_grid_waits_for_a_slow_reference_where_the_report_skips_it(monkeypatch):
    """A page's table must not depend on the machine's speed: the docs grid runs the mpmath
    reference without the report's time limit (a slow grid point, e.g. GELU or ELU at
    r = 0.1, b = -30, takes about a minute here), and the limit itself works where it is set."""
    import time

    seen = {}

    def accuracy(*args, **kwargs):
        seen.update(kwargs)
        return ROWS

    monkeypatch.setattr(report, "accuracy", accuracy)
    assert docs.compute_accuracy_rows(activations.builtin("relu")) == ROWS
    assert seen == {"time_limit": None}
    with report._time_limit(None):
        time.sleep(0.2)  # not interrupted
    with pytest.raises(report.ReferenceTimeout), report._time_limit(0.05):
        time.sleep(2.0)


def test_page_states_the_grid_and_reads_back_its_accuracy_rows():
    page = docs.render_activation_page(activations.builtin("relu"), ROWS)
    assert "r ∈ {0, 0.1, 1, 10, 10000} × b ∈ {-30, -1, 0, 1, 30}" in page
    assert "damping ∈ {0, 0.001}" in page
    assert docs.read_accuracy_rows(page) == ROWS


def test_page_without_closed_form_says_why():
    activation = activations.from_expression("tanh(u)", "tanh_page")
    page = docs.render_activation_page(activation, ROWS)
    assert "## No closed form" in page and "is not a polynomial or an exponential" in page
    assert "## Closed forms" not in page
    assert "## Inverse coefficients" in page  # the inverse does not depend on the activation
    # its mean field: E[tanh] = 0 by symmetry, E[tanh²] by quadrature of the even part
    mean_field = page[page.index("## Mean field") : page.index(docs._ACCURACY_HEADING)]
    assert "By symmetry" in mean_field and "f_e(u) =" in mean_field


def test_page_shows_the_mean_field_closed_forms():
    page = docs.render_activation_page(activations.builtin("relu"), ROWS)
    mean_field = page[page.index("## Mean field") : page.index(docs._ACCURACY_HEADING)]
    assert r"= \frac{\sqrt{2} \tau}{2 \sqrt{\pi}}" in mean_field  # E[relu(τv)] = τ/√(2π)
    assert r"= \frac{\tau^{2}}{2}" in mean_field and r"= \frac{1}{2}" in mean_field


def test_rendering_is_deterministic_across_processes():
    # SymPy's term order must not depend on hash randomisation. (The plots are compared with
    # committed ones, made in another process, by test_committed_page_and_plots_match_...)
    script = (
        "import hashlib; from fisher_sym import activations, docs, input_statistics_docs, report;"
        "rows = {q: report.Worst(1e-15, 'r=1, b=0') for q in report.QUANTITIES};"
        "pages = [docs.render_activation_page(activations.builtin(n), rows)"
        " for n in ('elu', 'erf')];"
        "print(hashlib.sha256(''.join(pages).encode()).hexdigest())"
    )
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in ("0", "12345")
    ]
    outputs = [run.communicate(timeout=300)[0] for run in runs]
    assert all(run.returncode == 0 for run in runs)
    assert outputs[0] == outputs[1] and len(outputs[0].strip()) == 64


def test_write_docs_writes_changed_files_atomically(tmp_path, monkeypatch):
    monkeypatch.setattr(docs, "compute_accuracy_rows", lambda activation: ROWS)
    plots = {"linear_blocks.png": b"\x89PNG blocks", "linear_inverse.png": b"\x89PNG inverse"}
    monkeypatch.setattr(docs, "render_plots", lambda activation: plots)
    linear = activations.builtin("linear")
    written = docs.write_docs([linear], tmp_path)
    assert sorted(path.name for path in written) == [
        "linear.md",
        "linear_blocks.png",
        "linear_inverse.png",
    ]
    assert docs.write_docs([linear], tmp_path) == []
    assert docs.stale_docs([linear], tmp_path) == []
    assert docs.stale_docs([linear], tmp_path, recompute_accuracy=False) == []

    plot = tmp_path / "linear_blocks.png"
    old = plot.read_bytes()
    plot.write_bytes(old + b"\0")
    assert docs.stale_docs([linear], tmp_path) == [plot]

    def failing_replace(source, target):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        docs.write_docs([linear], tmp_path)
    assert plot.read_bytes() == old + b"\0"  # the old file is left in place
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "linear.md",
        "linear_blocks.png",
        "linear_inverse.png",
    ]  # and no temporary file


# --- the quickstart ----------------------------------------------------------------------------


@pytest.mark.parametrize("block", range(len(PYTHON_BLOCKS)))
def test_quickstart_python_block_runs(block):
    namespace = {"__name__": "quickstart"}
    exec(compile(PYTHON_BLOCKS[block], f"docs/quickstart.md, block {block}", "exec"), namespace)


@pytest.mark.parametrize("command", DERIVE_COMMANDS)
def test_quickstart_derive_command_is_valid_and_its_module_is_committed(command, capsys):
    assert cli.main(shlex.split(command)[3:] + ["--check"]) == 0, capsys.readouterr().err


def test_quickstart_has_the_examples_it_promises():
    assert len(PYTHON_BLOCKS) >= 3 and len(GPU_BLOCKS) == 1
    assert "python -m derive --activation relu" in DERIVE_COMMANDS
    assert 'python -m derive --expr "u**3/3 + u" --name cubic' in DERIVE_COMMANDS


def test_quickstart_gpu_block_runs_on_a_gpu_or_the_simulator():
    from generated import relu

    if not hasattr(relu, "natural_gradient_cuda"):
        pytest.skip("generated modules have no natural_gradient_cuda yet")
    (block,) = GPU_BLOCKS
    environment = dict(os.environ)
    probe = subprocess.run(
        [sys.executable, "-c", "from numba import cuda; print(cuda.is_available())"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.stdout.strip() != "True":
        environment["NUMBA_ENABLE_CUDASIM"] = "1"
    run = subprocess.run(
        [sys.executable, "-c", block], env=environment, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-3000:]


# --- the site ----------------------------------------------------------------------------------


def test_mkdocs_build_is_strict_and_needs_no_network(tmp_path):
    if importlib.util.find_spec("mkdocs") is None:
        pytest.skip("mkdocs is not installed (python -m pip install -e '.[docs]')")
    site = tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-5000:]
    assert (site / "javascripts" / "mathjax" / "tex-svg.js").stat().st_size > 1_000_000
    pages = [site / "index.html", site / "derivation" / "index.html"]
    pages.append(site / "activations" / "relu" / "index.html")
    for page in pages:
        html = page.read_text(encoding="utf-8")
        loads = re.findall(EXTERNAL_RESOURCE, html)
        assert not loads, f"{page} loads {loads} from the network"
    relu = pages[-1].read_text(encoding="utf-8")
    assert 'class="arithmatex"' in relu and "relu_inverse.png" in relu
