"""The single writer: every write goes through one task, and concurrent message sends and
acks are committed together in one transaction (group commit), so one fsync covers many.

Other writes (registration, keys, groups) run as jobs, each in its own transaction, in
between batches. Waiters are resolved only after their transaction has committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from covey.errors import Conflict, CoveyError

log = logging.getLogger(__name__)

T = TypeVar("T")
MAX_BATCH = 512


class StorageUnavailable(CoveyError):
    code = "storage_unavailable"
    status = 503


class BatchItem:
    """One batchable write; `result` is filled in by the batch handler."""

    __slots__ = ("future", "result")

    def __init__(self) -> None:
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.result: Any = None


Job = Callable[[AsyncConnection], Awaitable[Any]]
# Runs one batch in one committed transaction and fills in each item's `result`.
BatchRunner = Callable[[Sequence[BatchItem]], Awaitable[None]]


class _JobItem:
    __slots__ = ("future", "job")

    def __init__(self, job: Job) -> None:
        self.job = job
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()


class SerialWriter:
    """Owns all writes to the database from this process."""

    def __init__(self, engine: AsyncEngine, run_batch: BatchRunner) -> None:
        self._engine = engine
        self._run_batch = run_batch
        self._queue: asyncio.Queue[BatchItem | _JobItem] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="covey-writer")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def run_job(self, job: Callable[[AsyncConnection], Awaitable[T]]) -> T:
        item = _JobItem(job)
        self._queue.put_nowait(item)
        result: T = await item.future
        return result

    def submit(self, item: BatchItem) -> asyncio.Future[Any]:
        """Queue a batchable write; the returned future resolves after commit."""
        self._queue.put_nowait(item)
        return item.future

    async def _run(self) -> None:
        while True:
            first = await self._queue.get()
            items = [first]
            while len(items) < MAX_BATCH and not self._queue.empty():
                items.append(self._queue.get_nowait())
            batch = [i for i in items if isinstance(i, BatchItem)]
            jobs = [i for i in items if isinstance(i, _JobItem)]
            if batch:
                await self._commit_batch(batch)
            for job in jobs:
                await self._commit_job(job)

    async def _commit_batch(self, batch: list[BatchItem]) -> None:
        try:
            await self._run_batch(batch)
        except Exception:
            if len(batch) == 1:
                self._fail(batch, "the message store is unavailable, retry later")
                return
            # One bad item must not fail its neighbours: retry each on its own.
            log.warning("batch of %d failed; committing its items one by one", len(batch))
            for item in batch:
                await self._commit_batch([item])
            return
        for item in batch:
            if not item.future.done():
                item.future.set_result(item.result)

    @staticmethod
    def _fail(batch: list[BatchItem], message: str) -> None:
        log.exception("commit failed")
        error = StorageUnavailable(message)
        for item in batch:
            if not item.future.done():
                item.future.set_exception(error)

    async def _commit_job(self, job: _JobItem) -> None:
        try:
            async with self._engine.begin() as conn:
                result = await job.job(conn)
        except CoveyError as exc:
            if not job.future.done():
                job.future.set_exception(exc)
            return
        except IntegrityError as exc:
            # Only reachable when another process wrote the same key meanwhile.
            if not job.future.done():
                job.future.set_exception(Conflict("a conflicting write won; retry",
                                                  code="conflict"))
            log.info("write job lost a race: %s", type(exc.orig).__name__)
            return
        except Exception as exc:
            log.exception("write job failed")
            error = StorageUnavailable("the store is unavailable, retry later")
            error.__cause__ = exc
            if not job.future.done():
                job.future.set_exception(error)
            return
        if not job.future.done():
            job.future.set_result(result)
