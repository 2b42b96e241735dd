"""Throwaway PostgreSQL clusters for tests, benchmarks and local development.

``PgCluster.start()`` runs ``initdb`` into a fresh temporary directory, configures the cluster to
listen on ``127.0.0.1`` on a free port (and on a Unix socket inside that same directory, so it never
collides with a system-wide server), starts it with ``pg_ctl`` and hands back an object that knows
its SQLAlchemy URL. ``destroy()`` (or leaving the ``with`` block) stops the server and deletes the
directory; a cluster that is still alive when the interpreter exits is torn down then as well.

The cluster is durable on purpose (``fsync=on``, ``synchronous_commit=on``):
``restart("immediate")`` simulates a crash, and whatever was committed before it must still be
there afterwards.

PostgreSQL refuses to run as root, so when this process is root the server binaries are run as the
``postgres`` OS user through ``runuser`` (the user is created if it does not exist) and the
temporary directory is handed to that user.

Run ``python -m penny.devtools.pgcluster`` for a cluster that lives until Ctrl-C / SIGTERM.
"""

from __future__ import annotations

import argparse
import contextlib
import grp
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Final, Self

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from penny.devtools.processes import HOST, DestroyedOnExit, child_env, free_port

__all__ = [
    "HOST",
    "INSTALL_HINT",
    "SUPERUSER",
    "PgCluster",
    "PgClusterError",
    "create_database_at",
    "database_url_at",
    "drop_database_at",
    "find_pg_bindir",
    "libpq_dsn",
    "main",
]

SUPERUSER: Final = "postgres"
"""The database superuser created by ``initdb``; authentication is ``trust``."""

OS_USER: Final = "postgres"
"""The OS account the server runs as when this process is root."""

INSTALL_HINT: Final = (
    "PostgreSQL server binaries (initdb, pg_ctl, postgres) were not found. Install them: on "
    "Debian/Ubuntu `apt-get install --no-install-recommends postgresql` (./scripts/test does this "
    "for you); elsewhere, install a PostgreSQL server and make sure `pg_config --bindir` or PATH "
    "leads to initdb."
)

_PG_LIB_ROOT: Final = Path("/usr/lib/postgresql")
_START_TIMEOUT_S: Final = 60
_COMMAND_TIMEOUT_S: Final = 180
_LOG_TAIL_LINES: Final = 40
_SOCKET_PATH_MAX: Final = 107  # sizeof(sun_path) on Linux, less the terminating NUL
_PORT_ATTEMPTS: Final = 3
_STOP_MODES: Final = frozenset({"smart", "fast", "immediate"})
_CONFIG_FILE: Final = "penny.conf"


class PgClusterError(RuntimeError):
    """A throwaway cluster could not be created, started, stopped or used."""


# --------------------------------------------------------------------------------------------
# Locating the server binaries
# --------------------------------------------------------------------------------------------


def _has_initdb(bindir: Path) -> bool:
    initdb = bindir / "initdb"
    return initdb.is_file() and os.access(initdb, os.X_OK)


def _version_key(name: str) -> tuple[int, ...] | None:
    """``"15"`` -> ``(15,)``, ``"9.6"`` -> ``(9, 6)``; anything else -> None."""
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return None


def find_pg_bindir() -> Path | None:
    """Return the directory holding ``initdb`` and ``pg_ctl``, or None if there is none.

    Looks, in order, at ``pg_config --bindir`` (only if that directory really has ``initdb``: on
    Debian ``pg_config`` also comes with the client-only ``libpq-dev``), at the highest-version
    ``/usr/lib/postgresql/*/bin`` that has ``initdb``, and at ``initdb`` on PATH.
    """
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        try:
            completed = subprocess.run(
                [pg_config, "--bindir"],
                capture_output=True,
                text=True,
                check=True,
                timeout=30,
            )
        except (OSError, subprocess.SubprocessError):
            pass
        else:
            reported = completed.stdout.strip()
            if reported and _has_initdb(Path(reported)):
                return Path(reported)

    versioned: list[tuple[tuple[int, ...], Path]] = []
    if _PG_LIB_ROOT.is_dir():
        for bindir in _PG_LIB_ROOT.glob("*/bin"):
            version = _version_key(bindir.parent.name)
            if version is not None and _has_initdb(bindir):
                versioned.append((version, bindir))
    if versioned:
        return max(versioned, key=lambda item: item[0])[1]

    initdb = shutil.which("initdb")
    if initdb is not None:
        return Path(initdb).resolve().parent
    return None


