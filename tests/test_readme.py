"""The README's example runs, and CI runs the README's test command."""

import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_example_runs_and_preconditions_the_gradient():
    (example,) = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    namespace = {}
    exec(compile(example, "README.md", "exec"), namespace)
    nat_W, grad_W = namespace["nat_W"], namespace["grad_W"]
    assert nat_W.shape == grad_W.shape and np.all(np.isfinite(nat_W))
    assert not np.allclose(nat_W, grad_W)


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^    (python -m pip install .*)$", README, flags=re.M)
    test_command = next(command for command in commands if "pytest" in command)
    assert test_command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
