"""Opening a store from a URL, and the read and write transactions everything else runs in.

Two stores are supported:

* **SQLite** (the embedded default, a file such as ``sqlite:///penny.db``): WAL journal,
  ``synchronous=FULL`` so a commit is on disk when it returns, foreign keys on. Writes start
  with ``BEGIN IMMEDIATE``, taking SQLite's single write lock up front so a batch never has to
  be retried half-way; reads use plain deferred transactions and do not block the writer.
* **PostgreSQL** (``postgresql+psycopg://…``, psycopg 3): ``synchronous_commit=on``, READ
  COMMITTED, with the rows a batch changes locked by ``SELECT … FOR UPDATE`` in a fixed order.
  A high-availability cluster (Patroni) is named by a libpq multi-host URL,
  ``postgresql://user@host1:5432,host2:5432,host3:5432/penny?target_session_attrs=read-write``:
  libpq tries the hosts in turn and keeps the one that takes writes, the primary. A pooled
  connection is checked before use, and once one is found broken every other connection of the
  pool is dropped too, so after a failover new connections find the new primary.

:func:`open_database` also brings the schema up to date through the Alembic migrations.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, unquote

import psycopg
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.pool import NullPool

DEFAULT_DATABASE_URL: Final = "sqlite:///penny.db"
DATABASE_URL_ENV: Final = "PENNY_DATABASE_URL"

MIGRATIONS_DIR: Final = Path(__file__).parent.joinpath("migrations")

#: Arbitrary, fixed key of the PostgreSQL advisory lock that serialises migrations when several
#: Penny processes start at once against one database.
_MIGRATION_LOCK_KEY: Final = 0x70656E6E79

SQLITE_BUSY_TIMEOUT_MS: Final = 30_000

#: libpq connection settings Penny adds unless the URL sets them: give up on a host that does
#: not answer within 5 s (libpq then tries the next one), and notice a peer that vanished
#: without closing the connection (a lost machine) within about 10 s.
PG_CONNECT_DEFAULTS: Final = {
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "5",
    "keepalives_interval": "2",
    "keepalives_count": "3",
}

#: SQLSTATE classes that mean the server went away or will not serve now: connection exception
#: (08), operator intervention (57: admin or crash shutdown, cannot connect now, cancelled),
#: insufficient resources (53: too many connections, disk full).
_UNAVAILABLE_SQLSTATE_CLASSES: Final = frozenset({"08", "53", "57"})
#: A write reached a server in recovery: the node is a standby now (a switchover happened).
_READ_ONLY_TRANSACTION: Final = "25006"

#: ``scheme://[userinfo@]host1[:port],host2[:port][/dbname][?query]``: libpq's multi-host URI.
_MULTI_HOST = re.compile(
    r"^(?P<scheme>postgres(?:ql)?(?:\+psycopg)?)://(?:(?P<userinfo>[^@/?]*)@)?"
    r"(?P<hosts>[^/?@]*,[^/?@]*)(?:/(?P<dbname>[^?]*))?(?:\?(?P<query>.*))?$"
)


class DatabaseError(RuntimeError):
    """The store cannot be opened or used (a bad URL, an unreachable server)."""


class MissingDatabaseError(DatabaseError):
    """There is no Penny store at the URL, and the caller may not create one.

    ``location`` names it for a person: the SQLite file's path, or the URL without password.
    """

    def __init__(self, message: str, location: str) -> None:
        super().__init__(message)
        self.location = location


def database_url_from_env(explicit: str | None = None) -> str:
    """The URL to use: ``explicit``, else ``$PENNY_DATABASE_URL``, else ``./penny.db``."""
    return explicit or os.environ.get(DATABASE_URL_ENV) or DEFAULT_DATABASE_URL


#: ``scheme:`` at the start of a string: a URL (or a mistyped one), not a file path.
_SCHEME_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def normalise_url(url: str) -> str:
    """The SQLAlchemy URL for what a person typed.

    * A plain file path (``./penny.db``, ``/var/lib/penny/penny.db``, ``penny.db``) is an
      SQLite database: ``sqlite:///`` + the path.
    * ``postgresql://`` and ``postgres://`` are shorthand for the psycopg 3 driver, and
      libpq's multi-host form is accepted (:func:`multi_host_url`).
    * Anything else that starts like a URL but lacks ``://`` is refused with the URL to use.
    """
    if _MULTI_HOST.match(url):
        return multi_host_url(url)
    if "://" not in url:
        if _SCHEME_RE.match(url):
            raise DatabaseError(
                f"not a database URL: {url!r} (use sqlite:///path/to/penny.db, a plain file "
                "path such as ./penny.db, or postgresql://user@host:5432/penny)"
            )
        return "sqlite:///" + url
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_file(url: str) -> Path | None:
    """The file of an SQLite database URL; ``None`` for in-memory SQLite or another store."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return None
    name = parsed.database or ""
    if name in ("", ":memory:") or parsed.query.get("mode") == "memory":
        return None
    return Path(name)


