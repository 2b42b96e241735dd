"""Guards on the import graph of ``src/penny`` (issue #15), read from the source, never imported.

* **The core is pure.** Modules under ``penny.ledger``, ``penny.domain``, ``penny.gatekeeper``
  and ``penny.money`` import only each other and the standard library's pure parts: no other
  Penny module (no adapter: storage, engine, services, web, fps, cli, clock…), no SQL, HTTP or
  clock module (:data:`NOT_IN_CORE`), and they never ask a ``datetime`` or ``date`` for the
  time. Every import counts here, a lazy one inside a function and a ``TYPE_CHECKING`` one too.
* **No import cycles.** The graph of module-level imports between Penny's modules has no
  cycle. Imports under ``if TYPE_CHECKING:`` are left out (they never run), and so are imports
  inside functions (they run after every module involved has loaded). An edge goes to the
  module named: ``from penny.cli import serve`` to ``penny.cli.serve``, ``from penny.x import
  name`` to ``penny.x``; importing ``a.b.c`` runs the packages ``a`` and ``a.b`` first, but
  those implicit edges are left out (a package's ``__init__`` naming its own modules would
  otherwise be a cycle with each of them).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Final

SRC: Final = Path(__file__).resolve().parents[1] / "src"

#: The pure core; ``penny.epoch`` (integer time conversions, no clock read) belongs to it.
CORE: Final = ("penny.ledger", "penny.domain", "penny.gatekeeper", "penny.money", "penny.epoch")

#: Top-level modules (and submodules) the core must not import: SQL, HTTP, networking, time,
#: threads and event loops, templates, subprocesses.
NOT_IN_CORE: Final = frozenset(
    {
        "sqlalchemy",
        "alembic",
        "psycopg",
        "sqlite3",
        "httpx",
        "starlette",
        "uvicorn",
        "jinja2",
        "http",
        "urllib.request",
        "socket",
        "ssl",
        "asyncio",
        "time",
        "threading",
        "subprocess",
        "os",
    }
)
#: Methods that read the clock (``datetime.now()``, ``date.today()``…).
CLOCK_READS: Final = frozenset({"now", "utcnow", "today"})


def module_name(path: Path, src: Path = SRC) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def penny_modules(src: Path = SRC) -> dict[str, Path]:
    """Every module of ``src/penny`` (the Alembic scripts are run by Alembic, not imported)."""
    return {
        module_name(path, src): path
        for path in sorted((src / "penny").rglob("*.py"))
        if "migrations" not in path.parts
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def module_level_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """The imports run when the module loads: not in functions or classes' methods, not under
    ``if TYPE_CHECKING:`` (its ``else`` does run)."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if not _is_type_checking(node.test):
                yield from module_level_imports(node.body)
            yield from module_level_imports(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from module_level_imports(block)
            for handler in node.handlers:
                yield from module_level_imports(handler.body)
        elif isinstance(node, ast.With | ast.ClassDef):
            yield from module_level_imports(node.body)


def imported_names(
    module: str, path: Path, node: ast.Import | ast.ImportFrom, known: Mapping[str, Path]
) -> list[str]:
    """What ``node`` imports, as module names (``from p import m`` is ``p.m`` when that is a
    module of ``known``, else ``p``); relative imports resolved."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = package[: len(package) - node.level + 1]
        base = ".".join([*package, base] if base else package)
    names = []
    for alias in node.names:
        candidate = f"{base}.{alias.name}"
        names.append(candidate if candidate in known else base)
    return names


def import_graph(src: Path = SRC) -> dict[str, set[str]]:
    """Module → the Penny modules it imports at module level."""
    known = penny_modules(src)
    graph: dict[str, set[str]] = {}
    for module, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        graph[module] = {
            name
            for node in module_level_imports(tree.body)
            for name in imported_names(module, path, node, known)
            if name in known and name != module
        }
    return graph


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def _in(module: str, packages: tuple[str, ...] | frozenset[str]) -> bool:
    return any(module == p or module.startswith(p + ".") for p in packages)


def core_offences(src: Path = SRC) -> list[str]:
    """Every import or clock read of a core module that the core may not have."""
    known = penny_modules(src)
    offences = []
    for module, path in known.items():
        if not _in(module, CORE):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        where = path.relative_to(src)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                    continue
                for name in imported_names(module, path, node, known):
                    adapter = name.startswith("penny") and not _in(name, CORE)
                    if adapter or _in(name, NOT_IN_CORE):
                        offences.append(f"{where}:{node.lineno}: imports {name}")
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CLOCK_READS
            ):
                offences.append(f"{where}:{node.lineno}: reads the clock (.{node.func.attr}())")
    return offences


# -- the guards --------------------------------------------------------------------------------


def test_the_core_imports_no_adapter_and_no_sql_http_or_clock_module() -> None:
    assert core_offences() == []


def test_there_are_no_import_cycles_in_src_penny() -> None:
    graph = import_graph()
    assert "penny.cli.main" in graph  # the walk found the modules
    assert "penny.cli.common" in graph["penny.cli.main"]  # and their imports
    assert cycles(graph) == []


# -- the guards can fail -----------------------------------------------------------------------


def _package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    src = tmp_path / "src"
    for name, text in files.items():
        path = src / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return src


def test_a_cycle_is_found_but_not_through_type_checking_or_function_imports(
    tmp_path: Path,
) -> None:
    src = _package(
        tmp_path,
        {
            "penny/__init__.py": "",
            "penny/cli/__init__.py": "",
            "penny/cli/main.py": "from penny.cli import sub\n",
            "penny/cli/sub.py": "from .main import app\n",
            "penny/a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from penny import b\n",
            "penny/b.py": "import penny.a\n\ndef f():\n    from penny.c import x\n",
            "penny/c.py": "from penny.b import f\n",
        },
    )
    graph = import_graph(src)
    assert graph["penny.cli.sub"] == {"penny.cli.main"}  # a relative import, resolved
    assert graph["penny.a"] == set()
    assert cycles(graph) == [["penny.cli.main", "penny.cli.sub"]]


def test_a_core_module_that_imports_an_adapter_or_reads_the_clock_is_named(
    tmp_path: Path,
) -> None:
    src = _package(
        tmp_path,
        {
            "penny/__init__.py": "",
            "penny/money.py": "import time\n",
            "penny/ledger/__init__.py": "",
            "penny/ledger/book.py": "from penny.money import Money\n"
            "def f():\n    from penny.storage import schema\n",
            "penny/domain/__init__.py": "",
            "penny/domain/rules.py": "from datetime import datetime\nNOW = datetime.now()\n",
            "penny/storage/__init__.py": "",
            "penny/storage/schema.py": "import sqlalchemy\n",
        },
    )
    assert core_offences(src) == [
        "penny/domain/rules.py:2: reads the clock (.now())",
        "penny/ledger/book.py:3: imports penny.storage.schema",
        "penny/money.py:1: imports time",
    ]
