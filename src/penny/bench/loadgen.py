"""The load generator of ``penny bench http``: one process, many keep-alive connections.

Run as ``python -m penny.bench.loadgen CONFIG.json RESULT.json``. A compact asyncio HTTP/1.1
client of ours (no library: it only writes form POSTs and reads ``Content-Length`` answers,
which loads the server harder per client CPU than a general client would): every connection
loops sending **signed** (Signature V2, HmacSHA256) FPS requests, closed-loop, or open-loop at
a fixed rate when the config gives one (latency then counts from the scheduled send time, so a
slow server is not hidden by the client waiting for it).

The process says it is ready (its seed read), starts sending at the common start time the
parent then gives it (wall clock), counts the first ``warmup`` seconds apart and measures the
next ``duration`` seconds. The result holds latencies (µs) of the measured window per operation,
counts, errors with a few sample bodies, and the number of distinct money-moving requests that
succeeded over the whole run (warm-up included), for the ledger-count check.

Workloads: ``W1`` prepaid Pay to the buyer's own merchant (100 merchants); ``W2`` prepaid Pay
to the hot merchant; ``W4`` W1 with 10 % retries of an already-sent CallerReference (same
content); ``W5`` postpaid Pay with a SettleDebt every 100 requests; ``W6`` 80 %
GetPrepaidBalance, 20 % Pay; ``W7`` W1 through the JSON API (``POST /v1/payments`` with a
bearer secret, the CallerReference as its ``Idempotency-Key``).
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from penny.api.auth import bearer_secret
from penny.bench.seed import Buyer, Merchant, Seed
from penny.epoch import from_seconds, to_datetime
from penny.fps.signature import sign_v2

VERSION = "2008-09-17"
SUCCESS = b"<TransactionStatus>Success</TransactionStatus>"
JSON_SUCCESS = b'"status":"success"'
FORM = "application/x-www-form-urlencoded; charset=utf-8"
MAX_ERROR_SAMPLES = 5


@dataclass
class Stats:
    latencies: dict[str, list[int]] = field(default_factory=dict)
    ok: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    #: Distinct money-moving requests that succeeded (retries not counted), whole run.
    moved: dict[str, int] = field(default_factory=dict)
    requests: int = 0

    def record(self, op: str, micros: int, measured: bool) -> None:
        if measured:
            self.latencies.setdefault(op, []).append(micros)
            self.ok[op] = self.ok.get(op, 0) + 1


@dataclass(frozen=True, slots=True)
class Request:
    op: str
    merchant: Merchant
    action: str
    params: dict[str, str]
    new_move: bool
    #: A postpaid Pay's (instrument, amount): what the buyer owes once it succeeds.
    debt: tuple[str, int] | None = None
    #: W7: the Pay through the JSON API, for this many cents.
    json_cents: int | None = None


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def post(
        self, host: str, body: bytes, path: str = "/", content_type: str = FORM, extra: str = ""
    ) -> tuple[int, bytes]:
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\n"
            f"Content-Type: {content_type}\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("ascii")
        self.writer.write(head + body)
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split(b" ", 2)[1])
        length = 0
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        content = await self.reader.readexactly(length) if length else b""
        return status, content

    def close(self) -> None:
        self.writer.close()


class Signer:
    def __init__(self, host: str) -> None:
        self.host = host
        self._second = -1
        self._stamp = ""

    def timestamp(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._stamp = to_datetime(from_seconds(second)).strftime("%Y-%m-%dT%H:%M:%SZ")
        return self._stamp

    def body(self, merchant: Merchant, action: str, params: dict[str, str]) -> bytes:
        request = {
            "Action": action,
            "AWSAccessKeyId": merchant.access_key_id,
            "SignatureVersion": "2",
            "SignatureMethod": "HmacSHA256",
            "Timestamp": self.timestamp(),
            "Version": VERSION,
            **params,
        }
        request["Signature"] = sign_v2(merchant.secret, "POST", self.host, "/", request)
        return "&".join(f"{k}={quote(v, safe='-_.~')}" for k, v in request.items()).encode()


def json_pay(merchant: Merchant, request: Request) -> tuple[bytes, str]:
    """W7's body and extra headers: the same Pay as W1's, as JSON with a bearer secret."""
    assert request.json_cents is not None
    body = json.dumps(
        {
            "sender_token": request.params["SenderTokenId"],
            "amount": {"amount": request.json_cents, "currency": "USD"},
        },
        separators=(",", ":"),
    ).encode()
    secret = bearer_secret(merchant.access_key_id, merchant.secret, live=False)
    headers = (
        f"Authorization: Bearer {secret}\r\n"
        f"Idempotency-Key: {request.params['CallerReference']}\r\n"
    )
    return body, headers


def amount_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


class Worker:
    """What one process sends."""

    def __init__(self, config: dict[str, Any], seed: Seed) -> None:
        self.config = config
        self.seed = seed
        index, count = config["index"], config["processes"]
        self.buyers: list[Buyer] = seed.buyers[index::count] or seed.buyers
        self.workload: str = config["workload"]
        self.run_id: str = config["run_id"]
        self.host = f"{config['host']}:{config['port']}"
        self.signer = Signer(self.host)
        self.stats = Stats()
        self.rng = random.Random(f"{self.run_id}-{index}")
        self.sent: list[tuple[Merchant, dict[str, str]]] = []
        self.debts: dict[str, int] = {}
        self.counter = 0
        self.w5_count = 0

    def _pay(
        self, buyer: Buyer, hot: bool, credit: bool, amount: int
    ) -> tuple[Merchant, str, dict[str, str]]:
        self.counter += 1
        merchant = self.seed.merchants[0 if hot else buyer.merchant]
        token = buyer.hot_token if hot else buyer.prepaid_token
        if credit:
            token = buyer.credit_token
        params = {
            "SenderTokenId": token,
            "TransactionAmount.Value": amount_text(amount),
            "TransactionAmount.CurrencyCode": "USD",
            "CallerReference": f"{self.workload}-{self.run_id}-{self.config['index']}-"
            f"{self.counter}",
        }
        return merchant, "Pay", params

    def next_request(self) -> Request:
        """The next request of this workload."""
        rng = self.rng
        buyer = self.buyers[rng.randrange(len(self.buyers))]
        w = self.workload
        if w == "W4" and self.sent and rng.random() < 0.10:
            merchant, params = self.sent[rng.randrange(len(self.sent))]
            return Request("retry", merchant, "Pay", params, new_move=False)
        if w == "WB" or (w == "W6" and rng.random() < 0.80):
            merchant = self.seed.merchants[buyer.merchant]
            params = {"PrepaidInstrumentId": buyer.prepaid_instrument}
            return Request("balance", merchant, "GetPrepaidBalance", params, new_move=False)
        if w == "W5":
            self.w5_count += 1
            if self.w5_count % 100 == 0 and self.debts:
                instrument = max(self.debts, key=lambda k: self.debts[k])
                owed = self.debts.pop(instrument)
                if owed >= 100:
                    owner = next(b for b in self.buyers if b.credit_instrument == instrument)
                    self.counter += 1
                    params = {
                        "SenderTokenId": owner.settlement_token,
                        "CreditInstrumentId": instrument,
                        "SettlementAmount.Value": amount_text(owed),
                        "SettlementAmount.CurrencyCode": "USD",
                        "CallerReference": f"S-{self.run_id}-{self.config['index']}-{self.counter}",
                    }
                    merchant = self.seed.merchants[owner.merchant]
                    return Request("settle", merchant, "SettleDebt", params, new_move=True)
        amount = rng.randint(100, 999) if w == "W5" else rng.randint(1, 500)
        merchant, action, params = self._pay(buyer, w == "W2", w == "W5", amount)
        if w == "W4" and len(self.sent) < 100_000:
            self.sent.append((merchant, params))
        debt = (buyer.credit_instrument, amount) if w == "W5" else None
        cents = amount if w == "W7" else None
        return Request("pay", merchant, action, params, new_move=True, debt=debt, json_cents=cents)

    async def connection(
        self, start: float, warm_end: float, end: float, rate: float | None
    ) -> None:
        conn = await Connection.open(self.config["host"], self.config["port"])
        interval = (self.config["connections"] / rate) if rate else 0.0
        scheduled = start + self.rng.random() * interval
        try:
            while True:
                if rate:
                    delay = scheduled - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    sent_at = scheduled
                    scheduled += interval
                else:
                    sent_at = time.time()
                if sent_at >= end:
                    return
                request = self.next_request()
                op = request.op
                if not rate:
                    sent_at = time.time()
                status, content = await self.send(conn, request)
                done = time.time()
                self.stats.requests += 1
                success = SUCCESS if request.json_cents is None else JSON_SUCCESS
                good = status == 200 and (op == "balance" or success in content)
                measured = warm_end <= sent_at < end
                if not good:
                    self.stats.errors += measured
                    if len(self.stats.error_samples) < MAX_ERROR_SAMPLES:
                        self.stats.error_samples.append(f"{op} {status}: {content[:300]!r}")
                    continue
                self.stats.record(op, int((done - sent_at) * 1e6), measured)
                if request.new_move:
                    self.stats.moved[op] = self.stats.moved.get(op, 0) + 1
                if request.debt is not None:
                    instrument, amount = request.debt
                    self.debts[instrument] = self.debts.get(instrument, 0) + amount
        finally:
            conn.close()

    async def send(self, conn: Connection, request: Request) -> tuple[int, bytes]:
        """One request: signed FPS, or (W7) JSON with a bearer secret."""
        if request.json_cents is None:
            body = self.signer.body(request.merchant, request.action, request.params)
            return await conn.post(self.signer.host, body)
        body, headers = json_pay(request.merchant, request)
        return await conn.post(self.signer.host, body, "/v1/payments", "application/json", headers)

    async def run(self) -> None:
        start = await self._start_time()
        warm_end = start + float(self.config["warmup"])
        end = warm_end + float(self.config["duration"])
        rate = self.config.get("rate")
        per_process_rate = rate / self.config["processes"] if rate else None
        delay = start - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        await asyncio.gather(
            *(
                self.connection(start, warm_end, end, per_process_rate)
                for _ in range(self.config["connections"])
            )
        )

    async def _start_time(self) -> float:
        """The common start: the time the parent writes to ``start_file`` once every
        generator has written its ``ready_file`` (so a slow start never eats the window)."""
        Path(self.config["ready_file"]).touch()
        start_file = Path(self.config["start_file"])
        while not start_file.exists():
            await asyncio.sleep(0.005)
        return float(start_file.read_text())


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    seed = Seed.load(Path(config["seed_path"]))
    worker = Worker(config, seed)
    cpu_started = time.process_time()
    try:
        import uvloop

        uvloop.run(worker.run())
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        asyncio.run(worker.run())
    stats = worker.stats
    Path(argv[1]).write_text(
        json.dumps(
            {
                "latencies": stats.latencies,
                "ok": stats.ok,
                "errors": stats.errors,
                "error_samples": stats.error_samples,
                "moved": stats.moved,
                "requests": stats.requests,
                "cpu_s": time.process_time() - cpu_started,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
