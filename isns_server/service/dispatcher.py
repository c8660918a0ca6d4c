"""From a decoded request to a durable reply: registry, then store, then the answer and
the State Change Notifications.

The registry applies a request at once, in arrival order; the reply waits until the
store says the change is durable, and so do the SCNs it causes. A request that changes
nothing still waits for the writes queued before it, so no client reads state that a
crash could take back.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Collection

from ..isnsp.constants import FunctionId, Status
from ..isnsp.messages import Message, response
from ..registry import Notification, Ref, Registry
from ..store import Store
from .heartbeat import HeartbeatMonitor
from .notifier import Notifier

log = logging.getLogger(__name__)

Reply = Callable[[Message], None]


class Dispatcher:
    """`notifier` sends the SCNs (None: they are dropped); `on_change` is called after
    every change, for the liveness timer."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        clock: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.on_change = on_change
        self.heartbeats = HeartbeatMonitor()

    def dispatch(self, message: Message, reply: Reply, peer: str) -> None:
        """Handle one message; `reply` is called (maybe later) with the answer, if any."""
        if message.function == FunctionId.HEARTBEAT:
            self.heartbeats.received(message, peer)  # 5.6.5.14: never answered
            return
        if message.is_response:
            # Responses to our ESI and SCN come back to the sockets that sent them.
            log.debug("ignored %s from %s", _function_name(message.function), peer)
            return
        try:
            outcome = self.registry.handle(message, self.clock())
        except Exception:
            log.exception(
                "internal error handling %s from %s; answered Internal Error",
                _function_name(message.function),
                peer,
            )
            reply(response(message, Status.INTERNAL_ERROR))
            return
        answer = outcome.response
        pending = self.commit(outcome.dirty, outcome.notifications)
        if pending is None:
            reply(answer)
            return

        def durable(done: "asyncio.Future[None]") -> None:
            if done.cancelled() or done.exception() is not None:
                reply(response(message, Status.INTERNAL_ERROR))
            else:
                reply(answer)

        pending.add_done_callback(durable)

    def commit(
        self, dirty: Collection[Ref], notifications: tuple[Notification, ...]
    ) -> "asyncio.Future[None] | None":
        """Make the records of `dirty` durable (nothing dirty: wait for earlier writes),
        then send `notifications`. The future (None: durable already) resolves then."""
        if dirty:
            pending = self.store.submit({ref: self.registry.export_record(ref) for ref in dirty})
            if self.on_change is not None:
                self.on_change()
        else:
            pending = self.store.barrier()
        if notifications and self.notifier is not None:
            notifier = self.notifier
            if pending is None:
                notifier.submit(notifications)
            else:

                def send(done: "asyncio.Future[None]") -> None:
                    if not done.cancelled() and done.exception() is None:
                        notifier.submit(notifications)

                pending.add_done_callback(send)
        return pending


def _function_name(function: int) -> str:
    try:
        return FunctionId(function).name
    except ValueError:
        return f"function 0x{function:04x}"
