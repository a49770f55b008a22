"""Benchmarks and soak tests (run by hand, not in CI)."""
