"""Harnesses shared by the tests and the benchmarks (benchmarks/ put tests/ on sys.path); not shipped in the package."""
