"""Which repeated code is a record's shape and which is repeated logic (issue #15's guard).

The ``duplicates`` command (a developer tool on the workstation, not a dependency) lists pairs
of places that share six or more lines, the same or of the same shape. Many such pairs are two
*records* that look alike: two dataclasses' fields, two enums' members, two calls passing
keyword arguments, two dict displays, two signatures, two tables' columns. Those are one
declaration per record, as they should be. Repeated *logic* is the kind worth merging.

This module sorts the pairs into the two kinds with Python's own parser, so the sorting is a
rule anyone can read (``declaration_lines``), not a judgement:

- a **declaration line** belongs to an import, a class header or a class body statement that
  declares rather than computes (an annotated field, an enum member or constant, a docstring,
  ``pass``), a decorator, a function's signature (up to its body) or docstring, an
  ``__init__``'s ``self.name = plain`` lines, the body of a function that only returns plain
  data (``__str__``, a property), an element of
  a multi-line call's arguments, a dict, list, tuple or set display whose value is plain data
  (a name, an attribute, a constant, a string, or a call/subscript of those), or a statement
  that builds a record from plain data (``x = Record(...)``, ``return {...}``) or hands plain
  data over in a call of several lines or to a migration's ``op`` (``op.create_table("t",
  Column(...), ...)``), and the opening ``x = Record(`` or ``return {`` of any record or
  display built over several lines (its arguments and items count one by one);
- a side of a pair is a **record shape** when every line the tool compares (not blank, not a
  comment, not lone punctuation) is a declaration line; a pair is a record-shape pair when
  both sides are. A **one-line** pair is declarations around at most one line of logic a side
  (a test's parameter table and its one assert, a command's signature and its first
  statement): one line is not a rule that could live in one place. Every other pair is
  **logic** (or **markup**, for templates).

``python -m penny.devtools.duplicates [ROOT]`` runs ``duplicates`` over ``src/`` and
``tests/`` in chunks (it shows at most 200 rows a run), and prints each pair with its kind and
the counts; ``--kind logic`` prints only those. It exits 2 when ``duplicates`` is not installed.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

ROW: Final = re.compile(r"^D\d+ (\S+):(\d+)-(\d+) ~ (\S+):(\d+)-(\d+)\s*(.*)$")
"""One row of ``duplicates``' listing: two places and what it says of them."""

_PLAIN_LINE: Final = re.compile(r"^[\s()\[\]{},:]*$|^\s*#")
"""Lines the tool passes over: blank, lone punctuation, comments."""

KINDS: Final = ("record", "one-line", "logic", "markup")
"""The kinds of pair, from a record's shape to repeated logic (see ``Sorter.kind``)."""

_DECLARING: Final = (ast.AnnAssign, ast.Pass, ast.Import, ast.ImportFrom)


@dataclass(frozen=True, slots=True)
class Place:
    """Lines ``first``..``last`` (1-based, inclusive) of ``path`` (relative to the root)."""

    path: str
    first: int
    last: int

    def __str__(self) -> str:
        return f"{self.path}:{self.first}-{self.last}"


@dataclass(frozen=True, slots=True)
class Pair:
    """Two places ``duplicates`` found alike, and what it said of them (``shape`` …)."""

    one: Place
    other: Place
    remark: str


def parse_rows(output: str) -> list[Pair]:
    """The pairs of one ``duplicates`` listing (its other lines are ignored)."""
    pairs = []
    for line in output.splitlines():
        found = ROW.match(line)
        if found:
            a, a1, a2, b, b1, b2, remark = found.groups()
            pairs.append(Pair(Place(a, int(a1), int(a2)), Place(b, int(b1), int(b2)), remark))
    return pairs


def _lines_of(node: ast.AST) -> range:
    first: int = getattr(node, "lineno", 0)
    last: int = getattr(node, "end_lineno", None) or first
    return range(first, last + 1)


