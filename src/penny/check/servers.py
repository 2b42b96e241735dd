"""The processes a bank run drives: ``penny serve`` on 127.0.0.1, and a throwaway PostgreSQL.

:class:`PennyServer` starts ``penny serve`` (``python -c`` calling the ``penny`` entry point)
on a fixed port, waits for ``/healthz``, kills it with SIGKILL and starts it again on the same
port. Its output goes to a log file next to the history.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Final

HOST: Final = "127.0.0.1"
START_TIMEOUT_S: Final = 60.0
#: The ``penny`` command, run by this interpreter (whatever is on PATH).
PENNY: Final = (sys.executable, "-c", "from penny.cli.main import main; main()")


class ServerError(RuntimeError):
    """A Penny process did not come up."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def healthy(port: int, timeout: float = 1.0) -> bool:
    """Whether ``/healthz`` on ``port`` answers 200 now."""
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
        try:
            conn.request("GET", "/healthz")
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except OSError:
        return False


class PennyServer:
    """One ``penny serve`` process, restartable on the same port."""

    def __init__(self, index: int, database_url: str, log_path: Path, env: dict[str, str]) -> None:
        self.index = index
        self.database_url = database_url
        self.port = free_port()
        self.log_path = log_path
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts = 0
        self.kills = 0

    def start(self) -> float:
        """Start the process and wait until it is healthy; the seconds that took."""
        started = time.monotonic()
        self.spawn()
        self.wait_healthy(started)
        return time.monotonic() - started

    def spawn(self) -> None:
        """Start the process (see :meth:`wait_healthy`)."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                *PENNY,
                "serve",
                "--database",
                self.database_url,
                "--host",
                HOST,
                "--port",
                str(self.port),
            ],
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
            env={**os.environ, **self.env},
        )
        self.starts += 1

    def wait_healthy(self, started: float) -> None:
        """Wait until ``/healthz`` answers, at most :data:`START_TIMEOUT_S` after ``started``."""
        deadline = started + START_TIMEOUT_S
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise ServerError(
                    f"penny serve #{self.index} exited with {self.process.returncode}; "
                    f"see {self.log_path}"
                )
            if healthy(self.port):
                return
            time.sleep(0.05)
        raise ServerError(f"penny serve #{self.index} not healthy after {START_TIMEOUT_S} s")

    def kill(self) -> None:
        """SIGKILL the process (no clean shutdown) and reap it."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)
            self.kills += 1
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def stop(self) -> None:
        """End the process gracefully (SIGTERM, then SIGKILL after 15 s)."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
