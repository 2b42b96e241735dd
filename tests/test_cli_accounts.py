"""``penny accounts …`` and ``penny keys …`` through Typer's test runner, on an SQLite file.

Each command's happy path (text and ``--json``) and its user errors: exit status 2 with one
line on stderr and no traceback.
"""

from __future__ import annotations

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from penny.cli.main import app
from penny.security import KEY_FILE_NAME, SERVER_KEY_ENV, SERVER_KEY_FILE_ENV

PASSWORD = "correct horse battery"
#: An expiry a few years ahead of the real clock (the CLI uses the system clock).
YEAR = datetime.now(UTC).year + 3
EXP = f"12/{YEAR}"


@pytest.fixture(autouse=True)
def _no_configured_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as a fresh install would: no key configured, so one is made next to the database."""
    monkeypatch.delenv(SERVER_KEY_ENV, raising=False)
    monkeypatch.delenv(SERVER_KEY_FILE_ENV, raising=False)
    monkeypatch.delenv("PENNY_PASSWORD", raising=False)


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A new store, made as an operator makes one: ``penny db upgrade``."""
    made = f"sqlite:///{tmp_path / 'penny.db'}"
    created = CliRunner().invoke(app, ["db", "upgrade", "--database", made])
    assert created.exit_code == 0, created.output
    return made


def run(url: str, *args: str, stdin: str | None = None, **env: str) -> Result:
    return CliRunner().invoke(app, [*args, "--database", url], input=stdin, env=env)


def ok(url: str, *args: str, **kwargs: Any) -> Result:
    result = run(url, *args, **kwargs)
    assert result.exit_code == 0, result.output
    return result


def ok_json(url: str, *args: str, **kwargs: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ok(url, *args, "--json", **kwargs).stdout)
    return data


def fails(url: str, *args: str, **kwargs: Any) -> str:
    """Run a command that must fail as a user error; returns its one line of stderr."""
    result = run(url, *args, **kwargs)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.stdout == ""
    line = result.stderr.strip()
    assert line.startswith("error: ")
    assert "\n" not in line
    return line


def business(url: str, email: str = "sales@acme.test") -> dict[str, Any]:
    return ok_json(url, "accounts", "create-business", "--name", "Acme", "--email", email)


def personal(url: str, email: str = "bob@example.com") -> dict[str, Any]:
    return ok_json(
        url, "accounts", "create-personal", "--name", "Bob", "--email", email,
        "--password", PASSWORD,
    )  # fmt: skip


# -- accounts ----------------------------------------------------------------------------


def test_create_business_prints_the_account_and_a_key_once(url: str, tmp_path: Path) -> None:
    result = ok(url, "accounts", "create-business", "--name", "Acme Inc", "--email", "A@Acme.test")
    lines = result.stdout.splitlines()
    assert lines[0].startswith("business account ")
    assert lines[0].endswith(": Acme Inc <a@acme.test>")
    assert lines[1].startswith("access key id: PNY")
    assert lines[2].startswith("secret key:    ")
    assert "shown only now" in lines[3]
    key_file = tmp_path / KEY_FILE_NAME
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_create_business_json(url: str) -> None:
    data = business(url)
    assert data["kind"] == "business"
    assert data["access_key_id"].startswith("PNY")
    assert len(data["secret_key"]) == 40
    assert set(data["ledger_accounts"]) == {"payable", "prepaid_issued", "credit_extended"}


def test_a_duplicate_email_is_one_line(url: str) -> None:
    business(url)
    line = fails(url, "accounts", "create-business", "--name", "B", "--email", "SALES@acme.test")
    assert line == "error: an account with the email sales@acme.test already exists"


def test_create_personal_with_the_password_in_three_ways(url: str) -> None:
    data = personal(url, "one@example.com")
    assert data["kind"] == "personal"
    assert [m["kind"] for m in data["payment_methods"]] == ["balance"]
    by_env = ok(
        url, "accounts", "create-personal", "--name", "Two", "--email", "two@example.com",
        PENNY_PASSWORD=PASSWORD,
    )  # fmt: skip
    assert by_env.stdout.startswith("personal account ")
    assert "Penny balance" in by_env.stdout
    ok(
        url, "accounts", "create-personal", "--name", "Three", "--email", "three@example.com",
        "--password-stdin", stdin=PASSWORD + "\n",
    )  # fmt: skip