def _is_plain(value: ast.expr) -> bool:
    """A name, attribute, constant or string, or a call/subscript/unary of plain parts."""
    match value:
        case ast.Name() | ast.Constant() | ast.JoinedStr():
            return True
        case ast.Attribute(value=inner) | ast.Starred(value=inner) | ast.UnaryOp(operand=inner):
            return _is_plain(inner)
        case ast.Subscript(value=inner, slice=index):
            return _is_plain(inner) and _is_plain(index)
        case ast.Tuple(elts=items) | ast.List(elts=items) | ast.Set(elts=items):
            return all(_is_plain(item) for item in items)
        case ast.Dict(keys=keys, values=values):
            return all(k is None or _is_plain(k) for k in keys) and all(map(_is_plain, values))
        case ast.Call(func=func, args=args, keywords=keywords):
            return (
                _is_plain(func)
                and all(_is_plain(a) for a in args)
                and all(_is_plain(k.value) for k in keywords)
            )
        case _:
            return False


def _class_body_declares(statement: ast.stmt) -> bool:
    match statement:
        case ast.Expr(value=ast.Constant(value=str())):
            return True
        case ast.Assign(value=value):
            return _is_plain(value)
        case _:
            return isinstance(statement, _DECLARING)


def _display_items(node: ast.AST) -> Iterator[ast.AST]:
    """The elements of a call's arguments or a display, when they span several lines."""
    match node:
        case ast.Call(args=args, keywords=keywords):
            yield from (a for a in args if _is_plain(a))
            yield from (k for k in keywords if _is_plain(k.value))
        case ast.Dict(keys=keys, values=values):
            for key, value in zip(keys, values, strict=True):
                if (key is None or _is_plain(key)) and _is_plain(value):
                    yield from (value,) if key is None else (key, value)
        case ast.List(elts=items) | ast.Tuple(elts=items) | ast.Set(elts=items):
            yield from (item for item in items if _is_plain(item))


def _is_display(node: ast.AST) -> bool:
    return isinstance(node, ast.Call | ast.Dict | ast.List | ast.Tuple | ast.Set)


def _signature_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> Iterator[int]:
    for decorator in function.decorator_list:
        yield from _lines_of(decorator)
    yield from range(function.lineno, function.body[0].lineno)
    body = function.body
    if isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        yield from _lines_of(body[0])
        body = body[1:]
    for statement in body:
        if _stores_field(function, statement) or _returns_plain(body):
            yield from _lines_of(statement)


def _stores_field(function: ast.FunctionDef | ast.AsyncFunctionDef, statement: ast.stmt) -> bool:
    """``self.name = plain`` in ``__init__``: the object's field list."""
    match statement:
        case ast.Assign(targets=[ast.Attribute(value=ast.Name(id="self"))], value=value):
            return function.name == "__init__" and _is_plain(value)
        case ast.AnnAssign(target=ast.Attribute(value=ast.Name(id="self")), value=value):
            return function.name == "__init__" and value is not None and _is_plain(value)
        case _:
            return False


def _returns_plain(body: Sequence[ast.stmt]) -> bool:
    """A body that is one ``return`` of plain data: an accessor such as ``__str__``."""
    match body:
        case [ast.Return(value=value)]:
            return value is not None and _is_plain(value)
        case _:
            return False


def _record_call(value: ast.expr | None) -> bool:
    """A call of a class (a CapWords name) or of ``replace``: a record being built."""
    match value:
        case ast.Call(func=ast.Name(id=name) | ast.Attribute(attr=name)):
            return name[:1].isupper() or name == "replace"
        case _:
            return False


def _opening(statement: ast.stmt) -> range:
    """The opening line(s) of ``x = Record(`` / ``return Record(`` / ``return {``, up to the
    callee or the bracket (the arguments and items are judged one by one)."""
    match statement:
        case ast.Assign(value=value) | ast.Return(value=value) | ast.Expr(value=value):
            pass
        case _:
            return range(0)
    match value:
        case ast.Call(func=func) if _record_call(value):
            return range(statement.lineno, (func.end_lineno or func.lineno) + 1)
        case ast.Dict() | ast.List() | ast.Tuple() | ast.Set():
            return range(statement.lineno, value.lineno + 1)
        case _:
            return range(0)


def _alembic_operation(statement: ast.stmt) -> bool:
    """``op.create_index("ix", "t", ["c"])``: a migration declaring schema (Alembic's ``op``)."""
    match statement:
        case ast.Expr(value=ast.Call(func=ast.Attribute(value=ast.Name(id="op"))) as call):
            return _is_plain(call)
        case _:
            return False


