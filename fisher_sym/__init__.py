"""fisher_sym: symbolically derived kernels for the unit-wise natural gradient.

The data path, one module per stage: ``activations`` (φ) → ``gaussian`` (A00, A0n, Ann) →
``fisher`` (the dyadic inverse) → ``codegen`` (printer, templates, files) → ``generated/``.
"""

__version__ = "0.1.0"
