"""The paper's theorems measured on random networks (issue 18): block-diagonal Fisher
(Theorems 1 and 2), the domino lemma (eq. 37), unit blocks against the analytic ones, and
unit-wise against exact natural gradients. ``python -m experiments.fisher_structure``;
docs/fisher_structure.md shows the results.

- ``network``: random plain and residual networks, forward and back-propagated factors;
- ``measure``: sampled Fisher blocks with their noise floor, domino lemma, unit blocks,
  natural gradients;
- ``analytic``: the analytic unit block from the generated modules;
- ``study``: configurations (quick, full, tiny) and the loop over them;
- ``report``, ``page``: fits, figures and the docs page from the JSON results.
"""
