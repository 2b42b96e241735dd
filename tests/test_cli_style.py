"""One style for the whole command line: every error one ``error: …`` line with status 2
(usage mistakes too), ``--version``, help in plain words, and commands printed as they can
be run from where the operator is."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner, Result

from penny import __version__
from penny.cli.main import app

PENNY = Path(sys.executable).with_name("penny")


def _commands() -> Iterator[list[str]]:
    """Every command and group, as the words that name it (``[]`` is ``penny`` itself)."""

    def walk(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name])

    yield from walk(typer.main.get_command(app), [])


ALL = list(_commands())


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "80"})


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ["accounts", "show"],
            "error: missing argument 'ID|EMAIL' (see `penny accounts show --help`)",
        ),
        (["audit", "--nope"], "error: no such option: --nope (see `penny audit --help`)"),
        (["nope"], "error: no such command 'nope' (see `penny --help`)"),
        (
            ["accounts", "create-business", "--email", "a@b.example"],
            "error: missing option '--name' (see `penny accounts create-business --help`)",
        ),
        (
            ["serve", "--port", "99999"],
            "error: invalid value for '--port': Input should be less than or equal to 65535 "
            "(see `penny serve --help`)",
        ),
    ],
)
def test_usage_mistakes_are_one_line_like_every_other_error(args: list[str], expected: str) -> None:
    result = invoke(*args)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.strip() == expected
    assert "╭" not in result.stderr


def test_version() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert result.stdout == f"penny {__version__}\n"


def test_a_bare_group_prints_its_help() -> None:
    result = invoke("transactions")
    assert "Usage: penny transactions" in result.output
    assert "list" in result.output
    assert "show" in result.output


@pytest.mark.parametrize("words", ALL, ids=lambda words: " ".join(["penny", *words]))
def test_help_is_in_plain_words(words: list[str]) -> None:
    result = invoke(*words, "--help")
    assert result.exit_code == 0, result.output
    shown = result.stdout
    assert not re.search(r"<(str|int|float|bool|path|int range|float range)>", shown), shown
    for technical in ("TEXT", "INTEGER", "FLOAT", "BOOLEAN", "penny.web", "penny.cli", "╭"):
        assert technical not in shown, technical
    listed = shown.split("Commands:", 1)[1] if "Commands:" in shown else ""
    assert "..." not in listed  # each command's first paragraph, whole, not cut off


def test_every_option_that_takes_a_value_names_it() -> None:
    def params(command: object) -> Iterator[tuple[str, object]]:
        yield getattr(command, "name", ""), command
        for sub in getattr(command, "commands", {}).values():
            yield from params(sub)

    unnamed = [
        f"{name} {param.name}"
        for name, command in params(typer.main.get_command(app))
        for param in getattr(command, "params", [])
        if not getattr(param, "is_flag", False) and param.metavar is None and param.name != "help"
    ]
    assert unnamed == []


def test_commands_are_printed_as_they_can_be_run(tmp_path: Path) -> None:
    """After ./scripts/run, `penny` is .venv/bin/penny and not on PATH: hints say so."""
    root = PENNY.parents[2]
    relative = os.path.relpath(PENNY, root)
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PENNY_SECRET_KEY": "ab" * 32}
    url = f"sqlite:///{tmp_path / 'penny.db'}"

    def seed() -> str:
        done = subprocess.run(
            [relative, "sandbox", "seed", "--database", url],
            capture_output=True,
            text=True,
            cwd=root,
            env=env,
            check=True,
        )
        return done.stdout

    merchant = re.search(r"DigitalDownload\s+(\S+)", seed())
    assert merchant is not None
    hint = f"{relative} keys create --account {merchant.group(1)}"
    assert f"a new API key: {hint}" in seed()
    on_path = subprocess.run(
        ["penny", "sandbox", "seed", "--database", url],
        capture_output=True,
        text=True,
        env=env | {"PATH": f"{PENNY.parent}:/usr/bin:/bin"},
        check=True,
    )
    assert f"a new API key: penny keys create --account {merchant.group(1)}" in on_path.stdout


def test_chart_commands_say_up_front_that_matplotlib_is_missing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """./scripts/run installs no charting library; the commands that draw say so first."""
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    for words in (["bench", "http", "--peer", "none"], ["check", "bank"]):
        result = invoke(*words)
        assert result.exit_code == 2, result.output
        assert result.stderr.strip() == (
            f"error: penny {' '.join(words[:2])} draws its chart with matplotlib, which "
            "./scripts/run does not install: `.venv/bin/pip install -e '.[charts]'` adds it "
            "(./scripts/test installs it too)"
        )


#: Installed by ./scripts/test only: serving must not import any of them.
NOT_FOR_SERVING = ("matplotlib", "numpy", "pytest", "hypothesis", "playwright", "mypy", "boto")

SERVE_WITHOUT_THEM = f"""
import sys
from importlib.abc import MetaPathFinder

class Absent(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {NOT_FOR_SERVING!r}:
            raise ModuleNotFoundError(name)
        return None

sys.meta_path.insert(0, Absent())
from starlette.testclient import TestClient
from penny.cli.main import app  # the whole command line
from penny.storage.database import open_database
from penny.web.app import create_app

database = open_database(sys.argv[1])
with TestClient(create_app(database)) as client:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/metrics").status_code == 200
print("served")
"""


def test_serving_needs_only_the_runtime_dependencies(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", SERVE_WITHOUT_THEM, f"sqlite:///{tmp_path / 'penny.db'}"],
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if not k.startswith("PENNY_")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "served\n"