def multi_host_url(url: str) -> str:
    """libpq's ``postgresql://u@h1:p1,h2:p2/db?…`` as the SQLAlchemy URL psycopg is given
    (``postgresql+psycopg://u@/db?host=h1:p1&host=h2:p2&…``); other URLs are returned as is."""
    match = _MULTI_HOST.match(url)
    if match is None:
        return url
    user, password = None, None
    if match["userinfo"]:
        user, _, secret = match["userinfo"].partition(":")
        user, password = unquote(user), unquote(secret) if secret else None
    query: dict[str, str | tuple[str, ...]] = dict(parse_qsl(match["query"] or ""))
    query["host"] = tuple(h for h in match["hosts"].split(",") if h)
    return URL.create(
        "postgresql+psycopg",
        username=user,
        password=password,
        database=unquote(match["dbname"]) if match["dbname"] else None,
        query=query,
    ).render_as_string(hide_password=False)


@dataclass
class Database:
    """An open store: one engine for writes and one for reads (the same one on PostgreSQL)."""

    url: str
    dialect: str
    write_engine: Engine
    read_engine: Engine

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction, committed when the block ends without an exception."""
        with self.write_engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction: one consistent snapshot on both stores."""
        with self.read_engine.connect() as conn:
            if self.is_postgresql:
                conn.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn
            conn.rollback()

    def lost_connection(self, exc: DBAPIError) -> bool:
        """Whether ``exc`` means the PostgreSQL server is gone or will not take writes now (a
        failover, a switchover, a shutdown), rather than a conflict or a bug: SQLAlchemy saw a
        disconnect, libpq failed without a server answer (no SQLSTATE), or the SQLSTATE says
        so. Always False on SQLite."""
        if not self.is_postgresql:
            return False
        if exc.connection_invalidated:
            return True
        orig = exc.orig
        if not isinstance(orig, psycopg.Error):
            return False
        sqlstate = orig.sqlstate
        if sqlstate is None:
            return isinstance(orig, psycopg.OperationalError)
        return sqlstate[:2] in _UNAVAILABLE_SQLSTATE_CLASSES or sqlstate == _READ_ONLY_TRANSACTION

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *_exc: object) -> None:
        """Leaving a ``with open_database(...) as database:`` block disposes of the engines."""
        self.dispose()


def _sqlite_engine(url: str, begin: str) -> Engine:
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS // 1000},
        poolclass=NullPool if ":memory:" in url else None,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us, not the driver, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA cache_size=-65536")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def pg_connect_args(url: str) -> dict[str, str]:
    """What Penny adds to a PostgreSQL URL's connection settings: ``synchronous_commit=on``
    and :data:`PG_CONNECT_DEFAULTS`, except those the URL sets itself."""
    given = make_url(url).query
    connect_args: dict[str, str] = {"options": "-c synchronous_commit=on"}
    connect_args.update({k: v for k, v in PG_CONNECT_DEFAULTS.items() if k not in given})
    return connect_args


