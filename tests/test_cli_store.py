"""Which commands may create a store or a server key, and what the others say instead.

A mistyped database path must never answer like an empty store: only ``db upgrade``,
``sandbox seed`` and ``serve --create-database`` make a missing database; every other command
refuses it with one line naming the path and the command that creates it. A missing server
key next to a database that holds sealed secrets is never replaced by a new one. A plain file
path is an SQLite database. Real stores (SQLite file and PostgreSQL database) through the real
command line.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from penny.cli.main import app
from penny.security import KEY_FILE_NAME, SERVER_KEY_ENV, SERVER_KEY_FILE_ENV
from penny.storage.database import holds_sealed_rows

KEY_HEX = "cd" * 32

#: Commands that only read or change an existing store, each with what it needs to run.
NON_CREATING = [
    ("audit",),
    ("accounts", "list"),
    ("accounts", "show", "someone@example.com"),
    ("accounts", "create-business", "--name", "A", "--email", "a@example.com"),
    ("keys", "list", "--account", "someone@example.com"),
    ("transactions", "list"),
    ("transactions", "show", "T1"),
    ("instruments", "list"),
    ("instruments", "show", "I1"),
    ("ipn", "list"),
    ("sandbox", "advance", "--days", "1"),
]


@pytest.fixture(autouse=True)
def _no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SERVER_KEY_ENV, raising=False)
    monkeypatch.delenv(SERVER_KEY_FILE_ENV, raising=False)
    monkeypatch.delenv("PENNY_DATABASE_URL", raising=False)


def run(*args: str, **env: str) -> Result:
    return CliRunner().invoke(app, list(args), env=env)


def refused(*args: str, **env: str) -> str:
    """Run a command that must refuse; its one line of stderr."""
    result = run(*args, **env)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert line.startswith("error: "), line
    assert "\n" not in line
    return line


def ok(*args: str, **env: str) -> Result:
    result = run(*args, **env)
    assert result.exit_code == 0, result.output
    return result


def seed_json(url: str, **env: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(
        ok("sandbox", "seed", "--json", "--database", url, **env).stdout
    )
    return data


@pytest.mark.parametrize("command", NON_CREATING, ids=lambda c: " ".join(c[:2]))
def test_a_mistyped_path_is_refused_and_nothing_is_made(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    typo = tmp_path / "penny-typo.db"
    line = refused(*command, "--database", f"sqlite:///{typo}")
    assert line == (
        f"error: no database at {typo}: `penny db upgrade --database {typo}` creates it "
        "(or check the path and $PENNY_DATABASE_URL for a typo)"
    )
    assert list(tmp_path.iterdir()) == []  # no database file, no key file


def test_serve_refuses_a_missing_database_too(tmp_path: Path) -> None:
    line = refused("serve", "--database", str(tmp_path / "nope.db"), "--port", "0")
    assert f"no database at {tmp_path / 'nope.db'}" in line
    assert list(tmp_path.iterdir()) == []


def test_a_new_database_without_penny_schema_is_refused(database_url: str) -> None:
    """A new PostgreSQL database, or no SQLite file: refused; ``db upgrade`` makes the store."""
    env = {SERVER_KEY_ENV: KEY_HEX}
    line = refused("audit", "--database", database_url, **env)
    if database_url.startswith("sqlite"):
        assert "no database at " in line
    else:
        assert line.startswith("error: the database postgresql")
        assert "holds no Penny store" in line
    assert "`penny db upgrade --database " in line
    ok("db", "upgrade", "--database", database_url, **env)
    assert "audit clean: 0 accounts" in ok("audit", "--database", database_url, **env).stdout


def test_an_empty_sqlite_file_is_not_a_store(tmp_path: Path) -> None:
    empty = tmp_path / "empty.db"
    empty.touch()
    line = refused("accounts", "list", "--database", str(empty))
    assert f"the database {empty} holds no Penny store" in line
    with sqlite3.connect(empty) as conn:  # not migrated behind the operator's back
        assert conn.execute("SELECT name FROM sqlite_master").fetchall() == []


def test_db_upgrade_creates_the_database_and_its_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'penny.db'}"
    result = ok("db", "upgrade", "--database", url)
    assert result.stdout.startswith("schema at revision ")
    assert f"made the server key file {tmp_path / KEY_FILE_NAME}" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(("-wal", "-shm"))) == [
        KEY_FILE_NAME,
        "penny.db",
    ]
    again = ok("db", "upgrade", "--database", url)
    assert "made the server key file" not in again.stderr  # the same key from now on


def test_sandbox_seed_creates_the_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'penny.db'}"
    assert seed_json(url)["seeded"] is True
    assert (tmp_path / KEY_FILE_NAME).exists()
    assert "already seeded" in ok("sandbox", "seed", "--database", url).stdout


def test_a_lost_key_next_to_sealed_secrets_is_never_replaced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'penny.db'}"
    seed_json(url)
    (tmp_path / KEY_FILE_NAME).unlink()
    assert holds_sealed_rows(tmp_path / "penny.db")
    for command in (
        ("accounts", "list"),
        ("keys", "create", "--account", "merchant@digitaldownload.example"),
        ("sandbox", "seed"),
        ("db", "upgrade"),
        ("serve", "--port", "0"),
    ):
        line = refused(*command, "--database", url)
        assert line.startswith(f"error: the server key file {tmp_path / KEY_FILE_NAME} is missing")
        assert "restore the file from your backup" in line
        assert not (tmp_path / KEY_FILE_NAME).exists()


def test_a_missing_key_for_a_store_without_secrets_is_made_only_by_db_upgrade(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'penny.db'}"
    ok("db", "upgrade", "--database", url)
    (tmp_path / KEY_FILE_NAME).unlink()
    assert not holds_sealed_rows(tmp_path / "penny.db")
    line = refused("accounts", "list", "--database", url)
    assert "no server key file" in line
    assert "`penny db upgrade` makes a new one" in line
    assert not (tmp_path / KEY_FILE_NAME).exists()
    ok("db", "upgrade", "--database", url)
    assert (tmp_path / KEY_FILE_NAME).exists()
    ok("accounts", "list", "--database", url)


def test_payment_method_fingerprints_count_as_sealed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'penny.db'}"
    seed_json(url)
    with sqlite3.connect(tmp_path / "penny.db") as conn:
        conn.execute("DELETE FROM api_keys")
        conn.execute("DELETE FROM signing_keys")
    assert holds_sealed_rows(tmp_path / "penny.db")  # the buyer's card fingerprint is left


def test_a_plain_path_is_an_sqlite_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ok("db", "upgrade", "--database", "./penny.db")
    assert (tmp_path / "penny.db").exists()
    assert "audit clean" in ok("audit", "--database", "penny.db").stdout
    absolute = tmp_path / "sub" / "other.db"
    absolute.parent.mkdir()
    ok("db", "upgrade", "--database", str(absolute))
    assert absolute.exists()
    assert "audit clean" in ok("audit", "--database", f"sqlite:///{absolute}").stdout


def test_something_that_looks_like_a_url_names_the_urls_to_use() -> None:
    line = refused("audit", "--database", "sqlite:penny.db")
    assert line == (
        "error: not a database URL: 'sqlite:penny.db' (use sqlite:///path/to/penny.db, a plain "
        "file path such as ./penny.db, or postgresql://user@host:5432/penny)"
    )


def test_the_environment_variable_is_held_to_the_same_rule(tmp_path: Path) -> None:
    typo = tmp_path / "typo.db"
    line = refused("audit", PENNY_DATABASE_URL=str(typo))
    assert f"no database at {typo}" in line
    assert not typo.exists()
