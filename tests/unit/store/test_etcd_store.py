"""EtcdStore and Leadership against an in-memory stand-in for etcd's KV, watch and leases
(no etcd, no sockets): compare-and-swap, own writes not applied twice, another
replica's change to a key with a change pending, etcd unreachable, leader election."""

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from isns_server.replication import etcd_wire as wire
from isns_server.replication.etcd_store import EtcdStore, record_key, record_ref
from isns_server.replication.etcd_wire import EtcdError, Event, KeyValue
from isns_server.service.leadership import Leadership
from isns_server.store import Record, Ref, StoreConflict, StoreError

from ...polling import eventually

PREFIX = "/t/"
A: Ref = ("entity", "a")
B: Ref = ("entity", "b")
C: Ref = ("entity", "c")


class FakeEtcd:
    """One etcd: keys with mod revisions, transactions with MOD/CREATE/LEASE compares,
    watchers fed every change, leases that run out when told."""

    def __init__(self) -> None:
        self.revision = 1
        self.kvs: dict[bytes, tuple[bytes, int, int, int]] = {}  # value, mod, create, lease
        self.watchers: list[asyncio.Queue[wire.WatchAnswer]] = []
        self.down = False
        self.leases: set[int] = set()
        self.endpoints = ["http://fake"]
        self.lose_answers = 0  # transactions to commit and then raise for, as a timeout
        self.delay = 0  # transactions to hold back (and raise for), as a member gone
        self.held_back: list[tuple[Any, ...]] = []
        self.too_large = 0  # transactions to refuse, as etcd refuses one over its limit
        self.slow = False  # a transaction lets other tasks run before it is taken

    def _commit(self, events: list[Event]) -> None:
        for queue in self.watchers:
            queue.put_nowait(wire.WatchAnswer(self.revision, tuple(events)))

    def put(self, key: bytes, value: bytes, lease: int = 0) -> int:
        """Another writer's put: the new revision."""
        self.revision += 1
        created = self.kvs.get(key, (b"", 0, self.revision, 0))[2]
        self.kvs[key] = (value, self.revision, created, lease)
        self._commit([Event(KeyValue(key, value, self.revision, lease), False)])
        return self.revision

    def _read(self, ops: list[dict[str, Any]]) -> tuple[tuple[KeyValue, ...], ...]:
        """What a failure branch of range requests reads."""
        found = []
        for op in ops:
            key = _key(op["request_range"]["key"])
            value = self.kvs.get(key)
            found.append(() if value is None else (KeyValue(key, value[0], value[1]),))
        return tuple(found)

    def compact(self) -> None:
        """History before now is gone: every watch is cancelled, as etcd does when its
        start revision has been compacted away."""
        for queue in self.watchers:
            queue.put_nowait(
                wire.WatchAnswer(self.revision, (), canceled=True, compact_revision=self.revision)
            )

    async def txn(
        self, compare: list[dict[str, Any]], success: list[dict[str, Any]], failure: Any = None
    ) -> wire.TxnAnswer:
        if self.slow:
            await asyncio.sleep(0)
        if self.down:
            raise EtcdError("no quorum")
        if self.too_large:
            self.too_large -= 1
            raise EtcdError("etcdserver: request is too large", wire.CODE_INVALID_ARGUMENT)
        if self.delay:
            self.delay -= 1
            self.held_back.append((compare, success, failure))
            raise EtcdError("etcd did not answer (TimeoutError)")
        if self.lose_answers:
            self.lose_answers -= 1
            await self.txn(compare, success, failure)
            raise EtcdError("etcd did not answer (TimeoutError)")
        for c in compare:
            key = _key(c["key"])
            value, mod, created, lease = self.kvs.get(key, (b"", 0, 0, 0))
            actual = {"MOD": mod, "CREATE": created, "LEASE": lease}[c["target"]]
            wanted = int(c.get("mod_revision", c.get("create_revision", c.get("lease", 0))))
            if actual != wanted:
                return wire.TxnAnswer(False, self.revision, self._read(failure or []))
        if len(success) > 128:  # etcd's --max-txn-ops default
            raise EtcdError("etcdserver: too many operations in txn request", 3)
        if not success:
            return wire.TxnAnswer(True, self.revision)
        self.revision += 1
        events = []
        for op in success:
            if "request_put" in op:
                put = op["request_put"]
                key, value = _key(put["key"]), _key(put["value"])
                lease = int(put.get("lease", 0))
                created = self.kvs.get(key, (b"", 0, self.revision, 0))[2]
                self.kvs[key] = (value, self.revision, created, lease)
                events.append(Event(KeyValue(key, value, self.revision, lease), False))
            else:
                key = _key(op["request_delete_range"]["key"])
                self.kvs.pop(key, None)
                events.append(Event(KeyValue(key, b"", self.revision), True))
        self._commit(events)
        return wire.TxnAnswer(True, self.revision)

    async def range(
        self, key: bytes, end: bytes, revision: int = 0, limit: int = 0
    ) -> wire.RangeAnswer:
        if self.down:
            raise EtcdError("no quorum")
        kvs = tuple(KeyValue(k, v[0], v[1]) for k, v in sorted(self.kvs.items()) if key <= k < end)
        return wire.RangeAnswer(kvs, self.revision, False)

    async def range_prefix(self, prefix: bytes) -> AsyncIterator[tuple[KeyValue, int]]:
        answer = await self.range(prefix, wire.prefix_end(prefix))
        for kv in answer.kvs:
            yield kv, answer.revision

    async def watch(
        self, key: bytes, end: bytes, start_revision: int
    ) -> AsyncIterator[wire.WatchAnswer]:
        queue: asyncio.Queue[wire.WatchAnswer] = asyncio.Queue()
        self.watchers.append(queue)
        yield wire.WatchAnswer(self.revision, (), created=True)
        while True:
            yield await queue.get()

    async def lease_grant(self, ttl: int) -> int:
        if self.down:
            raise EtcdError("no quorum")
        lease = len(self.leases) + 100
        self.leases.add(lease)
        return lease

    async def lease_keepalive(self, lease: int) -> int:
        if self.down:
            raise EtcdError("no quorum")
        return 5 if lease in self.leases else 0

    async def lease_revoke(self, lease: int) -> None:
        self.expire(lease)

    def expire(self, lease: int) -> None:
        """The lease ran out: it and its keys are gone."""
        self.leases.discard(lease)
        for key in [k for k, v in self.kvs.items() if v[3] == lease]:
            del self.kvs[key]

    async def close(self) -> None:
        pass


