"""Group commit: many requests' changes share one transaction and one fsync.

While one batch is being written (in a worker thread, so the event loop never waits on
the disk), new changes accumulate; when the write finishes, everything that arrived in
the meantime goes out as the next batch. Under load, batches grow and the cost of each
fsync is shared by every client that was waiting on it.

A failed write (a full disk) drops its batch and everything queued behind it, which was
built on it: the owner's `undo` puts memory back to what the disk holds, then every
waiter hears the error. Until a write succeeds again the store says it is not
`writable` and tries a small probe write every `retry_interval` seconds, so service
comes back by itself once the disk has room; the failure is logged once per
`log_interval`, however many writes fail meanwhile.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from ..logthrottle import LogThrottle
from .base import Changes, Record, Ref, StoreError

log = logging.getLogger(__name__)

WriteBatch = Callable[[dict[Ref, Record | None]], None]
Probe = Callable[[], None]  # a small real write; raises when the disk still refuses
BatchObserver = Callable[[int, float], None]  # records in a durable batch, seconds it took
RETRY_INTERVAL = 1.0  # seconds between probe writes while writes fail
LOG_INTERVAL = 60.0  # seconds between log lines about the same failure


class GroupCommitter:
    def __init__(
        self,
        write_batch: WriteBatch,
        probe: Probe,
        name: str,
        target: str,
        retry_interval: float = RETRY_INTERVAL,
        log_interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._write_batch = write_batch
        self._probe_write = probe
        self._target = target  # what is written, for the log
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pending: dict[Ref, Record | None] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._in_flight: asyncio.Future[None] | None = None
        self._undo: Callable[[], None] | None = None
        self._written: BatchObserver | None = None
        self.retry_interval = retry_interval
        self._clock = clock
        self._throttle = LogThrottle(log, log_interval)
        self._failed_at: float | None = None  # when writes began to fail; None: they work
        self._retry: asyncio.TimerHandle | None = None
        self._probing = False
        self._closed = False

    @property
    def writable(self) -> bool:
        return self._failed_at is None

    def on_write_failed(self, undo: Callable[[], None]) -> None:
        self._undo = undo

    def on_batch_written(self, observer: BatchObserver) -> None:
        """Call `observer` on the event loop after each batch is durable (for metrics)."""
        self._written = observer

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
        started = time.perf_counter()
        self._in_flight = asyncio.wrap_future(self._executor.submit(self._write_batch, batch))
        self._in_flight.add_done_callback(
            lambda done: self._finish(done, waiters, len(batch), started)
        )

    def _finish(
        self,
        done: "asyncio.Future[None]",
        waiters: list["asyncio.Future[None]"],
        records: int,
        started: float,
    ) -> None:
        self._in_flight = None
        error = done.exception()
        if error is None:
            self._succeeded()
            if self._written is not None and records:
                self._written(records, time.perf_counter() - started)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
            if self._waiters:
                self._start_batch()
            return
        # What was queued meanwhile was built on the failed changes: it goes with them.
        waiters += self._waiters
        self._pending, self._waiters = {}, []
        self._failed(error)
        if self._undo is not None:
            self._undo()
        failure = error if isinstance(error, StoreError) else StoreError(str(error))
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(failure)

    def _failed(self, error: BaseException) -> None:
        now = self._clock()
        if self._failed_at is None:
            self._failed_at = now
        self._throttle.log(
            logging.ERROR,
            "write",
            now,
            "%s. Every change not yet saved was undone and its request answered Internal "
            "Error; changes are refused until a write succeeds again (tried every %g s); "
            "queries are answered from memory",
            error,
            self.retry_interval,
        )
        self._schedule_probe()

    def _succeeded(self) -> None:
        if self._failed_at is None:
            return
        log.warning(
            "writes to %s succeed again after %.0f s of failures: changes are accepted",
            self._target,
            self._clock() - self._failed_at,
        )
        self._failed_at = None
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None

    def _schedule_probe(self) -> None:
        if self._retry is None and not self._probing and not self._closed:
            loop = asyncio.get_running_loop()
            self._retry = loop.call_later(self.retry_interval, self._start_probe)

    def _start_probe(self) -> None:
        self._retry = None
        if self.writable:
            return
        if self._in_flight is not None:  # that write will tell; and `undo` may read then
            self._schedule_probe()
            return
        self._probing = True
        probe = asyncio.wrap_future(self._executor.submit(self._probe_write))
        probe.add_done_callback(self._probe_done)

    def _probe_done(self, done: "asyncio.Future[None]") -> None:
        self._probing = False
        error = done.exception()
        if self._closed:
            return
        if error is None:
            self._succeeded()
        elif not self.writable:
            self._failed(error)

    async def close(self) -> None:
        """Wait for everything submitted to be written, then stop the worker thread."""
        while (pending := self.barrier()) is not None:
            try:
                await pending
            except StoreError:
                break
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._executor.shutdown(wait=True)
