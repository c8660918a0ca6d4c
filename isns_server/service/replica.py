"""This server as one replica of several sharing an etcd store (docs/replication.md):
the other replicas' committed changes are applied to memory as the watch brings them,
and expiry, ESI and the Heartbeat run only while this replica leads."""

import os
import socket
import time
from collections.abc import Callable

from ..config.schema import EtcdSection
from ..replication.etcd_store import EtcdStore
from ..store import Record, Ref
from .dispatcher import Dispatcher
from .leadership import Leadership
from .server import IsnsService


class Replica:
    def __init__(
        self,
        store: EtcdStore,
        dispatcher: Dispatcher,
        isns: IsnsService | None,
        settings: EtcdSection,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.isns = isns
        self.clock = clock
        # Index numbers from blocks this replica reserves: registrations on several
        # replicas do not all write the one counters record.
        dispatcher.registry.db.blocks = store.blocks
        self.identity = f"{socket.gethostname()}:{os.getpid()}"
        self.leadership = Leadership(
            store.client,
            settings.prefix.encode() + b"leader",
            self.identity,
            settings.lease_ttl,
            self._lead,
            self._follow,
        )

    def start(self) -> None:
        self.store.start(self._apply)
        self.leadership.start()

    def _apply(self, records: list[tuple[Ref, Record | None]]) -> None:
        """Another replica's committed change: into memory, for the liveness timer (when
        leading) and for the API's event stream. Its SCNs went out from there."""
        dispatcher = self.dispatcher
        dispatcher.registry.apply(records, self.clock())
        if dispatcher.on_change is not None:
            dispatcher.on_change()
        if dispatcher.on_committed is not None:
            dispatcher.on_committed(
                [(kind, key) for (kind, key), _ in records if isinstance(key, str | int)]
            )

    async def _lead(self) -> None:
        if self.isns is not None:
            await self.isns.lead()

    async def _follow(self) -> None:
        if self.isns is not None:
            await self.isns.follow()

    async def stop(self) -> None:
        await self.leadership.stop()
