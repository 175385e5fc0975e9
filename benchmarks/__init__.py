"""hpt's benchmarks; run them as modules from the repository root (see ``benchmarks/README.md``)."""
