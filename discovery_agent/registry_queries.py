"""The iSNS requests the bridge sends and how their answers read (RFC 4171 5.6.5, 5.7.5).

Pure: requests are values for `IsnsClient.call`, answers are parsed into the catalog's
records. An answer of No Such Entry means the object is gone; any other failure raises
`RegistryRefusal`, worded for the administrator; an answer that makes no sense raises
`IsnsClientError`, as a broken connection does.
"""

from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv6Address, ip_address

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

from .catalog import Domain, Node, Portal
from .slp.agent import TargetDeregistration, TargetRegistration

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


def target_registration(event: TargetRegistration) -> Request | None:
    """A DevAttrReg carrying an SLP SrvReg of service:iscsi:target into the registry, as
    the target itself would register: its portal, its node and, when the SrvReg named
    one, its portal group tag. The Registration Period is the SLP lifetime, so the iSNS
    registration lapses with the SLP one. None when the URL's host is a name, not an
    address (iSNS portals are addresses; the agent does not resolve names)."""
    try:
        address = ip_address(event.host)
    except ValueError:
        return None
    port = PortNumber(event.port)
    alias = next(
        (a.values[0] for a in event.attributes if a.tag.lower() == "alias" and a.values), None
    )
    node: list[Attribute] = [
        Attribute(Tag.ISCSI_NAME, event.iscsi_name),
        Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
    ]
    if isinstance(alias, str):
        node.append(Attribute(Tag.ISCSI_ALIAS, alias))
    if event.portal_group is not None:
        node += [
            Attribute(Tag.PG_TAG, event.portal_group),
            Attribute(Tag.PG_PORTAL_IP_ADDR, address),
            Attribute(Tag.PG_PORTAL_TCP_UDP_PORT, port),
        ]
    return Request(
        FunctionId.DEV_ATTR_REG,
        _source(event.iscsi_name),
        operating=(
            Attribute(Tag.ENTITY_IDENTIFIER),  # empty: the target's own entity, or a new one
            Attribute(Tag.ENTITY_PROTOCOL, int(EntityProtocol.ISCSI)),
            Attribute(Tag.REGISTRATION_PERIOD, event.lifetime),
            Attribute(Tag.PORTAL_IP_ADDRESS, address),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, port),
            *node,
        ),
    )


def target_deregistration(event: TargetDeregistration) -> Request | None:
    """A DevDereg of the portal an SLP SrvDeReg withdrew, by the target itself (RFC 4171
    5.6.5.4); the target stays registered at any other portal. None for a host name."""
    try:
        address = ip_address(event.host)
    except ValueError:
        return None
    return Request(
        FunctionId.DEV_DEREG,
        _source(event.iscsi_name),
        operating=(
            Attribute(Tag.PORTAL_IP_ADDRESS, address),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(event.port)),
        ),
    )
