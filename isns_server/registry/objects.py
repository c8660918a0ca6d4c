"""The iSNS objects of RFC 4171 section 3 as the registry holds them.

Containment (3.1-3.4): an entity owns its portals, storage nodes and portal groups; each
of those belongs to exactly one entity and points back at it. Discovery domains and DD
sets (3.6, 3.7) stand apart: a DD names its members, which need not be registered.

Object identity is the Python object (`eq=False`); the registry's dictionaries are keyed
by the RFC key attributes, normalised by the functions below so that lookups and the
DevGetNext ordering (3.8: "an implicit internal linear ordering based on the key(s)")
agree.
"""

from dataclasses import dataclass, field
from enum import StrEnum
from ipaddress import IPv4Address, IPv6Address

from ..isnsp.constants import PORT_UDP_BIT, EntityProtocol
from ..isnsp.messages import IPAddress, PortNumber, unwrap_ipv4


class ObjectType(StrEnum):  # a str mixin hashes in C: these key many lookups
    ENTITY = "entity"
    PORTAL = "portal"
    NODE = "node"
    PORTAL_GROUP = "pg"
    DD = "dd"
    DDS = "dds"


# Portal key (Portal IP Address, Portal TCP/UDP Port) as it sorts on the wire: the 16-byte
# address (IPv4 in its IPv4-mapped form, 6.3.1) and the 32-bit port field (6.3.2).
PortalKey = tuple[bytes, int]
# Portal Group key (6.5): PG iSCSI Name plus the portal key.
PGKey = tuple[str, bytes, int]

_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


def normalize_ip(address: IPAddress) -> IPAddress:
    """IPv4-mapped IPv6 addresses are the IPv4 address they carry (6.3.1): the same bytes
    on the wire. An IPv4-compatible address is kept as sent, for the client that looks it
    up again; `address_key` is what makes it the same portal."""
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def address_key(address: IPAddress) -> bytes:
    """The 16 bytes an address is keyed and compared by: IPv4 in its IPv4-mapped form
    (6.3.1), whether it came as IPv4, IPv4-mapped or IPv4-compatible (::a.b.c.d, what
    open-isns sends): all three name one portal."""
    if isinstance(address, IPv4Address):
        return _V4_MAPPED_PREFIX + address.packed
    address = unwrap_ipv4(address)
    return (
        address.packed if isinstance(address, IPv6Address) else _V4_MAPPED_PREFIX + address.packed
    )


def portal_key(address: IPAddress, port: PortNumber) -> PortalKey:
    return address_key(address), port.port | (PORT_UDP_BIT if port.udp else 0)


def portal_address(key: PortalKey) -> tuple[IPAddress, PortNumber]:
    """The typed (address, port) of a portal key: an IPv4 portal as IPv4, whichever form
    named it."""
    raw, value = key
    address: IPAddress = (
        IPv4Address(raw[12:]) if raw.startswith(_V4_MAPPED_PREFIX) else IPv6Address(raw)
    )
    return address, PortNumber(value & 0xFFFF, bool(value & PORT_UDP_BIT))


@dataclass(eq=False, slots=True)
class NetworkEntity:
    """RFC 4171 3.1 / 6.2."""

    eid: str
    index: int
    protocol: int = EntityProtocol.ISCSI
    mgmt_ip: IPAddress | None = None
    timestamp: int = 0
    version_range: int | None = None
    registration_period: int | None = None
    isakmp_phase1: bytes | None = None
    certificate: bytes | None = None
    # Children in registration order, which is the order queries report them in.
    portals: "dict[PortalKey, Portal]" = field(default_factory=dict, repr=False)
    nodes: "dict[str, StorageNode]" = field(default_factory=dict, repr=False)
    pgs: "dict[PGKey, PortalGroup]" = field(default_factory=dict, repr=False)


@dataclass(eq=False, slots=True)
class Portal:
    """RFC 4171 3.2 / 6.3."""

    ip: IPAddress
    port: PortNumber
    index: int
    entity: NetworkEntity = field(repr=False)
    symbolic_name: str | None = None
    esi_interval: int | None = None
    esi_port: PortNumber | None = None
    scn_port: PortNumber | None = None
    security_bitmap: int | None = None
    isakmp_phase1: bytes | None = None
    isakmp_phase2: bytes | None = None
    certificate: bytes | None = None

    @property
    def key(self) -> PortalKey:
        return portal_key(self.ip, self.port)


@dataclass(eq=False, slots=True)
class StorageNode:
    """An iSCSI Storage Node, RFC 4171 3.3 / 6.4."""

    name: str
    index: int
    entity: NetworkEntity = field(repr=False)
    node_type: int | None = None
    alias: str | None = None
    scn_bitmap: int | None = None
    wwnn_token: int | None = None
    auth_method: str | None = None


@dataclass(eq=False, slots=True)
class PortalGroup:
    """RFC 4171 3.4 / 6.5. `tag` None is the NULL PGT: no access through that portal.

    Either end may be unregistered: the PG outlives one of them (5.6.5.4)."""

    node_name: str
    portal_ip: IPAddress
    portal_port: PortNumber
    index: int
    entity: NetworkEntity = field(repr=False)
    tag: int | None = 1

    @property
    def portal_key(self) -> PortalKey:
        return portal_key(self.portal_ip, self.portal_port)

    @property
    def key(self) -> PGKey:
        return (self.node_name, *self.portal_key)


@dataclass(eq=False, slots=True)
class DiscoveryDomain:
    """RFC 4171 3.6 / 6.11.2. Members map to the index each keeps while a member (6.4.5)."""

    id: int
    name: str
    features: int = 0
    nodes: dict[str, int] = field(default_factory=dict)
    portals: dict[PortalKey, int] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class DiscoveryDomainSet:
    """RFC 4171 3.7 / 6.11.1."""

    id: int
    name: str
    status: int = 0
    dds: set[int] = field(default_factory=set)


RegistryObject = (
    NetworkEntity | Portal | StorageNode | PortalGroup | DiscoveryDomain | DiscoveryDomainSet
)

OBJECT_TYPES: dict[type, ObjectType] = {
    NetworkEntity: ObjectType.ENTITY,
    Portal: ObjectType.PORTAL,
    StorageNode: ObjectType.NODE,
    PortalGroup: ObjectType.PORTAL_GROUP,
    DiscoveryDomain: ObjectType.DD,
    DiscoveryDomainSet: ObjectType.DDS,
}


def object_type(obj: RegistryObject) -> ObjectType:
    return OBJECT_TYPES[type(obj)]


# A sortable, hashable key per object (the DevGetNext order, 3.8).
OrderKey = str | int | PortalKey | PGKey


def order_key(obj: RegistryObject) -> OrderKey:
    if isinstance(obj, NetworkEntity):
        return obj.eid
    if isinstance(obj, StorageNode):
        return obj.name
    if isinstance(obj, Portal | PortalGroup):
        return obj.key
    return obj.id