def test_password_problems(url: str) -> None:
    base = ("accounts", "create-personal", "--name", "Bob", "--email", "bob@example.com")
    assert "a password is needed" in fails(url, *base)
    assert "one way" in fails(url, *base, "--password", PASSWORD, "--password-stdin", stdin="x")
    assert "at least 8" in fails(url, *base, "--password-stdin", stdin="short\n")


def test_add_card_by_account_or_email(url: str) -> None:
    bob = personal(url)
    card = ok_json(
        url, "accounts", "add-card", "--account", bob["id"], "--number", "4111 1111 1111 1111",
        "--exp", EXP, "--name", "Bob B",
    )  # fmt: skip
    assert (card["kind"], card["brand"], card["last4"], card["sandbox_behaviour"]) == (
        "card",
        "visa",
        "1111",
        "succeed",
    )
    text = ok(
        url, "accounts", "add-card", "--email", "BOB@example.com", "--number", "4000000000000002",
        "--exp", f"01/{YEAR}",
    ).stdout  # fmt: skip
    assert f"Visa •••• 0002, expires 01/{YEAR}  [decline]" in text
    assert "4000000000000002" not in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--account", "NOSUCHACCOUNT"), "error: no account has the id or email 'NOSUCHACCOUNT'"),
        (("--email", "nobody@example.com"), "no account has the id or email"),
        ((), "exactly one of --account ID or --email EMAIL"),
        (("--account", "X", "--email", "y@example.com"), "exactly one of"),
    ],
)
def test_add_card_needs_one_known_account(url: str, args: tuple[str, ...], message: str) -> None:
    personal(url)
    line = fails(url, "accounts", "add-card", *args, "--number", "4111111111111111", "--exp", EXP)
    assert message in line


@pytest.mark.parametrize(
    ("number", "exp", "message"),
    [
        ("4111111111111112", EXP, "fails the Luhn check"),
        ("4111111111111111", "12/2001", "the card expired"),
        ("4111111111111111", "2099-12", "must look like MM/YYYY"),
    ],
)
def test_add_card_errors(url: str, number: str, exp: str, message: str) -> None:
    bob = personal(url)
    line = fails(
        url, "accounts", "add-card", "--account", bob["id"], "--number", number, "--exp", exp
    )
    assert message in line


def test_payment_methods_are_for_buyers(url: str) -> None:
    acme = business(url)
    line = fails(
        url, "accounts", "add-bank", "--account", acme["id"], "--routing", "110000000",
        "--number", "000123456789",
    )  # fmt: skip
    assert "payment methods belong to personal (buyer) accounts" in line


def test_add_bank(url: str) -> None:
    personal(url)
    bank = ok_json(
        url, "accounts", "add-bank", "--account", "bob@example.com", "--routing", "110000000",
        "--number", "000111110000",
    )  # fmt: skip
    assert (bank["kind"], bank["last4"], bank["routing_last4"]) == ("bank", "0000", "0000")
    assert bank["sandbox_behaviour"] == "fail_later"
    line = fails(
        url, "accounts", "add-bank", "--account", "bob@example.com", "--routing", "110000001",
        "--number", "000123456789",
    )  # fmt: skip
    assert "ABA checksum" in line


def test_show_a_person(url: str) -> None:
    bob = personal(url)
    ok(url, "accounts", "add-card", "--account", bob["id"], "--number", "5555555555554444",
       "--exp", EXP)  # fmt: skip
    text = ok(url, "accounts", "show", "bob@example.com").stdout
    assert text.startswith(f"personal account {bob['id']}: Bob <bob@example.com>")
    assert "Mastercard •••• 4444" in text
    assert "5555555555554444" not in text
    assert "balance          USD         0.00" in text
    data = ok_json(url, "accounts", "show", bob["id"])
    assert data["account"]["id"] == bob["id"]
    assert data["api_keys"] == []
    assert [m["kind"] for m in data["payment_methods"]] == ["balance", "card"]
    assert data["balances"]["balance"]["balance"] == "0.00"


