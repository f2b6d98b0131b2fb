"""Scripts that print numbers: benchmarks, soaks and experiment drivers (not installed with the package)."""
