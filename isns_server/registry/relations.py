"""Which objects a query returns alongside the one its Message Key matched (5.6.5.2).

"Each attribute type in the Operating Attributes indicates an attribute from the object
matching the Message Key, or from other objects in the same Entity having a
relationship to the object": nodes and portals are related through a PG with a non-NULL
PGT (3.4), DDs to their members, DD sets to their DDs. Every answer is filtered by the
source's Scope.
"""

from collections.abc import Callable, Sequence
from typing import Any

from .objects import (
    DiscoveryDomain,
    DiscoveryDomainSet,
    NetworkEntity,
    ObjectType,
    Portal,
    PortalGroup,
    RegistryObject,
    StorageNode,
    object_type,
)
from .zoning import Scope

E, P, N, G = ObjectType.ENTITY, ObjectType.PORTAL, ObjectType.NODE, ObjectType.PORTAL_GROUP
D, S = ObjectType.DD, ObjectType.DDS


def _entity_nodes(scope: Scope, entity: NetworkEntity) -> list[StorageNode]:
    """The nodes of `entity` the source sees."""
    return [node for node in entity.nodes.values() if scope.sees_node(node)]


def _portal_access(scope: Scope, portal: Portal) -> list[tuple[StorageNode, PortalGroup]]:
    """(node, PG) pairs of the visible nodes reachable through `portal`."""
    pairs = []
    for node in _entity_nodes(scope, portal.entity):
        pg = scope.db.pgs.get((node.name, *portal.key))
        if pg is not None and pg.tag is not None and portal in scope.portals_of(node):
            pairs.append((node, pg))
    pairs.sort(key=lambda pair: pair[1].index)
    return pairs


def _entity_portals(scope: Scope, entity: NetworkEntity) -> list[RegistryObject]:
    if scope.is_control or entity is scope.entity:
        return list(entity.portals.values())
    seen = {id(p) for node in _entity_nodes(scope, entity) for p in scope.portals_of(node)}
    return [p for p in entity.portals.values() if id(p) in seen]


def _entity_pgs(scope: Scope, entity: NetworkEntity) -> list[RegistryObject]:
    if scope.is_control or entity is scope.entity:
        return list(entity.pgs.values())
    return [pg for node in _entity_nodes(scope, entity) for _, pg in scope.access(node)]


def _pg_node(scope: Scope, pg: PortalGroup) -> list[RegistryObject]:
    node = pg.entity.nodes.get(pg.node_name)
    return [node] if node is not None and scope.sees_node(node) else []


def _pg_portal(scope: Scope, pg: PortalGroup) -> list[RegistryObject]:
    portal = pg.entity.portals.get(pg.portal_key)
    return [portal] if portal is not None and scope.sees(portal) else []


def _node_dds(scope: Scope, node: StorageNode) -> list[RegistryObject]:
    db = scope.db
    return [db.dds[d] for d in sorted(db.node_domains.get(node.name, ())) if scope.sees(db.dds[d])]


def _portal_dds(scope: Scope, portal: Portal) -> list[RegistryObject]:
    db = scope.db
    ids = sorted(db.portal_domains.get(portal.key, ()))
    return [db.dds[d] for d in ids if scope.sees(db.dds[d])]


def _dd_sets(scope: Scope, dd: DiscoveryDomain) -> list[RegistryObject]:
    db = scope.db
    ids = sorted(db.dd_sets.get(dd.id, ()))
    return [db.ddss[s] for s in ids if scope.sees(db.ddss[s])]


def _dd_nodes(scope: Scope, dd: DiscoveryDomain) -> list[RegistryObject]:
    nodes = (scope.db.nodes.get(name) for name in dd.nodes)
    return [n for n in nodes if n is not None and scope.sees_node(n)]


def _dd_portals(scope: Scope, dd: DiscoveryDomain) -> list[RegistryObject]:
    portals = (scope.db.portals.get(key) for key in dd.portals)
    return [p for p in portals if p is not None and scope.sees(p)]


