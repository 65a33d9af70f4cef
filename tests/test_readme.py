"""The README's example runs, and CI runs the README's test command."""

import math
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


EXAMPLES = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_readme_example_runs_and_preconditions_the_gradient():
    example = EXAMPLES[0]
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    nat_W, grad_W = namespace["nat_W"], namespace["grad_W"]
    assert nat_W.shape == grad_W.shape and np.all(np.isfinite(nat_W))
    assert not np.allclose(nat_W, grad_W)


def test_readme_pytorch_example_trains_the_digits_mlp(capsys):
    """The loss on the whole data set after each epoch goes down, ending far below that of a
    uniform guess (log 10 = 2.30)."""
    (example,) = [text for text in EXAMPLES if "UnitwiseNaturalGradient" in text]
    exec(compile(example, "README.md", "exec"), {})
    losses = [float(line.rsplit(" ", 1)[1]) for line in capsys.readouterr().out.splitlines()]
    assert len(losses) == 4
    assert losses[-1] < losses[0] and losses[-1] < 0.1 * math.log(10), losses


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^    (python -m pip install .*)$", README, flags=re.M)
    test_command = next(command for command in commands if "pytest" in command)
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
