"""The one timer task behind ESI and registration expiry (registry/liveness.py).

It sleeps until `Registry.next_deadline()`, runs `Registry.tick(now)`, sends the ESI
messages due and hands what died to `commit` (persistence, then SCNs), like any
deregistration. The request path only calls `poke()` after a change, which wakes the
timer when the change brought a deadline forward.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from ..isnsp.constants import status_text
from ..isnsp.messages import address_text
from ..metrics import IsnsMetrics
from ..registry import EsiProbe, Notification, Ref, Registry
from .outbound import Outbound

log = logging.getLogger(__name__)

Commit = Callable[[frozenset[Ref], tuple[Notification, ...]], object]
FAULT_PAUSE = 1.0  # seconds before trying again after an unexpected fault


class LivenessTimer:
    def __init__(
        self,
        registry: Registry,
        commit: Commit,
        outbound: Outbound,
        clock: Callable[[], float] = time.time,
        metrics: IsnsMetrics | None = None,
    ) -> None:
        self.registry = registry
        self.metrics = metrics
        self.commit = commit
        self.outbound = outbound
        self.clock = clock
        self._wake = asyncio.Event()
        self._target: float | None = None  # the deadline the timer sleeps until
        self._task: asyncio.Task[None] | None = None
        self._probes: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run())

    def poke(self) -> None:
        """The registry changed: wake up if its next deadline is now earlier."""
        deadline = self.registry.next_deadline()
        if deadline is not None and (self._target is None or deadline < self._target):
            self._wake.set()

    async def stop(self) -> None:
        tasks = [*self._probes, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._task = None

    async def _run(self) -> None:
        while True:
            self._target = self.registry.next_deadline()
            delay = None if self._target is None else max(0.0, self._target - self.clock())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            try:
                self._tick()
            except Exception:
                log.exception("ESI and registration expiry failed; trying again shortly")
                await asyncio.sleep(FAULT_PAUSE)

    def _tick(self) -> None:
        tick = self.registry.tick(self.clock())
        for probe in tick.probes:
            task = asyncio.create_task(self._probe(probe))
            self._probes.add(task)
            task.add_done_callback(self._probes.discard)
        for removal in tick.removals:
            log.warning("%s", removal.describe())
            if self.metrics is not None:
                self.metrics.expired.labels(removal.cause.name.lower()).inc()
        if tick.dirty or tick.notifications:
            self.commit(tick.dirty, tick.notifications)

    async def _probe(self, probe: EsiProbe) -> None:
        address, port = probe.destination
        if self.metrics is not None:
            self.metrics.esi_sent.inc()
        answer = await self.outbound.request(probe.message, address, port, probe.timeout)
        where = address_text(address, port)
        answered = answer is not None and self.registry.esi_answered(probe, answer, self.clock())
        if not answered and self.metrics is not None:
            self.metrics.esi_failed.inc()
        if answer is None:
            log.debug("ESI %d to %s went unanswered", probe.attempt, where)
        elif not answered:
            log.warning(
                "%s answered our ESI with status %s and attributes that do not name the "
                "portal asked about; taken as no answer",
                where,
                status_text(answer.status),
            )
