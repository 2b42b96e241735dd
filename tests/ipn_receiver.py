"""A merchant's IPN endpoint for the tests: a real HTTP server on 127.0.0.1.

It records every POST (path with query, headers, raw body, parsed pairs, arrival time) and
answers from a script: a queue of :class:`Reply` (status, delay, headers, or ``hang`` until
released), then ``judge`` (headers and body → status: a webhook receiver that verifies
signatures) if it has one, else ``default_status``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Reply:
    status: int = 200
    delay_s: float = 0.0
    headers: tuple[tuple[str, str], ...] = ()
    hang: bool = False


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    status: int

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode("ascii"), keep_blank_values=True, strict_parsing=True)

    @property
    def params(self) -> dict[str, str]:
        return dict(self.pairs)


@dataclass
class _State:
    script: deque[Reply] = field(default_factory=deque)
    received: list[Received] = field(default_factory=list)
    lock: threading.Condition = field(default_factory=threading.Condition)
    release: threading.Event = field(default_factory=threading.Event)
    hanging: threading.Event = field(default_factory=threading.Event)
    default_status: int = 200
    #: Replies by path (without the query), ahead of the script.
    routes: dict[str, Reply] = field(default_factory=dict)
    #: Answers what the script does not: (lower-cased headers, body) → HTTP status.
    judge: Callable[[dict[str, str], bytes], int] | None = None


class Receiver:
    """``with Receiver() as r: … r.url("/ipn") …``"""

    def __init__(
        self,
        script: Iterable[Reply] = (),
        default_status: int = 200,
        judge: Callable[[dict[str, str], bytes], int] | None = None,
    ) -> None:
        state = _State(deque(script), default_status=default_status, judge=judge)
        self.state = state

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with state.lock:
                    reply = state.routes.get(self.path.split("?", 1)[0])
                    if reply is None and state.script:
                        reply = state.script.popleft()
                headers = {k.lower(): v for k, v in self.headers.items()}
                if reply is None and state.judge is not None:
                    reply = Reply(state.judge(headers, body))
                reply = reply or Reply(state.default_status)
                if reply.hang:
                    state.hanging.set()
                    state.release.wait(60)
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                record = Received(
                    self.path,
                    headers,
                    body,
                    time.time(),
                    reply.status,
                )
                with state.lock:
                    state.received.append(record)
                    state.lock.notify_all()
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:
                    pass  # the sender gave up (a timeout test)

            def log_message(self, format: str, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # the backlog tests open many connections at once

            def handle_error(self, request: object, client_address: object) -> None:
                pass  # a sender that hung up (the timeout tests) is not news

        self.server = Server(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

    def url(self, path: str = "/ipn") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, *replies: Reply) -> None:
        with self.state.lock:
            self.state.script.extend(replies)

    @property
    def received(self) -> list[Received]:
        with self.state.lock:
            return list(self.state.received)

    def wait_for(self, count: int, timeout_s: float = 30.0) -> list[Received]:
        """Wait until ``count`` POSTs have been answered (raises on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self.state.lock:
            while len(self.state.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{len(self.state.received)} of {count} IPNs arrived")
                self.state.lock.wait(left)
            return list(self.state.received)
