"""The registry kept in etcd, shared by every replica (docs/replication.md).

One key per record, `<prefix>r/<kind>/<JSON key>`, holding the record's JSON: the same
records the SQLite store keeps as rows, so the keyspace is as large as the registry and
no larger; and `<prefix>n/<kind>/<name>` for each DD's and DD set's name, holding its ID,
so that a name is taken once however many replicas create it at the same moment. Each
replica keeps, per record, the revision it was last written at and the bytes etcd holds
for it (not the decoded record: those bytes are a fraction of the objects built from
them), to compare and swap and to undo a lost write without asking etcd.

Index numbers come from blocks each replica reserves in the counters record
(registry/indexblocks.py), so an ordinary registration writes only its entity's record.

A write is one etcd transaction that compares every key it touches with the revision
this replica's memory was built on and only then puts or deletes them: of two replicas
changing the same entity or DD, creating the same DD name, or reserving index blocks at
once, one transaction commits and the other fails. The loser's changes are undone (once
the watch has brought the winner's change, every object they touched is put back as the
mirror has it) and its requests fail with StoreConflict, which the dispatcher answers
by running the request again. Like the SQLite store, changes that arrive while a
transaction is in flight go out together in the next one.

A watch from the revision the replica started at brings every other replica's committed
change; it is applied to memory between two transactions of this replica, so a change
is never mistaken for this replica's own or applied over a change of its own in flight.

When etcd cannot be reached or has no quorum, the transaction fails: its changes are
undone, its requests answered Internal Error, and the store says it is not writable
until a read that needs a quorum succeeds again (tried every `retry_interval`). Such a
read also runs every HEALTH_INTERVAL while all is well, so a lost quorum is noticed
without waiting for a write.
A transaction whose answer was lost (a timeout, a member gone) is settled before anyone
is answered: every transaction also compares and rewrites this replica's own marker key
`<prefix>w/<writer>`, so one more transaction that rewrites the marker (a fence) either
succeeds, and the lost one did not commit and never can, or fails because the lost one
moved the marker, and it committed. Only when etcd cannot answer the fence either is the
outcome unknown: the change is undone and answered Internal Error, and if it did commit
the watch brings it back like any other replica's change (docs/replication.md).
"""

import asyncio
import contextlib
import json
import logging
import socket
import ssl
import time
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.schema import EtcdSection
from ..logthrottle import LogThrottle
from ..registry.indexblocks import IndexBlocks
from ..registry.outcome import COUNTERS
from ..store.base import Changes, Record, Ref, StoreConflict, StoreError
from . import etcd_wire as wire
from .etcd_client import EtcdClient
from .etcd_wire import EtcdError

log = logging.getLogger(__name__)

RemoteChanges = Callable[[list[tuple[Ref, Record | None]]], None]
RETRY_INTERVAL = 1.0  # seconds between attempts while etcd is unreachable
LOG_INTERVAL = 60.0  # seconds between log lines about the same failure
MAX_TXN_OPS = 100  # etcd refuses a transaction of more than 128 operations by default
NAMED = frozenset(("dd", "dds"))  # the kinds whose names are unique: one name key each
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


def name_key(prefix: bytes, ref: Ref, record: Record) -> bytes | None:
    """The key that holds the name of a DD or DD set (None: other records have none)."""
    kind, name = ref[0], record.get("name")
    if kind not in NAMED or not isinstance(name, str):
        return None
    return prefix + b"n/" + kind.encode() + b"/" + name.encode()


def encode(record: Record) -> bytes:
    return json.dumps(record, separators=(",", ":")).encode()


