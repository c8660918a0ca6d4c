"""Which replica runs registration expiry, ESI and the Heartbeat: the one holding the
leader key in etcd under its own lease (docs/replication.md).

Every replica keeps a lease alive and, while it does not lead, tries every third of the
lease's TTL to create the leader key under it: only a key that does not exist can be
created, so one replica wins. When the leader dies its lease runs out after at most
one TTL and the key goes with it; another replica takes it within a third of a TTL more,
inside two lease periods.

A leader that cannot refresh its lease for two thirds of the TTL steps down by itself,
before etcd can let the lease run out and another replica take over: two replicas never
expire entities at once.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from ..replication import etcd_wire as wire
from ..replication.etcd_client import EtcdClient
from ..replication.etcd_wire import EtcdError

log = logging.getLogger(__name__)

Transition = Callable[[], Awaitable[None]]


class Leadership:
    def __init__(
        self,
        client: EtcdClient,
        key: bytes,
        identity: str,
        ttl: int,
        on_elected: Transition,
        on_deposed: Transition,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.key = key
        self.identity = identity
        self.ttl = ttl
        self.on_elected = on_elected
        self.on_deposed = on_deposed
        self.clock = clock
        self.leading = False
        self._lease = 0
        self._refreshed = 0.0  # when the lease was last known to be alive
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.ttl / 3):  # a leader must not wait longer
                    elected = await self._round()
                if elected:
                    await self.on_elected()
            except (EtcdError, TimeoutError) as exc:
                log.debug("leader election: %s", exc)
                if self.leading and self.clock() - self._refreshed > self.ttl * 2 / 3:
                    await self._step_down(f"its etcd lease could not be refreshed ({exc})")
            except Exception:  # a fault of ours must not end the election for good
                log.exception("this replica could not lead; it gives the lead up to another")
                await self._resign()
            await asyncio.sleep(self.ttl / 3)

    async def _round(self) -> bool:
        """Refresh the lease, and try to lead; True when this replica just became leader."""
        if not self._lease:
            self._lease = await self.client.lease_grant(self.ttl)
            self._refreshed = self.clock()
        elif await self.client.lease_keepalive(self._lease) == 0:
            self._lease = 0  # it ran out: whatever it held is gone
            if self.leading:
                await self._step_down("its etcd lease ran out")
            return False
        else:
            self._refreshed = self.clock()
        if self.leading:
            return False
        answer = await self.client.txn(
            [wire.created_revision_is(self.key, 0)],
            [wire.put_op(self.key, self.identity.encode(), self._lease)],
        )
        if not answer.succeeded:  # held by another lease, or by ours if an answer was lost
            answer = await self.client.txn([wire.lease_is(self.key, self._lease)], [])
        if answer.succeeded:
            self.leading = True
            log.warning(
                "this replica (%s) now leads: it runs registration expiry, ESI and the Heartbeat",
                self.identity,
            )
        return answer.succeeded

    async def _step_down(self, why: str) -> None:
        self.leading = False
        log.warning(
            "this replica (%s) stopped leading: %s; another replica takes over expiry, ESI "
            "and the Heartbeat",
            self.identity,
            why,
        )
        await self.on_deposed()

    async def stop(self) -> None:
        """Stop; a leader gives its lease back, so another replica takes over at once."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._resign()

    async def _resign(self) -> None:
        """Stop leading and give the lease back: another replica leads at once."""
        if self.leading:
            self.leading = False
            await self.on_deposed()
        if self._lease:
            with contextlib.suppress(EtcdError):
                await self.client.lease_revoke(self._lease)
            self._lease = 0
