"""The iSNS requests the bridge sends and how their answers read (RFC 4171 5.6.5, 5.7.5).

Pure: requests are values for `IsnsClient.call`, answers are parsed into the catalog's
records. An answer of No Such Entry means the object is gone; any other failure raises
`RegistryRefusal`, worded for the administrator; an answer that makes no sense raises
`IsnsClientError`, as a broken connection does.
"""

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address
from typing import cast

from isns_server.client import IsnsClientError
from isns_server.isnsp.constants import (
    DDSetStatus,
    EntityProtocol,
    FunctionId,
    NodeType,
    ScnBitmap,
    Status,
    Tag,
)
from isns_server.isnsp.messages import (
    Attribute,
    AttrValue,
    IPAddress,
    Message,
    PortNumber,
    unwrap_ipv4,
)
from isns_server.netaddr import parse_ip

from .catalog import Domain, Node, Portal
from .slp.agent import TargetDeregistration, TargetRegistration

SLP_ENTITY_PREFIX = "slp-sa:"  # entities registered for SLP service agents

# Everything a Control Node may hear about (RFC 4171 6.4.4).
MANAGEMENT_SCNS = (
    ScnBitmap.MANAGEMENT_REGISTRATION
    | ScnBitmap.OBJECT_ADDED
    | ScnBitmap.OBJECT_UPDATED
    | ScnBitmap.OBJECT_REMOVED
    | ScnBitmap.DD_MEMBER_ADDED
    | ScnBitmap.DD_MEMBER_REMOVED
)
_NODE_TAGS = (Tag.ISCSI_NAME, Tag.ISCSI_NODE_TYPE, Tag.ISCSI_ALIAS)
_ENTITY_TAGS = (Tag.ENTITY_IDENTIFIER, Tag.MGMT_IP_ADDRESS)
_PG_TAGS = (Tag.PG_PORTAL_IP_ADDR, Tag.PG_PORTAL_TCP_UDP_PORT, Tag.PG_TAG)


@dataclass(frozen=True, slots=True)
class Request:
    """One call of `IsnsClient.call`."""

    function: FunctionId
    source: Attribute
    keys: tuple[Attribute, ...] = ()
    operating: tuple[Attribute, ...] = ()
    replace: bool = False


class RegistryRefusal(Exception):
    """The iSNS server answered a request with a failure status."""

    def __init__(self, what: str, status: Status | int | None) -> None:
        super().__init__(f"the iSNS server refused {what}: {status_name(status)}")
        self.status = status


def status_name(status: Status | int | None) -> str:
    return status.name if isinstance(status, Status) else f"status {status}"


def _source(name: str) -> Attribute:
    return Attribute(Tag.ISCSI_NAME, name)


def _found(answer: Message, what: str) -> bool:
    """True for a successful answer, False for No Such Entry; raises for the rest."""
    if answer.status == Status.SUCCESSFUL:
        return True
    if answer.status == Status.NO_SUCH_ENTRY:
        return False
    raise RegistryRefusal(what, answer.status)


def _operating(answer: Message) -> tuple[Attribute, ...]:
    return answer.split()[2]


def _first(attributes: tuple[Attribute, ...], tag: int) -> AttrValue:
    return next((a.value for a in attributes if a.tag == tag), None)


def _ip(value: AttrValue) -> IPAddress | None:
    """An address attribute's value, with open-isns' ::a.b.c.d read as the IPv4 it means."""
    return unwrap_ipv4(value) if isinstance(value, IPv4Address | IPv6Address) else None


# --- the agent's own registration ------------------------------------------------------


def control_node_registration(name: str, address: IPAddress, scn_port: int) -> Request:
    """The agent as a Control Node in an entity named after it, with one portal whose SCN
    Port takes the notifications (5.6.5.5 refuses an SCNReg without one). Replace drops
    a portal left by an earlier run that listened elsewhere."""
    port = PortNumber(scn_port)
    return Request(
        FunctionId.DEV_ATTR_REG,
        _source(name),
        keys=(Attribute(Tag.ENTITY_IDENTIFIER, name),),
        operating=(
            Attribute(Tag.ENTITY_IDENTIFIER, name),
            Attribute(Tag.ENTITY_PROTOCOL, int(EntityProtocol.ISCSI)),
            Attribute(Tag.PORTAL_IP_ADDRESS, address),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, port),
            Attribute(Tag.SCN_PORT, port),
            Attribute(Tag.ISCSI_NAME, name),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.CONTROL)),
        ),
        replace=True,
    )