class EtcdStore:
    def __init__(
        self,
        client: EtcdClient,
        prefix: str,
        writer: str = "",
        retry_interval: float = RETRY_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`writer` names this replica's marker key: unique among the replicas, and the
        same across its restarts, so that the keys stay as many as the replicas."""
        self.client = client
        self.prefix = prefix.encode()
        self._marker = self.prefix + b"w/" + writer.encode()
        self._marker_revision: int | None = None  # None: not known, read before writing
        self.retry_interval = retry_interval
        self._clock = clock
        self._records: dict[Ref, bytes] = {}  # each record's value in etcd, as etcd has it
        self._revisions: dict[Ref, int] = {}  # mod revision of each record in the mirror
        self._names: dict[Ref, bytes] = {}  # the name key each DD and DD set holds
        self.blocks = IndexBlocks()  # the registry's index numbers come from these
        self.revision = 0  # the store's revision the mirror is complete up to
        self._pending: dict[Ref, Record | None] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._in_flight: asyncio.Task[None] | None = None
        self._stale: set[Ref] = set()  # pending keys another replica changed meanwhile
        self._held: set[Ref] = set()  # arrived DDs taking a name a pending DD takes
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
        self._records, self._revisions, self.revision = await self._read_all()
        self._names = {}
        for ref in self._records:
            if ref[0] in NAMED:
                self._note_name(ref, self._records[ref])

    async def _read_all(self) -> tuple[dict[Ref, bytes], dict[Ref, int], int]:
        records: dict[Ref, bytes] = {}
        revisions: dict[Ref, int] = {}
        revision = 0
        try:
            async for kv, read_at in self.client.range_prefix(self.prefix + b"r/"):
                revision = read_at
                ref = record_ref(self.prefix, kv.key)
                if ref is not None:
                    records[ref] = kv.value
                    revisions[ref] = kv.mod_revision
            if not revision:  # nothing stored yet: the revision comes from an empty read
                revision = (
                    await self.client.range(self.prefix, wire.prefix_end(self.prefix))
                ).revision
        except EtcdError as exc:
            raise StoreError(f"cannot read the registry from {self.where}: {exc}") from None
        return records, revisions, revision

    def _note_name(self, ref: Ref, value: bytes | None) -> None:
        """Remember the name key a DD or DD set holds in etcd (`value`: its record)."""
        key = None if value is None else name_key(self.prefix, ref, json.loads(value))
        if key is None:
            self._names.pop(ref, None)
        else:
            self._names[ref] = key

    def _record(self, ref: Ref) -> Record | None:
        value = self._records.get(ref)
        return None if value is None else json.loads(value)

    def start(self, on_remote_change: RemoteChanges) -> None:
        """Follow the other replicas from the revision caught up to: `on_remote_change`
        gets each of their committed changes, to apply to memory."""
        self._remote = on_remote_change
        self._spawn(self._watch())
        self._spawn(self._check_quorum())

    def load(self) -> list[tuple[Ref, Record]]:
        return list(self.records())

    def records(self) -> Iterator[tuple[Ref, Record]]:
        for ref, value in list(self._records.items()):
            yield ref, json.loads(value)

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
                reserving = self.blocks.reserving() if COUNTERS in batch else {}
                await self._write(batch, waiters, reserving)
                self._apply_arrived()
        finally:
            self._in_flight = None

    async def _write(
        self,
        batch: dict[Ref, Record | None],
        waiters: list["asyncio.Future[None]"],
        reserving: dict[str, int],
    ) -> None:
        if self._stale & batch.keys():
            self._stale.clear()
            await self._lost(batch, waiters)
            return
        # etcd takes at most 128 operations a transaction (--max-txn-ops): a larger batch
        # (an expiry of hundreds of entities) goes in several, and its waiters hear once
        # all are in. If a later one fails, memory is put back to what etcd holds then.
        started = time.perf_counter()
        for part in self._parts(batch):
            if not await self._write_part(batch, part, waiters):
                return
            if any(write.ref == COUNTERS for write in part):
                self.blocks.committed(reserving)
        if self._written is not None and batch:
            self._written(len(batch), time.perf_counter() - started)
        _resolve(waiters)

    def _parts(self, batch: dict[Ref, Record | None]) -> Iterator[list["_Write"]]:
        """The batch as transactions of at most MAX_TXN_OPS operations each."""
        part: list[_Write] = []
        operations = 0
        names = {ref: self._name(ref, record) for ref, record in batch.items()}
        # A name one DD gives up and another takes in the same batch changes hands: it
        # is neither deleted nor compared, only written (etcd refuses a transaction that
        # puts and deletes one key).
        moving = {held for ref in batch if (held := self._names.get(ref)) != names[ref]}
        moving &= set(names.values())
        for ref, record in batch.items():
            write = self._operations(ref, record, names[ref], moving)
            if part and operations + len(write.ops) > MAX_TXN_OPS:
                yield part
                part, operations = [], 0
            part.append(write)
            operations += len(write.ops)
        if part:
            yield part

    def _name(self, ref: Ref, record: Record | None) -> bytes | None:
        return None if record is None else name_key(self.prefix, ref, record)

    def _operations(
        self, ref: Ref, record: Record | None, name: bytes | None, moving: set[bytes | None]
    ) -> "_Write":
        """What writing `record` compares and does. A record memory does not hold must
        not exist in etcd (mod revision 0). A DD or DD set taking a name creates its name
        key, which must not exist (create revision 0), and gives up the one it held."""
        key = record_key(self.prefix, ref)
        known = self._revisions.get(ref, 0) if ref in self._records else 0
        value = None if record is None else encode(record)
        compare = [wire.mod_revision_is(key, known)]
        ops = [wire.delete_op(key) if value is None else wire.put_op(key, value)]
        held = self._names.get(ref)
        if name != held:
            if held is not None and held not in moving:
                ops.append(wire.delete_op(held))
            if name is not None:
                if name not in moving:
                    compare.append(wire.created_revision_is(name, 0))
                ops.append(wire.put_op(name, json.dumps(ref[1]).encode()))
        return _Write(ref, value, name, compare, ops)

    async def _write_part(
        self,
        batch: dict[Ref, Record | None],
        part: list["_Write"],
        waiters: list["asyncio.Future[None]"],
    ) -> bool:
        compare = [c for write in part for c in write.compare]
        ops = [op for write in part for op in write.ops]
        # Failing, the transaction reads what the records' keys hold now instead.
        reads = [wire.range_op(record_key(self.prefix, write.ref)) for write in part]
        try:
            if self._marker_revision is None:
                self._marker_revision = await self._marker_now()
            compare.append(wire.mod_revision_is(self._marker, self._marker_revision))
            ops.append(wire.put_op(self._marker, b"written"))
            answer = await self.client.txn(compare, ops, reads)
        except EtcdError as exc:
            # etcd refusing the transaction (too large, say) is an answer: no fence.
            undetermined = exc.code in wire.UNDETERMINED_CODES
            committed_at = await self._fence() if undetermined else None
            if committed_at is None:
                self._unavailable(batch, waiters, exc)
                return False
            if not committed_at:  # it did not commit, and now never will: run it again
                await self._lost(batch, waiters)
                return False
            answer = wire.TxnAnswer(True, committed_at)
        if not answer.succeeded:
            self._take_current(part, answer)
            await self._lost(batch, waiters)
            return False
        self._succeeded()
        self._marker_revision = answer.revision
        for write in part:
            self._revisions[write.ref] = answer.revision
            if write.value is None:
                self._records.pop(write.ref, None)
            else:
                self._records[write.ref] = write.value
            if write.name is None:
                self._names.pop(write.ref, None)
            else:
                self._names[write.ref] = write.name
        return True

    async def _marker_now(self) -> int:
        """The marker's mod revision in etcd now (0: none yet)."""
        kvs = (await self.client.range(self._marker, b"")).kvs
        return kvs[0].mod_revision if kvs else 0

    async def _fence(self) -> int | None:
        """After a transaction whose answer was lost: the revision it committed at, or 0
        when it did not and now cannot (the marker it compares was rewritten); None when
        etcd does not answer this either, and the marker is read again before the next
        write."""
        known = self._marker_revision
        self._marker_revision = None
        if known is None:
            return None
        try:
            answer = await self.client.txn(
                [wire.mod_revision_is(self._marker, known)],
                [wire.put_op(self._marker, b"fenced")],
                [wire.range_op(self._marker)],
            )
        except EtcdError:
            return None
        if answer.succeeded:
            self._marker_revision = answer.revision
            return 0
        moved = answer.ranges[0] if answer.ranges else ()
        if not moved:
            return None
        log.info("a write to %s whose answer was lost had committed", self.where)
        return moved[0].mod_revision

    def _take_current(self, part: list["_Write"], answer: wire.TxnAnswer) -> None:
        """Into the mirror: what the keys of a lost transaction hold now (it read them),
        so memory can be put back to that at once, before the watch brings it."""
        for write, kvs in zip(part, answer.ranges, strict=False):
            ref = write.ref
            if kvs:
                kv = kvs[0]
                if kv.mod_revision > self._revisions.get(ref, 0):
                    self._records[ref] = kv.value
                    self._revisions[ref] = kv.mod_revision
                    if ref[0] in NAMED:
                        self._note_name(ref, kv.value)
            elif ref in self._records:  # deleted since: no older event may bring it back
                del self._records[ref]
                self._names.pop(ref, None)
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
        touched = {*batch, *self._pending, *self._held}
        self._pending, self._waiters = {}, []
        self._stale.clear()
        self._held.clear()
        self.blocks.lost()
        # In one go: a DD that arrived may take the name of one being undone.
        touched |= self._take_arrived().keys()
        if self._remote is not None:
            self._remote([(ref, self._record(ref)) for ref in touched])
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
        """The watch fell behind etcd's compaction: read everything again, and give
        memory every record whose revision differs from the mirror's (or that is gone)."""
        while self._in_flight is not None:
            await asyncio.sleep(0.01)
        before = self._revisions
        records, revisions, revision = await self._read_all()
        gone = [ref for ref in self._records if ref not in records]
        moved = [ref for ref, at in revisions.items() if before.get(ref) != at]
        self._records, self._revisions, self.revision = records, revisions, revision
        self._names = {}
        for ref in records:
            if ref[0] in NAMED:
                self._note_name(ref, records[ref])
        self._arrived.clear()
        changed = [(ref, None) for ref in gone] + [(ref, self._record(ref)) for ref in moved]
        if changed and self._remote is not None:
            self._remote(changed)

    def _apply_arrived(self) -> None:
        """Take the watch events into the mirror, and other replicas' changes into
        memory."""
        changed = self._take_arrived()
        if changed and self._remote is not None:
            self._remote(list(changed.items()))

    def _take_arrived(self) -> dict[Ref, Record | None]:
        """Take the watch events into the mirror; the other replicas' changes for memory.
        A key this replica has a change pending for is not given to memory but marked, so
        that change fails rather than overwrite the newer one; so is a DD or DD set that
        takes the name of one pending here (that one fails too: the name key exists), and
        memory gets both once it has."""
        events, self._arrived = self._arrived, []
        changed: dict[Ref, Record | None] = {}
        pending_names: dict[bytes, Ref] | None = None
        for event in events:
            ref = record_ref(self.prefix, event.kv.key)
            if ref is None or event.kv.mod_revision <= self._revisions.get(ref, 0):
                continue  # this replica's own write, or older than what it read
            self._revisions[ref] = event.kv.mod_revision
            value = None if event.deleted else event.kv.value
            if value is None:
                self._records.pop(ref, None)
            else:
                self._records[ref] = value
            if ref[0] in NAMED:
                self._note_name(ref, value)
            if ref in self._pending:
                self._stale.add(ref)
                continue
            record = None if value is None else json.loads(value)
            if record is not None and ref[0] in NAMED and self._pending:
                if pending_names is None:
                    pending_names = {
                        key: mine
                        for mine, pending in self._pending.items()
                        if pending is not None
                        and (key := name_key(self.prefix, mine, pending)) is not None
                    }
                mine = pending_names.get(self._names.get(ref, b""))
                if mine is not None:
                    self._stale.add(mine)
                    self._held.add(ref)
                    continue
            changed[ref] = record
        return changed

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


async def open_etcd_store(settings: EtcdSection, data_dir: Path) -> EtcdStore:
    """The etcd store with every record read: the registry can be built from it. The
    replica's host and `data_dir` name its marker key (EtcdStore)."""
    writer = f"{socket.gethostname()}:{data_dir.resolve()}"
    store = EtcdStore(etcd_client(settings), settings.prefix, writer)
    try:
        await store.catch_up()
    except BaseException:
        await store.client.close()
        raise
    log.info("registry read from %s at revision %d", store.where, store.revision)
    return store


@dataclass(frozen=True, slots=True)
class _Write:
    """One record's part of a transaction."""

    ref: Ref
    value: bytes | None  # None: deleted
    name: bytes | None  # the name key it holds afterwards
    compare: list[wire.Json]
    ops: list[wire.Json]


def _resolve(waiters: Sequence["asyncio.Future[None]"]) -> None:
    for waiter in waiters:
        if not waiter.done():
            waiter.set_result(None)
