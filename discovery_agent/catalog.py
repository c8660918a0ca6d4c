"""What the agent knows of the iSNS registry: storage nodes and discovery domains as the
bridge last read them. Pure: the bridge fills it, `mirror.py` turns it into SLP services.

Only what RFC 4018's templates need is kept: a node's type, alias, management address
and the TCP portals that reach it (those with a non-NULL Portal Group Tag, RFC 4171
3.4); a DD's name, members and whether it zones (RFC 4171 6.11.1.3: a DD in no DD set,
or in an enabled one).
"""

from collections.abc import Iterable
from dataclasses import dataclass

from isns_server.isnsp.constants import NodeType
from isns_server.isnsp.messages import IPAddress


@dataclass(frozen=True, slots=True)
class Portal:
    address: IPAddress
    port: int
    group_tag: int


@dataclass(frozen=True, slots=True)
class Node:
    name: str  # as the registry normalises it (RFC 4171 5.6.2)
    node_type: NodeType
    entity: str = ""  # Entity Identifier
    alias: str | None = None
    management_address: IPAddress | None = None
    portals: tuple[Portal, ...] = ()

    @property
    def is_target(self) -> bool:
        return bool(self.node_type & NodeType.TARGET)


@dataclass(frozen=True, slots=True)
class Domain:
    id: int
    name: str
    members: frozenset[str]  # iSCSI names; members need not be registered
    sets: frozenset[int] = frozenset()  # the DD sets holding it
    enabled: bool = True


class Catalog:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.domains: dict[int, Domain] = {}
        self._member_of: dict[str, set[int]] = {}

    def put_node(self, node: Node) -> None:
        self.nodes[node.name] = node

    def remove_node(self, name: str) -> None:
        self.nodes.pop(name, None)

    def put_domain(self, domain: Domain) -> None:
        self.remove_domain(domain.id)
        self.domains[domain.id] = domain
        for name in domain.members:
            self._member_of.setdefault(name, set()).add(domain.id)

    def remove_domain(self, domain_id: int) -> None:
        old = self.domains.pop(domain_id, None)
        for name in old.members if old else ():
            ids = self._member_of[name]
            ids.discard(domain_id)
            if not ids:
                del self._member_of[name]

    def domains_of(self, name: str) -> list[Domain]:
        """The DDs naming `name` as a member, zoning or not, by DD ID."""
        return [self.domains[i] for i in sorted(self._member_of.get(name, ()))]

    def domains_in_set(self, set_id: int) -> list[int]:
        return [domain.id for domain in self.domains.values() if set_id in domain.sets]

    def neighbours(self, names: Iterable[str]) -> set[str]:
        """`names` and every member of a DD holding one of them: whose SLP view may change
        when those nodes change (auth-name lists a target's DD partners)."""
        found = set(names)
        for name in list(found):
            for domain in self.domains_of(name):
                found |= domain.members
        return found

    def access_names(self, target: str) -> tuple[str, ...] | None:
        """The initiators that share an enabled DD with `target` (RFC 4018 auth-name);
        None when the target is in no DD at all, so zoning does not restrict it.

        A member not registered (yet) counts: DD membership is by name. A registered
        member that is only a target does not."""
        domains = self.domains_of(target)
        if not domains:
            return None
        names: set[str] = set()
        for domain in domains:
            if domain.enabled:
                names |= domain.members
        names.discard(target)
        return tuple(sorted(name for name in names if self._may_initiate(name)))

    def scope_names(self) -> list[str]:
        """The names of the DDs that zone, which the agent serves as SLP scopes."""
        return sorted({d.name for d in self.domains.values() if d.enabled and d.name})

    def _may_initiate(self, name: str) -> bool:
        node = self.nodes.get(name)
        return node is None or bool(node.node_type & NodeType.INITIATOR)
