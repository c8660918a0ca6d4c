"""From a decoded request to a durable reply: registry, then store, then the answer and
the State Change Notifications.

The registry applies a request at once, in arrival order; the reply waits until the
store says the change is durable, and so do the SCNs it causes. A request that changes
nothing still waits for the writes queued before it, so no client reads state that a
crash could take back.

When a write fails (a full disk), the store drops every change not yet durable and the
registry is reloaded from the store, so memory holds exactly what the disk does: the
requests whose changes were dropped are answered Internal Error, and a query that was
waiting behind them is answered again from the reloaded registry (it never sees the
dropped changes, and another client's failed write is not its error). Until the store
is writable again, requests that change the registry are refused with Internal Error
before they touch it; queries are answered from memory.

With a store shared by several servers (etcd), a change can also lose to another
server's change of the same objects (StoreConflict): the store has put memory back as
the winner left it, and the request runs again on that, up to CONFLICT_RETRIES times.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Collection

from ..isnsp.constants import FunctionId, Status
from ..isnsp.messages import IPAddress, Message, response
from ..logthrottle import LogThrottle
from ..metrics import IsnsMetrics
from ..netaddr import peer_ip
from ..registry import Notification, Ref, Registry
from ..store import Store, StoreConflict
from .heartbeat import HeartbeatMonitor
from .notifier import Notifier

log = logging.getLogger(__name__)

# The functions that may change the registry, refused while the store cannot be written.
CHANGING = frozenset(
    (
        FunctionId.DEV_ATTR_REG,
        FunctionId.DEV_DEREG,
        FunctionId.DD_REG,
        FunctionId.DD_DEREG,
        FunctionId.DDS_REG,
        FunctionId.DDS_DEREG,
        FunctionId.SCN_REG,
        FunctionId.SCN_DEREG,
    )
)

Reply = Callable[[Message], None]
# Times a request whose change lost to another server's (a shared etcd store) runs again
# before it is answered Internal Error.
CONFLICT_RETRIES = 50


class Dispatcher:
    """`notifier` sends the SCNs (None: they are dropped); `on_change` is called after
    every change, for the liveness timer; `on_committed` with the refs of every change
    once it is durable (none: the registry was reloaded, anything may have changed), for
    the API's event stream; `metrics` counts and times the requests answered."""

    def __init__(
        self,
        registry: Registry,
        store: Store,
        clock: Callable[[], float] = time.time,
        notifier: Notifier | None = None,
        on_change: Callable[[], None] | None = None,
        metrics: IsnsMetrics | None = None,
        on_committed: Callable[[Collection[Ref]], None] | None = None,
    ) -> None:
        self.registry = registry
        self.store = store
        self.clock = clock
        self.notifier = notifier
        self.on_change = on_change
        self.metrics = metrics
        self.on_committed = on_committed
        self.heartbeats = HeartbeatMonitor()
        self.control_log = LogThrottle(log, 60.0)  # control attempts from outside networks
        store.on_write_failed(self._undo_unsaved)

    def dispatch(self, message: Message, reply: Reply, peer: str) -> None:
        """Handle one message; `reply` is called (maybe later) with the answer, if any."""
        if message.function == FunctionId.HEARTBEAT:
            self.heartbeats.received(message, peer)  # 5.6.5.14: never answered
            return
        if message.is_response:
            # Responses to our ESI and SCN come back to the sockets that sent them.
            log.debug("ignored %s from %s", _function_name(message.function), peer)
            return
        if self.metrics is not None:
            reply = self.metrics.timed(message.function, reply)
        self._dispatch(message, reply, peer)

    def _dispatch(self, message: Message, reply: Reply, peer: str, conflicts: int = 0) -> None:
        address = peer_ip(peer)
        if message.function in CHANGING and not self.store.writable:
            name = _function_name(message.function)
            log.debug("refused %s from %s: the store cannot be written", name, peer)
            reply(response(message, Status.INTERNAL_ERROR))
            return
        try:
            outcome = self.registry.handle(message, self.clock(), address)
        except Exception:
            log.exception(
                "internal error handling %s from %s; answered Internal Error",
                _function_name(message.function),
                peer,
            )
            reply(response(message, Status.INTERNAL_ERROR))
            return
        answer = outcome.response
        if answer.status == Status.SOURCE_UNAUTHORIZED:
            self._control_refused(message, address, peer)
        pending = self.commit(outcome.dirty, outcome.notifications)
        if pending is None:
            reply(answer)
            return

        def durable(done: "asyncio.Future[None]") -> None:
            conflict = not done.cancelled() and isinstance(done.exception(), StoreConflict)
            if conflict and conflicts < CONFLICT_RETRIES:
                # Another server sharing the store won: run it again on memory as it is now.
                self._dispatch(message, reply, peer, conflicts + 1)
            elif done.cancelled() or (done.exception() is not None and outcome.dirty):
                reply(response(message, Status.INTERNAL_ERROR))  # its changes were undone
            elif done.exception() is not None:
                self._dispatch(message, reply, peer)  # answered from the registry as reloaded
            else:
                reply(answer)

        pending.add_done_callback(durable)

    def _control_refused(self, message: Message, address: IPAddress | None, peer: str) -> None:
        """Log a request refused because its Source is a Control Node outside
        isns.control_networks: with control rights it might have been allowed."""
        name = self.registry.control_node_outside(message, address)
        if name is None:
            return
        self.control_log.warning(
            peer.rpartition(":")[0],
            self.clock(),
            "refused %s from %s naming Control Node %s as its Source (answered Source "
            "Unauthorized): control operations are accepted only from "
            "isns.control_networks; zone through the management API, or add that network "
            "if the host is trusted",
            _function_name(message.function),
            peer,
            name,
        )

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
        notifier = self.notifier if notifications else None
        if pending is None:
            self._committed(dirty, notifier, notifications)
            return None

        def settled(done: "asyncio.Future[None]") -> None:
            # Taking the exception here also keeps an unobserved failure (an expiry's
            # removal) out of the log: the store has logged it already.
            if not done.cancelled() and done.exception() is None:
                self._committed(dirty, notifier, notifications)

        pending.add_done_callback(settled)
        return pending

    def _committed(
        self,
        dirty: Collection[Ref],
        notifier: Notifier | None,
        notifications: tuple[Notification, ...],
    ) -> None:
        if notifier is not None:
            notifier.submit(notifications)
        if dirty and self.on_committed is not None:
            self.on_committed(dirty)

    def _undo_unsaved(self) -> None:
        """The store dropped the changes it could not save: memory goes back to its state."""
        try:
            records = self.store.load()
        except Exception:
            log.exception(
                "could not reread the registry from the store after a failed write: memory "
                "may hold changes the disk does not; restart the server once the disk is "
                "fixed"
            )
            return
        self.registry.reload(records, self.clock())
        if self.on_change is not None:
            self.on_change()
        if self.on_committed is not None:
            self.on_committed(())


def _function_name(function: int) -> str:
    try:
        return FunctionId(function).name
    except ValueError:
        return f"function 0x{function:04x}"
