"""Disk work off the event loop: one worker thread per logical unit.

A unit's commands run one at a time, in the order they arrived, and so does the other
work on its state (`UnitJob`: resets, the end of a nexus, rescans): only the worker
changes the unit's state (reservations, unit attentions, COMPARE AND WRITE), which needs
no locks, and a stalled disk
stalls only its own LUN while the portal, iSNS and SLP keep answering. A command that
need not wait for the disk (a read the page cache holds, an INQUIRY) runs at once on the
event loop, saving two thread hand-offs, unless a command that changes something (a
write, a reservation, a job) is queued for its unit: reads may pass reads, nothing
passes a write. A command run at once changes nothing: one that would report a unit
attention goes to the worker. Results go back to the event loop in batches (`Soon`):
one wake-up for however many finished meanwhile.
"""

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue

from ...scsi import LogicalUnit, ScsiResult
from ..session.tasks import Job
from .soon import Soon

log = logging.getLogger(__name__)

Done = Callable[[Job, ScsiResult], None]  # called on the event loop
_Queued = tuple[Job, Done]


class UnitWorkers:
    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.soon = Soon(loop)  # also the adapters' flushes: one pass per batch
        self._queues: dict[LogicalUnit, SimpleQueue[_Queued | None]] = {}
        self._threads: list[threading.Thread] = []
        # Queued or running commands that change something, by unit; event loop only
        self._barriers: dict[LogicalUnit, int] = {}
        # Appended by the workers, emptied on the event loop (deque: thread-safe ends)
        self._finished: deque[tuple[LogicalUnit, Job, ScsiResult, Done]] = deque()

    def submit(self, task: Job, done: Done) -> ScsiResult | None:
        """Runs `task` now if it need not wait for the disk and no change is ahead of it,
        and returns its result; else None, and it runs on its unit's worker: `done` gets
        the result on the event loop."""
        unit = task.unit
        if unit is None:  # the target answers (REPORT LUNS, absent LUNs): no disk there
            return task.execute()
        reorderable = task.reorderable
        if reorderable and not self._barriers.get(unit):
            result = task.execute_now()
            if result is not None:
                return result
        if not reorderable:
            self._barriers[unit] = self._barriers.get(unit, 0) + 1
        self._queue(unit).put((task, done))
        return None

    def stop(self, timeout: float = 10.0) -> None:
        """Lets each worker finish what it was given, waiting up to `timeout` seconds."""
        for queue in self._queues.values():
            queue.put(None)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                log.error(
                    "shutdown: the worker for %s is still busy after %g s (a stalled disk?);"
                    " exiting anyway: the commands it had not finished were never"
                    " acknowledged to the initiator, so no acknowledged write is lost;"
                    " check the device and the kernel log",
                    thread.name,
                    timeout,
                )
        self._queues.clear()
        self._threads.clear()

    def _queue(self, unit: LogicalUnit) -> "SimpleQueue[_Queued | None]":
        queue = self._queues.get(unit)
        if queue is None:
            queue = self._queues[unit] = SimpleQueue()
            identity = unit.state.identity
            thread = threading.Thread(
                target=self._work,
                args=(unit, queue),
                name=f"lun {identity.lun} of {identity.target_name}",
                daemon=True,  # a hung disk must not keep the process from exiting
            )
            thread.start()
            self._threads.append(thread)
        return queue

    def _work(self, unit: LogicalUnit, queue: "SimpleQueue[_Queued | None]") -> None:
        while (job := queue.get()) is not None:
            task, done = job
            result = task.execute()
            self._finished.append((unit, task, result, done))
            self.soon.call(self._deliver)

    def _deliver(self) -> None:
        """The results finished so far; later ones come with the next pass (Soon)."""
        finished = self._finished
        for _ in range(len(finished)):
            unit, task, result, done = finished.popleft()
            if not task.reorderable:
                self._barriers[unit] -= 1
            done(task, result)
