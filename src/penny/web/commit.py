"""The commit stage of the server: group commit of money-moving requests, batched balance reads.

:class:`GroupCommit` runs two :class:`~penny.engine.group.Batcher` loops on the server's event
loop. :meth:`GroupCommit.commit` hands a validated
:class:`~penny.services.payments.PaymentRequest` to the writer: whatever requests arrive while
a batch commits form the next batch, decided in order and committed in one transaction by
:meth:`Payments.submit`. A request's answer is given only after its batch has committed;
idempotency is unchanged (``CallerReference`` lookups and the fingerprint are per request, and
two requests with one reference in the same batch see each other). A batch that fails as a
whole (a bug, or the store gone) is re-run one request per transaction, so one bad request
never fails its neighbours. :meth:`GroupCommit.read` does the same for GetPrepaidBalance and
GetDebtBalance: one statement per batch of reads, in a reader thread.

The JSON API's requests join the same batches: :meth:`GroupCommit.commit_keyed` takes a
request with an idempotency key (:class:`~penny.services.idempotency.Keyed`), whose stored
response is read and written in the batch's own transaction (:func:`run_keyed`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeVar

from penny.domain.errors import PaymentsError
from penny.engine.group import Batcher
from penny.engine.ledger import StorageUnavailableError
from penny.services.idempotency import Keyed, KeyedAnswer, run_keyed
from penny.services.payment_queries import BalanceQuery, TwoBalances
from penny.services.payments import PaymentRequest, Payments, Result

#: The largest batch one commit takes.
MAX_BATCH = 1000

Outcome = Result | BaseException
Item = PaymentRequest | Keyed
ItemOutcome = Result | KeyedAnswer | BaseException
ReadOutcome = TwoBalances | PaymentsError | BaseException
_In = TypeVar("_In")
_Out = TypeVar("_Out")


async def _submitted(batcher: Batcher[_In, _Out], item: _In) -> _Out | Exception:
    """``item``'s answer from the next batch; when the whole batch failed, its exception."""
    try:
        return await batcher.submit(item)
    except Exception as exc:  # the request is answered with the batch's failure
        return exc


class GroupCommit:
    """Group commit and batched reads over ``payments`` (start them with :meth:`attach`)."""

    def __init__(self, payments: Payments, *, max_batch: int = MAX_BATCH) -> None:
        self.payments = payments
        self.max_batch = max_batch
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: Batcher[Item, ItemOutcome] | None = None
        self._reader: Batcher[BalanceQuery, ReadOutcome] | None = None

    def attach(self) -> None:
        """Start (or restart) the batches on the running loop; call it on the loop."""
        loop = asyncio.get_running_loop()
        if self._loop is loop and self._writer is not None:
            return
        writer: Batcher[Item, ItemOutcome] = Batcher(self._commit_batch, max_batch=self.max_batch)
        writer.start()
        reader: Batcher[BalanceQuery, ReadOutcome] = Batcher(
            self._read_batch, max_batch=self.max_batch, thread_name="penny-reader"
        )
        reader.start()
        self._writer, self._reader, self._loop = writer, reader, loop

    @property
    def batches(self) -> int:
        """Group commits so far."""
        return 0 if self._writer is None else self._writer.batches

    @property
    def read_batches(self) -> int:
        """Batched balance reads so far."""
        return 0 if self._reader is None else self._reader.batches

    async def commit(self, request: PaymentRequest) -> Outcome:
        """Decide and commit ``request`` in the next batch (on the loop, after :meth:`attach`)."""
        outcome = await self._submit(request)
        assert not isinstance(outcome, KeyedAnswer)
        return outcome

    async def commit_keyed(self, item: Keyed) -> KeyedAnswer | BaseException:
        """:meth:`commit` for a request with an idempotency key: its (stored) response."""
        outcome = await self._submit(item)
        assert isinstance(outcome, KeyedAnswer | BaseException)
        return outcome

    async def _submit(self, item: Item) -> ItemOutcome:
        assert self._writer is not None
        return await _submitted(self._writer, item)

    async def read(self, query: BalanceQuery) -> ReadOutcome:
        """Read ``query`` in the next batch of balance reads (on the loop, after attach)."""
        assert self._reader is not None
        return await _submitted(self._reader, query)

    def _read_batch(self, queries: Sequence[BalanceQuery]) -> list[ReadOutcome]:
        return list(self.payments.balances(queries))

    def _run(self, items: Sequence[Item]) -> list[ItemOutcome]:
        if not any(isinstance(item, Keyed) for item in items):
            return list(self.payments.submit(items))  # type: ignore[arg-type]
        return list(self.payments.transact(lambda session, run: run_keyed(session, run, items)))

    def _commit_batch(self, items: Sequence[Item]) -> list[ItemOutcome]:
        try:
            return self._run(items)
        except StorageUnavailableError:
            raise  # the store is gone (a failover): one request at a time would fail alike
        except Exception:
            if len(items) == 1:
                raise
        outcomes: list[ItemOutcome] = []
        for item in items:
            try:
                outcomes.extend(self._run([item]))
            except Exception as exc:
                outcomes.append(exc)
        return outcomes
