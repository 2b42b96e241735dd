"""What the FPS endpoint adds to the services for speed: group commit and a key cache.

* :class:`BatchedPayments` is the :class:`~penny.services.payments.Payments` the FPS actions
  call. Its :meth:`~BatchedPayments.execute`, called from a request's worker thread, hands the
  request to a :class:`~penny.engine.group.Batcher` on the event loop and waits: whatever
  requests arrive while a batch commits form the next batch, decided in order and committed in
  one transaction by :meth:`Payments.submit`. A request's answer is sent only after its batch
  has committed; idempotency is unchanged (``CallerReference`` lookups and the fingerprint are
  per request, and two requests with one reference in the same batch see each other). A batch
  that fails as a whole (a bug, or the store gone) is re-run one request per transaction, so one
  bad request never fails its neighbours. Without a running loop (direct calls, tests) it is
  plain :class:`Payments`.
* :class:`KeyCache` remembers, for :data:`KEY_TTL_MS`, an access key's decrypted secret and owner:
  a signed request then costs no database read and no AES-GCM decryption for its key. A revoked
  key is refused at most one TTL after the revocation, by every worker process
  (docs/decisions.md, #8).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from penny.domain.errors import PaymentsError
from penny.domain.model import Transaction
from penny.engine.group import Batcher
from penny.parties import Directory
from penny.services.payment_queries import BalanceQuery, TwoBalances
from penny.services.payments import PaymentRequest, Payments, Result

#: How long a key's secret and owner are trusted without asking the database again.
KEY_TTL_MS = 1000
#: Keys cached at most (the cache starts again empty past it).
MAX_CACHED_KEYS = 10_000
#: The largest batch one commit takes.
MAX_BATCH = 1000

Outcome = Result | BaseException

#: Set while a request is answered on the event loop for the first time: a money-moving
#: request stops at :meth:`BatchedPayments.execute` with :class:`DeferredPayment` (a balance read
#: at :meth:`BatchedPayments.balance` with :class:`DeferredRead`).
_first_pass: ContextVar[bool] = ContextVar("penny_first_pass", default=False)


class Deferred(BaseException):
    """Raised through the action code in a first pass: the request waits for a batch.

    A ``BaseException`` so that no ``except Exception`` on the way mistakes it for a failure.
    The FPS endpoint fills in, on the way out, what it needs to answer once the batch is done:
    the caller, the action and version, the parameters, the key id to log.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.caller_id = ""
        self.action = ""
        self.version = ""
        self.params: Mapping[str, str] = {}
        self.access_key_id: str | None = None


class DeferredPayment(Deferred):
    """``request`` is to be committed; then only its outcome is rendered."""

    def __init__(self, request: PaymentRequest) -> None:
        super().__init__("deferred to the group commit")
        self.request = request


class DeferredRead(Deferred):
    """``query`` is to be read in a batch; then the action runs again with the balance read
    (:func:`decided_read`)."""

    def __init__(self, query: BalanceQuery) -> None:
        super().__init__("deferred to the batched reads")
        self.query = query


ReadOutcome = TwoBalances | PaymentsError | BaseException

#: Set while a batched read's action is run again: the balance read for it meanwhile.
_read: ContextVar[tuple[BalanceQuery, ReadOutcome] | None] = ContextVar("penny_read", default=None)


