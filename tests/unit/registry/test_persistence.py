"""export_record / Registry.restore: records are JSON, and a restored registry answers
exactly as the original did and never hands out an index twice."""

import gc
import json
import weakref
from collections.abc import Iterator
from ipaddress import IPv6Address
from typing import Any

from isns_server.isnsp.constants import FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import IPAddress, Message, PortNumber
from isns_server.registry import COUNTERS, ObjectType, Outcome, Policy, Ref, Registry
from isns_server.registry.schema import STORED

from .builders import (
    ADMIN,
    a,
    call,
    eid,
    iqn,
    names_listed,
    new_registry,
    node,
    ok,
    portal,
    query,
    register,
    standard_setup,
)

T1, I1, GHOST = iqn("t1"), iqn("i1"), iqn("ghost")


class Store:
    """What the SQLite store does with Outcome.dirty, as a dict of JSON text."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.rows: dict[Ref, str] = {}

    def apply(self, outcome: Outcome) -> Outcome:
        for ref in outcome.dirty:
            record = self.registry.export_record(ref)
            if record is None:
                self.rows.pop(ref, None)
            else:
                self.rows[ref] = json.dumps(record)
        return outcome

    def records(self) -> list[tuple[Ref, dict[str, Any]]]:
        return [(ref, json.loads(text)) for ref, text in self.rows.items()]


def populated() -> tuple[Registry, Store]:
    registry = new_registry(control=(ADMIN, iqn("mgmt")))
    store = Store(registry)
    original = registry.handle

    def handle(message: Message, now: float, address: IPAddress | None = None) -> Outcome:
        return store.apply(original(message, now, address))

    registry.handle = handle  # type: ignore[method-assign]
    standard_setup(registry)
    extras = (
        a(Tag.PORTAL_SYMBOLIC_NAME, "v6"),
        a(Tag.ESI_INTERVAL, 30),
        a(Tag.ESI_PORT, PortNumber(4000, udp=True)),
        a(Tag.PORTAL_CERTIFICATE, b"\x01\x02\x03\x04"),
    )
    v6 = (
        a(Tag.PORTAL_IP_ADDRESS, IPv6Address("fd00::1")),
        a(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
    )
    ok(register(registry, T1, "stor1", (*v6, *extras, a(Tag.PG_TAG), a(Tag.PG_ISCSI_NAME, T1))))
    ok(register(registry, T1, "stor1", node(T1, NodeType.TARGET, a(Tag.ISCSI_ALIAS, "disk one"))))
    ok(register(registry, iqn("mgmt"), "mgmt", node(iqn("mgmt"), NodeType.CONTROL)))
    member = (
        a(Tag.DD_MEMBER_ISCSI_NAME, T1),
        a(Tag.DD_MEMBER_ISCSI_NAME, I1),
        a(Tag.DD_MEMBER_ISCSI_NAME, GHOST),
        *[
            a(Tag.DD_MEMBER_PORTAL_IP_ADDR, IPv6Address("fd00::9")),
            a(Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT, PortNumber(3260)),
        ],
    )
    ok(call(registry, FunctionId.DD_REG, ADMIN, (), (a(Tag.DD_SYMBOLIC_NAME, "dd1"), *member)))
    ok(
        call(
            registry,
            FunctionId.DDS_REG,
            ADMIN,
            (),
            (a(Tag.DD_SET_STATUS, 1), a(Tag.DD_ID, 1), a(Tag.DD_ID, 7)),
        )
    )
    ok(call(registry, FunctionId.DEV_DEREG, ADMIN, (), (a(Tag.ISCSI_NAME, iqn("i2")),)))
    return registry, store


def test_records_round_trip_through_json() -> None:
    registry, store = populated()
    assert {ref[0] for ref in store.rows} == {"entity", "dd", "dds", "counters"}
    assert ("entity", "host2") not in store.rows  # deregistered: its record was dropped
    restored = Registry.restore(store.records(), registry.policy)
    for ref in store.rows:
        assert restored.export_record(ref) == json.loads(store.rows[ref]), ref


def test_a_restored_registry_answers_as_the_original() -> None:
    registry, store = populated()
    restored = Registry.restore(store.records(), registry.policy)
    for source in (ADMIN, I1, T1, iqn("mgmt")):
        assert names_listed(restored, source) == names_listed(registry, source)
        for key in ([eid("stor1")], [a(Tag.ISCSI_NAME, T1)], [a(Tag.DD_ID)]):
            mine, theirs = (
                query(restored, source, key).response,
                query(registry, source, key).response,
            )
            assert (mine.status, mine.attributes) == (theirs.status, theirs.attributes)
    assert restored.visible_targets(I1) == registry.visible_targets(I1)
    db, old = restored.db, registry.db
    assert db.reserved_nodes == old.reserved_nodes and GHOST in db.reserved_nodes
    assert db.undomained.keys() == old.undomained.keys()
    assert {k: sorted(v) for k, v in db.dd_sets.items()} == {1: [1], 7: [1]}


def test_counters_survive_so_indexes_are_never_reused() -> None:
    registry, store = populated()
    restored = Registry.restore(store.records(), registry.policy)
    assert restored.db.counters == registry.db.counters
    highest = max(registry.db.node_index)
    ok(register(restored, iqn("new"), "new", node(iqn("new"))))
    assert restored.db.nodes[iqn("new")].index > highest
    # Even with the counters record lost, nothing in use is handed out again.
    without = [(ref, rec) for ref, rec in store.records() if ref != COUNTERS]
    bare = Registry.restore(without, registry.policy)
    ok(register(bare, iqn("new"), "new", node(iqn("new"))))
    assert bare.db.nodes[iqn("new")].index > max(registry.db.reserved_nodes.values())


def test_export_of_unknown_references() -> None:
    registry = new_registry()
    assert registry.export_record(("entity", "nope")) is None
    assert registry.export_record(("dd", 3)) is None
    assert registry.export_record(("whatever", 1)) is None
    assert Registry.restore([], Policy()).db.counters == registry.db.counters


def test_a_failed_request_dirties_nothing() -> None:
    registry = new_registry()
    outcome = register(registry, T1, "stor1", portal("10.0.0.1", 3260))
    assert outcome.response.status == Status.SOURCE_UNKNOWN and not outcome.dirty


def with_nulls(record: Any) -> Any:
    """A record as versions before compact records wrote it: every field, null or not."""
    if isinstance(record, list):
        return [with_nulls(item) for item in record]
    if not isinstance(record, dict):
        return record
    full = {name: with_nulls(value) for name, value in record.items()}
    fields = {"eid": "entity", "ip": "portal", "name": "node", "node_name": "pg"}
    kind = next((fields[name] for name in fields if name in record and "id" not in record), None)
    if kind is not None:
        for f in STORED[ObjectType(kind)]:
            if f.name is not None:
                full.setdefault(f.name, None)
    return full


def test_records_written_with_null_fields_load_as_compact_ones() -> None:
    registry, store = populated()
    compact = store.records()
    assert all(None not in record.values() for _, record in compact if "eid" in record)
    old = [(ref, with_nulls(record)) for ref, record in compact]
    assert old != compact  # the nulls are there
    restored = Registry.restore(old, registry.policy)
    for ref, record in compact:
        assert restored.export_record(ref) == record, ref
    assert names_listed(restored, ADMIN) == names_listed(registry, ADMIN)


class WeakRecord(dict[str, Any]):
    """A record that can be watched with a weak reference."""


def test_restore_keeps_no_record_once_its_objects_are_built() -> None:
    registry, store = populated()
    entities = [(ref, WeakRecord(record)) for ref, record in store.records() if ref[0] == "entity"]
    watched: list[weakref.ref[WeakRecord]] = []

    def one_at_a_time() -> Iterator[tuple[Ref, dict[str, Any]]]:
        while entities:
            # The restore's loop still names the record read last; any before it is gone.
            assert all(ref() is None for ref in watched[:-1])
            item = entities.pop(0)
            watched.append(weakref.ref(item[1]))
            yield item
            del item

    restored = Registry.restore(one_at_a_time(), registry.policy)
    assert set(restored.db.entities) == set(registry.db.entities)


def test_restore_leaves_the_garbage_collector_as_it_found_it() -> None:
    _, store = populated()
    assert gc.isenabled()
    Registry.restore(store.records(), Policy())
    assert gc.isenabled()
    gc.disable()
    try:
        Registry.restore(store.records(), Policy())
        assert not gc.isenabled()
    finally:
        gc.enable()
