"""What every ``penny`` sub-command group shares, importable before :mod:`penny.cli.main`.

The sub-apps are created before :mod:`penny.cli.main` is imported, so that either module may
be imported first; this module depends on nothing of Penny's for that reason.
"""

from __future__ import annotations

import typer


def penny_typer(help_text: str) -> typer.Typer:
    """A sub-command group in Penny's style: Click's plain help (no boxes), help when bare."""
    return typer.Typer(help=help_text, no_args_is_help=True, rich_markup_mode=None)
