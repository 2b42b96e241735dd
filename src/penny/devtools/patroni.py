"""A throwaway high-availability PostgreSQL cluster: one etcd and three Patroni nodes on loopback.

``PatroniCluster.start()`` makes a temporary directory, starts an etcd member (the distributed
configuration store Patroni elects its leader in) and three Patroni nodes, each managing its own
PostgreSQL on a 127.0.0.1 port, and returns once one node is the primary and the other two are
streaming from it. The cluster runs with **synchronous replication** (Patroni's
``synchronous_mode`` and ``synchronous_mode_strict``, ``synchronous_commit = on``): a commit
returns only once it is on the primary and on one synchronous standby, so an acknowledged commit
survives losing either machine. A primary whose postmaster dies fails over at once
(``primary_start_timeout = 0``) instead of being restarted in place, and a former primary
rejoins as a standby through ``pg_rewind`` (data checksums are on).

Nothing here is hand-rolled high availability: Patroni decides, etcd stores its state, and the
tool only starts processes, asks Patroni's REST API what it sees and injects faults —
SIGKILL of a node's postmaster (:meth:`PatroniCluster.kill_postmaster`), of the whole node
(:meth:`PatroniCluster.kill_node`, a lost machine), a planned switchover
(:meth:`PatroniCluster.switchover`).

When the Debian packages (``patroni``, ``etcd-server``, ``pgbackrest``) are missing,
:meth:`PatroniCluster.start` installs them with apt (:func:`ensure_installed`: ``apt-get
update`` once, then one ``apt-get install``); ``./scripts/test`` does the same in shell.
Like :mod:`penny.devtools.pgcluster`, everything runs as the ``postgres`` OS user when
this process is root. Ports are the kernel's picks on 127.0.0.1 (never a fixed range), so
parallel test workers never collide; a start that loses a port race is retried.

Penny connects to it with a libpq multi-host URL and ``target_session_attrs=read-write``
(:meth:`PatroniCluster.url`): libpq tries the nodes in turn and keeps the one that accepts
writes. Run ``python -m penny.devtools.patroni`` for a cluster that lives until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pwd
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any, Final, Self

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from penny.devtools.pgcluster import SUPERUSER, PgClusterError, _ensure_os_user, find_pg_bindir
from penny.devtools.processes import (
    HOST,
    DestroyedOnExit,
    child_env,
    distinct_ports,
    free_port,
    kill,
    port_open,
)

__all__ = [
    "NODES",
    "PACKAGES",
    "PatroniCluster",
    "PatroniError",
    "PatroniNode",
    "ensure_installed",
    "main",
]

NODES: Final = 3
#: The Debian packages the cluster needs (pgBackRest for the backup drill).
PACKAGES: Final = ("patroni", "etcd-server", "pgbackrest")
SCOPE: Final = "penny"
REPLICATOR: Final = "replicator"
#: Patroni's timing: leader key TTL, seconds between HA loops, DCS/PostgreSQL retry budget.
TTL_S: Final = 10
LOOP_WAIT_S: Final = 1
RETRY_TIMEOUT_S: Final = 3
_READY_TIMEOUT_S: Final = 120.0
_HTTP_TIMEOUT_S: Final = 5.0
_START_ATTEMPTS: Final = 3


class PatroniError(RuntimeError):
    """The cluster could not be started, queried or changed as asked."""


# --------------------------------------------------------------------------------------------
# Packages
# --------------------------------------------------------------------------------------------


def missing_tools() -> list[str]:
    """The Debian packages of :data:`PACKAGES` whose program is not installed."""
    programs = {"patroni": "patroni", "etcd-server": "etcd", "pgbackrest": "pgbackrest"}
    return [package for package in PACKAGES if shutil.which(programs[package]) is None]


def ensure_installed() -> None:
    """Install the missing packages of :data:`PACKAGES` with apt (``apt-get update`` first)."""
    missing = missing_tools()
    if not missing:
        return
    apt = shutil.which("apt-get")
    if apt is None:
        raise PatroniError(f"{', '.join(missing)} missing and apt-get not found: install them")
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        if sudo is None:
            raise PatroniError(f"installing {', '.join(missing)} needs root (or sudo)")
        prefix = [sudo]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        [*prefix, apt, "update", "-q"],
        [*prefix, apt, "install", "-y", "-q", "--no-install-recommends", *missing],
    ):
        completed = subprocess.run(command, env=env, check=False, timeout=1800)
        if completed.returncode != 0:
            raise PatroniError(f"`{' '.join(command)}` exited {completed.returncode}")
    still = missing_tools()
    if still:
        raise PatroniError(f"still missing after apt-get install: {', '.join(still)}")


# --------------------------------------------------------------------------------------------
# Processes and configuration
# --------------------------------------------------------------------------------------------


def _http_json(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """``(status, parsed JSON or text)``; ``(0, error)`` when nothing answered."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=_HTTP_TIMEOUT_S) as response:
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (OSError, urllib.error.URLError) as error:
        return 0, str(error)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode("utf-8", errors="replace")


