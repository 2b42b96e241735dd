"""What every ``penny`` command and command group shares, importable before
:mod:`penny.cli.main`.

The sub-apps are created before :mod:`penny.cli.main` is imported, so that either module may
be imported first; this module depends on nothing of Penny's for that reason.

Help is Click's plain text (no boxes), in Penny's words:

* a command listed in its group's help shows its whole first paragraph, wrapped, instead of
  Click's first 45-odd characters cut off with "...";
* an argument is labelled by its metavar (``ID``), not by its Python type (``<str>``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import typer
from typer._click import Context, HelpFormatter  # Typer's own Click (typer >= 0.29)
from typer.core import TyperCommand, TyperGroup


def first_paragraph(text: str | None) -> str:
    """The first paragraph of a help text, as one line."""
    if not text:
        return ""
    return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())


class PennyCommand(TyperCommand):
    """A command whose help labels arguments by their metavar and is never cut short."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or first_paragraph(self.help)

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        arguments: list[tuple[str, str]] = []
        options: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            if param.param_type_name == "argument":
                arguments.append((param.metavar or (param.name or "").upper(), record[1]))
            else:
                options.append(record)
        if arguments:
            with formatter.section("Arguments"):
                formatter.write_dl(arguments)
        if options:
            with formatter.section("Options"):
                formatter.write_dl(options)


class PennySubGroup(TyperGroup):
    """A command group listed by its whole first paragraph, like :class:`PennyCommand`."""

    def get_short_help_str(self, limit: int = 45) -> str:
        return self.short_help or first_paragraph(self.help)


class PennyTyper(typer.Typer):
    """A Typer app whose commands are :class:`PennyCommand` unless told otherwise."""

    def command(  # type: ignore[override]
        self, name: str | None = None, *, cls: type[TyperCommand] | None = None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        return super().command(name, cls=cls or PennyCommand, **kwargs)


def penny_typer(help_text: str) -> typer.Typer:
    """A sub-command group in Penny's style: plain help, and its help when called bare."""
    return PennyTyper(
        help=help_text, no_args_is_help=True, rich_markup_mode=None, cls=PennySubGroup
    )