# --------------------------------------------------------------------------------------------
# URL helpers (usable with any server, not just a throwaway one)
# --------------------------------------------------------------------------------------------


def libpq_dsn(url: str) -> str:
    """Turn a PostgreSQL URL (SQLAlchemy ``postgresql+psycopg://`` or plain) into a libpq URI."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed!r}")
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


def database_url_at(server_url: str, name: str) -> str:
    """SQLAlchemy ``postgresql+psycopg`` URL of database ``name`` on ``server_url``'s server."""
    parsed = make_url(server_url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {parsed!r}")
    return parsed.set(drivername="postgresql+psycopg", database=name).render_as_string(
        hide_password=False
    )


def create_database_at(server_url: str, name: str) -> str:
    """Run ``CREATE DATABASE name`` through the admin URL ``server_url``; return the new DB's URL.

    ``server_url`` must name an existing database (``postgres`` usually) and a role with the
    CREATEDB right.
    """
    with psycopg.connect(libpq_dsn(server_url), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_url_at(server_url, name)


def drop_database_at(server_url: str, name: str) -> None:
    """Drop database ``name`` (if it exists), disconnecting whoever is still connected to it."""
    with psycopg.connect(libpq_dsn(server_url), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


# --------------------------------------------------------------------------------------------
# Process plumbing
# --------------------------------------------------------------------------------------------


def _find_system_tool(name: str) -> str | None:
    found = shutil.which(name)
    if found is not None:
        return found
    for directory in ("/usr/sbin", "/sbin", "/usr/bin", "/bin"):
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _ensure_os_user() -> pwd.struct_passwd:
    """Return the ``postgres`` OS account, creating it (a system user, no home) if missing."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(OS_USER)
    useradd = _find_system_tool("useradd")
    if useradd is None:
        raise PgClusterError(
            f"running as root, PostgreSQL must run as the {OS_USER!r} OS user, which does not "
            "exist, and `useradd` is not available to create it"
        )
    command = [useradd, "--system", "--no-create-home"]
    try:
        grp.getgrnam(OS_USER)
    except KeyError:
        pass
    else:
        # A group of that name without the user: useradd would refuse to create a same-named
        # user group, so join the existing one.
        command += ["--gid", OS_USER]
    command.append(OS_USER)
    completed = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    try:
        # Look it up again whatever useradd said: someone else may have created it meanwhile.
        return pwd.getpwnam(OS_USER)
    except KeyError:
        raise PgClusterError(
            f"could not create the {OS_USER!r} OS user ({' '.join(command)} exited "
            f"{completed.returncode}): {completed.stderr.strip()}"
        ) from None


def _quote_setting(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _cleanup(prefix: tuple[str, ...], pg_ctl: Path, data_dir: Path, directory: Path) -> None:
    """Stop a server that may still be running (immediate mode) and delete its directory.

    Used by ``destroy()`` and as the garbage-collection / interpreter-exit safety net, so it must
    not refer to the cluster object itself.
    """
    if (data_dir / "postmaster.pid").exists():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [*prefix, str(pg_ctl), "-D", str(data_dir), "-m", "immediate", "-w", "stop"],
                cwd="/",
                env=child_env(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                timeout=_START_TIMEOUT_S,
                check=False,
            )
    shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------


class PgCluster(DestroyedOnExit):
    """A private PostgreSQL cluster in a temporary directory. Create one with :meth:`start`.

    Layout of :attr:`directory`: ``data/`` (the data directory), ``postgresql.log`` (the server
    log) and the server's Unix socket. Authentication is ``trust`` for the ``postgres``
    superuser over TCP on 127.0.0.1 and over that socket.
    """

    def __init__(
        self,
        *,
        directory: Path,
        bindir: Path,
        port: int,
        run_as: pwd.struct_passwd | None,
    ) -> None:
        """Wrap an existing directory; use :meth:`start` rather than calling this directly."""
        self._directory = directory
        self._bindir = bindir
        self._port = port
        self._run_as = run_as
        self._running = False
        self._prefix: tuple[str, ...] = ()
        if run_as is not None:
            runuser = _find_system_tool("runuser")
            if runuser is None:
                raise PgClusterError(
                    "running as root, PostgreSQL must be run as another user, and `runuser` "
                    "(util-linux) is not available"
                )
            self._prefix = (runuser, "-u", run_as.pw_name, "--")
        self._finalizer = weakref.finalize(
            self, _cleanup, self._prefix, bindir / "pg_ctl", self.data_dir, directory
        )

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def start(cls, base_dir: Path | None = None, *, port: int | None = None) -> Self:
        """Create, configure and start a new cluster; return it once it accepts connections.

        ``base_dir`` is where the temporary directory goes (default: ``/tmp`` when root, else the
        system temp dir); when root, the ``postgres`` OS user must be able to reach it. ``port``
        defaults (also when 0) to a free one on 127.0.0.1, retried if another process takes it
        before the server binds it. Raises :class:`PgClusterError` (with the tail of the
        server log when the server itself failed) and leaves nothing behind on failure.
        """
        bindir = find_pg_bindir()
        if bindir is None:
            raise PgClusterError(INSTALL_HINT)
        run_as = _ensure_os_user() if os.geteuid() == 0 else None
        if base_dir is None:
            base_dir = Path("/tmp") if run_as is not None else Path(tempfile.gettempdir())
        directory = Path(tempfile.mkdtemp(prefix="penny-pg-", dir=base_dir))
        try:
            directory.chmod(0o755)
            if run_as is not None:
                os.chown(directory, run_as.pw_uid, run_as.pw_gid)
            cluster = cls(directory=directory, bindir=bindir, port=port or 0, run_as=run_as)
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        try:
            cluster._check_directory()
            cluster._initdb()
            cluster._boot(pick_port=not port)
        except BaseException:
            cluster.destroy()
            raise
        return cluster

    def _check_directory(self) -> None:
        socket_path = self._directory / ".s.PGSQL.65535"
        if len(os.fsencode(socket_path)) > _SOCKET_PATH_MAX:
            raise PgClusterError(
                f"{self._directory} is too long a path for the server's Unix socket "
                f"(at most {_SOCKET_PATH_MAX - len('/.s.PGSQL.65535')} bytes); use a shorter "
                "base_dir"
            )
        if self._run_as is not None:
            self._run(
                ["test", "-w", self._directory, "-a", "-x", self._directory],
                what=(
                    f"use {self._directory} as the {self._run_as.pw_name!r} OS user (every "
                    "parent directory must be searchable by that user; pass a base_dir under "
                    "/tmp)"
                ),
            )

    def _initdb(self) -> None:
        self._run(
            [
                self._bindir / "initdb",
                "-D",
                self.data_dir,
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            what="initialise the cluster (initdb)",
        )
        conf = self.data_dir / "postgresql.conf"
        with conf.open("a", encoding="utf-8") as handle:
            handle.write(f"\n# Added by penny.devtools.pgcluster\ninclude '{_CONFIG_FILE}'\n")

    def _write_config(self) -> None:
        settings = {
            "listen_addresses": HOST,
            "port": str(self._port),
            "unix_socket_directories": str(self._directory),
            "fsync": "on",
            "synchronous_commit": "on",
            "max_connections": "300",
            "shared_buffers": "256MB",
            "log_min_messages": "warning",
            # The server's stderr goes to the log file pg_ctl is given (see _start_server).
            "log_destination": "stderr",
            "logging_collector": "off",
        }
        path = self.data_dir / _CONFIG_FILE
        path.write_text(
            "".join(f"{name} = {_quote_setting(value)}\n" for name, value in settings.items()),
            encoding="utf-8",
        )
        if self._run_as is not None:
            os.chown(path, self._run_as.pw_uid, self._run_as.pw_gid)

    def _boot(self, *, pick_port: bool) -> None:
        for attempt in range(1, _PORT_ATTEMPTS + 1):
            if pick_port:
                self._port = free_port()
            self._write_config()
            log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
            try:
                self._start_server()
            except PgClusterError:
                if pick_port and attempt < _PORT_ATTEMPTS and self._lost_port_race(log_offset):
                    continue
                raise
            return

    def _lost_port_race(self, log_offset: int) -> bool:
        try:
            with self.log_path.open("rb") as handle:
                handle.seek(log_offset)
                fresh = handle.read().decode("utf-8", errors="replace")
        except OSError:
            return False
        return "Address already in use" in fresh

    # -- accessors ----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on (on :attr:`host`)."""
        return self._port

    @property
    def host(self) -> str:
        """The address the server listens on: always ``127.0.0.1``."""
        return HOST

    @property
    def directory(self) -> Path:
        """The temporary directory holding everything; deleted by :meth:`destroy`."""
        return self._directory

    @property
    def data_dir(self) -> Path:
        """The PostgreSQL data directory (``PGDATA``)."""
        return self._directory / "data"

    @property
    def log_path(self) -> Path:
        """The server log file."""
        return self._directory / "postgresql.log"

    @property
    def bindir(self) -> Path:
        """The directory of the server binaries in use."""
        return self._bindir

    @property
    def is_running(self) -> bool:
        """Whether the server was started (and not stopped) by this object."""
        return self._running

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname``: ``postgresql+psycopg://postgres@127.0.0.1:PORT/DB``."""
        return URL.create(
            "postgresql+psycopg", username=SUPERUSER, host=HOST, port=self._port, database=dbname
        ).render_as_string(hide_password=False)

    def dsn(self, dbname: str = "postgres") -> str:
        """libpq / psycopg connection URI of database ``dbname``."""
        return libpq_dsn(self.url(dbname))

    def log_tail(self, lines: int = _LOG_TAIL_LINES) -> str:
        """The last ``lines`` lines of the server log ('' if there is no log yet)."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    # -- databases ----------------------------------------------------------------------------

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name`` (as the superuser); return the new database's URL."""
        self._require_running()
        return create_database_at(self.url(), name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, forcibly disconnecting its sessions."""
        self._require_running()
        drop_database_at(self.url(), name)

    # -- lifecycle ----------------------------------------------------------------------------

    def stop(self, mode: str = "fast") -> None:
        """Stop the server with ``pg_ctl stop -m mode`` (smart, fast or immediate).

        ``immediate`` aborts without a shutdown checkpoint, like a crash: the next start runs WAL
        recovery. Does nothing if the server is not running.
        """
        if mode not in _STOP_MODES:
            raise ValueError(f"stop mode must be one of {sorted(_STOP_MODES)}, not {mode!r}")
        if not self._running:
            return
        self._run(
            [
                self._bindir / "pg_ctl",
                "-D",
                self.data_dir,
                "-m",
                mode,
                "-w",
                "-t",
                str(_START_TIMEOUT_S),
                "stop",
            ],
            what=f"stop the server ({mode})",
            with_log=True,
        )
        self._running = False

    def restart(self, mode: str = "immediate") -> None:
        """Stop with ``mode`` (default ``immediate``, i.e. a simulated crash), then start again.

        Same data directory, same port, so URLs handed out before stay valid. Returns once the
        server accepts connections again (after crash recovery, if any).
        """
        self.stop(mode)
        self._start_server()

    def destroy(self) -> None:
        """Stop the server if it runs and delete the temporary directory. Idempotent."""
        if self._running:
            with contextlib.suppress(PgClusterError):
                self.stop("fast")
            self._running = False
        # Stops the server the hard way if it is somehow still up, then removes the directory.
        self._finalizer()

    def __repr__(self) -> str:
        """Show where the cluster lives and whether it runs."""
        state = "running" if self._running else "stopped"
        return f"<PgCluster {HOST}:{self._port} {state} at {self._directory}>"

    # -- internals ----------------------------------------------------------------------------

    def _require_running(self) -> None:
        if not self._running:
            raise PgClusterError(f"{self!r} is not running")

    def _start_server(self) -> None:
        self._run(
            [
                self._bindir / "pg_ctl",
                "-D",
                self.data_dir,
                "-l",
                self.log_path,
                "-w",
                "-t",
                str(_START_TIMEOUT_S),
                "start",
            ],
            what="start the server",
            with_log=True,
        )
        self._running = True
        self._wait_until_accepting()

    def _wait_until_accepting(self) -> None:
        deadline = time.monotonic() + _START_TIMEOUT_S
        while True:
            try:
                with psycopg.connect(self.dsn(), connect_timeout=5, autocommit=True) as conn:
                    conn.execute("SELECT 1")
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise PgClusterError(
                        f"the server on port {self._port} does not accept connections: {exc}\n"
                        f"--- last lines of {self.log_path} ---\n{self.log_tail()}"
                    ) from exc
                time.sleep(0.1)
            else:
                return

    def _run(self, args: Sequence[str | Path], *, what: str, with_log: bool = False) -> str:
        """Run a command (as the server's OS user when root); raise PgClusterError on failure."""
        command = [*self._prefix, *(str(arg) for arg in args)]
        with tempfile.TemporaryFile() as output:
            try:
                completed = subprocess.run(
                    command,
                    cwd=self._directory,
                    env=child_env(),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    timeout=_COMMAND_TIMEOUT_S,
                    check=False,
                    # Keep Ctrl-C in a terminal from reaching initdb / pg_ctl half-way.
                    start_new_session=True,
                )
            except subprocess.TimeoutExpired:
                status = f"timed out after {_COMMAND_TIMEOUT_S} s"
            except OSError as exc:
                raise PgClusterError(f"could not {what}: {exc}") from exc
            else:
                if completed.returncode == 0:
                    output.seek(0)
                    return output.read().decode("utf-8", errors="replace")
                status = f"exited with status {completed.returncode}"
            output.seek(0)
            text = output.read().decode("utf-8", errors="replace").strip()
        message = f"could not {what}: `{' '.join(command)}` {status}"
        if text:
            message += f"\n{text}"
        if with_log:
            message += f"\n--- last lines of {self.log_path} ---\n{self.log_tail()}"
        raise PgClusterError(message)


# --------------------------------------------------------------------------------------------
# python -m penny.devtools.pgcluster
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Start a cluster, print its URL, wait for Ctrl-C / SIGTERM, then destroy it."""
    parser = argparse.ArgumentParser(
        prog="python -m penny.devtools.pgcluster",
        description="Run a throwaway PostgreSQL cluster until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--port", type=int, default=None, help="TCP port (default: a free one)")
    parser.add_argument(
        "--base-dir", type=Path, default=None, help="where to create the temporary directory"
    )
    args = parser.parse_args(argv)
    port: int | None = args.port
    base_dir: Path | None = args.base_dir

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous = {
        signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        try:
            cluster = PgCluster.start(base_dir, port=port)
        except PgClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        with cluster:
            print(cluster.url(), flush=True)
            print(
                f"PostgreSQL running in {cluster.directory} (log: {cluster.log_path}); "
                "Ctrl-C or SIGTERM stops it and deletes the directory.",
                file=sys.stderr,
                flush=True,
            )
            while not stop_requested.wait(0.5):
                pass
        print("stopped and removed", file=sys.stderr, flush=True)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
