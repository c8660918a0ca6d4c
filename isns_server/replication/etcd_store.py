"""The registry kept in etcd, shared by every replica (docs/replication.md).

One key per record, `<prefix>r/<kind>/<JSON key>`, holding the record's JSON: the same
records the SQLite store keeps as rows, so the keyspace is as large as the registry and
no larger. Each replica keeps a mirror of those records with the revision each was last
written at.

A write is one etcd transaction that compares every key it touches with the revision
this replica's memory was built on and only then puts or deletes them: of two replicas
changing the same entity, DD or index counter at once, one transaction commits and the
other fails. The loser's changes are undone (once the watch has brought the winner's
change, every object they touched is put back as the mirror has it) and its requests
fail with StoreConflict, which the dispatcher answers by running the request again.
Like the SQLite store, changes that arrive while a transaction is in flight go out
together in the next one.

A watch from the revision the replica started at brings every other replica's committed
change; it is applied to memory between two transactions of this replica, so a change
is never mistaken for this replica's own or applied over a change of its own in flight.

When etcd cannot be reached or has no quorum, the transaction fails: its changes are
undone, its requests answered Internal Error, and the store says it is not writable
until a read that needs a quorum succeeds again (tried every `retry_interval`). Such a
read also runs every HEALTH_INTERVAL while all is well, so a lost quorum is noticed
without waiting for a write.
A transaction whose answer was lost may still have committed: then the watch brings it
like any other replica's change, and nobody was told it succeeded.
"""

import asyncio
import contextlib
import json
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any

from ..config.schema import EtcdSection
from ..logthrottle import LogThrottle
from ..store.base import Changes, Record, Ref, StoreConflict, StoreError
from . import etcd_wire as wire
from .etcd_client import EtcdClient
from .etcd_wire import EtcdError

log = logging.getLogger(__name__)

RemoteChanges = Callable[[list[tuple[Ref, Record | None]]], None]
RETRY_INTERVAL = 1.0  # seconds between attempts while etcd is unreachable
LOG_INTERVAL = 60.0  # seconds between log lines about the same failure
MAX_TXN_OPS = 100  # etcd refuses a transaction of more than 128 operations by default
HEALTH_INTERVAL = 2.0  # seconds between quorum reads while writes work


def record_key(prefix: bytes, ref: Ref) -> bytes:
    kind, ident = ref
    return prefix + b"r/" + kind.encode() + b"/" + json.dumps(ident).encode()


def record_ref(prefix: bytes, key: bytes) -> Ref | None:
    """The Ref a key under `prefix` stands for (None: not a record key)."""
    records = prefix + b"r/"
    if not key.startswith(records):
        return None
    kind, _, ident = key[len(records) :].decode().partition("/")
    try:
        value = json.loads(ident)
    except json.JSONDecodeError:
        return None
    return kind, tuple(value) if isinstance(value, list) else value


