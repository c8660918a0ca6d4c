"""Registry objects as JSON-serialisable records, and the registry rebuilt from them.

One record per Ref (outcome.py): an entity with its portals, nodes and PGs; a DD with its
members and the indexes they hold; a DD set with its DDs; the counters. Values go
through the attribute schema, so a field added there is saved without more code here.
"""

from collections.abc import Hashable, Iterable
from ipaddress import ip_address
from typing import Any

from ..isnsp.attributes import ValueKind, spec_for
from ..isnsp.messages import AttrValue, IPAddress, PortNumber
from .database import COUNTER_NAMES, Database
from .objects import (
    DiscoveryDomain,
    NetworkEntity,
    RegistryObject,
    object_type,
    portal_address,
    portal_key,
)
from .outcome import COUNTERS, Journal
from .schema import STORED, Role

Record = dict[str, Any]
# A Ref as a store hands it back (it only promises the identifier is hashable).
StoredRef = tuple[str, Hashable]


def export_record(db: Database, ref: StoredRef) -> Record | None:
    """The record for `ref`, or None when its object no longer exists."""
    kind, ident = ref
    if ref == COUNTERS:
        return dict(db.counters)
    if kind == "entity" and isinstance(ident, str) and ident in db.entities:
        return _entity_record(db.entities[ident])
    if kind == "dd" and isinstance(ident, int) and ident in db.dds:
        return _dd_record(db.dds[ident])
    if kind == "dds" and isinstance(ident, int) and ident in db.ddss:
        dds = db.ddss[ident]
        return {**_fields(dds), "dds": sorted(dds.dds)}
    return None


def restore(records: Iterable[tuple[StoredRef, Record]]) -> Database:
    """A database holding what the records describe, every index rebuilt."""
    db = Database()
    scratch = Journal()  # restoring is not a change anyone needs to hear about
    by_kind: dict[str, list[Record]] = {}
    for (kind, _), record in records:
        by_kind.setdefault(kind, []).append(record)
    for record in by_kind.get("entity", ()):
        _restore_entity(db, record, scratch)
    for record in by_kind.get("dd", ()):
        dd = db.add_dd(record["id"], record["name"], record["features"], scratch)
        for name, index in record["nodes"]:
            db.add_dd_node(dd, name, scratch, index)
        for address, port, udp, index in record["portals"]:
            db.add_dd_portal(dd, portal_key(_ip(address), PortNumber(port, udp)), scratch, index)
    for record in by_kind.get("dds", ()):
        dds = db.add_dds(record["id"], record["name"], record["status"], scratch)
        for dd_id in record["dds"]:
            if dd_id in db.dds:
                db.add_dds_member(dds, db.dds[dd_id], scratch)
    saved = by_kind.get(COUNTERS[0], [{}])[-1]
    db.counters = {name: max(saved.get(name, 1), used + 1) for name, used in _highest(db).items()}
    return db


def _entity_record(entity: NetworkEntity) -> Record:
    return {
        **_fields(entity),
        "portals": [_fields(p) for p in entity.portals.values()],
        "nodes": [_fields(n) for n in entity.nodes.values()],
        "pgs": [_fields(pg) for pg in entity.pgs.values()],
    }


def _dd_record(dd: DiscoveryDomain) -> Record:
    portals = []
    for key, index in dd.portals.items():
        address, port = portal_address(key)
        portals.append([str(address), port.port, port.udp, index])
    return {**_fields(dd), "nodes": [[n, i] for n, i in dd.nodes.items()], "portals": portals}


def _restore_entity(db: Database, record: Record, journal: Journal) -> None:
    entity = db.add_entity(record["eid"], journal, record["index"])
    _set_fields(entity, record)
    # Records saved before ::a.b.c.d and ::ffff:a.b.c.d were one portal may hold it twice
    # (in one entity or two): the first loaded keeps it, with its PGs.
    for item in record["portals"]:
        address, port = _ip(item["ip"]), _port(item["port"])
        if portal_key(address, port) not in db.portals:
            _set_fields(db.add_portal(entity, address, port, journal, item["index"]), item)
    for item in record["nodes"]:
        node = db.add_node(entity, item["name"], journal, item["index"])
        _set_fields(node, item)
        db.refresh_subscription(node)
    for item in record["pgs"]:
        key = portal_key(_ip(item["portal_ip"]), _port(item["portal_port"]))
        portal = db.portals.get(key)
        if (item["node_name"], *key) not in db.pgs and (portal is None or portal.entity is entity):
            db.set_pg(entity, item["node_name"], key, item["tag"], journal, item["index"])


def _fields(obj: RegistryObject) -> Record:
    return {
        f.name: _encode(f.tag, getattr(obj, f.name)) for f in STORED[object_type(obj)] if f.name
    }


def _set_fields(obj: RegistryObject, record: Record) -> None:
    """Restore the fields an object's constructor did not already set."""
    for f in STORED[object_type(obj)]:
        if f.name and f.role not in (Role.KEY, Role.INDEX):
            setattr(obj, f.name, _decode(f.tag, record.get(f.name)))


def _encode(tag: int, value: AttrValue) -> Any:
    if value is None:
        return None
    kind = spec_for(tag).kind
    if kind is ValueKind.IP_ADDRESS:
        return str(value)
    if isinstance(value, PortNumber):
        return [value.port, value.udp]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _decode(tag: int, raw: Any) -> AttrValue:
    if raw is None:
        return None
    kind = spec_for(tag).kind
    if kind is ValueKind.IP_ADDRESS:
        return _ip(raw)
    if kind is ValueKind.PORT:
        return _port(raw)
    if kind is ValueKind.OPAQUE:
        return bytes.fromhex(raw)
    assert isinstance(raw, str | int)
    return raw


def _ip(raw: str) -> IPAddress:
    return ip_address(raw)


def _port(raw: list[Any]) -> PortNumber:
    return PortNumber(int(raw[0]), bool(raw[1]))


def _highest(db: Database) -> dict[str, int]:
    """The highest index in use per counter, so a lost counters record cannot make an
    index be handed out twice. (DD and DD set IDs need no floor: clients choose some,
    so allocation skips the taken ones anyway.)"""
    used: dict[str, Iterable[int]] = {
        "entity": db.entity_index,
        "portal": (*db.portal_index, *db.reserved_portals.values()),
        "node": (*db.node_index, *db.reserved_nodes.values()),
        "pg": db.pg_index,
        "dd": (),
        "dds": (),
        "eid": (),
    }
    assert set(used) == set(COUNTER_NAMES)
    return {name: max(numbers, default=0) for name, numbers in used.items()}