def scn_registration(name: str) -> Request:
    """A management SCN registration (5.6.5.5): every change in the registry."""
    return Request(
        FunctionId.SCN_REG,
        _source(name),
        keys=(_source(name),),
        operating=(Attribute(Tag.ISCSI_SCN_BITMAP, int(MANAGEMENT_SCNS)),),
    )


def keepalive(name: str) -> Request:
    """Any request refreshes the source's entity (6.2.6); this one also reads the
    Registration Period the server holds us to."""
    return Request(
        FunctionId.DEV_ATTR_QRY,
        _source(name),
        keys=(Attribute(Tag.ENTITY_IDENTIFIER, name),),
        operating=(Attribute(Tag.REGISTRATION_PERIOD),),
    )


def registration_period(answer: Message) -> int | None:
    """The period from a keepalive answer; None when the server no longer knows us."""
    if answer.status in (Status.SOURCE_UNKNOWN, Status.NO_SUCH_ENTRY):
        return None
    _found(answer, "the agent's own entity query")
    period = _first(_operating(answer), Tag.REGISTRATION_PERIOD)
    return period if isinstance(period, int) else 0


def deregistration(name: str) -> Request:
    return Request(
        FunctionId.DEV_DEREG, _source(name), operating=(Attribute(Tag.ENTITY_IDENTIFIER, name),)
    )


# --- walking the registry ----------------------------------------------------------------


def node_walk(name: str, after: str | None) -> Request:
    """DevGetNext over iSCSI names (5.6.5.3), with each node's type."""
    return Request(
        FunctionId.DEV_GET_NEXT,
        _source(name),
        keys=(Attribute(Tag.ISCSI_NAME, after),),
        operating=(Attribute(Tag.ISCSI_NODE_TYPE),),
    )


def walked_node(answer: Message) -> tuple[str, NodeType] | None:
    """The next node's name and type; None at the end of the walk."""
    if not _found(answer, "the node walk (DevGetNext)"):
        return None
    _, keys, operating = answer.split()
    name = _first(keys, Tag.ISCSI_NAME)
    node_type = _first(operating, Tag.ISCSI_NODE_TYPE)
    if not isinstance(name, str):
        raise IsnsClientError("a node walk (DevGetNext) answer without an iSCSI Name")
    return name, NodeType(node_type if isinstance(node_type, int) else 0)


def domain_walk(name: str, after: int | None) -> Request:
    """DevGetNext over DD IDs, each DD with all its attributes: every member, where a
    DevAttrQry answered by open-isns lists only the first value of a repeated tag."""
    return Request(FunctionId.DEV_GET_NEXT, _source(name), keys=(Attribute(Tag.DD_ID, after),))


def walked_domain(answer: Message) -> Domain | None:
    """The next DD (its DD sets still unknown); None at the end of the walk."""
    if not _found(answer, "the discovery domain walk (DevGetNext)"):
        return None
    domain_id = _first(answer.split()[1], Tag.DD_ID)
    if not isinstance(domain_id, int):
        raise IsnsClientError("a DD walk (DevGetNext) answer without a DD_ID")
    name = _first(_operating(answer), Tag.DD_SYMBOLIC_NAME)
    members = (
        a.value
        for a in _operating(answer)
        if a.tag == Tag.DD_MEMBER_ISCSI_NAME and isinstance(a.value, str)
    )
    return Domain(domain_id, name if isinstance(name, str) else "", frozenset(members))


def domain_read(name: str, domain_id: int) -> Request:
    """One DD, read as the walk's step after the ID before it."""
    return domain_walk(name, domain_id - 1)