class EtcdStore:
    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        retry_interval: float = RETRY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.prefix = prefix.encode()
        self.retry_interval = retry_interval
        self._clock = clock
        self._records: dict[Ref, Record] = {}
        self._revisions: dict[Ref, int] = {}  # mod revision of each record in the mirror
        self.revision = 0  # the store's revision the mirror is complete up to
        self._pending: dict[Ref, Record | None] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._in_flight: asyncio.Task[None] | None = None
        self._stale: set[Ref] = set()  # pending keys another replica changed meanwhile
        self._arrived: list[wire.Event] = []  # watch events not yet applied
        self._undo: Callable[[], None] | None = None
        self._remote: RemoteChanges | None = None
        self._written: Callable[[int, float], None] | None = None
        self._failed_at: float | None = None
        self._throttle = LogThrottle(log, LOG_INTERVAL)
        self._tasks: set[asyncio.Task[None]] = set()
        self.watching = False  # the watch stream is open: memory follows etcd
        self.conflicts = 0  # transactions another replica's change made fail

    @property
    def where(self) -> str:
        return f"etcd ({', '.join(self.client.endpoints)}, prefix {self.prefix.decode()!r})"

    async def catch_up(self) -> None:
        """Read every record at one revision into the mirror (before answering anyone)."""
        records: dict[Ref, Record] = {}
        revisions: dict[Ref, int] = {}
        revision = 0
        try:
            async for kv, read_at in self.client.range_prefix(self.prefix + b"r/"):
                revision = read_at
                ref = record_ref(self.prefix, kv.key)
                if ref is not None:
                    records[ref] = json.loads(kv.value)
                    revisions[ref] = kv.mod_revision
            if not revision:  # nothing stored yet: the revision comes from an empty read
                revision = (
                    await self.client.range(self.prefix, wire.prefix_end(self.prefix))
                ).revision
        except EtcdError as exc:
            raise StoreError(f"cannot read the registry from {self.where}: {exc}") from None
        self._records, self._revisions, self.revision = records, revisions, revision

    def start(self, on_remote_change: RemoteChanges) -> None:
        """Follow the other replicas from the revision caught up to: `on_remote_change`
        gets each of their committed changes, to apply to memory."""
        self._remote = on_remote_change
        self._spawn(self._watch())
        self._spawn(self._check_quorum())

    def load(self) -> list[tuple[Ref, Record]]:
        return list(self.records())

    def records(self) -> Iterator[tuple[Ref, Record]]:
        return iter(list(self._records.items()))

    @property
    def writable(self) -> bool:
        return self._failed_at is None

    def on_write_failed(self, undo: Callable[[], None]) -> None:
        self._undo = undo

    def on_batch_written(self, observer: Callable[[int, float], None]) -> None:
        """`observer(records, seconds)` after each batch etcd committed (for metrics)."""
        self._written = observer

    def submit(self, changes: Changes) -> "asyncio.Future[None]":
        self._pending.update(changes)
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        if self._in_flight is None:
            self._in_flight = asyncio.create_task(self._commit())
        return waiter

    def barrier(self) -> "asyncio.Future[None] | None":
        if self._in_flight is None and not self._waiters and not self._pending:
            return None
        return self.submit({})

    async def _commit(self) -> None:
        try:
            while self._waiters:
                batch, waiters = self._pending, self._waiters
                self._pending, self._waiters = {}, []
                await self._write(batch, waiters)
                self._apply_arrived()
        finally:
            self._in_flight = None

    async def _write(
        self, batch: dict[Ref, Record | None], waiters: list["asyncio.Future[None]"]
    ) -> None:
        if self._stale & batch.keys():
            self._stale.clear()
            await self._lost(batch, waiters)
            return
        # etcd takes at most 128 operations a transaction (--max-txn-ops): a larger batch
        # (an expiry of hundreds of entities) goes in several, and its waiters hear once
        # all are in. If a later one fails, memory is put back to what etcd holds then.
        items = list(batch.items())
        started = time.perf_counter()
        for start in range(0, len(items), MAX_TXN_OPS):
            if not await self._write_part(batch, items[start : start + MAX_TXN_OPS], waiters):
                return
        if self._written is not None and items:
            self._written(len(items), time.perf_counter() - started)
        _resolve(waiters)

    async def _write_part(
        self,
        batch: dict[Ref, Record | None],
        part: list[tuple[Ref, Record | None]],
        waiters: list["asyncio.Future[None]"],
    ) -> bool:
        compare, ops, reads = [], [], []
        for ref, record in part:
            key = record_key(self.prefix, ref)
            # A record memory does not hold must not exist in etcd (mod revision 0).
            known = self._revisions.get(ref, 0) if ref in self._records else 0
            compare.append(wire.mod_revision_is(key, known))
            reads.append(wire.range_op(key))
            if record is None:
                ops.append(wire.delete_op(key))
            else:
                ops.append(wire.put_op(key, json.dumps(record, separators=(",", ":")).encode()))
        try:
            # Failing, the transaction reads what those keys hold now instead.
            answer = await self.client.txn(compare, ops, reads)
        except EtcdError as exc:
            self._unavailable(batch, waiters, exc)
            return False
        if not answer.succeeded:
            self._take_current(part, answer)
            await self._lost(batch, waiters)
            return False
        self._succeeded()
        for ref, record in part:
            self._revisions[ref] = answer.revision
            if record is None:
                self._records.pop(ref, None)
            else:
                self._records[ref] = record
        return True

    def _take_current(self, part: list[tuple[Ref, Record | None]], answer: wire.TxnAnswer) -> None:
        """Into the mirror: what the keys of a lost transaction hold now (it read them),
        so memory can be put back to that at once, before the watch brings it."""
        for (ref, _), kvs in zip(part, answer.ranges, strict=False):
            if kvs:
                kv = kvs[0]
                if kv.mod_revision > self._revisions.get(ref, 0):
                    self._records[ref] = json.loads(kv.value)
                    self._revisions[ref] = kv.mod_revision
            elif ref in self._records:  # deleted since: no older event may bring it back
                del self._records[ref]
                self._revisions[ref] = answer.revision

    async def _lost(self, batch: Changes, waiters: list["asyncio.Future[None]"]) -> None:
        self.conflicts += 1
        log.debug("%d changes lost to another replica's; their requests run again", len(batch))
        self._drop(batch, waiters, StoreConflict("another replica changed the same objects"))

    def _unavailable(
        self, batch: Changes, waiters: list["asyncio.Future[None]"], exc: EtcdError
    ) -> None:
        self._no_quorum(exc)
        self._drop(batch, waiters, StoreError(f"etcd did not commit the change: {exc}"))

    def _no_quorum(self, exc: EtcdError) -> None:
        now = self._clock()
        if self._failed_at is None:
            self._failed_at = now
            self._spawn(self._probe())
        self._throttle.log(
            logging.ERROR,
            "write",
            now,
            "cannot write the registry to %s: %s. Changes not yet committed were undone and "
            "answered Internal Error; changes are refused until etcd answers with a quorum "
            "again (tried every %g s); queries are answered from memory, which may be "
            "stale: check that a majority of the etcd members run and reach each other",
            self.where,
            exc,
            self.retry_interval,
        )

    async def _check_quorum(self) -> None:
        """While writes work, a read that needs a quorum every HEALTH_INTERVAL: an etcd
        that lost its quorum is noticed (and /readyz says stale) without a write."""
        while True:
            await asyncio.sleep(HEALTH_INTERVAL)
            if self._failed_at is None:
                try:
                    await self.client.range(self.prefix + b"leader", b"", limit=1)
                except EtcdError as exc:
                    self._no_quorum(exc)

    def _drop(
        self, batch: Changes, waiters: list["asyncio.Future[None]"], error: StoreError
    ) -> None:
        """The batch failed: what was queued behind it was built on it and goes too.
        Memory takes what the watch brought, then the mirror's version of every object
        those changes touched: it holds what etcd does again, without a full reload."""
        waiters += self._waiters
        touched = {*batch, *self._pending}
        self._pending, self._waiters = {}, []
        self._stale.clear()
        self._apply_arrived()
        if self._remote is not None:
            self._remote([(ref, self._records.get(ref)) for ref in touched])
        elif self._undo is not None:
            self._undo()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)

    def _succeeded(self) -> None:
        if self._failed_at is not None:
            log.warning(
                "%s takes writes again after %.0f s: changes are accepted",
                self.where,
                self._clock() - self._failed_at,
            )
            self._failed_at = None

    async def _probe(self) -> None:
        """While writes fail: a read that needs a quorum, every `retry_interval`."""
        while self._failed_at is not None:
            await asyncio.sleep(self.retry_interval)
            try:
                await self.client.range(self.prefix + b"leader", b"", limit=1)
            except EtcdError:
                continue
            self._succeeded()

    async def _watch(self) -> None:
        """Follow etcd from `revision` on, reconnecting (from where it stopped) whenever
        the stream breaks; a start revision compacted away means reading everything."""
        key, end = self.prefix + b"r/", wire.prefix_end(self.prefix + b"r/")
        while True:
            try:
                async for answer in self.client.watch(key, end, self.revision + 1):
                    if answer.compact_revision:
                        await self._reread()
                        break
                    if answer.canceled:
                        raise EtcdError(f"etcd cancelled the watch: {answer.cancel_reason}")
                    self.watching = True
                    self._arrived.extend(answer.events)
                    # Up to its last event, not the header's revision: a watch catching up
                    # reports the current revision before it has sent the older events.
                    for event in answer.events:
                        self.revision = max(self.revision, event.kv.mod_revision)
                    if self._in_flight is None:
                        self._apply_arrived()
            except EtcdError as exc:
                self._throttle.log(
                    logging.WARNING,
                    "watch",
                    self._clock(),
                    "lost the watch on %s (%s): this replica does not see other replicas' "
                    "changes until it is back; retrying every %g s",
                    self.where,
                    exc,
                    self.retry_interval,
                )
            self.watching = False
            await asyncio.sleep(self.retry_interval)

    async def _reread(self) -> None:
        """The watch fell behind etcd's compaction: read everything and rebuild memory."""
        while self._in_flight is not None:
            await asyncio.sleep(0.01)
        await self.catch_up()
        self._arrived.clear()
        if self._undo is not None:
            self._undo()

    def _apply_arrived(self) -> None:
        """Take the watch events into the mirror, and other replicas' changes into
        memory: a key this replica has a change pending for is not applied but marked,
        so that change fails rather than overwrite the newer one."""
        events, self._arrived = self._arrived, []
        changed: dict[Ref, Record | None] = {}
        for event in events:
            ref = record_ref(self.prefix, event.kv.key)
            if ref is None or event.kv.mod_revision <= self._revisions.get(ref, 0):
                continue  # this replica's own write, or older than what it read
            self._revisions[ref] = event.kv.mod_revision
            record = None if event.deleted else json.loads(event.kv.value)
            if record is None:
                self._records.pop(ref, None)
            else:
                self._records[ref] = record
            if ref in self._pending:
                self._stale.add(ref)
            else:
                changed[ref] = record
        if changed and self._remote is not None:
            self._remote(list(changed.items()))

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Wait for the transaction in flight, then stop following etcd."""
        while self._in_flight is not None:
            with contextlib.suppress(StoreError):
                await asyncio.shield(self._in_flight)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.client.close()


def etcd_client(settings: EtcdSection) -> EtcdClient:
    """A client for store.etcd: https with the CA and client certificate given, and
    etcd's user authentication when a user is."""
    context = None
    if settings.ca_file is not None or settings.cert_file is not None:
        try:
            context = ssl.create_default_context(
                cafile=str(settings.ca_file) if settings.ca_file else None
            )
            if settings.cert_file is not None:
                key = str(settings.key_file) if settings.key_file else None
                context.load_cert_chain(str(settings.cert_file), key)
        except (OSError, ssl.SSLError) as exc:
            raise StoreError(
                f"cannot use the TLS files of store.etcd (ca_file, cert_file, key_file): {exc}"
            ) from None
    return EtcdClient(
        settings.endpoints, context, settings.user, settings.password, settings.timeout
    )


async def open_etcd_store(settings: EtcdSection) -> EtcdStore:
    """The etcd store with every record read: the registry can be built from it."""
    store = EtcdStore(etcd_client(settings), settings.prefix)
    try:
        await store.catch_up()
    except BaseException:
        await store.client.close()
        raise
    log.info("registry read from %s at revision %d", store.where, store.revision)
    return store


def _resolve(waiters: Sequence["asyncio.Future[None]"]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