def test_show_a_business_never_shows_secrets(url: str) -> None:
    acme = business(url)
    text = ok(url, "accounts", "show", acme["id"]).stdout
    assert acme["access_key_id"] in text
    assert acme["secret_key"] not in text
    assert "payable" in text
    data = ok_json(url, "accounts", "show", "sales@acme.test")
    assert acme["secret_key"] not in json.dumps(data)
    assert [k["access_key_id"] for k in data["api_keys"]] == [acme["access_key_id"]]
    assert set(data["balances"]) == {"payable", "prepaid_issued", "credit_extended"}


def test_show_unknown(url: str) -> None:
    assert fails(url, "accounts", "show", "NOSUCHACCOUNT") == (
        "error: no account has the id or email 'NOSUCHACCOUNT'"
    )


# -- keys --------------------------------------------------------------------------------


def test_keys_create_list_revoke(url: str) -> None:
    acme = business(url)
    created = ok(url, "keys", "create", "--account", acme["id"]).stdout
    assert created.startswith("access key id: PNY")
    second = ok_json(url, "keys", "create", "--account", "sales@acme.test")
    assert second["active"]
    assert len(second["secret_key"]) == 40
    listed = ok_json(url, "keys", "list", "--account", acme["id"])
    assert len(listed["api_keys"]) == 3
    assert "secret_key" not in json.dumps(listed)
    revoked = ok(url, "keys", "revoke", acme["access_key_id"]).stdout
    assert revoked.startswith(f"revoked {acme['access_key_id']} at ")
    text = ok(url, "keys", "list", "--account", acme["id"]).stdout
    first, *others = text.splitlines()
    assert first.startswith(f"{acme['access_key_id']}  created ")
    assert " revoked " in first
    assert [line.endswith("  active") for line in others] == [True, True]
    again = ok_json(url, "keys", "revoke", acme["access_key_id"])
    assert again["active"] is False


def test_key_errors(url: str) -> None:
    bob = personal(url)
    assert "API keys belong to business accounts" in fails(
        url, "keys", "create", "--account", bob["id"]
    )
    assert "API keys belong to business accounts" in fails(
        url, "keys", "list", "--account", bob["id"]
    )
    assert fails(url, "keys", "list", "--account", "NOSUCHACCOUNT") == (
        "error: no account has the id or email 'NOSUCHACCOUNT'"
    )
    assert fails(url, "keys", "revoke", "PNYNOSUCHKEY00000000") == (
        "error: no API key has the access key id 'PNYNOSUCHKEY00000000'"
    )


# -- configuration -----------------------------------------------------------------------


def test_a_bad_server_key_is_one_line(url: str) -> None:
    line = fails(url, "accounts", "show", "x@example.com", PENNY_SECRET_KEY="not-hex")
    assert "$PENNY_SECRET_KEY must hold exactly 64 hexadecimal characters" in line


def test_a_configured_key_is_used_instead_of_a_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'penny.db'}"
    ok(url, "db", "upgrade", PENNY_SECRET_KEY="ab" * 32)
    ok(url, "accounts", "create-business", "--name", "A", "--email", "a@acme.test",
       PENNY_SECRET_KEY="ab" * 32)  # fmt: skip
    assert not (tmp_path / KEY_FILE_NAME).exists()


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(app, ["accounts", "--help"])
    assert result.exit_code == 0
    for command in ("create-business", "create-personal", "add-card", "add-bank", "show"):
        assert command in result.stdout
    result = CliRunner().invoke(app, ["keys", "--help"])
    for command in ("create", "list", "revoke"):
        assert command in result.stdout


def test_a_negative_or_zero_amount_says_it_must_be_positive(url: str) -> None:
    merchant = business(url)["id"]
    withdraw = ("accounts", "withdraw", "--account", merchant, "--reference", "w")
    assert fails(url, *withdraw, "--amount", "-1.00") == (
        "error: --amount: amount '-1.00' is negative: it must be positive"
    )
    assert fails(url, *withdraw, "--amount", "0") == (
        "error: --amount: amount '0' is zero: it must be positive"
    )
