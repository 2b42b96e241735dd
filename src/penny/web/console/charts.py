"""Charts drawn on the server: a bar chart as inline SVG markup (no script, no third-party code).

:func:`bar_chart` gives the SVG as a string of elements with integer coordinates; the page puts
it in a ``<figure>`` with ``role="img"`` and a text summary, and a table of the same numbers
follows for screen readers and for copying. Nothing here is HTML-escaped input: the labels
are dates and amounts the console formats itself, and are escaped anyway.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from typing import Final

WIDTH: Final = 640
HEIGHT: Final = 200
_TOP: Final = 16
_BOTTOM: Final = 24
_LEFT: Final = 8


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    #: The bar's tooltip (``<title>``): the label and the formatted value.
    title: str


def bar_chart(bars: Sequence[Bar], description: str, top_label: str = "") -> str:
    """An SVG bar chart of ``bars`` (values ≥ 0), ``description`` its accessible name,
    ``top_label`` written at the top left (the value of the tallest bar)."""
    top = max((bar.value for bar in bars), default=0)
    plot_h = HEIGHT - _TOP - _BOTTOM
    count = max(len(bars), 1)
    slot = (WIDTH - 2 * _LEFT) // count
    gap = 1 if slot < 8 else 2
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-label="{escape(description)}" focusable="false">',
        f'<line x1="{_LEFT}" y1="{HEIGHT - _BOTTOM}" x2="{WIDTH - _LEFT}" '
        f'y2="{HEIGHT - _BOTTOM}" class="axis"/>',
    ]
    if top_label:
        parts.append(f'<text x="{_LEFT}" y="{_TOP - 2}" class="top">{escape(top_label)}</text>')
    label_every = max(1, count // 7)
    for index, bar in enumerate(bars):
        height = 0 if top == 0 else bar.value * plot_h // top
        x = _LEFT + index * slot
        y = HEIGHT - _BOTTOM - height
        parts.append(
            f'<rect x="{x + gap}" y="{y}" width="{max(slot - 2 * gap, 1)}" height="{height}" '
            f'class="bar"><title>{escape(bar.title)}</title></rect>'
        )
        if index % label_every == 0:
            tick = escape(bar.label)
            parts.append(f'<text x="{x + slot // 2}" y="{HEIGHT - 6}" class="tick">{tick}</text>')
    parts.append("</svg>")
    return "".join(parts)
