"""asyncio adapter for one portal connection: bytes in and out, one timer; no iSCSI here.

After each call into the pull-only `Connection` (bytes received, the timer, results from
the LUN workers, a wake-up) `_process` starts the tasks it asks for (a result that
comes at once goes straight back) and writes what it has to send, once.
"""

import asyncio
import logging
import time
from typing import cast

from ...admission import Admission, Ticket
from ...metrics import PortalMetrics
from ...netaddr import peer_text
from ...scsi import ScsiResult
from ..session.connection import Connection, PortalServices, PortalSettings
from ..session.tasks import Job, ScsiTask
from .scatter import ScatterWriter
from .workers import UnitWorkers

log = logging.getLogger(__name__)


class PortalProtocol(asyncio.BufferedProtocol):
    def __init__(
        self,
        services: PortalServices,
        settings: PortalSettings,
        admission: Admission,
        workers: UnitWorkers,
        metrics: PortalMetrics | None = None,
    ) -> None:
        self._services = services
        self._metrics = metrics
        self._started: dict[Job, float] = {}  # when each task began, for metrics
        self._settings = settings
        self._admission = admission  # the portal's connection caps
        self._ticket: Ticket | None = None
        self._workers = workers
        self._loop = asyncio.get_running_loop()
        self._transport: asyncio.Transport | None = None
        self._writer: ScatterWriter | None = None
        self._connection: Connection | None = None
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._ticket = self._admission.admit(transport)
        if self._ticket is None:
            return  # over a cap: closed unread
        self._transport = cast(asyncio.Transport, transport)
        self._writer = ScatterWriter(self._transport)
        peer = peer_text(transport.get_extra_info("peername"))
        self._connection = Connection(self._services, self._settings, peer, self._loop.time(), self)
        self._schedule()

    def get_buffer(self, sizehint: int) -> memoryview:
        assert self._connection is not None
        return self._connection.reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        connection = self._connection
        assert connection is not None
        connection.reader.buffer_updated(nbytes)
        connection.receive(self._loop.time())
        self._process()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._ticket is not None:
            self._ticket.release()
            self._ticket = None
        if self._writer is not None:
            self._writer.close()
        if self._connection is not None:
            self._connection.connection_lost()
            for job in self._connection.tasks_to_start():  # the units forget the nexus
                self._workers.submit(job, _nobody)
        self._transport = self._writer = self._connection = self._timer = None

    def pause_writing(self) -> None:
        # The initiator is not reading what we send: stop reading what it sends.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def wake(self) -> None:
        """ConnectionIo: something was queued outside the connection's own calls."""
        self._workers.soon.call(self._process)

    def _process(self) -> None:
        connection = self._connection
        if connection is None:
            return
        while tasks := connection.tasks_to_start():
            for task in tasks:
                if self._metrics is not None and isinstance(task, ScsiTask):
                    self._started[task] = time.perf_counter()
                result = self._workers.submit(task, self._worker_done)
                if result is not None:
                    self._record(task, result)
                    connection.task_done(task, result)
        self._flush()

    def _worker_done(self, task: Job, result: ScsiResult) -> None:
        """A worker's result, on the loop: written with the rest of its batch."""
        self._record(task, result)
        if self._connection is not None:  # else the connection is gone: nobody to answer
            self._connection.task_done(task, result)
            self._workers.soon.call(self._process)

    def _record(self, task: Job, result: ScsiResult) -> None:
        started = self._started.pop(task, None)
        if self._metrics is not None and started is not None and isinstance(task, ScsiTask):
            self._metrics.task_done(task, result, time.perf_counter() - started)

    def _flush(self) -> None:
        transport, connection = self._transport, self._connection
        if transport is None or connection is None or transport.is_closing():
            return
        pieces = connection.data_to_send()
        if pieces:
            assert self._writer is not None
            self._writer.write(pieces)
        if connection.closing is not None:
            transport.close()  # after the queued data is written
        else:
            self._schedule()

    def _schedule(self) -> None:
        deadline = self._connection.deadline if self._connection else None
        if self._timer is not None:
            # Activity moves deadlines later: let an earlier timer fire and re-arm then,
            # rather than replacing the timer for every PDU.
            if deadline is None or self._timer.when() <= deadline:
                return
            self._timer.cancel()
        self._timer = None if deadline is None else self._loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._connection is not None:
            self._connection.handle_timer(self._loop.time())
            self._process()


def _nobody(task: Job, result: ScsiResult) -> None:
    """The result of a job queued as its connection ended: nobody to answer."""
