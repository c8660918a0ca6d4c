"""Discovery-domain zoning: what one Source node may see (RFC 4171 2.2.2, 3.6, 5.6.1).

The rule, in order:

1. A Control Node sees every object. Control Nodes are the names in
   `Policy.control_nodes` and registered nodes whose Node Type has the Control bit (only
   configured names may register that bit, 6.4.2).
2. Any other node sees the nodes it shares an enabled DD with (`Database.dd_active`:
   a DD in at least one enabled DD set, or in none), itself and the rest of its own
   entity. With `Policy.default_dd`, nodes that are members of no DD at all also see
   each other: that is the "default DD" of 2.2.2, holding whatever nobody zoned.
3. Through a visible node it sees the node's entity; the entity's portals, restricted
   per DD as 2.2.2 says (a DD that names some of the entity's portals reports only
   those; otherwise all of them); and the PGs between them.

Everything here costs O(size of the answer): member lists of the source's own DDs, the
default DD's member list, one entity's portals, never a scan of the registry.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from ..isnsp.constants import NodeType
from ..isnsp.messages import IPAddress
from .database import Database
from .objects import (
    DiscoveryDomain,
    NetworkEntity,
    ObjectType,
    Portal,
    PortalGroup,
    PortalKey,
    RegistryObject,
    StorageNode,
    order_key,
)
from .policy import Policy


def is_control_node(policy: Policy, name: str, node: StorageNode | None) -> bool:
    """Rule 1: a configured Control Node, or registered node `node` of the Control type."""
    return name in policy.control_nodes or (
        node is not None and bool((node.node_type or 0) & NodeType.CONTROL)
    )


class Scope:
    """What the Source node `name` may see and do. `control_network`: the request came
    from `Policy.control_networks` (or from within the process); from elsewhere a Control
    Node has no control rights and sees as any other node does."""

    __slots__ = (
        "control_network", "db", "domains", "entity", "in_default", "is_control", "name", "node",
    )  # fmt: skip

    def __init__(
        self, db: Database, policy: Policy, name: str, control_network: bool = True
    ) -> None:
        self.db = db
        self.name = name
        self.node = db.nodes.get(name)
        self.entity: NetworkEntity | None = self.node.entity if self.node else None
        self.control_network = control_network
        self.is_control = control_network and is_control_node(policy, name, self.node)
        member_of = db.node_domains.get(name)
        # The source's enabled DDs, and whether it sits in the default DD.
        self.domains = (
            frozenset(d for d in member_of if db.dd_active(d)) if member_of else frozenset()
        )
        self.in_default = policy.default_dd and not member_of

    # --- single objects --------------------------------------------------------------

    def sees_node(self, node: StorageNode) -> bool:
        if self.is_control or node.entity is self.entity:
            return True
        domains = self.db.node_domains.get(node.name)
        if domains is None:
            return self.in_default
        return not self.domains.isdisjoint(domains)

    def portals_of(self, node: StorageNode) -> list[Portal]:
        """The portals of a visible node's entity that this source is told about (2.2.2)."""
        entity = node.entity
        if self.is_control or entity is self.entity:
            return list(entity.portals.values())
        linking = self.domains.intersection(self.db.node_domains.get(node.name, ()))
        chosen: set[PortalKey] = set()
        for dd_id in linking:
            named = [key for key in self.db.dds[dd_id].portals if key in entity.portals]
            if not named:
                return list(entity.portals.values())
            chosen.update(named)
        if not linking:  # seen through the default DD: no portal restriction
            return list(entity.portals.values())
        return [portal for key, portal in entity.portals.items() if key in chosen]

    def access(self, node: StorageNode) -> list[tuple[Portal, PortalGroup]]:
        """(portal, PG) pairs through which `node` is reachable: a non-NULL PGT (3.4),
        in PG registration order."""
        pairs = []
        for portal in self.portals_of(node):
            pg = self.db.pgs.get((node.name, *portal.key))
            if pg is not None and pg.tag is not None:
                pairs.append((portal, pg))
        pairs.sort(key=lambda pair: pair[1].index)
        return pairs

    def sees(self, obj: RegistryObject) -> bool:
        if self.is_control:
            return True
        if isinstance(obj, StorageNode):
            return self.sees_node(obj)
        if isinstance(obj, NetworkEntity):
            return obj is self.entity or any(self.sees_node(n) for n in obj.nodes.values())
        if isinstance(obj, Portal):
            return obj.entity is self.entity or any(
                obj in self.portals_of(n) for n in obj.entity.nodes.values() if self.sees_node(n)
            )
        if isinstance(obj, PortalGroup):
            node = self.db.nodes.get(obj.node_name)
            return obj.entity is self.entity or (
                node is not None
                and node.entity is obj.entity
                and self.sees_node(node)
                and any(p.key == obj.portal_key for p in self.portals_of(node))
            )
        if isinstance(obj, DiscoveryDomain):
            return obj.id in self.db.node_domains.get(self.name, ())
        return any(d in self.db.node_domains.get(self.name, ()) for d in obj.dds)

    # --- everything of one kind ------------------------------------------------------

    def visible(self, kind: ObjectType) -> Iterable[RegistryObject]:
        """Every object of `kind` this source sees, in key order (3.8)."""
        if self.is_control:
            return self.db.in_order(kind)
        found: dict[object, RegistryObject] = {}
        if kind is ObjectType.DD or kind is ObjectType.DDS:
            for dd_id in self.db.node_domains.get(self.name, ()):
                dd = self.db.dds[dd_id]
                if kind is ObjectType.DD:
                    found[dd.id] = dd
                else:
                    found.update((s, self.db.ddss[s]) for s in self.db.dd_sets.get(dd_id, ()))
        else:
            for node in self.nodes():
                for obj in self._objects_through(node, kind):
                    found[order_key(obj)] = obj
        return [found[key] for key in sorted(found)]  # type: ignore[type-var]

    def nodes(self) -> list[StorageNode]:
        """The registered nodes this (non-control) source sees, unordered."""
        found: dict[str, StorageNode] = dict(self.entity.nodes) if self.entity else {}
        for dd_id in self.domains:
            for name in self.db.dds[dd_id].nodes:
                node = self.db.nodes.get(name)
                if node is not None:
                    found[name] = node
        if self.in_default:
            found.update(self.db.undomained)
        return list(found.values())

    def _objects_through(self, node: StorageNode, kind: ObjectType) -> list[RegistryObject]:
        if kind is ObjectType.NODE:
            return [node]
        if kind is ObjectType.ENTITY:
            return [node.entity]
        if kind is ObjectType.PORTAL:
            return list(self.portals_of(node))
        return [pg for _, pg in self.access(node)]


@dataclass(frozen=True, slots=True)
class TargetPortal:
    address: IPAddress
    port: int
    group_tag: int


@dataclass(frozen=True, slots=True)
class VisibleTarget:
    """A target an initiator may discover, with the TCP portals that reach it (with their
    Portal Group Tag, as SendTargets reports them); `portals` may be empty."""

    name: str
    alias: str | None
    portals: tuple[TargetPortal, ...]


def visible_targets(
    db: Database, policy: Policy, initiator: str, control_network: bool = True
) -> list[VisibleTarget]:
    """The targets `initiator` may discover, by name order; the initiator need not be
    registered (DD membership is by name). `control_network`: as for `Scope`."""
    scope = Scope(db, policy, initiator, control_network)
    nodes = scope.visible(ObjectType.NODE)
    targets = []
    for node in nodes:
        assert isinstance(node, StorageNode)
        if not (node.node_type or 0) & NodeType.TARGET or node.name == initiator:
            continue
        portals = tuple(
            TargetPortal(p.ip, p.port.port, pg.tag)
            for p, pg in scope.access(node)
            if not p.port.udp and pg.tag is not None
        )
        targets.append(VisibleTarget(node.name, node.alias, portals))
    return targets
