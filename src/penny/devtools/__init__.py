"""Developer tooling: helpers for tests, benchmarks and local development.

Nothing in here is used by the server at run time. ``penny.devtools.pgcluster`` starts a
throwaway PostgreSQL cluster (``python -m penny.devtools.pgcluster`` for an interactive one).
"""
