"""Registry objects as JSON-serialisable records, and the registry rebuilt from them.

One record per Ref (outcome.py): an entity with its portals, nodes and PGs; a DD with its
members and the indexes they hold; a DD set with its DDs; the counters. Values go
through the attribute schema, so a field added there is saved without more code here.
A field without a value is left out of its record (records written before that listed
it as null; both read the same).

Restoring takes the records one at a time, as the store reads them, and keeps nothing of
a record once its objects are built: at a million entities, memory after a restart is
what the objects need, not that plus every record decoded at once.
"""

import gc
from collections.abc import Callable, Hashable, Iterable
from dataclasses import MISSING, dataclass
from dataclasses import fields as dataclass_fields
from ipaddress import IPv4Address, ip_address
from socket import AF_INET, inet_pton
from typing import Any

from ..isnsp.attributes import ValueKind, spec_for
from ..isnsp.messages import AttrValue, IPAddress, PortNumber
from .database import COUNTER_NAMES, Database
from .objects import (
    OBJECT_TYPES,
    DiscoveryDomain,
    DiscoveryDomainSet,
    NetworkEntity,
    ObjectType,
    Portal,
    PortalKey,
    RegistryObject,
    StorageNode,
    object_type,
    portal_address,
    portal_key,
)
from .outcome import COUNTERS, Journal, ObjectKey
from .schema import FIELDS, STORED, Role

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
    """A database holding what the records describe, every index rebuilt.

    The objects built here live until they are deregistered, so the cyclic garbage
    collector is kept from walking them: paused while they are built (at 100,000
    entities its passes over the growing heap cost a third of the time), then frozen out
    of its later passes (`gc.freeze`). Deregistration unlinks an object from its entity,
    so reference counting alone frees it. A database this replaces (`Registry.reload`)
    is collected once the next restore unfreezes it.
    """
    gc.unfreeze()
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _restore(records)
    finally:
        if collecting:
            gc.enable()
        gc.freeze()


def _restore(records: Iterable[tuple[StoredRef, Record]]) -> Database:
    db = Database()
    journal = _Unrecorded()
    later: dict[str, list[Record]] = {}  # DDs, DD sets, counters: few, and they come last
    for (kind, _), record in records:
        if kind == "entity":
            _restore_entity(db, record, journal)
        else:
            later.setdefault(kind, []).append(record)
    for record in later.get("dd", ()):
        _restore_dd(db, record, journal)
    for record in later.get("dds", ()):
        _restore_dds(db, record, journal)
    saved = later.get(COUNTERS[0], [{}])[-1]
    db.counters = {name: max(saved.get(name, 1), used + 1) for name, used in _highest(db).items()}
    return db


def apply_records(db: Database, records: Iterable[tuple[StoredRef, Record | None]]) -> set[str]:
    """Make `db` hold `records` (None: that object is gone), as another server that
    shares the store wrote them; everything else stays. The EIDs touched are returned.

    All the old objects go before any new one is built: a portal that moved from one
    entity to another in the same change is then free when the second is restored. A DD
    keeps the DD sets it was in unless their own records come too.
    """
    journal = _Unrecorded()
    items = list(records)
    eids: set[str] = set()
    sets_of: dict[int, set[int]] = {}
    for (kind, ident), _ in items:
        if kind == "entity" and isinstance(ident, str):
            eids.add(ident)
            if ident in db.entities:
                db.remove_entity(db.entities[ident], journal)
        elif kind == "dd" and isinstance(ident, int) and ident in db.dds:
            sets_of[ident] = set(db.dd_sets.get(ident, ()))
            db.remove_dd(db.dds[ident], journal)
        elif kind == "dds" and isinstance(ident, int) and ident in db.ddss:
            db.remove_dds(db.ddss[ident], journal)
    order = {"entity": 0, "dd": 1, "dds": 2}
    for (kind, ident), record in sorted(items, key=lambda item: order.get(item[0][0], 3)):
        if record is None:
            continue
        if kind == "entity":
            _restore_entity(db, record, journal)
        elif kind == "dd":
            dd = _restore_dd(db, record, journal)
            for dds_id in sets_of.get(dd.id, ()):
                if dds_id in db.ddss:
                    db.add_dds_member(db.ddss[dds_id], dd, journal)
        elif kind == "dds":
            _restore_dds(db, record, journal)
        elif (kind, ident) == COUNTERS:
            db.counters = {
                name: max(db.counters.get(name, 1), value) for name, value in record.items()
            }
    return eids


def _restore_dd(db: Database, record: Record, journal: Journal) -> DiscoveryDomain:
    dd = db.add_dd(record["id"], record["name"], record["features"], journal)
    for name, index in record["nodes"]:
        node = db.nodes.get(name)
        db.add_dd_node(dd, node.name if node else name, journal, index)
    for address, port, udp, index in record["portals"]:
        db.add_dd_portal(dd, portal_key(_ip(address), _port([port, udp])), journal, index)
    return dd


def _restore_dds(db: Database, record: Record, journal: Journal) -> None:
    dds = db.add_dds(record["id"], record["name"], record["status"], journal)
    for dd_id in record["dds"]:
        if dd_id in db.dds:
            db.add_dds_member(dds, db.dds[dd_id], journal)