@dataclass
class PatroniNode:
    """One Patroni node: its name, ports and directory, and the Patroni process."""

    name: str
    pg_port: int
    api_port: int
    directory: Path
    process: subprocess.Popen[bytes] | None = None
    log: IO[bytes] | None = None

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def log_path(self) -> Path:
        return self.directory / "patroni.log"

    @property
    def api(self) -> str:
        return f"http://{HOST}:{self.api_port}"

    def postmaster_pid(self) -> int | None:
        """The running postmaster's pid (from ``postmaster.pid``), or None."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first)
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except OSError:
            return None
        return pid


def _node_config(
    node: PatroniNode, etcd_port: int, namespace: str, bindir: Path, archive_command: str | None
) -> dict[str, Any]:
    """The Patroni configuration of ``node`` (written as JSON, which is YAML); with
    ``archive_command``, WAL archiving is on (every node runs it when it is the primary)."""
    parameters = _server_parameters()
    local: dict[str, Any] = {"unix_socket_directories": str(node.directory)}
    if archive_command is not None:
        parameters["archive_mode"] = "on"
        local["archive_command"] = archive_command
    return {
        "scope": SCOPE,
        "namespace": namespace,
        "name": node.name,
        "log": {"level": "WARNING"},
        "restapi": {
            "listen": f"{HOST}:{node.api_port}",
            "connect_address": f"{HOST}:{node.api_port}",
        },
        "etcd3": {"hosts": [f"{HOST}:{etcd_port}"]},
        "bootstrap": _bootstrap(parameters),
        "postgresql": _postgresql(node, bindir, local),
    }


def _server_parameters() -> dict[str, Any]:
    """PostgreSQL settings every node bootstraps with (durable, synchronous, small)."""
    return {
        "synchronous_commit": "on",
        "fsync": "on",
        "wal_level": "replica",
        "wal_log_hints": "on",
        "hot_standby": "on",
        "max_connections": 200,
        "max_wal_senders": 10,
        "max_replication_slots": 10,
        "wal_keep_size": "256MB",
        "shared_buffers": "64MB",
        "log_min_messages": "warning",
    }


def _bootstrap(parameters: dict[str, Any]) -> dict[str, Any]:
    """The cluster-wide settings Patroni writes to etcd once: synchronous mode, strict."""
    return {
        "dcs": {
            "ttl": TTL_S,
            "loop_wait": LOOP_WAIT_S,
            "retry_timeout": RETRY_TIMEOUT_S,
            "maximum_lag_on_failover": 1 << 20,
            "synchronous_mode": True,
            "synchronous_mode_strict": True,
            "primary_start_timeout": 0,
            "postgresql": {
                "use_pg_rewind": True,
                "use_slots": True,
                "parameters": parameters,
            },
        },
        "initdb": [{"encoding": "UTF8"}, {"locale": "C"}, "data-checksums"],
    }


def _postgresql(node: PatroniNode, bindir: Path, local: dict[str, Any]) -> dict[str, Any]:
    """One node's own PostgreSQL: its addresses, directories, users and access rules."""
    trust = [
        "local all all trust",
        f"host all all {HOST}/32 trust",
        f"host replication {REPLICATOR} {HOST}/32 trust",
    ]
    return {
        "listen": f"{HOST}:{node.pg_port}",
        "connect_address": f"{HOST}:{node.pg_port}",
        "data_dir": str(node.data_dir),
        "bin_dir": str(bindir),
        "pgpass": str(node.directory / "pgpass"),
        "authentication": {
            "superuser": {"username": SUPERUSER, "password": "penny"},
            "replication": {"username": REPLICATOR, "password": "penny"},
            "rewind": {"username": SUPERUSER, "password": "penny"},
        },
        "parameters": local,
        "pg_hba": trust,
        "remove_data_directory_on_rewind_failure": True,
        "remove_data_directory_on_diverged_timelines": True,
    }