def read_domain(domain_id: int, answer: Message) -> Domain | None:
    """The DD `domain_read` asked for; None when it is gone (the walk found a later one)."""
    domain = walked_domain(answer)
    return domain if domain is not None and domain.id == domain_id else None


# --- reading one object ------------------------------------------------------------------


def node_query(name: str, node: str) -> Request:
    """A node with its entity's EID and management address and the portal groups that
    reach it (5.6.5.2: related objects' attributes follow the node's)."""
    return Request(
        FunctionId.DEV_ATTR_QRY,
        _source(name),
        keys=(Attribute(Tag.ISCSI_NAME, node),),
        operating=tuple(Attribute(tag) for tag in (*_NODE_TAGS, *_ENTITY_TAGS, *_PG_TAGS)),
    )


def queried_node(node: str, answer: Message) -> Node | None:
    if not _found(answer, f"the query for node {node}"):
        return None
    values: dict[int, AttrValue] = {}
    portals: list[Portal] = []
    address: IPAddress | None = None
    port: AttrValue = None
    for attribute in _operating(answer):
        tag, value = attribute.tag, attribute.value
        if tag == Tag.PG_PORTAL_IP_ADDR:
            address, port = _ip(value), None
        elif tag == Tag.PG_PORTAL_TCP_UDP_PORT:
            port = value
        elif tag == Tag.PG_TAG:
            # A NULL PGT denies access (RFC 4171 3.4); UDP portals carry no iSCSI.
            tcp = isinstance(port, PortNumber) and not port.udp
            if address is not None and tcp and isinstance(value, int):
                assert isinstance(port, PortNumber)
                portals.append(Portal(address, port.port, value))
        else:
            values.setdefault(tag, value)
    name, node_type = values.get(Tag.ISCSI_NAME), values.get(Tag.ISCSI_NODE_TYPE)
    alias, entity = values.get(Tag.ISCSI_ALIAS), values.get(Tag.ENTITY_IDENTIFIER)
    return Node(
        name=name if isinstance(name, str) else node,
        node_type=NodeType(node_type if isinstance(node_type, int) else 0),
        entity=entity if isinstance(entity, str) else "",
        alias=alias if isinstance(alias, str) else None,
        management_address=_ip(values.get(Tag.MGMT_IP_ADDRESS)),
        portals=tuple(dict.fromkeys(portals)),
    )


def domain_sets_query(name: str, domain_id: int) -> Request:
    """The DD sets holding a DD, with their status."""
    return Request(
        FunctionId.DEV_ATTR_QRY,
        _source(name),
        keys=(Attribute(Tag.DD_ID, domain_id),),
        operating=(Attribute(Tag.DD_SET_ID), Attribute(Tag.DD_SET_STATUS)),
    )


def with_domain_sets(domain: Domain, answer: Message) -> Domain:
    """`domain` with the DD sets a `domain_sets_query` answer lists."""
    if not _found(answer, f"the query for the DD sets of discovery domain {domain.id}"):
        return domain  # gone since the walk: the next SCN says so
    sets: dict[int, bool] = {}  # DD set ID -> enabled
    current: int | None = None
    for attribute in _operating(answer):
        tag, value = attribute.tag, attribute.value
        if tag == Tag.DD_SET_ID and isinstance(value, int):
            current = value
            sets.setdefault(value, False)
        elif tag == Tag.DD_SET_STATUS and current is not None and isinstance(value, int):
            sets[current] = bool(value & DDSetStatus.ENABLED)
    # RFC 4171 6.11.1.3: a DD zones when it is in no DD set or in an enabled one.
    enabled = not sets or any(sets.values())
    return replace(domain, sets=frozenset(sets), enabled=enabled)


def entity_query(name: str, entity: str) -> Request:
    return Request(
        FunctionId.DEV_ATTR_QRY,
        _source(name),
        keys=(Attribute(Tag.ENTITY_IDENTIFIER, entity),),
        operating=(Attribute(Tag.ISCSI_NAME),),
    )


def entity_nodes(entity: str, answer: Message) -> list[str]:
    """The nodes an entity holds now; none once it is gone."""
    if not _found(answer, f"the query for entity {entity}"):
        return []
    return [
        a.value for a in _operating(answer) if a.tag == Tag.ISCSI_NAME and isinstance(a.value, str)
    ]


