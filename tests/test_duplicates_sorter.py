"""The rule that tells a record's shape from repeated logic (penny.devtools.duplicates)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from penny.devtools.duplicates import Pair, Place, Sorter, declaration_lines, parse_rows

SOURCE = textwrap.dedent(
    '''\
    """A module."""
    from dataclasses import (
        dataclass,
        field,
    )
    import enum

    LIMIT: int = 20
    NAME = "x"


    class Colour(enum.Enum):
        red = "red"
        green = "green"


    @dataclass(frozen=True)
    class Point:
        """A point."""

        x: int
        y: int = 0
        tags: list[str] = field(default_factory=list)

        def __str__(self) -> str:
            return f"{self.x},{self.y}"

        def moved(self, dx: int) -> Point:
            return Point(
                x=self.x + dx,
                y=self.y,
            )


    def build(
        x: int,
        y: int,
    ) -> dict[str, int]:
        """A record as a dict."""
        return {
            "x": x,
            "y": y,
            "sum": x + y,
        }


    class Box:
        def __init__(self, size: int) -> None:
            self.size = size
            self.area = size * size


    def upgrade() -> None:
        op.create_index("ix_t", "t", ["c"])


    def work(items: list[int]) -> int:
        total = 0
        for item in items:
            total += item
        send(
            total,
            reason="sum",
        )
        return total
    '''
)


def numbered(text: str) -> dict[str, int]:
    """Line number of each stripped line (first occurrence)."""
    lines: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        lines.setdefault(line.strip(), number)
    return lines


#: Lines of SOURCE that declare: imports, fields, members, signatures, records built or handed
#: over from plain data, field stores in ``__init__``, plain accessors, Alembic operations.
DECLARING = (
    "dataclass,",
    "LIMIT: int = 20",
    'NAME = "x"',
    'red = "red"',
    "@dataclass(frozen=True)",
    "class Point:",
    "x: int",
    "tags: list[str] = field(default_factory=list)",
    "def moved(self, dx: int) -> Point:",
    "y=self.y,",
    "x: int,",
    ") -> dict[str, int]:",
    '"""A record as a dict."""',
    "return {",
    '"x": x,',
    'reason="sum",',
    "send(",
    'return f"{self.x},{self.y}"',
    "self.size = size",
    "return Point(",
    'op.create_index("ix_t", "t", ["c"])',
)

#: Lines of SOURCE that compute (``x=self.x + dx`` too: its call's opening line declares).
COMPUTING = (
    "total = 0",
    "for item in items:",
    "total += item",
    "return total",
    "self.area = size * size",
    '"sum": x + y,',
    "x=self.x + dx,",
)


@pytest.mark.parametrize(
    ("line", "declares"), [(line, True) for line in DECLARING] + [(c, False) for c in COMPUTING]
)
def test_which_lines_declare(line: str, declares: bool) -> None:
    assert (numbered(SOURCE)[line] in declaration_lines(SOURCE)) is declares


ROWS = """\
3 pairs of places (3 files read), each sharing runs of 6 or more identical lines
D1 a.py:2-5 ~ b.py:2-5 shape (+1 more run)
D2 a.py:7-10 ~ b.py:7-10 shape
D3 a.py:2-5 ~ t.html:1-3
left out: 1 run
"""


def test_rows_are_read_from_the_listing() -> None:
    pairs = parse_rows(ROWS)
    assert pairs[0] == Pair(Place("a.py", 2, 5), Place("b.py", 2, 5), "shape (+1 more run)")
    assert [str(p.other) for p in pairs] == ["b.py:2-5", "b.py:7-10", "t.html:1-3"]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "a.py").write_text("@dataclass\nclass A:\n    x: int\n    y: int\n    z: int\n\n")
    (tmp_path / "b.py").write_text(
        "def f():\n    n = 0\n    n += 1\n    n += 2\n    return n\n\nA = 1\nB = 2\nC = 3\nD = 4\n"
    )
    (tmp_path / "c.py").write_text(
        "def f():\n    return g(1) + 1\n\n\ndef h():\n    return g(2) + 2\n\n\nA = 1\nB = 2\n"
    )
    (tmp_path / "t.html").write_text("<p>\n</p>\n<p>\n")
    (tmp_path / "u.html").write_text(
        '{% extends "base.html" %}\n{% call section("s", "Heading") %}\n'
        '{% call(r) data_table(\n    rows,\n    "Caption",\n'
        '    ["When", "What"],\n    id="x"\n) %}\n  <tr><td>{{ r.when }}</td></tr>\n'
        "{% endcall %}\n{% endcall %}\n"
    )
    return tmp_path


def test_pairs_are_sorted_into_record_logic_and_markup(tree: Path) -> None:
    sorter = Sorter(tree)
    record = Pair(Place("a.py", 2, 5), Place("b.py", 7, 10), "shape")
    logic = Pair(Place("a.py", 2, 5), Place("b.py", 2, 5), "shape")
    markup = Pair(Place("a.py", 2, 5), Place("t.html", 1, 3), "")
    one_line = Pair(Place("a.py", 2, 5), Place("b.py", 5, 10), "shape")
    # One line of logic in each of two functions: still nothing to extract as one rule.
    split = Pair(Place("c.py", 1, 10), Place("b.py", 5, 10), "shape")
    kinds = [sorter.kind(p) for p in (record, logic, markup, one_line, split)]
    assert kinds == ["record", "logic", "markup", "one-line", "one-line"]
    # A macro call's literal arguments declare (a table's caption and columns); its rows do not.
    arguments = Pair(Place("u.html", 1, 8), Place("b.py", 7, 10), "shape")
    rows = Pair(Place("u.html", 3, 10), Place("t.html", 1, 3), "shape")
    assert [sorter.kind(p) for p in (arguments, rows)] == ["record", "markup"]