class _Unrecorded(Journal):
    """Restoring is not a change anyone needs to hear about: no change is recorded."""

    __slots__ = ()

    def record(self, event: int, obj: RegistryObject, names: frozenset[str]) -> None:
        pass

    def member(
        self,
        event: int,
        domain: DiscoveryDomain | DiscoveryDomainSet,
        member_type: ObjectType,
        key: ObjectKey,
        names: frozenset[str],
    ) -> None:
        pass


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
    _set_fields(entity, record, _ENTITY_FIELDS)
    keys: dict[tuple[str, tuple[int, bool]], PortalKey] = {}  # as its PGs name them
    for item in record["portals"]:
        address, port = _ip(item["ip"]), _port(item["port"])
        key = keys[item["ip"], tuple(item["port"])] = portal_key(address, port)
        # Records saved before ::a.b.c.d and ::ffff:a.b.c.d were one portal may hold it
        # twice (in one entity or two): the first loaded keeps it, with its PGs.
        if key not in db.portals:
            added = db.add_portal(entity, address, port, journal, item["index"])
            _set_fields(added, item, _PORTAL_FIELDS)
    for item in record["nodes"]:
        node = db.add_node(entity, item["name"], journal, item["index"])
        _set_fields(node, item, _NODE_FIELDS)
        db.refresh_subscription(node)
    for item in record["pgs"]:
        ip, port_value = item["portal_ip"], item["portal_port"]
        key = keys.get((ip, tuple(port_value))) or portal_key(_ip(ip), _port(port_value))
        name = item["node_name"]
        member = entity.nodes.get(name)
        portal = db.portals.get(key)
        if (name, *key) not in db.pgs and (portal is None or portal.entity is entity):
            name = member.name if member else name  # one string for both, as registration has
            db.set_pg(entity, name, key, item.get("tag"), journal, item["index"])


def _fields(obj: RegistryObject) -> Record:
    record = {}
    for f in STORED[object_type(obj)]:
        if f.name and (value := getattr(obj, f.name)) is not None:
            record[f.name] = _encode(f.tag, value)
    return record


def _set_fields(obj: RegistryObject, record: Record, fields: "_Restorable") -> None:
    """Restore the fields an object's constructor did not already set."""
    if len(record) > fields.constructed:  # else the record holds only what that set
        decoders = fields.decoders
        for name in decoders.keys() & record.keys():
            raw = record[name]
            if raw is not None:
                decode = decoders[name]
                setattr(obj, name, raw if decode is None else decode(raw))
    for name in fields.defaulted:  # absent or null in the record: no value, not the default
        if record.get(name) is None:
            setattr(obj, name, None)


def _encode(tag: int, value: AttrValue) -> Any:
    kind = spec_for(tag).kind
    if kind is ValueKind.IP_ADDRESS:
        return str(value)
    if isinstance(value, PortNumber):
        return [value.port, value.udp]
    if isinstance(value, bytes):
        return value.hex()
    return value


def _ip(raw: str) -> IPAddress:
    try:  # seven times faster than parsing the text in ipaddress, for the usual IPv4
        return IPv4Address(inet_pton(AF_INET, raw))
    except OSError:
        return ip_address(raw)


# One PortNumber per value: 100,000 portals on 3260 share one object, as registration's
# decoded attributes do.
_PORTS: dict[tuple[int, bool], PortNumber] = {}


def _port(raw: list[Any]) -> PortNumber:
    value = (int(raw[0]), bool(raw[1]))
    port = _PORTS.get(value)
    if port is None:
        port = _PORTS[value] = PortNumber(*value)
    return port


_DECODERS: dict[ValueKind, Callable[[Any], AttrValue]] = {
    ValueKind.IP_ADDRESS: _ip,
    ValueKind.PORT: _port,
    ValueKind.OPAQUE: bytes.fromhex,
}


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


@dataclass(frozen=True, slots=True)
class _Restorable:
    """How _set_fields restores the objects of one type."""

    decoders: dict[str, Callable[[Any], AttrValue] | None]  # None: the JSON value is it
    defaulted: tuple[str, ...]  # constructor default is a value: absent means None
    constructed: int  # record entries that are not fields: keys, index, children


def _restorable(cls: type, children: int) -> _Restorable:
    kind = OBJECT_TYPES[cls]
    defaults = {f.name: f.default for f in dataclass_fields(cls)}
    names = [(f.name, f.tag) for f in STORED[kind] if f.name]
    restored = [(name, tag) for name, tag in names if FIELDS[tag].role not in _CONSTRUCTED]
    return _Restorable(
        {name: _DECODERS.get(spec_for(tag).kind) for name, tag in restored},
        tuple(name for name, _ in restored if defaults[name] not in (None, MISSING)),
        len(names) - len(restored) + children,
    )


_CONSTRUCTED = (Role.KEY, Role.INDEX)
_ENTITY_FIELDS = _restorable(NetworkEntity, children=3)  # portals, nodes, pgs
_PORTAL_FIELDS = _restorable(Portal, children=0)
_NODE_FIELDS = _restorable(StorageNode, children=0)