# --- SLP registrations into iSNS ---------------------------------------------------------


def slp_entity(source: str) -> str:
    """The Entity Identifier under which the agent registers the targets of the SLP
    service agent at `source`: one entity per SA, as a storage host is one entity with
    its portals shared by its targets. Who owns it shows in the registry itself, so
    the agent knows it again after a restart."""
    return f"{SLP_ENTITY_PREFIX}{source}"


def portal_address(host: str) -> IPAddress | None:
    """The address a target URL's host names; None for a host name (iSNS portals are
    addresses, and the agent does not resolve names)."""
    address = parse_ip(host)
    return None if address is None else unwrap_ipv4(address)


def registered_by_slp(node: Node) -> bool:
    return node.entity.startswith(SLP_ENTITY_PREFIX)


def slp_registration_entity(event: TargetRegistration, held: Node | None) -> str | None:
    """The SLP entity a registration goes to; None for another client's target."""
    if held is None:
        return slp_entity(event.source)
    return held.entity if registered_by_slp(held) else None


def holds_portal(node: Node, address: IPAddress, port: int) -> bool:
    return any((p.address, p.port) == (address, port) for p in node.portals)


def _portal(address: IPAddress, port: int) -> tuple[Attribute, Attribute]:
    return (
        Attribute(Tag.PORTAL_IP_ADDRESS, address),
        Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(port)),
    )


@dataclass(frozen=True, slots=True)
class EntityLayout:
    """An entity's nodes, portals and the (node, portal) pairs a PG covers, NULL or not."""

    nodes: frozenset[str] = frozenset()
    portals: frozenset[tuple[IPAddress, int]] = frozenset()
    covered: frozenset[tuple[str, IPAddress, int]] = frozenset()


def entity_layout_query(name: str, entity: str) -> Request:
    return Request(
        FunctionId.DEV_ATTR_QRY,
        _source(name),
        keys=(Attribute(Tag.ENTITY_IDENTIFIER, entity),),
        operating=tuple(
            Attribute(tag)
            for tag in (
                Tag.ISCSI_NAME,
                Tag.PORTAL_IP_ADDRESS,
                Tag.PORTAL_TCP_UDP_PORT,
                Tag.PG_ISCSI_NAME,
                Tag.PG_PORTAL_IP_ADDR,
                Tag.PG_PORTAL_TCP_UDP_PORT,
                Tag.PG_TAG,
            )
        ),
    )


def entity_layout(entity: str, answer: Message) -> EntityLayout:
    """What an `entity_layout_query` answer lists; empty when there is no such entity."""
    if not _found(answer, f"the query for entity {entity}"):
        return EntityLayout()
    nodes: set[str] = set()
    portals: set[tuple[IPAddress, int]] = set()
    covered: set[tuple[str, IPAddress, int]] = set()
    address: IPAddress | None = None
    pg_name: str | None = None
    for attribute in _operating(answer):
        tag, value = attribute.tag, attribute.value
        tcp = isinstance(value, PortNumber) and not value.udp
        if tag == Tag.ISCSI_NAME and isinstance(value, str):
            nodes.add(value)
        elif tag in (Tag.PORTAL_IP_ADDRESS, Tag.PG_PORTAL_IP_ADDR):
            address = _ip(value)
        elif tag == Tag.PG_ISCSI_NAME and isinstance(value, str):
            pg_name = value
        elif address is None or not tcp:
            continue
        elif tag == Tag.PORTAL_TCP_UDP_PORT:
            portals.add((address, cast(PortNumber, value).port))
        elif tag == Tag.PG_PORTAL_TCP_UDP_PORT and pg_name is not None:
            covered.add((pg_name, address, cast(PortNumber, value).port))
    return EntityLayout(frozenset(nodes), frozenset(portals), frozenset(covered))


