"""Code generation: printer → module template → deterministic, atomic files in generated/."""
