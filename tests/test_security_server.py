"""The attack checklist lines that need the real server (docs/security.md): slow clients,
and logs free of secrets and card data.

One ``penny serve`` process (SQLite, ``--request-timeout 1``) on 127.0.0.1 for the module,
seeded with ``penny sandbox seed`` (a merchant key, a buyer with a test card and a bank
account). Its stderr — the JSON access log and anything else it prints — is kept in a file.
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

from builders import signed_fps
from penny.check.servers import free_port, healthy

PENNY = (sys.executable, "-c", "from penny.cli.main import main; main()")
TIMEOUT_S = 1
CARD = "4111111111111111"
FORM = "application/x-www-form-urlencoded"
LIMITS = ("--request-timeout", str(TIMEOUT_S))


@dataclass
class Server:
    port: int
    log: Path
    secret: str
    key: str
    seed: dict[str, str]

    def signed(self, action: str, **extra: str) -> bytes:
        host = f"127.0.0.1:{self.port}"
        params = signed_fps(action, self.key, self.secret, extra, method="POST", host=host)
        return urlencode(params).encode()

    def post(self, body: bytes) -> tuple[int, str]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(
                "POST",
                "/",
                body=body,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            response = conn.getresponse()
            return response.status, response.read().decode()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("serve")
    url = f"sqlite:///{directory / 'penny.db'}"
    seeded = subprocess.run(
        [*PENNY, "sandbox", "seed", "--json", "--database", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    seed = json.loads(seeded.stdout)
    port = free_port()
    log = directory / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [*PENNY, "serve", "--database", url, "--port", str(port), *LIMITS],
            stdout=sink,
            stderr=sink,
        )
        try:
            deadline = time.monotonic() + 60
            while not healthy(port):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.05)
            yield Server(port, log, seed["secret_access_key"], seed["access_key_id"], seed)
        finally:
            process.terminate()
            process.wait(timeout=30)


def dribble(port: int, data: bytes, every_s: float = 0.1) -> tuple[float, bytes]:
    """Send ``data`` a byte at a time; (seconds until the server answered or hung up, answer)."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.settimeout(every_s)
        received = b""
        for byte in data:
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                break
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            received += chunk
            if not chunk or received:
                break
        else:
            sock.settimeout(5 * TIMEOUT_S)
            received = sock.recv(4096)
        return time.monotonic() - started, received


def test_a_client_dribbling_its_headers_is_answered_408_and_cut_off(server: Server) -> None:
    headers = b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n" * 5
    took, answer = dribble(server.port, headers)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout")
    assert TIMEOUT_S - 0.2 < took < TIMEOUT_S + 2


def test_a_client_dribbling_its_body_is_cut_off(server: Server) -> None:
    head = (
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(head)
        started = time.monotonic()
        sock.settimeout(0.1)
        closed = False
        for _ in range(200):
            try:
                sock.sendall(b"a")
                if sock.recv(4096) == b"":
                    closed = True
                    break
            except TimeoutError:
                continue
            except OSError:
                closed = True
                break
        took = time.monotonic() - started
    assert closed
    assert took < TIMEOUT_S + 2


def _read_response(sock: socket.socket) -> bytes:
    """One whole HTTP response (headers and a Content-Length body), however it is split."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += sock.recv(4096)
    return head + b"\r\n\r\n" + body


def test_a_kept_alive_connection_has_the_same_deadline_for_its_next_request(
    server: Server,
) -> None:
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.settimeout(5)
        first = _read_response(sock)
        assert first.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        sock.settimeout(0.1)
        answer = b""
        for byte in b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100:
            sock.sendall(bytes([byte]))
            try:
                answer = sock.recv(4096)
            except TimeoutError:
                continue
            break
        assert answer.startswith(b"HTTP/1.1 408")
        assert time.monotonic() - started < TIMEOUT_S + 2


def test_slow_clients_do_not_keep_others_from_being_served(server: Server) -> None:
    slow = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
    try:
        for sock in slow:
            sock.sendall(b"POST / HTTP/1.1\r\nHo")
        status, body = server.post(server.signed("GetAccountBalance"))
        assert status == 200, body
        time.sleep(TIMEOUT_S + 0.5)
        for sock in slow:
            sock.settimeout(2)
            assert sock.recv(4096).startswith(b"HTTP/1.1 408")
    finally:
        for sock in slow:
            sock.close()


def test_serve_help_documents_the_limits() -> None:
    shown = subprocess.run(
        [*PENNY, "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"},
    ).stdout
    assert "--request-timeout" in shown
    assert "--limit-concurrency" in shown


def test_logs_carry_no_secret_signature_or_card_data(server: Server) -> None:
    seed = server.seed
    bodies = [
        server.signed("GetAccountBalance"),
        # Card data and the secret as parameter values, signed and not.
        server.signed(
            "Pay",
            CallerReference=CARD,
            SenderTokenId=server.secret,
            **{
                "TransactionAmount.Value": "1.00",
                "SenderDescription": f"card {CARD} pw {seed['buyer_password']}",
            },
        ),
        server.signed("GetAccountBalance").replace(b"Signature=", b"Signature=x"),
        urlencode({"Action": "Pay", "CardNumber": CARD, "Secret": server.secret}).encode(),
        b"\xff\xfe" + CARD.encode(),
    ]
    signatures = []
    for body in bodies:
        status, text = server.post(body)
        assert status < 500, text
        signatures += [v for k, v in _pairs(body) if k == "Signature"]
    time.sleep(0.3)
    log = server.log.read_text(errors="replace")
    lines = [line for line in log.splitlines() if line.startswith("{")]
    assert len(lines) >= len(bodies)
    for forbidden in [server.secret, CARD, seed["buyer_password"], *signatures]:
        assert forbidden not in log
    assert "Traceback" not in log


def _pairs(body: bytes) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    try:
        return parse_qsl(body.decode())
    except UnicodeDecodeError:
        return []