def target_registration(
    event: TargetRegistration,
    address: IPAddress,
    held: Node | None,
    layout: EntityLayout = EntityLayout(),
) -> Request | None:
    """The DevAttrReg carrying an SLP SrvReg of service:iscsi:target into the registry,
    as the target itself would send it; `held` is the target as iSNS holds it now.

    - Not in iSNS yet, or registered by SLP before: in its SA's entity (`slp_entity`,
      laid out as `layout` says), its portal, its node and, when the SrvReg named one,
      its portal group tag, with the SLP lifetime as the Registration Period, so the two
      lapse together. A NULL PG for each pairing of this node or portal with the
      entity's others that no PG covers yet: otherwise the server would pair them with
      PGT 1 (RFC 4171 5.6.5.1), and SLP would show URLs no SA registered.
    - Registered by another client: only a portal iSNS lacks is added to that entity,
      whose Registration Period is that client's business. None when iSNS has it all.
    """
    name, port = event.iscsi_name, event.port
    portal: list[Attribute] = list(_portal(address, port))
    node: list[Attribute] = [Attribute(Tag.ISCSI_NAME, name)]
    lifetime: tuple[Attribute, ...] = ()
    unpaired: list[Attribute] = []  # NULL PGs of this node with the entity's other portals
    entity = slp_registration_entity(event, held)
    if entity is not None:
        alias = next(
            (a.values[0] for a in event.attributes if a.tag.lower() == "alias" and a.values),
            None,
        )
        node.append(Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)))
        if isinstance(alias, str):
            node.append(Attribute(Tag.ISCSI_ALIAS, alias))
        lifetime = (
            Attribute(Tag.ENTITY_PROTOCOL, int(EntityProtocol.ISCSI)),
            Attribute(Tag.REGISTRATION_PERIOD, event.lifetime),
        )
        others = sorted(
            n for n in layout.nodes - {name} if (n, address, port) not in layout.covered
        )
        if others:
            portal += [Attribute(Tag.PG_TAG), *(Attribute(Tag.PG_ISCSI_NAME, n) for n in others)]
        for other, other_port in sorted(layout.portals - {(address, port)}, key=str):
            if (name, other, other_port) not in layout.covered:
                unpaired += _pg_portal(other, other_port)
        if unpaired:
            unpaired.insert(0, Attribute(Tag.PG_TAG))
    elif held is None or holds_portal(held, address, event.port):
        return None
    else:
        entity = held.entity
    if event.portal_group is not None:
        node += [Attribute(Tag.PG_TAG, event.portal_group), *_pg_portal(address, port)]
    return Request(
        FunctionId.DEV_ATTR_REG,
        _source(name),
        operating=(
            Attribute(Tag.ENTITY_IDENTIFIER, entity),
            *lifetime,
            *portal,
            *node,
            *unpaired,
        ),
    )


def _pg_portal(address: IPAddress, port: int) -> tuple[Attribute, Attribute]:
    return (
        Attribute(Tag.PG_PORTAL_IP_ADDR, address),
        Attribute(Tag.PG_PORTAL_TCP_UDP_PORT, PortNumber(port)),
    )


def target_deregistration(
    event: TargetDeregistration,
    address: IPAddress,
    held: Node | None,
    *,
    added_by_slp: bool,
    portal_shared: bool,
) -> Request | None:
    """The DevDereg, by the target itself (RFC 4171 5.6.5.4), withdrawing what SLP put
    into iSNS for a SrvDeReg'd URL; `held` as in `target_registration`; `added_by_slp`:
    SLP added this portal to another client's entity; `portal_shared`: another node of
    the entity reaches the portal. For a target registered by SLP the portal goes
    unless shared, and with its last portal the node, so the server also drops its
    portal groups and an emptied entity. None when there is nothing of SLP's to take
    (a target still at other portals keeps a shared one)."""
    if held is None:
        return None
    portal = () if portal_shared else _portal(address, event.port)
    if registered_by_slp(held):
        others = [p for p in held.portals if (p.address, p.port) != (address, event.port)]
        node = () if others else (Attribute(Tag.ISCSI_NAME, event.iscsi_name),)
        operating = (*portal, *node)
    else:
        operating = portal if added_by_slp else ()
    if not operating:
        return None
    return Request(FunctionId.DEV_DEREG, _source(event.iscsi_name), operating=operating)
