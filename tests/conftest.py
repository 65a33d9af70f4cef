"""Hypothesis draws the same examples on every run (CI is deterministic and its time bounded)."""

from hypothesis import settings

settings.register_profile("deterministic", derandomize=True, print_blob=True)
settings.load_profile("deterministic")