def _key(text: str) -> bytes:
    return base64.b64decode(text)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def started(
    etcd: FakeEtcd, writer: str = "one"
) -> tuple[EtcdStore, list[list[tuple[Ref, Record | None]]]]:
    store = EtcdStore(etcd, PREFIX, writer, retry_interval=0.01)  # type: ignore[arg-type]
    await store.catch_up()
    applied: list[list[tuple[Ref, Record | None]]] = []
    store.start(applied.append)
    await settle()
    return store, applied


def test_keys_and_refs_both_ways_and_garbage_is_no_record() -> None:
    prefix = PREFIX.encode()
    for ref in (A, ("dd", 3), ("counters", "next-index"), ("audit", (1, "x"))):
        assert record_ref(prefix, record_key(prefix, ref)) == ref
    assert record_ref(prefix, b"/t/leader") is None
    assert record_ref(prefix, b"/t/r/entity/{not json") is None
    assert record_ref(prefix, b'/other/r/entity/"a"') is None


async def test_a_write_commits_and_its_own_watch_event_is_not_applied_again() -> None:
    etcd = FakeEtcd()
    store, applied = await started(etcd)
    await store.submit({A: {"eid": "a"}})
    assert json.loads(etcd.kvs[record_key(PREFIX.encode(), A)][0]) == {"eid": "a"}
    await settle()
    assert applied == []  # its own change: memory has it already
    assert store.load() == [(A, {"eid": "a"})]
    etcd.put(record_key(PREFIX.encode(), B), b'{"eid":"b"}')
    await settle()
    assert applied == [[(B, {"eid": "b"})]]
    await store.close()


async def test_a_record_deleted_and_written_again() -> None:
    etcd = FakeEtcd()
    store, _ = await started(etcd)
    await store.submit({A: {"eid": "a"}})
    await store.submit({A: None})
    await settle()
    await store.submit({A: {"eid": "a", "again": 1}})  # absent in etcd: compared with 0
    assert json.loads(etcd.kvs[record_key(PREFIX.encode(), A)][0]) == {"eid": "a", "again": 1}
    assert store.conflicts == 0
    await store.close()


