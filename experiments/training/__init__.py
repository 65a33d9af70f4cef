"""Does the unit-wise natural gradient train faster? ``python -m experiments.training``.

fisher_sym's optimizer against SGD, SGD with momentum, Adam, the unit-wise natural gradient
with each unit's block estimated from the mini-batch, the quasi-diagonal natural gradient,
K-FAC and the exact natural gradient, on four small tasks (``tasks``), each method tuned on a
grid against a validation split and then trained from five seeds (``harness``); the page
docs/training.md and its figures are rendered from the results file (``page``).
"""
