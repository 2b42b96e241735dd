"""Benchmarks shipped as commands (``penny bench …``), each with a same-run baseline."""
