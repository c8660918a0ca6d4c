"""The registry's state: every object, indexed every way a message looks it up, and the
primitive operations that keep those indexes and the containment rules consistent.

Primitives never fail: handlers validate a whole message first, then apply it through
these, so a rejected message leaves no trace. Each primitive records what it did in the
message's Journal.
"""

from collections.abc import Iterable, Mapping
from typing import Any

from ..isnsp.constants import DDSetStatus, ScnBitmap
from ..isnsp.messages import IPAddress, PortNumber
from .indexblocks import IndexBlocks
from .objects import (
    DiscoveryDomain,
    DiscoveryDomainSet,
    NetworkEntity,
    ObjectType,
    OrderKey,
    PGKey,
    Portal,
    PortalGroup,
    PortalKey,
    RegistryObject,
    StorageNode,
    portal_address,
    portal_key,
)
from .outcome import COUNTERS, Journal
from .sortedkeys import SortedKeys

ADDED, UPDATED, REMOVED = ScnBitmap.OBJECT_ADDED, ScnBitmap.OBJECT_UPDATED, ScnBitmap.OBJECT_REMOVED
MEMBER_ADDED, MEMBER_REMOVED = ScnBitmap.DD_MEMBER_ADDED, ScnBitmap.DD_MEMBER_REMOVED

# Counters behind every server-assigned number; indexes are never reused (6.2.7 ff.).
COUNTER_NAMES = ("entity", "portal", "node", "pg", "dd", "dds", "eid")

_NO_NAMES: frozenset[str] = frozenset()
# The Database attributes holding each object type by key, and by index.
_TABLES = {
    ObjectType.ENTITY: "entities",
    ObjectType.PORTAL: "portals",
    ObjectType.NODE: "nodes",
    ObjectType.PORTAL_GROUP: "pgs",
    ObjectType.DD: "dds",
    ObjectType.DDS: "ddss",
}
_INDEXES = {
    ObjectType.ENTITY: "entity_index",
    ObjectType.PORTAL: "portal_index",
    ObjectType.NODE: "node_index",
    ObjectType.PORTAL_GROUP: "pg_index",
    ObjectType.DD: "dds",
    ObjectType.DDS: "ddss",
}