def _is_record(value: ast.expr) -> bool:
    """A display of plain data, or a record built from it: a class called (``Route(...)``, a
    CapWords name) or ``replace(record, ...)``."""
    match value:
        case ast.Dict() | ast.List() | ast.Tuple() | ast.Set():
            return _is_plain(value)
        case ast.Call(func=ast.Name(id=name) | ast.Attribute(attr=name)):
            return (name[:1].isupper() or name == "replace") and _is_plain(value)
        case _:
            return False


def _constructs(statement: ast.stmt) -> bool:
    """A statement that only builds a record or hands one over: ``name = Record(...)``,
    ``return {...}``, or a call of several lines whose arguments are all plain data
    (``op.create_table("t", Column(...), ...)``)."""
    match statement:
        case ast.Assign(value=value) | ast.Return(value=value) | ast.AnnAssign(value=value):
            pass
        case ast.Expr(value=value):
            pass
        case _:
            return False
    if value is None:
        return False
    if _alembic_operation(statement):
        return True
    spread = isinstance(value, ast.Call) and len(_lines_of(value)) > 1 and _is_plain(value)
    return spread or _is_record(value)


def declaration_lines(source: str) -> set[int]:
    """The line numbers of ``source`` that declare (see the module docstring)."""
    tree = ast.parse(source)
    declaring: set[int] = set()
    for statement in tree.body:
        if _class_body_declares(statement):
            declaring.update(_lines_of(statement))
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and _constructs(node):
            declaring.update(_lines_of(node))
        if isinstance(node, ast.stmt):
            declaring.update(_opening(node))
        if isinstance(node, ast.Import | ast.ImportFrom):
            declaring.update(_lines_of(node))
        elif isinstance(node, ast.ClassDef):
            for decorator in node.decorator_list:
                declaring.update(_lines_of(decorator))
            declaring.update(range(node.lineno, node.body[0].lineno))
            for statement in node.body:
                if _class_body_declares(statement):
                    declaring.update(_lines_of(statement))
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            declaring.update(_signature_lines(node))
        elif _is_display(node) and len(_lines_of(node)) > 1:
            for item in _display_items(node):
                declaring.update(_lines_of(item))
    return declaring


_TEMPLATE_DECLARING: Final = re.compile(
    r"""^\s*(
      \{%-?\s*(extends|from|import|set|endcall|block|endblock)\b.*%}  # frame, row unpacking
    | \{%-?\s*call(\([^)]*\))?\s+[\w.]+\($                # a macro call opening: {% call(r) t(
    | \{%-?\s*call(\([^)]*\))?\s+[\w.]+\(.*\)\s*-?%}       # or all of it: {% call s("id", "T") %}
    | \)\s*-?%}                                              # its closing: ) %}
    | ("[^"]*"|'[^']*'|\[[^\]]*\]|[\w.]+|\w+=\S.*?),?       # one literal argument
    )\s*$""",
    re.VERBOSE,
)
"""Lines of a Jinja template that declare: the frame (extends, imports), a macro call's
opening and closing and its literal arguments (a table's caption, columns, ids)."""


def function_of_lines(source: str) -> dict[int, int]:
    """Each line inside a function mapped to the line of its innermost function's ``def``."""
    owners: dict[int, int] = {}
    for node in ast.walk(ast.parse(source)):  # outer functions before the ones they hold
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            owners.update(dict.fromkeys(_lines_of(node), node.lineno))
    return owners


def _declaring_of(path: str, text: str) -> set[int] | None:
    if path.endswith(".py"):
        return declaration_lines(text)
    if path.endswith(".html"):
        return template_declaration_lines(text)
    return None


def template_declaration_lines(text: str) -> set[int]:
    """The line numbers of a Jinja template that declare (see ``_TEMPLATE_DECLARING``)."""
    lines = text.splitlines()
    return {n for n, line in enumerate(lines, start=1) if _TEMPLATE_DECLARING.match(line)}


