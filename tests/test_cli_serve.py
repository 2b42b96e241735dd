"""``penny serve`` as a process: it says "listening" only once the port accepts connections,
a busy port is one line naming it and how to choose another, and ``--create-database`` is the
only way serve makes a new store."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from penny.check.servers import free_port
from penny.security import KEY_FILE_NAME

PENNY = str(Path(sys.executable).with_name("penny"))


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PENNY_")}
    return env | {"COLUMNS": "200", "PATH": "/usr/bin:/bin"}


@contextmanager
def _serving(*args: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [PENNY, "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(timeout=30)
        assert process.stdout is not None
        assert process.stderr is not None
        process.stdout.close()
        process.stderr.close()


def _seeded(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'penny.db'}"
    subprocess.run([PENNY, "db", "upgrade", "--database", url], check=True, env=_env())
    return url


def test_listening_is_said_once_the_port_accepts_connections(tmp_path: Path) -> None:
    url = _seeded(tmp_path)
    port = free_port()
    with _serving("--database", url, "--port", str(port)) as process:
        assert process.stderr is not None
        line = process.stderr.readline()  # blocks until the server speaks
        assert f"listening on http://127.0.0.1:{port}/ with 1 worker(s)" in line
        # The moment it says so, the port answers (no retry loop here on purpose).
        health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
        assert health.status_code == 200
        assert health.json()["status"] == "ok"


def _on_a_busy_port(
    tmp_path: Path, *more: str, cwd: Path | None = None
) -> tuple[int, subprocess.CompletedProcess[str]]:
    """``penny serve`` (with ``more``) on a port another socket holds: the port, and how the
    command ended."""
    url = _seeded(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [PENNY, "serve", "--database", url, "--port", str(port), *more],
            capture_output=True,
            check=False,
            text=True,
            timeout=60,
            env=_env(),
            cwd=cwd,
        )
    return port, done


def test_a_busy_port_is_one_line_naming_it(tmp_path: Path) -> None:
    # penny is not on PATH, so the hint spells out its path
    port, done = _on_a_busy_port(tmp_path, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "listening" not in done.stderr
    assert done.stderr.strip() == (
        f"error: port {port} on 127.0.0.1 is already in use (another Penny, or another "
        f"server?): pick a free one with `{PENNY} serve --port N` (or `./scripts/run --port N`)"
    )


def test_a_busy_port_with_workers_is_the_same_line(tmp_path: Path) -> None:
    port, done = _on_a_busy_port(tmp_path, "--workers", "2")
    assert done.returncode == 2
    assert f"error: port {port} on 127.0.0.1 is already in use" in done.stderr
    assert "listening" not in done.stderr


def test_create_database_is_the_flag_that_lets_serve_make_a_store(tmp_path: Path) -> None:
    database = tmp_path / "new.db"
    port = free_port()
    with _serving("--database", str(database), "--port", str(port), "--create-database") as p:
        assert p.stderr is not None
        first = p.stderr.readline()
        assert first.startswith(f"made the server key file {tmp_path / KEY_FILE_NAME}")
        assert "listening on" in p.stderr.readline()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not database.exists():
            time.sleep(0.05)
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    assert database.exists()
    assert (tmp_path / KEY_FILE_NAME).exists()


def test_scripts_run_takes_the_database_from_the_environment_only() -> None:
    """``./scripts/run`` seeds and serves one database; a --database for serve alone would
    serve another than the one it seeded, so it is refused before anything is installed."""
    root = Path(__file__).resolve().parent.parent
    for given in (["--database", "other.db"], ["-d", "other.db"], ["--database=other.db"]):
        done = subprocess.run(
            [str(root / "scripts" / "run"), "--port", "9000", *given],
            capture_output=True,
            check=False,
            text=True,
            timeout=30,
            cwd=root,
        )
        assert done.returncode == 2
        assert done.stderr == (
            "error: ./scripts/run seeds and serves $PENNY_DATABASE_URL (else ./penny.db): set "
            f"it instead of passing {given[0]}\n"
        )
        assert not (root / "other.db").exists()