def _cleanup(pids: list[int], postmasters: list[Path], directory: Path) -> None:
    """Kill whatever of the cluster still runs and delete its directory (the safety net)."""
    for pid in pids:
        kill(pid)
    for pid_file in postmasters:
        with contextlib.suppress(OSError, ValueError):
            pid = int(pid_file.read_text().split("\n", 1)[0])
            if b"postgres" in Path(f"/proc/{pid}/cmdline").read_bytes():
                kill(pid)
    shutil.rmtree(directory, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# The cluster
# --------------------------------------------------------------------------------------------


def _end(process: subprocess.Popen[bytes] | None, log: IO[bytes] | None) -> None:
    """SIGKILL ``process`` (Patroni, etcd) and wait for it to go; close its log."""
    if process is not None:
        kill(process.pid)
        process.wait(timeout=30)
    if log is not None:
        log.close()


class PatroniCluster(DestroyedOnExit):
    """etcd + :data:`NODES` Patroni nodes in a temporary directory. Create one with :meth:`start`.

    Layout of :attr:`directory`: ``etcd/`` (its data and ``etcd.log``) and one ``nodeN/`` per
    node (``data/``, ``patroni.yml``, ``patroni.log`` and the server's Unix socket).
    Authentication is ``trust`` for the ``postgres`` superuser over TCP on 127.0.0.1.
    """

    def __init__(
        self,
        directory: Path,
        bindir: Path,
        run_as: pwd.struct_passwd | None,
        *,
        archive: bool = False,
    ) -> None:
        """Wrap a fresh directory; use :meth:`start` rather than calling this directly."""
        self.directory = directory
        self.archive = archive
        self.bindir = bindir
        self.run_as = run_as
        self.namespace = f"/penny-{secrets.token_hex(4)}/"
        ports = distinct_ports(2 + 2 * NODES)
        self.etcd_port, self.etcd_peer_port = ports[0], ports[1]
        self.nodes = [
            PatroniNode(f"node{i}", ports[2 + 2 * i], ports[3 + 2 * i], directory / f"node{i}")
            for i in range(NODES)
        ]
        self.etcd: subprocess.Popen[bytes] | None = None
        self._restored: list[RestoredServer] = []
        self._etcd_log: IO[bytes] | None = None
        self._pids: list[int] = []
        self._finalizer = weakref.finalize(
            self,
            _cleanup,
            self._pids,
            [node.data_dir / "postmaster.pid" for node in self.nodes],
            directory,
        )

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def start(cls, base_dir: Path | None = None, *, archive: bool = False) -> Self:
        """Start etcd and the three nodes; return once the cluster is healthy (see
        :meth:`wait_healthy`); installs the Debian packages first when they are missing
        (:func:`ensure_installed`). With ``archive``, the primary archives its WAL to a pgBackRest
        repository in the directory (:meth:`backrest`), whose stanza is created once the
        cluster is up. Retries on a lost port race; leaves nothing behind on failure."""
        ensure_installed()  # patroni, etcd-server, pgbackrest: apt-get when missing
        bindir = find_pg_bindir()
        if bindir is None:
            raise PatroniError(
                "PostgreSQL server binaries are needed: `apt-get install postgresql` (or run "
                "./scripts/test, which installs everything)"
            )
        run_as = _ensure_os_user() if os.geteuid() == 0 else None
        base = base_dir or (Path("/tmp") if run_as is not None else Path(tempfile.gettempdir()))
        for attempt in range(1, _START_ATTEMPTS + 1):
            directory = Path(tempfile.mkdtemp(prefix="penny-ha-", dir=base))
            cluster = cls(directory, bindir, run_as, archive=archive)
            try:
                cluster._boot()
            except PatroniError:
                cluster.destroy()
                if attempt == _START_ATTEMPTS:
                    raise
                continue
            except BaseException:
                cluster.destroy()
                raise
            return cluster
        raise AssertionError("unreachable")

    def _boot(self) -> None:
        self.directory.chmod(0o755)
        for node in self.nodes:
            node.directory.mkdir(mode=0o700)
        (self.directory / "etcd").mkdir(mode=0o700)
        self._chown_tree()
        self._start_etcd()
        if self.archive:
            self._write_backrest_config()
        for node in self.nodes:
            self._write_config(node)
            self.start_node(node, wait=False)
        self.wait_healthy()
        if self.archive:
            self.backrest("stanza-create")

    def _chown_tree(self) -> None:
        if self.run_as is None:
            return
        for path in [self.directory, *self.directory.rglob("*")]:
            os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)

    def _spawn(self, args: Sequence[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        user = None if self.run_as is None else self.run_as.pw_uid
        group = None if self.run_as is None else self.run_as.pw_gid
        process = subprocess.Popen(
            list(args),
            cwd=self.directory,
            env=child_env(drop_pythonpath=True),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
            start_new_session=True,
        )
        self._pids.append(process.pid)
        return process

    def _start_etcd(self) -> None:
        etcd = shutil.which("etcd")
        assert etcd is not None
        data = self.directory / "etcd"
        client, peer = f"http://{HOST}:{self.etcd_port}", f"http://{HOST}:{self.etcd_peer_port}"
        self._etcd_log = (data / "etcd.log").open("ab")
        self.etcd = self._spawn(
            [
                etcd,
                "--name=penny",
                f"--data-dir={data / 'member'}",
                f"--listen-client-urls={client}",
                f"--advertise-client-urls={client}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=penny={peer}",
                f"--initial-cluster-token={self.namespace.strip('/')}",
                "--initial-cluster-state=new",
                "--log-level=warn",
                "--logger=zap",
            ],
            self._etcd_log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.etcd.poll() is not None:
                raise PatroniError(
                    f"etcd exited {self.etcd.returncode}: {self._tail(data / 'etcd.log')}"
                )
            status, body = _http_json("GET", f"{client}/health")
            if status == 200 and isinstance(body, dict) and body.get("health") == "true":
                return
            time.sleep(0.1)
        raise PatroniError(f"etcd not healthy after 30 s: {self._tail(data / 'etcd.log')}")

    def _write_config(self, node: PatroniNode) -> None:
        path = node.directory / "patroni.yml"
        archive = None
        if self.archive:
            archive = (
                f"pgbackrest --config={self.backrest_dir / 'pgbackrest.conf'} --stanza={SCOPE} "
                f"--pg1-path={node.data_dir} archive-push %p"
            )
        config = _node_config(node, self.etcd_port, self.namespace, self.bindir, archive)
        path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
        if self.run_as is not None:
            os.chown(path, self.run_as.pw_uid, self.run_as.pw_gid)

    # -- pgBackRest ----------------------------------------------------------------------------

    @property
    def backrest_dir(self) -> Path:
        """The pgBackRest repository, logs and configuration (with ``archive``)."""
        return self.directory / "pgbackrest"

    def _write_backrest_config(self) -> None:
        base = self.backrest_dir
        for sub in ("repo", "log", "lock", "spool"):
            (base / sub).mkdir(parents=True, exist_ok=True)
        (base / "pgbackrest.conf").write_text(
            "[global]\n"
            f"repo1-path={base / 'repo'}\nlog-path={base / 'log'}\n"
            f"lock-path={base / 'lock'}\nspool-path={base / 'spool'}\n"
            "log-level-console=warn\nlog-level-file=info\nstart-fast=y\n"
            "repo1-retention-full=2\n"
            f"\n[{SCOPE}]\npg1-path={self.nodes[0].data_dir}\n",
            encoding="utf-8",
        )
        self._chown_tree()

    def _backrest_prefix(self, node: PatroniNode, data_dir: Path | None = None) -> str:
        """The command line naming the stanza and ``node`` (only its data directory
        ``data_dir`` for a restore, which connects to no server)."""
        prefix = f"pgbackrest --config={self.backrest_dir / 'pgbackrest.conf'} --stanza={SCOPE}"
        if data_dir is not None:
            return f"{prefix} --pg1-path={data_dir}"
        return (
            f"{prefix} --pg1-path={node.data_dir} --pg1-port={node.pg_port} "
            f"--pg1-socket-path={node.directory} --pg1-user={SUPERUSER}"
        )

    def backrest(
        self, *args: str, node: PatroniNode | None = None, data_dir: Path | None = None
    ) -> str:
        """Run ``pgbackrest COMMAND …`` against ``node`` (default: the leader; ``data_dir``
        instead of its data directory, for a restore) as the server's OS user; its output.
        Raises :class:`PatroniError` when it fails."""
        target = node or self.leader()
        if target is None:
            raise PatroniError("no leader to run pgbackrest against")
        command = [*self._backrest_prefix(target, data_dir).split(), *args]
        user = None if self.run_as is None else self.run_as.pw_uid
        group = None if self.run_as is None else self.run_as.pw_gid
        completed = subprocess.run(
            command,
            cwd=self.directory,
            env=child_env(drop_pythonpath=True),
            capture_output=True,
            text=True,
            user=user,
            group=group,
            extra_groups=[] if user is not None else None,
            timeout=600,
            check=False,
        )
        if completed.returncode != 0:
            raise PatroniError(
                f"`{' '.join(command)}` exited {completed.returncode}: "
                f"{completed.stdout.strip()} {completed.stderr.strip()}"
            )
        return completed.stdout

    def restore(self, target_time: str) -> RestoredServer:
        """Restore the latest backup and the archived WAL up to ``target_time`` (a PostgreSQL
        timestamp) into a fresh data directory, start a plain PostgreSQL on it (not part of
        the cluster, on its own port) and return once it has promoted itself."""
        data = self.directory / f"restored-{secrets.token_hex(3)}"
        data.mkdir(mode=0o700)
        self._chown_tree()
        self.backrest(
            "--type=time",
            f"--target={target_time}",
            "--target-action=promote",
            "restore",
            data_dir=data,
        )
        server = RestoredServer(data, free_port(), self)
        server.start()
        self._restored.append(server)
        return server

    # -- URLs -----------------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL naming every node, ``target_session_attrs=read-write``: the primary."""
        return URL.create(
            "postgresql+psycopg",
            username=SUPERUSER,
            database=dbname,
            query={
                "host": tuple(f"{HOST}:{node.pg_port}" for node in self.nodes),
                "target_session_attrs": "read-write",
            },
        ).render_as_string(hide_password=False)

    def dsn(self, dbname: str = "postgres") -> str:
        """The same as a libpq multi-host URI (``postgresql://u@h1:p1,h2:p2,h3:p3/db?…``)."""
        hosts = ",".join(f"{HOST}:{node.pg_port}" for node in self.nodes)
        return f"postgresql://{SUPERUSER}@{hosts}/{dbname}?target_session_attrs=read-write"

    def node_dsn(self, node: PatroniNode, dbname: str = "postgres") -> str:
        """libpq URI of one node, whatever its role."""
        return f"postgresql://{SUPERUSER}@{HOST}:{node.pg_port}/{dbname}"

    def node_url(self, node: PatroniNode, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of one node, whatever its role."""
        return URL.create(
            "postgresql+psycopg", username=SUPERUSER, host=HOST, port=node.pg_port, database=dbname
        ).render_as_string(hide_password=False)

    def leader_url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of the current primary by its own address (for tools that take one
        host, such as pgbench)."""
        leader = self.leader()
        if leader is None:
            raise PatroniError("no leader")
        return self.node_url(leader, dbname)

    def create_database(self, name: str) -> str:
        """``CREATE DATABASE name`` on the primary; return its multi-host URL (:meth:`url`)."""
        with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.url(name)

    # -- what Patroni sees --------------------------------------------------------------------

    def node(self, name: str) -> PatroniNode:
        """The node called ``name``."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise PatroniError(f"no node {name!r}")

    def members(self) -> list[dict[str, Any]]:
        """Patroni's ``/cluster`` member list, asked of the first node that answers."""
        for node in self.nodes:
            status, body = _http_json("GET", f"{node.api}/cluster")
            if status == 200 and isinstance(body, dict):
                members: list[dict[str, Any]] = body.get("members", [])
                return members
        return []

    def leader(self) -> PatroniNode | None:
        """The node Patroni has as leader and whose PostgreSQL runs, or None."""
        for member in self.members():
            if member.get("role") == "leader" and member.get("state") == "running":
                return self.node(str(member["name"]))
        return None

    def healthy(self) -> bool:
        """A running leader, one synchronous standby and every other node streaming."""
        members = self.members()
        running = [m for m in members if m.get("state") in ("running", "streaming")]
        roles = sorted(str(m.get("role")) for m in running)
        if len(running) != NODES or roles.count("leader") != 1 or "sync_standby" not in roles:
            return False
        return all(m.get("role") == "leader" or isinstance(m.get("lag"), int) for m in running)

    def wait_healthy(self, timeout: float = _READY_TIMEOUT_S) -> PatroniNode:
        """Wait until :meth:`healthy` and the primary takes writes; return the leader."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            leader = self.leader()
            if leader is not None and self.healthy() and self._writable():
                return leader
            time.sleep(0.2)
        raise PatroniError(
            f"the cluster is not healthy after {timeout:.0f} s: {self.members()}\n"
            + "\n".join(f"--- {n.name} ---\n{self._tail(n.log_path)}" for n in self.nodes)
        )

    def _writable(self) -> bool:
        try:
            with psycopg.connect(self.dsn(), autocommit=True, connect_timeout=3) as conn:
                conn.execute("SELECT txid_current()")
        except psycopg.Error:
            return False
        return True

    def _check_alive(self) -> None:
        if self.etcd is not None and self.etcd.poll() is not None:
            raise PatroniError(f"etcd exited {self.etcd.returncode}")
        for node in self.nodes:
            if node.process is not None and node.process.poll() is not None:
                raise PatroniError(
                    f"patroni {node.name} exited {node.process.returncode}:\n"
                    f"{self._tail(node.log_path)}"
                )

    @staticmethod
    def _tail(path: Path, lines: int = 30) -> str:
        try:
            return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # -- faults and lifecycle -----------------------------------------------------------------

    def start_node(self, node: PatroniNode, *, wait: bool = True) -> None:
        """Start ``node``'s Patroni (it starts, rewinds or re-clones its PostgreSQL itself);
        with ``wait``, return once the whole cluster is healthy again."""
        if node.process is not None and node.process.poll() is None:
            raise PatroniError(f"{node.name} is already running")
        patroni = shutil.which("patroni")
        assert patroni is not None
        node.log = node.log_path.open("ab")
        node.process = self._spawn([patroni, str(node.directory / "patroni.yml")], node.log)
        if wait:
            self.wait_healthy()

    def kill_postmaster(self, node: PatroniNode) -> int:
        """SIGKILL ``node``'s postmaster (its Patroni lives on and reacts); returns the pid."""
        pid = node.postmaster_pid()
        if pid is None:
            raise PatroniError(f"{node.name} has no running postmaster")
        kill(pid)
        return pid

    def kill_node(self, node: PatroniNode) -> None:
        """A lost machine: SIGKILL ``node``'s Patroni and its postmaster, wait for the
        server's processes to go."""
        pid = node.postmaster_pid()
        _end(node.process, node.log)
        node.process, node.log = None, None
        if pid is not None:
            kill(pid)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and port_open(node.pg_port):
            time.sleep(0.05)

    def wipe_node(self, node: PatroniNode) -> None:
        """Delete ``node``'s data directory (after :meth:`kill_node`): the disk is gone too."""
        if node.process is not None:
            raise PatroniError(f"{node.name} still runs: kill it first")
        shutil.rmtree(node.data_dir, ignore_errors=True)

    def switchover(self, candidate: PatroniNode | None = None) -> PatroniNode:
        """A planned switchover through Patroni's REST API; returns the new leader."""
        leader = self.leader()
        if leader is None:
            raise PatroniError("no leader to switch over from")
        body: dict[str, Any] = {"leader": leader.name}
        if candidate is not None:
            body["candidate"] = candidate.name
        status, answer = _http_json("POST", f"{leader.api}/switchover", body)
        if status != 200:
            raise PatroniError(f"switchover refused ({status}): {answer}")
        new = self.wait_healthy()
        if new is leader:
            raise PatroniError(f"switchover answered {answer!r} but {leader.name} still leads")
        return new

    def destroy(self) -> None:
        """Stop every process (SIGKILL: nothing here needs to survive) and delete the
        directory. Idempotent."""
        for restored in self._restored:
            restored.stop()
        for node in self.nodes:
            self.kill_node(node)
        _end(self.etcd, self._etcd_log)
        self.etcd, self._etcd_log = None, None
        self._finalizer()

    def __repr__(self) -> str:
        """Show where the cluster lives."""
        ports = ",".join(str(n.pg_port) for n in self.nodes)
        return f"<PatroniCluster {HOST}:{ports} at {self.directory}>"


@dataclass
class RestoredServer:
    """A plain PostgreSQL on a data directory restored by :meth:`PatroniCluster.restore`."""

    data_dir: Path
    port: int
    cluster: PatroniCluster

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname`` on the restored server."""
        return URL.create(
            "postgresql+psycopg", username=SUPERUSER, host=HOST, port=self.port, database=dbname
        ).render_as_string(hide_password=False)

    def _pg_ctl(self, *args: str) -> None:
        run_as = self.cluster.run_as
        completed = subprocess.run(
            [str(self.cluster.bindir / "pg_ctl"), "-D", str(self.data_dir), *args],
            cwd=self.cluster.directory,
            env=child_env(drop_pythonpath=True),
            capture_output=True,
            text=True,
            user=None if run_as is None else run_as.pw_uid,
            group=None if run_as is None else run_as.pw_gid,
            extra_groups=[] if run_as is not None else None,
            timeout=300,
            check=False,
        )
        if completed.returncode != 0:
            log = PatroniCluster._tail(self.data_dir.parent / f"{self.data_dir.name}.log")
            raise PatroniError(f"pg_ctl {' '.join(args)}: {completed.stderr.strip()}\n{log}")

    def start(self) -> None:
        """Start it (what the cluster's configuration says, but its own port and socket, no
        archiving, no synchronous standby) and wait until recovery has ended."""
        options = (
            f"-c port={self.port} -c listen_addresses={HOST} "
            f"-c unix_socket_directories={self.data_dir} -c archive_mode=off "
            f"-c synchronous_standby_names= -c hba_file={self.data_dir / 'pg_hba.conf'} "
            f"-c ident_file={self.data_dir / 'pg_ident.conf'}"
        )
        log = self.data_dir.parent / f"{self.data_dir.name}.log"
        self._pg_ctl("-l", str(log), "-o", options, "-w", "-t", "300", "start")
        dsn = f"postgresql://{SUPERUSER}@{HOST}:{self.port}/postgres"
        deadline = time.monotonic() + _READY_TIMEOUT_S
        while time.monotonic() < deadline:
            with contextlib.suppress(psycopg.Error):
                with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
                    row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
                if row is not None and not row[0]:
                    return
            time.sleep(0.2)
        raise PatroniError(
            f"the restored server did not finish recovery: {PatroniCluster._tail(log)}"
        )

    def stop(self) -> None:
        """Stop it (immediately) if it runs."""
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(PatroniError):
                self._pg_ctl("-m", "immediate", "-w", "stop")


# --------------------------------------------------------------------------------------------
# python -m penny.devtools.patroni
# --------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Install the packages if asked, start a cluster, print its URL, wait for Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m penny.devtools.patroni",
        description="Run a throwaway etcd + three-node Patroni cluster until Ctrl-C or SIGTERM.",
    )
    parser.add_argument("--base-dir", type=Path, default=None, help="where the directory goes")
    args = parser.parse_args(argv)
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        cluster = PatroniCluster.start(args.base_dir)
    except (PatroniError, PgClusterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        with cluster:
            print(cluster.dsn(), flush=True)
            leader = cluster.leader()
            print(
                f"Patroni cluster in {cluster.directory}, leader "
                f"{leader.name if leader else '?'}; Ctrl-C or SIGTERM removes it.",
                file=sys.stderr,
                flush=True,
            )
            while not stop_requested.wait(0.5):
                pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