def _postgresql_engine(url: str) -> Engine:
    connect_args = pg_connect_args(url)
    return create_engine(
        url,
        pool_size=8,
        max_overflow=8,
        # A connection is tested when taken from the pool; when one is found dead (or a
        # statement fails on a lost connection), SQLAlchemy drops the whole pool's connections.
        pool_pre_ping=True,
        connect_args=connect_args,
    )


def open_database(url: str | None = None, *, migrate: bool = True, create: bool = True) -> Database:
    """Open the store at ``url`` (see :func:`database_url_from_env`) and migrate it.

    With ``create=False`` a store that does not exist yet (no SQLite file, or a database
    without Penny's schema) is not made: :class:`MissingDatabaseError` instead.
    """
    resolved = normalise_url(database_url_from_env(url))
    try:
        parsed = make_url(resolved)
    except ArgumentError as exc:
        raise DatabaseError(f"not a database URL: {resolved!r}") from exc
    if not create:
        _refuse_missing_file(resolved)
    dialect = parsed.get_backend_name()
    if dialect == "sqlite":
        write = _sqlite_engine(resolved, "BEGIN IMMEDIATE")
        read = _sqlite_engine(resolved, "BEGIN")
    elif dialect == "postgresql":
        write = read = _postgresql_engine(resolved)
    else:
        raise DatabaseError(f"unsupported database {dialect!r}: use sqlite:/// or postgresql://")
    database = Database(resolved, dialect, write, read)
    if not create:
        _refuse_missing_schema(database)
    if migrate:
        upgrade(database)
    return database


def _refuse_missing_file(url: str) -> None:
    """Refuse an SQLite URL whose file does not exist, before connecting would create it."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise MissingDatabaseError(f"no database at {path}", str(path))
    if path is None and make_url(url).get_backend_name() == "sqlite":
        raise MissingDatabaseError("an in-memory SQLite database starts empty", url)


def _refuse_missing_schema(database: Database) -> None:
    """Refuse a store without Penny's schema (an empty file, a new PostgreSQL database)."""
    try:
        revision = current_revision(database)
    except DBAPIError as exc:
        database.dispose()
        raise DatabaseError(f"cannot read the database: {exc.orig}") from exc
    if revision is None:
        database.dispose()
        path = sqlite_file(database.url)
        location = str(path) if path is not None else redacted(database.url)
        raise MissingDatabaseError(f"the database {location} holds no Penny store", location)


def redacted(url: str) -> str:
    """A database URL without its password, fit for a log line or a message."""
    return make_url(url).render_as_string(hide_password=True)


def _alembic_config(conn: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = conn
    return config


def upgrade(database: Database, revision: str = "head") -> None:
    """Bring the schema to ``revision`` (serialised across processes on PostgreSQL)."""
    try:
        with database.write_engine.connect() as conn:
            if database.is_postgresql:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                conn.commit()
            try:
                command.upgrade(_alembic_config(conn), revision)
                conn.commit()
            finally:
                if database.is_postgresql:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK_KEY})
                    conn.commit()
    except OperationalError as exc:
        raise DatabaseError(f"cannot reach the database: {exc.orig}") from exc


def current_revision(database: Database) -> str | None:
    """The schema revision the store is at, or ``None`` before the first migration."""
    with database.read_engine.connect() as conn:
        revision: str | None = MigrationContext.configure(conn).get_current_revision()
        return revision


#: Tables whose rows are sealed with the server key (docs/decisions.md, "Server secret key"):
#: API secrets and IPN signing keys are encrypted with it, and a payment method's fingerprint
#: is an HMAC under it.
_SEALED: Final = (
    ("api_keys", ""),
    ("signing_keys", ""),
    ("payment_methods", " WHERE fingerprint IS NOT NULL"),
)


def holds_sealed_rows(path: Path) -> bool:
    """Whether the SQLite file at ``path`` holds anything sealed with a server key.

    Read only, through the standard library: it is asked before a key file is made, and a
    store that holds such rows must never be given a new key.
    """
    if not path.exists():
        return False
    with closing(sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        tables = {row[0] for row in rows}
        return any(
            conn.execute(f"SELECT 1 FROM {table}{where} LIMIT 1").fetchone() is not None
            for table, where in _SEALED
            if table in tables
        )