def _dds_dds(scope: Scope, dds: DiscoveryDomainSet) -> list[RegistryObject]:
    db = scope.db
    return [db.dds[d] for d in sorted(dds.dds) if scope.sees(db.dds[d])]


def _through_nodes(kind: ObjectType) -> Callable[[Scope, NetworkEntity], list[RegistryObject]]:
    """An entity's DDs or DD sets: those of its nodes."""

    def related_to_entity(scope: Scope, entity: NetworkEntity) -> list[RegistryObject]:
        found: dict[int, RegistryObject] = {}
        for node in _entity_nodes(scope, entity):
            found.update((id(obj), obj) for obj in related(scope, node, kind))
        return list(found.values())

    return related_to_entity


def _node_sets(scope: Scope, node: StorageNode) -> list[RegistryObject]:
    found: dict[int, RegistryObject] = {}
    for dd in _node_dds(scope, node):
        assert isinstance(dd, DiscoveryDomain)
        found.update((id(s), s) for s in _dd_sets(scope, dd))
    return list(found.values())


# (from, to) -> the related objects; each function takes an object of the "from" type.
Relation = Callable[[Scope, Any], Sequence[RegistryObject]]
_RELATIONS: dict[tuple[ObjectType, ObjectType], Relation] = {
    (E, N): _entity_nodes,
    (E, P): _entity_portals,
    (E, G): _entity_pgs,
    (E, D): _through_nodes(D),
    (E, S): _through_nodes(S),
    (N, E): lambda scope, node: [node.entity],
    (N, P): lambda scope, node: [p for p, _ in scope.access(node)],
    (N, G): lambda scope, node: [pg for _, pg in scope.access(node)],
    (N, D): _node_dds,
    (N, S): _node_sets,
    (P, E): lambda scope, portal: [portal.entity],
    (P, N): lambda scope, portal: [n for n, _ in _portal_access(scope, portal)],
    (P, G): lambda scope, portal: [pg for _, pg in _portal_access(scope, portal)],
    (P, D): _portal_dds,
    (G, E): lambda scope, pg: [pg.entity],
    (G, N): _pg_node,
    (G, P): _pg_portal,
    (D, N): _dd_nodes,
    (D, P): _dd_portals,
    (D, S): _dd_sets,
    (S, D): _dds_dds,
}


def related(scope: Scope, obj: RegistryObject, kind: ObjectType) -> Sequence[RegistryObject]:
    """The objects of `kind` related to `obj` (itself, when it is of that kind)."""
    own = object_type(obj)
    if own is kind:
        return (obj,)
    relation = _RELATIONS.get((own, kind))
    return relation(scope, obj) if relation else ()


def everything(scope: Scope, obj: RegistryObject) -> list[RegistryObject]:
    """What a query without Operating Attributes reports for a matched object (5.7.5.2:
    "all Operating Attributes"), laid out as open-isns does: the object's entity, the
    object, then its nodes and the portals and PGs that reach them."""
    out: list[RegistryObject] = []
    if isinstance(obj, Portal | StorageNode | PortalGroup):
        out.append(obj.entity)
    out.append(obj)
    listed: set[int] = set()
    if isinstance(obj, NetworkEntity):
        nodes = _entity_nodes(scope, obj)
        out += nodes
        for node in nodes:
            out += _access_pairs(scope, node, listed)
    elif isinstance(obj, StorageNode):
        out += _access_pairs(scope, obj, listed)
    elif isinstance(obj, Portal):
        for node, pg in _portal_access(scope, obj):
            if id(node) not in listed:
                listed.add(id(node))
                out.append(node)
            out.append(pg)
    return out


def _access_pairs(scope: Scope, node: StorageNode, listed: set[int]) -> list[RegistryObject]:
    """Each portal reaching `node` (once per answer) followed by its PG."""
    out: list[RegistryObject] = []
    for portal, pg in scope.access(node):
        if id(portal) not in listed:
            listed.add(id(portal))
            out.append(portal)
        out.append(pg)
    return out
