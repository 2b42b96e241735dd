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
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from penny.engine.ledger import Ledger
from penny.ledger.model import Command, Outcome

DEFAULT_MAX_BATCH = 2000


class GroupCommitter:
    """Gathers commands from many coroutines into batches. Use as an async context manager."""

    def __init__(self, ledger: Ledger, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.ledger = ledger
        self.max_batch = max_batch
        self._queue: deque[tuple[Command, asyncio.Future[Outcome]]] = deque()
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="penny-writer")
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batch_sizes: list[int] = []

    async def __aenter__(self) -> GroupCommitter:
        self.start()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def start(self) -> None:
        assert self._task is None, "already started"
        self._task = asyncio.get_running_loop().create_task(self._run(), name="penny-writer")

    async def close(self) -> None:
        """Finish what is queued, then stop."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        self._executor.shutdown(wait=True)

    async def submit(self, command: Command) -> Outcome:
        """Queue ``command`` and return its outcome once its batch has committed."""
        if self._closing:
            raise RuntimeError("the group committer is closed")
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._queue.append((command, future))
        self._wakeup.set()
        return await future

    async def submit_many(self, commands: Sequence[Command]) -> list[Outcome]:
        """Queue several commands at once; they may share batches with others."""
        return list(await asyncio.gather(*(self.submit(c) for c in commands)))

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
            commands = [command for command, _future in batch]
            try:
                outcomes = await loop.run_in_executor(self._executor, self.ledger.execute, commands)
            except Exception as exc:  # a bug or a dead store: every submitter must hear of it
                for _command, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            self.batch_sizes.append(take)
            for (_command, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
