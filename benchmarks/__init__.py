"""Benchmarks of the generated layer kernels (not tests: nothing here is asserted).

    python -m benchmarks            # CPU table (and GPU when there is one), about 2 minutes

See docs/benchmarks.md for what is measured and the recorded results.
"""
