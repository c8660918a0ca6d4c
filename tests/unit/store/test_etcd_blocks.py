"""Index numbers in per-replica blocks (registry/indexblocks.py): a block reserved by one
write of the counters record, numbers handed out from it without writing that record,
a reservation lost with its transaction forgotten (no etcd, no sockets)."""

import pytest

from isns_server.registry import COUNTERS, Registry
from isns_server.registry.indexblocks import IndexBlocks
from isns_server.store import StoreConflict

from ..registry.builders import iqn, new_registry, node, ok, portal, register
from .test_etcd_store import PREFIX, FakeEtcd, started


def test_numbers_come_from_a_block_reserved_once() -> None:
    blocks = IndexBlocks(size=3)
    counters = {"entity": 1}
    assert [blocks.take("entity", counters) for _ in range(4)] == [
        (1, True),
        (2, False),
        (3, False),
        (4, True),
    ]
    assert counters == {"entity": 7}  # the shared record: reserved up to 7
    assert blocks.peek("entity", counters) == 5


def test_a_lost_reservation_is_forgotten_and_a_committed_one_kept() -> None:
    blocks = IndexBlocks(size=10)
    counters = {"entity": 1, "node": 1}
    blocks.take("entity", counters)
    blocks.committed(blocks.reserving())
    assert blocks.take("node", counters) == (1, True)
    blocks.lost()  # its transaction failed: numbers 1-10 of "node" are never handed out
    assert blocks.take("node", counters) == (11, True)
    assert blocks.take("entity", counters) == (2, False)


def test_a_reservation_made_after_a_transaction_was_cut_waits_for_its_own() -> None:
    blocks = IndexBlocks(size=2)
    counters = {"pg": 1}
    blocks.take("pg", counters)
    in_flight = blocks.reserving()
    blocks.take("pg", counters)
    assert blocks.take("pg", counters) == (3, True)  # queued behind, in the next batch
    blocks.committed(in_flight)
    blocks.lost()  # the next batch failed: its block goes, not the first
    assert blocks.take("pg", counters) == (5, True)


def replica() -> Registry:
    registry = new_registry()
    registry.db.blocks = IndexBlocks(size=1000)
    return registry


def test_registrations_write_the_counters_record_once_per_block() -> None:
    registry = replica()
    dirty = [
        register(registry, iqn(f"t{n}"), f"e{n}", portal("10.0.0.1", 3260 + n), node(iqn(f"t{n}")))
        for n in range(5)
    ]
    assert [COUNTERS in outcome.dirty for outcome in dirty] == [True, False, False, False, False]
    for outcome in dirty:
        ok(outcome)
    single = new_registry()  # a single server writes the record every time, as before
    outcome = register(single, iqn("t"), "e", node(iqn("t")))
    assert COUNTERS in outcome.dirty


def test_two_replicas_hand_out_disjoint_indexes() -> None:
    one, two = replica(), replica()
    first = register(one, iqn("a"), "a", portal("10.0.0.1", 3260), node(iqn("a")))
    # two learns one's reservation (the counters record) before it reserves its own
    two.apply([(ref, one.export_record(ref)) for ref in first.dirty], 0.0)
    register(two, iqn("b"), "b", portal("10.0.0.2", 3260), node(iqn("b")))
    register(one, iqn("c"), "c", portal("10.0.0.3", 3260), node(iqn("c")))
    indexes = {
        name: (registry.db.nodes[iqn(name)].index, registry.db.entities[name].index)
        for registry, name in ((one, "a"), (two, "b"), (one, "c"))
    }
    assert indexes == {"a": (1, 1), "b": (1001, 1001), "c": (2, 2)}


async def test_a_reservation_whose_transaction_loses_is_forgotten() -> None:
    etcd = FakeEtcd()
    store, _ = await started(etcd)
    counters = {"entity": 1}
    store.blocks.take("entity", counters)
    # Another replica reserved a block meanwhile: its counters record is newer.
    etcd.put(PREFIX.encode() + b'r/counters/"next-index"', b'{"entity":1001}')
    with pytest.raises(StoreConflict):
        await store.submit({COUNTERS: dict(counters)})
    assert store.blocks.reserving() == {}
    assert store.blocks.take("entity", {"entity": 1001}) == (1001, True)
    await store.submit({COUNTERS: {"entity": 2001}})
    assert store.blocks.reserving() == {}  # committed: kept
    assert store.blocks.take("entity", {"entity": 2001}) == (1002, False)
    await store.close()
