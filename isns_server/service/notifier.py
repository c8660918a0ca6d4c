"""SCN delivery (RFC 4171 5.6.5.8) that never holds up the registry or other clients.

Each recipient has its own bounded queue and at most one worker: a slow or dead
recipient delays only its own notifications. A notification goes to the first of the
recipient's SCN ports that answers, each round of them tried up to `isns.scn_retries`
times with a growing pause; one that cannot be delivered is dropped and logged, once per
recipient and `LOG_INTERVAL`. An SCN addressed from a registration that predates this
server's start and has not been refreshed since (typically a client that went away while
the server was down, or one that has not re-registered yet) is logged at INFO as such
rather than as a live fault. The request path only calls `submit()`, which never waits.
"""

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable

from ..isnsp.constants import Status, status_text
from ..isnsp.messages import address_text
from ..logthrottle import LogThrottle
from ..metrics import IsnsMetrics
from ..registry import Notification
from ..schedule import Sleep, doubling
from .outbound import Outbound

log = logging.getLogger(__name__)

RESPONSE_TIMEOUT = 5.0  # seconds for one SCN to be answered
RETRY_PAUSE = 0.5  # seconds before the second round of attempts, doubling after
QUEUE_LIMIT = 100  # notifications waiting per recipient; the oldest go first
LOG_INTERVAL = 300.0  # seconds between lines about undelivered SCNs to one recipient


class Notifier:
    """`last_heard(name)`: when node `name` last sent a message or registered (None: not
    registered), to tell a client gone since before the restart from a live fault."""

    def __init__(
        self,
        outbound: Outbound,
        retries: int,
        on_delivered: Callable[[str], None] | None = None,
        timeout: float = RESPONSE_TIMEOUT,
        pause: float = RETRY_PAUSE,
        last_heard: Callable[[str], float | None] | None = None,
        clock: Callable[[], float] = time.time,
        metrics: IsnsMetrics | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.outbound = outbound
        self.metrics = metrics
        self.retries = retries
        self.on_delivered = on_delivered  # a response from a node refreshes it (6.2.6)
        self.timeout = timeout
        self.pause = pause
        self.last_heard = last_heard
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        self._undelivered = LogThrottle(log, LOG_INTERVAL)
        # Each notification with whether its recipient was silent since the start.
        self._queues: dict[str, deque[tuple[Notification, bool]]] = {}
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._overflowing: set[str] = set()

    def submit(self, notifications: Iterable[Notification]) -> None:
        """Queue `notifications` for delivery; returns at once."""
        for notification in notifications:
            recipient = notification.recipient
            queue = self._queues.setdefault(recipient, deque())
            if len(queue) >= QUEUE_LIMIT:
                queue.popleft()
                if self.metrics is not None:
                    self.metrics.scn_failed.labels("queue_full").inc()
                if recipient not in self._overflowing:
                    self._overflowing.add(recipient)
                    log.warning(
                        "SCNs for %s are piling up (%d waiting): dropping the oldest; it is "
                        "not answering on its SCN port and will miss changes until it "
                        "queries the server again",
                        recipient,
                        QUEUE_LIMIT,
                    )
            queue.append((notification, self._silent_since_start(recipient)))
            if recipient not in self._workers:
                self._workers[recipient] = asyncio.create_task(self._work(recipient))

    def queued(self) -> int:
        """SCNs waiting for delivery (not counting those being sent now)."""
        return sum(map(len, self._queues.values()))

    async def close(self) -> None:
        workers = list(self._workers.values())
        for worker in workers:
            worker.cancel()
        await asyncio.gather(*workers, return_exceptions=True)

    async def _work(self, recipient: str) -> None:
        queue = self._queues[recipient]
        try:
            while queue:
                await self._deliver(*queue.popleft())
        finally:
            del self._workers[recipient]
            del self._queues[recipient]
            self._overflowing.discard(recipient)

    def _silent_since_start(self, recipient: str) -> bool:
        """Whether `recipient`'s entity last spoke or changed before this server started.
        Timestamps are whole seconds: a change in the very second of the start counts
        as after it (logged as a live fault, as without this distinction)."""
        heard = None if self.last_heard is None else self.last_heard(recipient)
        return heard is not None and heard < int(self.started)

    async def _deliver(self, notification: Notification, silent_since_start: bool) -> None:
        for attempt in range(self.retries):
            if attempt:
                await self.sleep(doubling(attempt - 1, self.pause))
            for address, port in notification.destinations:
                answer = await self.outbound.request(
                    notification.message, address, port, self.timeout
                )
                if answer is None:
                    continue
                if answer.status != Status.SUCCESSFUL:
                    log.warning(
                        "%s at %s answered our SCN with status %s: it could not use it",
                        notification.recipient,
                        address_text(address, port),
                        status_text(answer.status),
                    )
                if self.on_delivered is not None:
                    self.on_delivered(notification.recipient)
                if self.metrics is not None:
                    self.metrics.scn_sent.inc()
                return
        if self.metrics is not None:
            self.metrics.scn_failed.labels("no_answer").inc()
        ports = ", ".join(address_text(*destination) for destination in notification.destinations)
        recipient = notification.recipient
        if silent_since_start:
            self._undelivered.log(
                logging.INFO,
                (recipient, "silent since the start"),
                self.clock(),
                "SCN for %s not delivered: nothing answers on the SCN port (%s) it registered "
                "before this server started, and it had sent nothing since. Most likely a "
                "client that went away while the server was down, or one that has not "
                "re-registered yet; its registration stays until its registration period, "
                "counted from this server's start, runs out, or until it registers again or "
                "is deregistered",
                recipient,
                ports,
            )
            return
        self._undelivered.warning(
            (recipient, "live"),
            self.clock(),
            "SCN for %s not delivered: no answer from its SCN port (%s) after %d attempts; "
            "it misses this change until it queries the server. Check that the client is "
            "running and that its SCN port is reachable from this server",
            recipient,
            ports,
            self.retries,
        )
