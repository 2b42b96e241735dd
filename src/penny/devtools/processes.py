"""Process and port helpers the throwaway clusters share (pgcluster.py, patroni.py).

The loopback address they listen on, a child process's environment, free ports, killing a
process, and the ``with`` protocol of a cluster that is destroyed when the block exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from types import TracebackType
from typing import Final, Self

HOST: Final = "127.0.0.1"
"""The only address a throwaway cluster listens on (besides its private Unix sockets)."""


def child_env(*, drop_pythonpath: bool = False) -> dict[str, str]:
    """The environment for the server tools: ours, minus libpq's PG* knobs, with the C locale
    (English server messages; no dependency on generated locales). ``drop_pythonpath`` for
    tools that run on the system's Python (Patroni), not on our venv's modules."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    if drop_pythonpath:
        env.pop("PYTHONPATH", None)
    return env


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def distinct_ports(count: int) -> list[int]:
    """``count`` different free ports on 127.0.0.1 (the kernel's picks)."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def port_open(port: int) -> bool:
    """Whether something accepts connections on ``port`` of 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((HOST, port)) == 0


def kill(pid: int) -> None:
    """SIGKILL ``pid`` if it still exists."""
    with contextlib.suppress(OSError):
        os.kill(pid, signal.SIGKILL)


class DestroyedOnExit:
    """A cluster used as a context manager: ``with`` returns it and destroys it on exit."""

    def destroy(self) -> None:
        """Stop what runs and delete the directory (each cluster says how)."""
        raise NotImplementedError

    def __enter__(self) -> Self:
        """Return self; the cluster is destroyed when the block exits."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Destroy the cluster."""
        self.destroy()