async def test_a_batch_larger_than_etcd_takes_in_one_transaction_goes_in_several() -> None:
    etcd = FakeEtcd()
    store, _ = await started(etcd)
    expired: dict[Ref, Record | None] = {("entity", f"e{n}"): {"eid": n} for n in range(300)}
    await store.submit(expired)
    assert sum(key.startswith(b"/t/r/") for key in etcd.kvs) == 300
    assert store.writable
    await store.close()


async def test_a_write_over_another_replicas_newer_change_fails_and_memory_gets_theirs() -> None:
    etcd = FakeEtcd()
    store, applied = await started(etcd)
    undone: list[bool] = []
    store.on_write_failed(lambda: undone.append(True))
    # Another replica writes A after this one read it, before this one's write goes out.
    etcd.put(record_key(PREFIX.encode(), A), b'{"eid":"a","theirs":1}')
    pending = store.submit({A: {"eid": "a", "mine": 1}, B: {"eid": "b"}})
    with pytest.raises(StoreConflict):
        await pending
    assert store.conflicts == 1
    assert json.loads(etcd.kvs[record_key(PREFIX.encode(), A)][0]) == {"eid": "a", "theirs": 1}
    assert record_key(PREFIX.encode(), B) not in etcd.kvs  # nothing of the batch committed
    # Memory is given etcd's version of everything the lost batch touched.
    assert dict(applied[-1]) == {A: {"eid": "a", "theirs": 1}, B: None}
    assert undone == []  # no full reload needed
    await store.submit({B: {"eid": "b"}})  # and the next write goes through
    assert store.writable
    await store.close()


async def test_etcd_unreachable_refuses_until_a_quorum_read_succeeds() -> None:
    etcd = FakeEtcd()
    store, applied = await started(etcd)
    etcd.down = True
    with pytest.raises(StoreError) as raised:
        await store.submit({A: {"eid": "a"}})
    assert not isinstance(raised.value, StoreConflict)
    assert not store.writable
    assert applied[-1] == [(A, None)]  # undone
    etcd.down = False
    await eventually(lambda: store.writable, what="the store writable again", within=5)
    await store.submit({A: {"eid": "a"}})
    await store.close()


async def test_one_leader_and_another_takes_over_when_its_lease_runs_out() -> None:
    etcd = FakeEtcd()
    events: list[str] = []

    def replica(name: str) -> Leadership:
        async def elected() -> None:
            events.append(f"{name} leads")

        async def deposed() -> None:
            events.append(f"{name} stops")

        return Leadership(etcd, b"/t/leader", name, 1, elected, deposed)  # type: ignore[arg-type]

    one, two = replica("one"), replica("two")
    one.start()
    await eventually(lambda: one.leading, what="one to lead", within=5)
    two.start()
    await asyncio.sleep(0.5)  # the point: half a lease passes and two does not take over
    assert (one.leading, two.leading) == (True, False)
    etcd.expire(one._lease)  # one's process hangs: its lease runs out
    await eventually(lambda: two.leading, what="two to lead after the lease ran out", within=5)
    # One learns on its next keep-alive and steps down.
    await eventually(lambda: not one.leading, what="one to step down", within=5)
    assert events[0] == "one leads"
    assert sorted(events[1:]) == ["one stops", "two leads"]
    await one.stop()
    await two.stop()


async def test_a_watch_behind_a_compaction_reads_everything_again() -> None:
    etcd = FakeEtcd()
    store, applied = await started(etcd)
    await store.submit({A: {"eid": "a"}, C: {"eid": "c"}})
    reloaded: list[bool] = []
    store.on_write_failed(lambda: reloaded.append(True))
    # While this replica's watch was away B was written and C deleted, and that history
    # is compacted.
    etcd.revision += 1
    etcd.kvs[record_key(PREFIX.encode(), B)] = (b'{"eid":"b"}', etcd.revision, etcd.revision, 0)
    del etcd.kvs[record_key(PREFIX.encode(), C)]
    etcd.compact()
    await eventually(lambda: applied, what="the records read again", within=5)
    # Memory gets what differs from what it was built on; A, unchanged, is not touched.
    assert sorted(applied[-1]) == [(B, {"eid": "b"}), (C, None)]
    assert reloaded == []
    assert sorted(store.load()) == [(A, {"eid": "a"}), (B, {"eid": "b"})]
    assert store.revision == etcd.revision
    await store.close()


