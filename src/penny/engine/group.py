"""Group commit: many concurrent submitters, one database transaction per batch.

:meth:`GroupCommitter.submit` queues a command and waits for its outcome. One writer task
takes everything queued, runs it as a single batch through :meth:`Ledger.execute` in a worker
thread (the event loop keeps accepting work meanwhile) and then answers every submitter at once.
Each command is decided against the state as the commands before it in the batch left it and
gets its own outcome; a refused command never fails its neighbours. The answers are given only
after the batch's commit has returned, so nothing is acknowledged before it is durable.

Batches size themselves: whatever arrived while the previous batch was committing forms the
next one (up to ``max_batch``). Under light load a command waits for one commit; under heavy
load thousands share it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

from penny.engine.ledger import Ledger
from penny.ledger.model import Command, Outcome

DEFAULT_MAX_BATCH = 2000

C = TypeVar("C")
R = TypeVar("R")


class Batcher(Generic[C, R]):
    """Gathers items from many coroutines into batches for ``run_batch``, which takes a list
    and returns one result per item, in order, after its transaction has committed. Use as an
    async context manager."""

    def __init__(
        self,
        run_batch: Callable[[list[C]], list[R]],
        *,
        max_batch: int = DEFAULT_MAX_BATCH,
        thread_name: str = "penny-writer",
    ) -> None:
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.batches = 0
        self.items = 0
        self._queue: deque[tuple[C, asyncio.Future[R]]] = deque()
        self._wakeup = asyncio.Event()
        self.thread_name = thread_name
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name)
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    async def __aenter__(self) -> Batcher[C, R]:
        self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def start(self) -> None:
        assert self._task is None, "already started"
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.thread_name)

    async def close(self) -> None:
        """Finish what is queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def submit(self, item: C) -> R:
        """Queue ``item`` and return its result once its batch has committed."""
        if self._closing:
            raise RuntimeError("the batcher is closed")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wakeup.set()
        return await future

    async def submit_many(self, items: Sequence[C]) -> list[R]:
        """Queue several items at once; they may share batches with others."""
        return list(await asyncio.gather(*(self.submit(item) for item in items)))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            take = min(len(self._queue), self.max_batch)
            batch = [self._queue.popleft() for _ in range(take)]
            items = [item for item, _future in batch]
            try:
                results = await loop.run_in_executor(self._executor, self.run_batch, items)
            except Exception as exc:  # a bug or a dead store: every submitter must hear of it
                for _item, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batches += 1
            self.items += take
            for (_item, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)


class GroupCommitter(Batcher[Command, Outcome]):
    """Group commit of ledger commands through :meth:`Ledger.execute`."""

    def __init__(self, ledger: Ledger, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        super().__init__(ledger.execute, max_batch=max_batch)
        self.ledger = ledger