class Sorter:
    """Sorts pairs by kind, reading and parsing each file once."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._declaring: dict[str, set[int] | None] = {}
        self._owners: dict[str, dict[int, int]] = {}
        self._text: dict[str, list[str]] = {}

    def _file(self, path: str) -> tuple[list[str], set[int] | None]:
        if path not in self._text:
            text = (self.root / path).read_text(errors="replace")
            self._text[path] = text.splitlines()
            try:
                self._declaring[path] = _declaring_of(path, text)
                if path.endswith(".py"):
                    self._owners[path] = function_of_lines(text)
            except SyntaxError:
                self._declaring[path] = None
        return self._text[path], self._declaring[path]

    def undeclared(self, place: Place) -> int:
        """How many compared lines of ``place`` do not declare, counted within one function
        (the most in any one; lines of logic in different functions are not one rule). In
        other files every compared line counts."""
        lines, declaring = self._file(place.path)
        numbers = range(place.first, place.last + 1)
        compared = [n for n in numbers if not _PLAIN_LINE.match(lines[n - 1])]
        owners = self._owners.get(place.path, {})
        logic = Counter(
            owners.get(n, 0) for n in compared if declaring is None or n not in declaring
        )
        return max(logic.values(), default=0)

    def kind(self, pair: Pair) -> str:
        """``record`` (both sides only declare), ``one-line`` (declarations around one line
        of logic a side: nothing to extract), else ``markup`` (a template's) or ``logic``."""
        most = max(self.undeclared(pair.one), self.undeclared(pair.other))
        if most <= 1:
            return "record" if most == 0 else "one-line"
        templates = [p for p in (pair.one, pair.other) if not p.path.endswith(".py")]
        return "markup" if templates else "logic"


def _chunk(path: str) -> str:
    parts = path.split("/")
    if parts[0] == "tests":
        return "tests-a" if parts[-1] < "test_g" else "tests-b"
    area = parts[2] if len(parts) > 3 else "top"
    groups = {"storage": "storage", "web": "web", "api": "web"}
    ops = {"cli", "devtools", "bench", "check", "sandbox", "top"}
    return groups.get(area, "ops" if area in ops else "core")


def tracked_files(root: Path, folders: Sequence[str]) -> list[str]:
    """The files git tracks (or would add) under ``folders`` of ``root``."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", *folders],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return sorted({f for f in listed if (root / f).is_file()})


def every_pair(root: Path, files: Iterable[str], seconds: int = 120) -> list[Pair]:
    """Every pair ``duplicates`` finds among ``files``: it is run on each union of two chunks
    of the tree, as one run lists at most 200 pairs."""
    chunks: dict[str, list[str]] = {}
    for path in files:
        chunks.setdefault(_chunk(path), []).append(path)
    found: dict[tuple[str, str], Pair] = {}
    names = sorted(chunks)
    for one, other in itertools.combinations_with_replacement(names, 2):
        with tempfile.TemporaryDirectory() as scratch:
            for path in {*chunks[one], *chunks[other]}:
                target = Path(scratch) / path
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(root / path, target)
            listing = subprocess.run(
                ["duplicates", "--repo", scratch, "--most", "200", "--seconds", str(seconds)],
                cwd=scratch,
                capture_output=True,
                text=True,
                check=False,
            ).stdout
        for pair in parse_rows(listing):
            found[(str(pair.one), str(pair.other))] = pair
    return [found[key] for key in sorted(found)]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("root", nargs="?", default=".", type=Path)
    parser.add_argument("--kind", choices=KINDS, default=None)
    options = parser.parse_args(argv)
    if shutil.which("duplicates") is None:
        print("duplicates is not installed on this machine", file=sys.stderr)
        return 2
    root: Path = options.root
    pairs = every_pair(root, tracked_files(root, ["src", "tests"]))
    sorter = Sorter(root)
    kinds = Counter[str]()
    for pair in pairs:
        kind = sorter.kind(pair)
        kinds[kind] += 1
        if options.kind in (None, kind):
            print(f"{kind:6} {pair.one} ~ {pair.other} {pair.remark}".rstrip())
    summary = ", ".join(f"{kinds[k]} {k}" for k in KINDS)
    print(f"{len(pairs)} pairs: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
