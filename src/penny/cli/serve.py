"""``penny serve``: the Penny server, on a port it has bound before it says it listens.

The port is bound (and listening) before anything else happens, so a busy one is one clear
error naming the port and how to pick another, and "listening on …" is printed only once the
server accepts connections. A missing database is refused unless ``--create-database`` says
to make it (``./scripts/run`` makes it through ``penny sandbox seed``). Registered by
:mod:`penny.cli.main`.
"""

from __future__ import annotations

import errno
import inspect
import os
import socket
from collections.abc import Callable
from typing import Annotated, Any

import typer

from penny import __version__
from penny.cli.common import DatabaseOption, app, console, ensure_server_key, fail
from penny.cli.common import open_store as _database
from penny.storage.database import Database, redacted

#: How many connections may wait to be accepted (uvicorn's default).
BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``; a busy port is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise fail(
                f"port {port} on {host} is already in use (another Penny, or another server?): "
                "pick a free one with `penny serve --port N` (or `./scripts/run --port N`)"
            ) from None
        raise fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def _announce(db: Database, sock: socket.socket, workers: int) -> Callable[[], None]:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host

    def announce() -> None:
        console.print(
            f"Penny {__version__} on {db.dialect} ({redacted(db.url)}), listening on "
            f"http://{shown}:{port}/ with {workers} worker(s) — health check: /healthz, "
            "metrics: /metrics",
            soft_wrap=True,
            highlight=False,
        )

    return announce


HostOption = Annotated[str, typer.Option(metavar="ADDRESS", help="Address to listen on.")]
PortOption = Annotated[
    int, typer.Option(min=0, max=65535, metavar="PORT", help="Port to listen on.")
]
WorkersOption = Annotated[
    int,
    typer.Option(
        min=1,
        metavar="N",
        help="Worker processes. 1 serves from this process; more start that many "
        "processes sharing the port, each with its own database connections and its own "
        "/metrics.",
    ),
]
RequestTimeoutOption = Annotated[
    int,
    typer.Option(
        min=1,
        metavar="SECONDS",
        help="Seconds a client has to send a complete request (headers and body) before "
        "it is answered 408 and disconnected: slow clients cannot hold connections.",
    ),
]
LimitConcurrencyOption = Annotated[
    int,
    typer.Option(
        min=1,
        metavar="N",
        help="Most connections and requests at once per worker; beyond it, HTTP 503.",
    ),
]
CompleteEveryOption = Annotated[
    float,
    typer.Option(
        min=0,
        metavar="SECONDS",
        help="Every this many seconds, finish what is due: card and bank payments whose "
        "answer has come (Pending becomes Success or Failure, with its IPN), reserves past "
        "their timeout. 0 never does (then `penny sandbox advance` does it). Safe with "
        "several Penny processes on one database.",
    ),
]
CreateDatabaseOption = Annotated[
    bool,
    typer.Option(
        "--create-database",
        help="Create the database (and, next to a new SQLite file, its server key) if it "
        "does not exist yet; without it a missing database is refused.",
    ),
]


