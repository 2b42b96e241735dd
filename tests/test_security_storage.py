"""Secrets at rest (docs/security.md): a dump of the database shows no API secret, password,
card number or bank account number in clear — on SQLite (``.dump`` of the file and the raw
bytes of the file and its WAL) and on PostgreSQL (``pg_dump`` of the database).
"""

from __future__ import annotations

import base64
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from builders import add_bank, add_card, new_buyer, new_merchant, store
from penny.devtools.pgcluster import find_pg_bindir, libpq_dsn

CARD = "4111111111111111"
ACCOUNT = "000123456789"
PASSWORD = "correct horse battery"


def dump(url: str) -> bytes:
    """Everything the store holds, as an attacker with a copy of it would see it."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(str(parsed.database))
        with sqlite3.connect(path) as conn:
            text = "\n".join(conn.iterdump()).encode()
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        return text + raw
    bindir = find_pg_bindir()
    assert bindir is not None, "pg_dump is needed to dump the PostgreSQL database"
    completed = subprocess.run(
        [str(bindir / "pg_dump"), "--data-only", "--inserts", libpq_dsn(url)],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return completed.stdout


def test_a_database_dump_shows_no_secret_in_clear(database_url: str) -> None:
    with store(database_url) as services:
        merchant = new_merchant(services)
        buyer = new_buyer(services, password=PASSWORD)
        add_card(services, buyer.id, CARD, year=2035)
        add_bank(services, buyer.id, ACCOUNT)
        # The secret is there, encrypted: the directory can still give it back.
        assert services.directory.secret_for(merchant.access_key) == merchant.secret
    key_id, secret = merchant.access_key, merchant.secret

    dumped = dump(database_url)
    assert key_id.encode() in dumped  # the dump is real: the key id is there
    assert merchant.id.encode() in dumped
    for clear in (secret, PASSWORD, CARD, ACCOUNT):
        assert clear.encode() not in dumped
        assert base64.b64encode(clear.encode()) not in dumped
        assert clear.encode().hex().encode() not in dumped
    # Only the last four digits of the card and the account are kept.
    assert CARD[-4:].encode() in dumped