async def test_a_dd_name_is_taken_once_across_replicas_and_freed_with_its_dd() -> None:
    etcd = FakeEtcd()
    (one, _), (two, _) = await started(etcd), await started(etcd, "two")
    names = PREFIX.encode() + b"n/dd/"
    await one.submit({("dd", 1): {"id": 1, "name": "x"}})
    # two has not heard of DD 1 yet; its DD 2, with the same name, loses.
    with pytest.raises(StoreConflict):
        await two.submit({("dd", 2): {"id": 2, "name": "x"}})
    assert record_key(PREFIX.encode(), ("dd", 2)) not in etcd.kvs
    assert etcd.kvs[names + b"x"][0] == b"1"
    await one.submit({("dd", 1): {"id": 1, "name": "y"}})  # renamed: x is free
    assert sorted(k for k in etcd.kvs if k.startswith(names)) == [names + b"y"]
    await settle()
    await two.submit({("dd", 2): {"id": 2, "name": "x"}})
    await one.submit({("dd", 1): None})  # deregistered: y is free
    assert sorted(k for k in etcd.kvs if k.startswith(names)) == [names + b"x"]
    await settle()
    await two.submit({("dd", 3): {"id": 3, "name": "z"}})
    # One batch: DD 2 gives x up for w, and DD 3 takes x (its z freed).
    await two.submit({("dd", 2): {"id": 2, "name": "w"}, ("dd", 3): {"id": 3, "name": "x"}})
    held = {k: v[0] for k, v in etcd.kvs.items() if k.startswith(names)}
    assert held == {names + b"w": b"2", names + b"x": b"3"}
    await two.submit({("dds", 1): {"id": 1, "name": "y"}, ("dd", 2): None, ("dd", 3): None})
    assert sorted(k for k in etcd.kvs if b"/n/" in k) == [PREFIX.encode() + b"n/dds/y"]
    await one.close()
    await two.close()


async def test_a_write_whose_answer_was_lost_is_settled_before_it_is_answered() -> None:
    etcd = FakeEtcd()
    store, applied = await started(etcd)
    etcd.lose_answers = 1  # it commits; the answer never arrives
    await store.submit({A: {"eid": "a"}})  # answered done: the fence found it committed
    assert json.loads(etcd.kvs[record_key(PREFIX.encode(), A)][0]) == {"eid": "a"}
    await settle()
    assert applied == []  # its own change, not applied again from the watch
    assert store.writable
    # One that never reached etcd is fenced: answered as lost (its requests run again),
    # and held back by a member, it can no longer commit afterwards.
    etcd.delay = 1
    with pytest.raises(StoreConflict):
        await store.submit({B: {"eid": "b"}})
    (late,) = etcd.held_back
    assert not (await etcd.txn(*late)).succeeded
    assert record_key(PREFIX.encode(), B) not in etcd.kvs
    assert store.writable
    await store.submit({B: {"eid": "b"}, A: None})  # and writes go on
    assert json.loads(etcd.kvs[record_key(PREFIX.encode(), B)][0]) == {"eid": "b"}
    # A transaction etcd refused is answered: no fence, and no running again.
    marker = {k: v for k, v in etcd.kvs.items() if k.startswith(b"/t/w/")}
    etcd.too_large = 1
    with pytest.raises(StoreError) as raised:
        await store.submit({A: {"eid": "a" * 100}})
    assert not isinstance(raised.value, StoreConflict)
    assert {k: v for k, v in etcd.kvs.items() if k.startswith(b"/t/w/")} == marker
    await store.close()


async def test_a_dd_arriving_with_the_name_of_a_pending_one_waits_until_that_is_undone() -> None:
    etcd = FakeEtcd()
    store, applied = await started(etcd)
    etcd.slow = True
    first = store.submit({A: {"eid": "a"}})
    # Meanwhile another replica made DD 1 named x: the watch brings it while A is in
    # flight, and DD 2, named x too, is queued behind A.
    etcd.put(record_key(PREFIX.encode(), ("dd", 1)), b'{"id":1,"name":"x"}')
    etcd.put(PREFIX.encode() + b"n/dd/x", b"1")
    await asyncio.sleep(0)
    second = store.submit({("dd", 2): {"id": 2, "name": "x"}})
    await first
    with pytest.raises(StoreConflict):
        await second
    # Memory never held two DDs named x: DD 2 went and DD 1 came in one change.
    assert [sorted(change) for change in applied] == [
        [(("dd", 1), {"id": 1, "name": "x"}), (("dd", 2), None)]
    ]
    await store.close()