class BatchedPayments(Payments):
    """:class:`Payments` whose :meth:`execute` joins a group commit (see the module doc)."""

    def __init__(self, base: Payments, *, max_batch: int = MAX_BATCH) -> None:
        super().__init__(
            base.ledger,
            clock=base.clock,
            fees=base.fees,
            funding=base.funding,
            new_id=base.new_id,
            listener=base.listener,
        )
        self.max_batch = max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._batcher: Batcher[PaymentRequest, Outcome] | None = None
        self._reader: Batcher[BalanceQuery, ReadOutcome] | None = None

    def attach(self) -> None:
        """Start (or restart) the group commit on the running loop; call it on the loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._batcher is not None:
            return
        batcher: Batcher[PaymentRequest, Outcome] = Batcher(
            self._run_batch_isolated, max_batch=self.max_batch
        )
        batcher.start()
        reader: Batcher[BalanceQuery, ReadOutcome] = Batcher(
            self._read_batch, max_batch=self.max_batch, thread_name="penny-reader"
        )
        reader.start()
        self._batcher, self._reader, self._loop = batcher, reader, loop

    @property
    def batches(self) -> int:
        return 0 if self._batcher is None else self._batcher.batches

    @property
    def read_batches(self) -> int:
        return 0 if self._reader is None else self._reader.batches

    def execute(self, request: PaymentRequest) -> Transaction:
        if _first_pass.get():
            raise DeferredPayment(request)
        loop, batcher = self._loop, self._batcher
        if loop is None or batcher is None or loop.is_closed() or _on_loop(loop):
            return super().execute(request)
        outcome = asyncio.run_coroutine_threadsafe(batcher.submit(request), loop).result()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def balance(self, query: BalanceQuery) -> TwoBalances:
        if _first_pass.get():
            raise DeferredRead(query)
        decided = _read.get()
        if decided is not None:
            asked, outcome = decided
            assert asked == query, "the action read another balance the second time"
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        return super().balance(query)

    async def read(self, query: BalanceQuery) -> ReadOutcome:
        """Read ``query`` in the next batch of balance reads (on the loop, after attach)."""
        assert self._reader is not None
        try:
            return await self._reader.submit(query)
        except Exception as exc:  # the whole batch failed: the request is answered with it
            return exc

    def _read_batch(self, queries: Sequence[BalanceQuery]) -> list[ReadOutcome]:
        return list(self.balances(queries))

    async def commit(self, request: PaymentRequest) -> Outcome:
        """Decide and commit ``request`` in the next batch (on the loop, after :meth:`attach`)."""
        assert self._batcher is not None
        try:
            return await self._batcher.submit(request)
        except Exception as exc:  # the whole batch failed: the request is answered with it
            return exc

    def _run_batch_isolated(self, requests: Sequence[PaymentRequest]) -> list[Outcome]:
        try:
            return list(self.submit(requests))
        except Exception:
            if len(requests) == 1:
                raise
        outcomes: list[Outcome] = []
        for request in requests:
            try:
                outcomes.extend(self.submit([request]))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes


def _on_loop(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


@dataclass(frozen=True, slots=True)
class _CachedKey:
    checked_ns: int
    ciphertext: bytes
    secret: str
    owner: str


class KeyCache:
    """Access key id → (secret, owner) for :data:`KEY_TTL_MS`; thread-safe.

    A key older than the TTL is checked again, together with every other cached key past half
    its TTL, in one read (so 100 merchants' keys cost about two reads a second, not 100); a
    secret is decrypted again only when its stored ciphertext changed.
    """

    def __init__(self, directory: Directory, ttl_ms: int = KEY_TTL_MS) -> None:
        self.directory = directory
        self.ttl_ns = ttl_ms * 1_000_000
        self._entries: dict[str, _CachedKey] = {}
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()
        #: Reads made to check keys (for tests and metrics).
        self.reads = 0

    def _entry(self, access_key_id: str) -> _CachedKey | None:
        cached = self._entries.get(access_key_id)
        if cached is not None and time.monotonic_ns() - cached.checked_ns < self.ttl_ns:
            return cached
        with self._refresh_lock:
            now = time.monotonic_ns()
            cached = self._entries.get(access_key_id)
            if cached is not None and now - cached.checked_ns < self.ttl_ns:
                return cached  # another thread checked it meanwhile
            self._refresh(access_key_id, now)
            return self._entries.get(access_key_id)

    def _refresh(self, access_key_id: str, now: int) -> None:
        with self._lock:
            entries = dict(self._entries)
        ids = {access_key_id}
        ids.update(k for k, e in entries.items() if now - e.checked_ns >= self.ttl_ns // 2)
        found = self.directory.active_keys(ids)
        self.reads += 1
        fresh: dict[str, _CachedKey] = {}
        for key_id in ids:
            row = found.get(key_id)
            if row is None:
                continue
            ciphertext, owner = row
            before = entries.get(key_id)
            if before is not None and before.ciphertext == ciphertext:
                secret = before.secret
            else:
                secret = self.directory.decrypt_secret(ciphertext, key_id)
            fresh[key_id] = _CachedKey(now, ciphertext, secret, owner)
        with self._lock:
            for key_id in ids - fresh.keys():
                self._entries.pop(key_id, None)
            if len(self._entries) + len(fresh) > MAX_CACHED_KEYS:
                self._entries.clear()
            self._entries.update(fresh)

    def fresh(self, access_key_id: str) -> bool:
        """Whether the key is cached and within its TTL (no database read needed)."""
        cached = self._entries.get(access_key_id)
        return cached is not None and time.monotonic_ns() - cached.checked_ns < self.ttl_ns

    def secret_for(self, access_key_id: str) -> str | None:
        entry = self._entry(access_key_id)
        return None if entry is None else entry.secret

    def party_of(self, access_key_id: str) -> str | None:
        entry = self._entry(access_key_id)
        return None if entry is None else entry.owner


@contextmanager
def decided_read(query: BalanceQuery, outcome: ReadOutcome) -> Iterator[None]:
    """Run a deferred read's action again: its balance read is ``outcome``."""
    token = _read.set((query, outcome))
    try:
        yield
    finally:
        _read.reset(token)


@contextmanager
def first_pass() -> Iterator[None]:
    """The first pass of an on-loop request (see :class:`Deferred`)."""
    token = _first_pass.set(True)
    try:
        yield
    finally:
        _first_pass.reset(token)
