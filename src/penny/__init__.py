"""Penny: a self-hosted aggregated-payments server, wire-compatible with Amazon FPS.

The package is laid out by role (see ARCHITECTURE.md): ``penny.money`` and ``penny.ledger`` are
the pure core; ``penny.storage`` and ``penny.engine`` are the adapters that make it durable;
``penny.cli`` is the command line.
"""

__version__ = "0.1.0"
