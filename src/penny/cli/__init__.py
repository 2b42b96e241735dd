"""The ``penny`` command line (Typer): operations, audits and benchmarks."""
