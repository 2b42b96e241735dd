"""A standalone Penny ledger process for the crash-safety and multi-process tests.

Run as ``python tests/ledger_worker.py --url URL --debit 1,2 --credit 3 ...``. It opens the store,
starts a :class:`~penny.engine.group.GroupCommitter` and lets ``--concurrency`` asyncio
submitters issue transfers under the keys ``<prefix>-<i>`` for ``i`` in
``[start, start + count)``. What each key asks for (accounts and amount) is a pure function of
``--content-seed`` and the key (:meth:`Workload.command`), so two processes given the same key
and seed submit the same content, and the test can recompute what every stored journal must hold.

Lines on stdout, each written and flushed as a whole:

* ``READY <pid>`` once the store is open (then, with ``--wait-go``, a line on stdin starts work);
* ``ACK <key> <code> <journal_id|-> <R|N>`` only after ``submit`` has returned that outcome
  (``R`` when it was a replay of what the key did before);
* ``ERR <key> <exception>`` when ``submit`` raised;
* ``DONE <acks> <elapsed_s> <batches> <client_retries> <engine_retries>`` at the end: the
  client re-submits of ``storage_unavailable`` and the engine's conflict re-runs of batches.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from penny.engine.group import GroupCommitter
from penny.engine.ledger import Ledger
from penny.ledger.model import Leg, NewJournal, Outcome
from penny.ledger.results import ResultCode
from penny.storage.database import open_database

CURRENCY = "USD"
WORKER_PATH = Path(__file__).resolve()


def key_name(prefix: str, index: int) -> str:
    return f"{prefix}-{index:07d}"


@dataclass(frozen=True)
class Workload:
    """What a key asks for: a transfer from one ``debit`` account to one ``credit`` account."""

    owner: str
    debit: tuple[int, ...]
    credit: tuple[int, ...]
    min_amount: int
    max_amount: int
    content_seed: int

    def command(self, key: str) -> NewJournal:
        rng = random.Random(f"{self.content_seed}/{key}")
        source = rng.choice(self.debit)
        target = rng.choice([account for account in self.credit if account != source])
        amount = rng.randint(self.min_amount, self.max_amount)
        legs = (Leg(source, amount, CURRENCY), Leg(target, -amount, CURRENCY))
        memo = f"seed {self.content_seed}"  # so that two content seeds never ask the same
        return NewJournal(owner=self.owner, key=key, legs=legs, memo=memo)


def _ids(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--url", required=True)
    parser.add_argument("--owner", default="worker")
    parser.add_argument("--debit", type=_ids, required=True, help="comma-separated account ids")
    parser.add_argument("--credit", type=_ids, required=True, help="comma-separated account ids")
    parser.add_argument("--prefix", default="k")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--min-amount", type=int, default=1)
    parser.add_argument("--max-amount", type=int, default=1000)
    parser.add_argument("--content-seed", type=int, default=0)
    parser.add_argument("--order", choices=("asc", "shuffle"), default="asc")
    parser.add_argument("--order-seed", type=int, default=0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-batch", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=0.0, help="stop after s (0: never)")
    parser.add_argument("--retries", type=int, default=0, help="re-submits of transient codes")
    parser.add_argument("--wait-go", action="store_true", help="wait for a stdin line to start")
    args = parser.parse_args(argv)
    if not args.debit or any(set(args.credit) <= {source} for source in args.debit):
        parser.error("every --debit account needs some other --credit account")
    return args


def emit(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def ack_line(key: str, outcome: Outcome) -> str:
    journal = "-" if outcome.journal_id is None else str(outcome.journal_id)
    return f"ACK {key} {outcome.code.name} {journal} {'R' if outcome.replayed else 'N'}"


async def run(args: argparse.Namespace) -> int:
    workload = Workload(
        owner=args.owner,
        debit=args.debit,
        credit=args.credit,
        min_amount=args.min_amount,
        max_amount=args.max_amount,
        content_seed=args.content_seed,
    )
    keys = [key_name(args.prefix, i) for i in range(args.start, args.start + args.count)]
    if args.order == "shuffle":
        random.Random(args.order_seed).shuffle(keys)
    database = open_database(args.url)
    try:
        ledger = Ledger(database)
        async with GroupCommitter(ledger, max_batch=args.max_batch) as committer:
            emit(f"READY {os.getpid()}")
            if args.wait_go:
                await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            started = time.monotonic()
            deadline = started + args.duration if args.duration > 0 else None
            pending = iter(keys)
            acks = 0
            client_retries = 0
            errors = 0

            async def submitter() -> None:
                nonlocal acks, client_retries, errors
                for key in pending:
                    if deadline is not None and time.monotonic() >= deadline:
                        return
                    command = workload.command(key)
                    try:
                        outcome = await committer.submit(command)
                        for _ in range(args.retries):
                            if outcome.code is not ResultCode.storage_unavailable:
                                break
                            client_retries += 1
                            outcome = await committer.submit(command)
                    except Exception as exc:  # reported, and the test fails on it
                        errors += 1
                        emit(f"ERR {key} {exc!r}".replace("\n", " "))
                        continue
                    acks += 1
                    emit(ack_line(key, outcome))

            await asyncio.gather(*(submitter() for _ in range(args.concurrency)))
            elapsed = time.monotonic() - started
            batches = committer.batches
        emit(f"DONE {acks} {elapsed:.3f} {batches} {client_retries} {ledger.stats.retries}")
        return 1 if errors else 0
    finally:
        database.dispose()


# -- the test side: running a worker and reading what it said --------------------------------


@dataclass(frozen=True)
class Ack:
    """One ``ACK`` line: an outcome the worker was given after its batch committed."""

    key: str
    code: ResultCode
    journal_id: int | None
    replayed: bool


def parse_ack(line: str) -> Ack:
    tag, key, code, journal, replayed = line.split(" ")
    assert tag == "ACK", line
    assert replayed in {"R", "N"}, line
    return Ack(key, ResultCode[code], None if journal == "-" else int(journal), replayed == "R")


@dataclass(frozen=True)
class Done:
    """The ``DONE`` line of a worker that finished."""

    acks: int
    elapsed_s: float
    batches: int
    client_retries: int
    engine_retries: int


class WorkerProcess:
    """``ledger_worker.py`` as a subprocess, its stdout and stderr going to files in ``out_dir``.

    A context manager: leaving the block SIGKILLs the process if it is still running.
    """

    def __init__(self, args: Sequence[str], out_dir: Path, name: str) -> None:
        self.name = name
        self.stdout_path = out_dir / f"{name}.out"
        self.stderr_path = out_dir / f"{name}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, str(WORKER_PATH), *args],
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
            )

    def __enter__(self) -> WorkerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.kill()
        if self.process.stdin is not None:
            with contextlib.suppress(BrokenPipeError):
                self.process.stdin.close()

    def kill(self) -> None:
        """SIGKILL: no handler, no flush, no cleanup."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def lines(self) -> list[str]:
        """The complete lines written so far (a torn last line is not counted)."""
        text = self.stdout_path.read_text(encoding="utf-8", errors="replace")
        complete, _, _torn = text.rpartition("\n")
        return complete.split("\n") if complete else []

    def stderr(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def describe(self) -> str:
        return f"worker {self.name} (exit {self.process.poll()}); stderr:\n{self.stderr()[-3000:]}"

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(line.startswith("READY ") for line in self.lines()):
            if self.process.poll() is not None:
                raise AssertionError(f"exited before READY: {self.describe()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"not READY after {timeout}s: {self.describe()}")
            time.sleep(0.01)

    def go(self) -> None:
        """Start a worker that was given ``--wait-go``."""
        assert self.process.stdin is not None
        self.process.stdin.write(b"go\n")
        self.process.stdin.close()

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running after {timeout}s: {self.describe()}") from None

    def acks(self) -> list[Ack]:
        return [parse_ack(line) for line in self.lines() if line.startswith("ACK ")]

    def errors(self) -> list[str]:
        return [line for line in self.lines() if line.startswith("ERR ")]

    def done(self) -> Done | None:
        """What the ``DONE`` line says, if there is one."""
        for line in self.lines():
            if line.startswith("DONE "):
                _tag, acks, elapsed, batches, client, engine = line.split(" ")
                return Done(int(acks), float(elapsed), int(batches), int(client), int(engine))
        return None


def main(argv: Sequence[str] | None = None) -> int:
    return asyncio.run(run(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