class Database:
    def __init__(self) -> None:
        self.entities: dict[str, NetworkEntity] = {}
        self.portals: dict[PortalKey, Portal] = {}
        self.nodes: dict[str, StorageNode] = {}
        self.pgs: dict[PGKey, PortalGroup] = {}
        self.dds: dict[int, DiscoveryDomain] = {}
        self.ddss: dict[int, DiscoveryDomainSet] = {}
        self.entity_index: dict[int, NetworkEntity] = {}
        self.portal_index: dict[int, Portal] = {}
        self.node_index: dict[int, StorageNode] = {}
        self.pg_index: dict[int, PortalGroup] = {}
        self.dd_names: dict[str, int] = {}
        self.dds_names: dict[str, int] = {}
        # Membership, registered or not (2.2.2: it outlives deregistration).
        self.node_domains: dict[str, set[int]] = {}
        self.portal_domains: dict[PortalKey, set[int]] = {}
        self.dd_sets: dict[int, set[int]] = {}
        # Indexes held for DD members that are not registered (5.6.5.9, 6.4.5).
        self.reserved_nodes: dict[str, int] = {}
        self.reserved_portals: dict[PortalKey, int] = {}
        # Registered nodes that are members of no DD: the default DD's members.
        self.undomained: dict[str, StorageNode] = {}
        # Registered nodes with an SCN Bitmap: those State Change Notifications go to.
        self.subscribers: dict[str, StorageNode] = {}
        self.counters: dict[str, int] = dict.fromkeys(COUNTER_NAMES, 1)
        # Servers sharing a store hand numbers out of blocks (indexblocks.py); None: the
        # counters themselves, each number written (a single server).
        self.blocks: IndexBlocks | None = None
        # DevGetNext orders (3.8): by key, and by index for index-keyed walks. A DD's and
        # a DD set's key is their ID, so they need no index order.
        self.order: dict[ObjectType, SortedKeys[Any]] = {t: SortedKeys() for t in ObjectType}
        self.index_order: dict[ObjectType, SortedKeys[int]] = {
            t: SortedKeys() for t in ObjectType if t not in (ObjectType.DD, ObjectType.DDS)
        }
        # Data derived per source (sorted visible keys), dropped on every change.
        self.scope_cache: dict[object, list[Any]] = {}

    # --- lookups ---------------------------------------------------------------------

    def table(self, kind: ObjectType) -> Mapping[Any, RegistryObject]:
        """Objects of `kind` by their order key (objects.order_key)."""
        table: Mapping[Any, RegistryObject] = getattr(self, _TABLES[kind])
        return table

    def by_index(self, kind: ObjectType) -> Mapping[int, RegistryObject]:
        """Objects of `kind` by index (DD and DD set: by ID)."""
        table: Mapping[int, RegistryObject] = getattr(self, _INDEXES[kind])
        return table

    def in_order(
        self, kind: ObjectType, after: OrderKey | None = None, by_index: bool = False
    ) -> Iterable[RegistryObject]:
        """Every object of `kind` whose key (index, when `by_index`) sorts after `after`,
        in that order (3.8)."""
        if by_index and kind in self.index_order:
            indexes = self.by_index(kind)
            return (indexes[i] for i in self.index_order[kind].after(after))  # type: ignore[arg-type]
        table = self.table(kind)
        return (table[key] for key in self.order[kind].after(after))

    def next_free(self, counter: str, used: Mapping[int, object] | None = None) -> int:
        """The value `counter` hands out next (the Next Index attributes, 6.2.8 ff.)."""
        value = (
            self.counters[counter]
            if self.blocks is None
            else self.blocks.peek(counter, self.counters)
        )
        while used is not None and value in used:
            value += 1
        return value

    def allocate_id(self, counter: str, used: Mapping[int, object], journal: Journal) -> int:
        """A DD or DD set ID: clients may pick their own, so skip the taken ones."""
        while True:
            value = self.allocate(counter, journal)
            if value not in used:
                return value

    def dd_active(self, dd_id: int) -> bool:
        """A DD is enabled when it is in an enabled DD set, or in no DD set at all.

        RFC 4171 3.6 disables DDs outside every enabled set, and a new DD is in no set
        (6.11.1.1); taken literally, a DD made with DDReg alone (as open-isns `isnsadm
        --dd-register` does; it cannot manage DD sets) would never zone anything. So a
        DD no set mentions counts as enabled; once placed in sets, their status rules.
        """
        sets = self.dd_sets.get(dd_id)
        return not sets or any(self.ddss[s].status & DDSetStatus.ENABLED for s in sets)

    def allocate(self, counter: str, journal: Journal) -> int:
        if self.blocks is not None:
            value, reserved = self.blocks.take(counter, self.counters)
            if reserved:
                journal.dirty.add(COUNTERS)
            return value
        value = self.counters[counter]
        self.counters[counter] = value + 1
        journal.dirty.add(COUNTERS)
        return value

    def new_eid(self, journal: Journal) -> str:
        """A unique server-assigned EID; these start with "isns:" (6.2.1)."""
        while True:
            eid = f"isns:{self.allocate('eid', journal):05d}"
            if eid not in self.entities:
                return eid

    # --- entities, portals, nodes, portal groups ---------------------------------------

    def add_entity(self, eid: str, journal: Journal, index: int | None = None) -> NetworkEntity:
        entity = NetworkEntity(eid, index or self.allocate("entity", journal))
        self.entities[eid] = entity
        self.entity_index[entity.index] = entity
        self.order[ObjectType.ENTITY].add(eid)
        self.index_order[ObjectType.ENTITY].add(entity.index)
        journal.record(ADDED, entity, _NO_NAMES)
        return entity

    def add_portal(
        self,
        entity: NetworkEntity,
        ip: IPAddress,
        port: PortNumber,
        journal: Journal,
        index: int | None = None,
    ) -> Portal:
        key = portal_key(ip, port)
        reserved = self.reserved_portals.pop(key, None)
        index = index or reserved or self.allocate("portal", journal)
        portal = Portal(ip, port, index, entity)
        entity.portals[key] = portal
        self.portals[key] = portal
        self.portal_index[index] = portal
        self.order[ObjectType.PORTAL].add(key)
        self.index_order[ObjectType.PORTAL].add(index)
        journal.record(ADDED, portal, frozenset(entity.nodes))
        return portal

    def add_node(
        self, entity: NetworkEntity, name: str, journal: Journal, index: int | None = None
    ) -> StorageNode:
        reserved = self.reserved_nodes.pop(name, None)
        index = index or reserved or self.allocate("node", journal)
        node = StorageNode(name, index, entity)
        entity.nodes[name] = node
        self.nodes[name] = node
        self.node_index[index] = node
        self.order[ObjectType.NODE].add(name)
        self.index_order[ObjectType.NODE].add(index)
        if name not in self.node_domains:
            self.undomained[name] = node
        journal.record(ADDED, node, frozenset((name,)))
        return node

    def refresh_subscription(self, node: StorageNode) -> None:
        """Index `node` as an SCN subscriber, or not, after its SCN Bitmap was written."""
        if node.scn_bitmap:
            self.subscribers[node.name] = node
        else:
            self.subscribers.pop(node.name, None)

    def set_pg(
        self,
        entity: NetworkEntity,
        name: str,
        portal: PortalKey,
        tag: int | None,
        journal: Journal,
        index: int | None = None,
    ) -> PortalGroup:
        """Register the PG of (node `name`, `portal`) in `entity` with PGT `tag`."""
        key = (name, *portal)
        pg = self.pgs.get(key)
        if pg is None:
            registered = self.portals.get(portal)
            ip, port = (registered.ip, registered.port) if registered else portal_address(portal)
            index = index or self.allocate("pg", journal)
            pg = PortalGroup(name, ip, port, index, entity, tag)
            entity.pgs[key] = pg
            self.pgs[key] = pg
            self.pg_index[pg.index] = pg
            self.order[ObjectType.PORTAL_GROUP].add(key)
            self.index_order[ObjectType.PORTAL_GROUP].add(index)
            journal.record(ADDED, pg, frozenset((name,)))
        elif pg.tag != tag:
            pg.tag = tag
            journal.record(UPDATED, pg, frozenset((name,)))
        return pg

    def remove_pg(self, pg: PortalGroup, journal: Journal) -> None:
        key = pg.key
        del pg.entity.pgs[key]
        del self.pgs[key]
        del self.pg_index[pg.index]
        self.order[ObjectType.PORTAL_GROUP].remove(key)
        self.index_order[ObjectType.PORTAL_GROUP].remove(pg.index)
        journal.record(REMOVED, pg, frozenset((pg.node_name,)))

    def remove_node(self, node: StorageNode, journal: Journal) -> None:
        """Deregister a node; its PGs go too unless their portal is still registered, and
        a DD member keeps its index for when it comes back (5.6.5.4, 6.4.5)."""
        entity, name = node.entity, node.name
        del entity.nodes[name]
        del self.nodes[name]
        del self.node_index[node.index]
        self.order[ObjectType.NODE].remove(name)
        self.index_order[ObjectType.NODE].remove(node.index)
        self.undomained.pop(name, None)
        self.subscribers.pop(name, None)
        if name in self.node_domains:
            self.reserved_nodes[name] = node.index
        for pg in [pg for pg in entity.pgs.values() if pg.node_name == name]:
            if pg.portal_key not in entity.portals:
                self.remove_pg(pg, journal)
        journal.record(REMOVED, node, frozenset((name,)))

    def remove_portal(self, portal: Portal, journal: Journal) -> None:
        """Deregister a portal; the mirror image of remove_node."""
        entity, key = portal.entity, portal.key
        del entity.portals[key]
        del self.portals[key]
        del self.portal_index[portal.index]
        self.order[ObjectType.PORTAL].remove(key)
        self.index_order[ObjectType.PORTAL].remove(portal.index)
        if key in self.portal_domains:
            self.reserved_portals[key] = portal.index
        for pg in [pg for pg in entity.pgs.values() if pg.portal_key == key]:
            if pg.node_name not in entity.nodes:
                self.remove_pg(pg, journal)
        journal.record(REMOVED, portal, frozenset(entity.nodes))

    def remove_entity(self, entity: NetworkEntity, journal: Journal) -> None:
        """Deregister an entity and everything it contains (5.6.5.4)."""
        names = frozenset(entity.nodes)
        for node in list(entity.nodes.values()):
            self.remove_node(node, journal)
        for portal in list(entity.portals.values()):
            self.remove_portal(portal, journal)
        for pg in list(entity.pgs.values()):
            self.remove_pg(pg, journal)
        del self.entities[entity.eid]
        del self.entity_index[entity.index]
        self.order[ObjectType.ENTITY].remove(entity.eid)
        self.index_order[ObjectType.ENTITY].remove(entity.index)
        journal.record(REMOVED, entity, names)

    # --- discovery domains and DD sets ---------------------------------------------------

    def dd_members_registered(self, dd: DiscoveryDomain) -> frozenset[str]:
        """Members of `dd` that are registered nodes."""
        return frozenset(name for name in dd.nodes if name in self.nodes)

    def add_dd(self, dd_id: int, name: str, features: int, journal: Journal) -> DiscoveryDomain:
        dd = DiscoveryDomain(dd_id, name, features)
        self.dds[dd_id] = dd
        self.dd_names[name] = dd_id
        self.order[ObjectType.DD].add(dd_id)
        journal.record(ADDED, dd, _NO_NAMES)
        return dd

    def rename_dd(self, dd: DiscoveryDomain, name: str) -> None:
        del self.dd_names[dd.name]
        dd.name = name
        self.dd_names[name] = dd.id

    def add_dd_node(
        self, dd: DiscoveryDomain, name: str, journal: Journal, index: int | None = None
    ) -> None:
        """Make node `name` a member of `dd`, with its index: allocated now when the node
        is neither registered nor a member elsewhere (5.6.5.9)."""
        if name in dd.nodes:
            return
        node = self.nodes.get(name)
        if node is not None:
            index = node.index
        else:
            index = index or self.reserved_nodes.get(name) or self.allocate("node", journal)
            self.reserved_nodes[name] = index
        dd.nodes[name] = index
        self.node_domains.setdefault(name, set()).add(dd.id)
        self.undomained.pop(name, None)
        journal.member(MEMBER_ADDED, dd, ObjectType.NODE, (name,), frozenset((name,)))

    def remove_dd_node(self, dd: DiscoveryDomain, name: str, journal: Journal) -> None:
        del dd.nodes[name]
        domains = self.node_domains[name]
        domains.discard(dd.id)
        if not domains:
            del self.node_domains[name]
            node = self.nodes.get(name)
            if node is not None:
                self.undomained[name] = node
            else:
                self.reserved_nodes.pop(name, None)  # index free for good (5.6.5.10)
        journal.member(MEMBER_REMOVED, dd, ObjectType.NODE, (name,), frozenset((name,)))

    def add_dd_portal(
        self, dd: DiscoveryDomain, key: PortalKey, journal: Journal, index: int | None = None
    ) -> None:
        """Make the portal `key` a member of `dd`; its index as for add_dd_node."""
        if key in dd.portals:
            return
        portal = self.portals.get(key)
        if portal is not None:
            index = portal.index
        else:
            index = index or self.reserved_portals.get(key) or self.allocate("portal", journal)
            self.reserved_portals[key] = index
        dd.portals[key] = index
        self.portal_domains.setdefault(key, set()).add(dd.id)
        journal.member(
            MEMBER_ADDED, dd, ObjectType.PORTAL, portal_address(key), self._portal_names(key)
        )

    def remove_dd_portal(self, dd: DiscoveryDomain, key: PortalKey, journal: Journal) -> None:
        del dd.portals[key]
        domains = self.portal_domains[key]
        domains.discard(dd.id)
        if not domains:
            del self.portal_domains[key]
            if key not in self.portals:
                self.reserved_portals.pop(key, None)
        journal.member(
            MEMBER_REMOVED, dd, ObjectType.PORTAL, portal_address(key), self._portal_names(key)
        )

    def _portal_names(self, key: PortalKey) -> frozenset[str]:
        portal = self.portals.get(key)
        return frozenset(portal.entity.nodes) if portal is not None else _NO_NAMES

    def remove_dd(self, dd: DiscoveryDomain, journal: Journal) -> None:
        """Remove a DD; its members stay registered, without this membership (5.6.5.10)."""
        names = self.dd_members_registered(dd)
        for name in list(dd.nodes):
            self.remove_dd_node(dd, name, journal)
        for key in list(dd.portals):
            self.remove_dd_portal(dd, key, journal)
        for dds_id in list(self.dd_sets.get(dd.id, ())):
            self.remove_dds_member(self.ddss[dds_id], dd, journal)
        del self.dds[dd.id]
        del self.dd_names[dd.name]
        self.order[ObjectType.DD].remove(dd.id)
        journal.record(REMOVED, dd, names)

    def add_dds(self, dds_id: int, name: str, status: int, journal: Journal) -> DiscoveryDomainSet:
        dds = DiscoveryDomainSet(dds_id, name, status)
        self.ddss[dds_id] = dds
        self.dds_names[name] = dds_id
        self.order[ObjectType.DDS].add(dds_id)
        journal.record(ADDED, dds, _NO_NAMES)
        return dds

    def rename_dds(self, dds: DiscoveryDomainSet, name: str) -> None:
        del self.dds_names[dds.name]
        dds.name = name
        self.dds_names[name] = dds.id

    def dds_members_registered(self, dds: DiscoveryDomainSet) -> frozenset[str]:
        """Registered nodes whose visibility a change to `dds` can alter."""
        return frozenset().union(*(self.dd_members_registered(self.dds[d]) for d in dds.dds))

    def add_dds_member(
        self, dds: DiscoveryDomainSet, dd: DiscoveryDomain, journal: Journal
    ) -> None:
        if dd.id in dds.dds:
            return
        dds.dds.add(dd.id)
        self.dd_sets.setdefault(dd.id, set()).add(dds.id)
        names = self.dd_members_registered(dd)
        journal.member(MEMBER_ADDED, dds, ObjectType.DD, (dd.id,), names)

    def remove_dds_member(
        self, dds: DiscoveryDomainSet, dd: DiscoveryDomain, journal: Journal
    ) -> None:
        dds.dds.discard(dd.id)
        sets = self.dd_sets[dd.id]
        sets.discard(dds.id)
        if not sets:
            del self.dd_sets[dd.id]
        names = self.dd_members_registered(dd)
        journal.member(MEMBER_REMOVED, dds, ObjectType.DD, (dd.id,), names)

    def remove_dds(self, dds: DiscoveryDomainSet, journal: Journal) -> None:
        """Remove a DD set; its DDs stay, without this membership (5.6.5.12)."""
        names = self.dds_members_registered(dds)
        for dd_id in list(dds.dds):
            self.remove_dds_member(dds, self.dds[dd_id], journal)
        del self.ddss[dds.id]
        del self.dds_names[dds.name]
        self.order[ObjectType.DDS].remove(dds.id)
        journal.record(REMOVED, dds, names)
