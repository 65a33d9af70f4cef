"""Studies run with fisher_sym: ``python -m experiments.NAME`` (each writes a docs page)."""
