"""No float anywhere in Penny's core: money is integers of minor units, always.

Every module under ``src/penny`` is parsed (never imported) and its syntax tree walked for a
float (or complex) literal, any mention of the name ``float``, and the true-division operator
``/`` (also ``/=``): ``int / int`` is a float in Python, so exact code uses ``//`` and ``divmod``.
Only the packages in :data:`ALLOWLIST` (benchmarks, the bank checker, the command line, developer
tools, which measure seconds and print throughput ratios; money there is still integer cents)
are exempt, subpackages included.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "penny"

ALLOWLIST = frozenset({"penny.bench", "penny.check", "penny.cli", "penny.devtools"})


@dataclass(frozen=True, order=True)
class Offence:
    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def module_name(path: Path) -> str:
    """``src/penny/ledger/book.py`` -> ``penny.ledger.book``; packages drop ``__init__``."""
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_allowlisted(module: str) -> bool:
    return any(module == allowed or module.startswith(allowed + ".") for allowed in ALLOWLIST)


def _string_annotations(node: ast.AST) -> list[ast.expr]:
    """``node``'s own annotations written as strings (``x: "float"``), parsed."""
    annotations: list[ast.expr | None] = []
    if isinstance(node, ast.arg | ast.AnnAssign):
        annotations.append(node.annotation)
    elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
        annotations.append(node.returns)
    found: list[ast.expr] = []
    for annotation in annotations:
        if isinstance(annotation, ast.Constant) and isinstance(annotation.value, str):
            try:
                found.append(ast.parse(annotation.value, mode="eval").body)
            except SyntaxError:
                continue
    return found


def find_offences(source: str, filename: str) -> list[Offence]:
    """Every float literal, use of ``float`` and true division in ``source``."""
    tree = ast.parse(source, filename=filename)
    offences: list[Offence] = []

    def report(node: ast.AST, what: str, line: int | None = None) -> None:
        lineno: int = line if line is not None else getattr(node, "lineno", 0)
        offences.append(Offence(filename, lineno, what))

    def walk(root: ast.AST, line: int | None = None) -> None:
        for node in ast.walk(root):
            if isinstance(node, ast.Constant) and isinstance(node.value, float | complex):
                report(node, f"float literal {node.value!r}", line)
            elif isinstance(node, ast.Name) and node.id == "float":
                report(node, "use of the name 'float'", line)
            elif isinstance(node, ast.Attribute) and node.attr == "float":
                report(node, "use of the attribute '.float'", line)
            elif isinstance(node, ast.alias) and "float" in (node.name, node.asname):
                report(node, "import of 'float'", line)
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                report(node, "true division '/' (use // or divmod)", line)
            elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Div):
                report(node, "true division '/=' (use //= or divmod)", line)

    walk(tree)
    for node in ast.walk(tree):
        for parsed in _string_annotations(node):
            annotated_line: int = getattr(node, "lineno", 0)
            walk(parsed, annotated_line)
    return sorted(offences)


def checked_modules() -> dict[str, Path]:
    """Module name -> file of every module the rule applies to."""
    modules = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    return {name: path for name, path in modules.items() if not is_allowlisted(name)}


# -- the rule ------------------------------------------------------------------------------


def test_no_float_in_the_core() -> None:
    modules = checked_modules()
    offences: list[Offence] = []
    for path in modules.values():
        shown = str(path.relative_to(SRC.parent))
        offences.extend(find_offences(path.read_text(encoding="utf-8"), shown))
    assert not offences, "float arithmetic in the core:\n" + "\n".join(map(str, offences))


def test_the_rule_is_not_vacuous() -> None:
    assert PACKAGE.is_dir(), PACKAGE
    modules = checked_modules()
    for required in (
        "penny.money",
        "penny.clock",
        "penny.ledger.book",
        "penny.ledger.model",
        "penny.ledger.fingerprint",
        "penny.ledger.audit",
        "penny.storage.database",
        "penny.storage.ledger_sql",
        "penny.engine.ledger",
        "penny.engine.group",
    ):
        assert required in modules, f"{required} was not checked: {sorted(modules)}"
    assert len(modules) >= 15, sorted(modules)
    assert not any(is_allowlisted(name) for name in modules)


def test_allowlist_covers_subpackages_only_of_listed_packages() -> None:
    assert is_allowlisted("penny.bench")
    assert is_allowlisted("penny.bench.ledger")
    assert is_allowlisted("penny.cli.main")
    assert is_allowlisted("penny.devtools.pgcluster")
    assert not is_allowlisted("penny.benchmarks")  # a prefix of a name is not a subpackage
    assert not is_allowlisted("penny.money")
    assert not is_allowlisted("penny")


def test_module_names() -> None:
    assert module_name(SRC / "penny" / "__init__.py") == "penny"
    assert module_name(SRC / "penny" / "ledger" / "book.py") == "penny.ledger.book"
    assert module_name(SRC / "penny" / "cli" / "__init__.py") == "penny.cli"


# -- the checker itself --------------------------------------------------------------------


def test_checker_flags_float_literal_float_name_and_division() -> None:
    snippet = "x = 1.5\ny = float(x)\nz = a / b\nz /= 2\nw = 1e3\n"
    found = find_offences(snippet, "snippet.py")
    assert [(o.line, o.what.split(" ")[0]) for o in found] == [
        (1, "float"),
        (2, "use"),
        (3, "true"),
        (4, "true"),
        (5, "float"),
    ]
    assert str(found[0]) == "snippet.py:1: float literal 1.5"
    assert str(found[2]) == "snippet.py:3: true division '/' (use // or divmod)"


def test_checker_flags_annotations_imports_and_complex() -> None:
    snippet = (
        "from builtins import float as f\n"
        "def g(a: float) -> 'float': ...\n"
        "c = 2j\n"
        "n = numpy.float\n"
    )
    lines = [o.line for o in find_offences(snippet, "snippet.py")]
    assert lines == [1, 2, 2, 3, 4]


def test_checker_accepts_exact_integer_code() -> None:
    snippet = (
        "q, r = divmod(a, 10_000)\n"
        "b = a // 3\n"
        "a //= 2\n"
        "s = 'float 1.5 / 2'\n"
        "n = 10**6 * 2 - 1\n"
        "flt = floaty + 1\n"
    )
    assert find_offences(snippet, "snippet.py") == []
