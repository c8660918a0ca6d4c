"""Group commit: many requests' changes share one transaction and one fsync.

While one batch is being written (in a worker thread, so the event loop never waits on
the disk), new changes accumulate; when the write finishes, everything that arrived in
the meantime goes out as the next batch. Under load, batches grow and the cost of each
fsync is shared by every client that was waiting on it.
"""

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from .base import Changes, Record, Ref, StoreError

log = logging.getLogger(__name__)

WriteBatch = Callable[[dict[Ref, Record | None]], None]


class GroupCommitter:
    def __init__(self, write_batch: WriteBatch, name: str) -> None:
        self._write_batch = write_batch
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: dict[Ref, Record | None] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._in_flight: asyncio.Future[None] | None = None

    def submit(self, changes: Changes) -> "asyncio.Future[None]":
        self._pending.update(changes)  # a later change to the same object replaces the earlier
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._in_flight is None:
            self._start_batch()
        return waiter

    def barrier(self) -> "asyncio.Future[None] | None":
        if self._in_flight is None and not self._waiters and not self._pending:
            return None
        return self.submit({})

    def _start_batch(self) -> None:
        batch, waiters = self._pending, self._waiters
        self._pending, self._waiters = {}, []
        self._in_flight = asyncio.wrap_future(self._executor.submit(self._write_batch, batch))
        self._in_flight.add_done_callback(lambda done: self._finish(done, batch, waiters))

    def _finish(
        self,
        done: "asyncio.Future[None]",
        batch: dict[Ref, Record | None],
        waiters: list["asyncio.Future[None]"],
    ) -> None:
        self._in_flight = None
        error = done.exception()
        if error is not None:
            # Keep the batch for the next attempt, under anything newer for the same objects.
            self._pending = {**batch, **self._pending}
            log.error("could not save registry changes to disk (will retry): %s", error)
            error = StoreError(str(error))
        for waiter in waiters:
            if not waiter.done():
                if error is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(error)
        if self._waiters:
            self._start_batch()

    async def close(self) -> None:
        """Wait for everything submitted to be written, then stop the worker thread."""
        while (pending := self.barrier()) is not None:
            try:
                await pending
            except StoreError:
                break
        self._executor.shutdown(wait=True)