@app.command()
def serve(
    database: DatabaseOption = None,
    host: HostOption = "127.0.0.1",
    port: PortOption = 8080,
    workers: WorkersOption = 1,
    request_timeout: RequestTimeoutOption = 10,
    limit_concurrency: LimitConcurrencyOption = 1000,
    complete_every: CompleteEveryOption = 5.0,
    create_database: CreateDatabaseOption = False,
) -> None:
    """Run the Penny server.

    It serves the FPS Query API at /, the health check at /healthz and Prometheus metrics at
    /metrics, and logs every FPS request as one JSON line on stderr. Every
    --complete-every seconds it finishes the payments and reserves that have come due.
    """
    from penny.ipn.settings import PUBLIC_URL_ENV, IpnConfigError, IpnSettings

    # IPNs name the certificate at Penny's public address: this one unless told (docs/ipn.md).
    os.environ.setdefault(PUBLIC_URL_ENV, f"http://{host}:{port}")
    try:
        ipn = IpnSettings.from_env()
    except IpnConfigError as exc:
        raise fail(str(exc)) from None
    with _database(database, create=create_database) as db:
        if create_database:
            ensure_server_key(db)
        if (
            workers > 1
            and db.is_sqlite
            and (db.url in ("sqlite://", "sqlite:///") or "memory" in db.url)
        ):
            raise fail("--workers > 1 needs a database file or a PostgreSQL server")
        server_key = _server_key(db)
        with bind(host, port) as sock:
            _prepare(request_timeout, complete_every)
            limits: dict[str, Any] = {
                "limit_concurrency": limit_concurrency,
                "timeout_keep_alive": 5,
                "backlog": BACKLOG,
            }
            if workers == 1:
                _serve_here(db, sock, ipn, server_key, limits, complete_every)
            else:
                _serve_workers(db, sock, workers, limits)


def _micros(seconds: float) -> int:
    """``--complete-every`` (seconds) as the server takes it (µs: integer time)."""
    return round(seconds * 1_000_000)


def _server_key(db: Database) -> Any:
    from penny.security import ServerKeyError, load_server_key

    try:
        # Found (or, for a store being created, made) once here, not raced by workers.
        return load_server_key(db.url, create=False)
    except ServerKeyError as exc:
        raise fail(str(exc)) from None


def _prepare(request_timeout: int, complete_every: float) -> None:
    from penny.web.app import COMPLETE_EVERY_ENV
    from penny.web.logs import configure_logging
    from penny.web.slowclients import REQUEST_TIMEOUT_ENV

    configure_logging()
    _install_test_faults()
    os.environ[REQUEST_TIMEOUT_ENV] = str(request_timeout)
    os.environ[COMPLETE_EVERY_ENV] = str(_micros(complete_every))  # for the worker processes


def _serve_here(
    db: Database,
    sock: socket.socket,
    ipn: Any,
    server_key: Any,
    limits: dict[str, Any],
    complete_every: float,
) -> None:
    """One process: the app over ``db``, announced once uvicorn has started on ``sock``."""
    import uvicorn

    from penny.web.app import create_app, freeze_startup_objects
    from penny.web.slowclients import GuardedHttpToolsProtocol

    announce = _announce(db, sock, 1)

    class _Server(uvicorn.Server):
        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started:
                announce()

    app = create_app(db, ipn=ipn, server_key=server_key, complete_every_us=_micros(complete_every))
    freeze_startup_objects()
    config = uvicorn.Config(app, log_level="warning", http=GuardedHttpToolsProtocol, **limits)
    _Server(config).run(sockets=[sock])


def _serve_workers(db: Database, sock: socket.socket, workers: int, limits: dict[str, Any]) -> None:
    """N uvicorn worker processes sharing ``sock``; each opens the database itself."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from penny.storage.database import DATABASE_URL_ENV
    from penny.web.slowclients import GuardedHttpToolsProtocol

    os.environ[DATABASE_URL_ENV] = db.url  # migrated above, once
    config = uvicorn.Config(
        "penny.web.app:app_from_env",
        factory=True,
        workers=workers,
        log_level="warning",
        http=GuardedHttpToolsProtocol,
        **limits,
    )
    _announce(db, sock, workers)()  # the socket listens: connections queue until accepted
    if "target" in inspect.signature(Multiprocess).parameters:  # older uvicorn releases
        server = uvicorn.Server(config)
        Multiprocess(config, target=server.run, sockets=[sock]).run()  # type: ignore[call-arg]
    else:
        Multiprocess(config, sockets=[sock]).run()


def _install_test_faults() -> None:
    """``$PENNY_FAULTS`` (test builds only) breaks the server on purpose; unset, nothing."""
    from penny.check.faults import UnknownFaultError, install_from_env

    try:
        install_from_env()
    except UnknownFaultError as exc:
        raise fail(str(exc)) from None
