"""Which object each attribute tag describes, how the registry stores it, and the one
helper that turns an object back into response attributes (RFC 4171 6.1).

The wire type of every tag comes from the codec (`isnsp.attributes.spec_for`); this
module adds what the registry needs on top: owner object, role (key, index, writable...)
and the dataclass field holding the value.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address, IPv6Address

from ..isnsp.attributes import ValueKind, spec_for
from ..isnsp.constants import FC_TAG_RANGE, Tag
from ..isnsp.messages import Attribute, AttrValue, PortNumber
from ..names import normalize_name
from .objects import (
    DiscoveryDomain,
    ObjectType,
    OrderKey,
    PortalKey,
    RegistryObject,
    normalize_ip,
    object_type,
    portal_address,
    portal_key,
)


class Role(Enum):
    KEY = "key"  # object key attribute (4.1.1 "K" column)
    INDEX = "index"  # server-assigned index; an alternative key (6.2.7, 6.3.6, 6.4.5, 6.5.5)
    WRITABLE = "writable"  # registered by clients
    READ_ONLY = "read-only"  # server-maintained (Timestamp, 6.2.4)
    NEXT_INDEX = "next-index"  # virtual, query only (6.2.8, 6.3.8, 6.4.7, 6.5.6, ...)
    MEMBER = "member"  # DD membership (6.11.2.3-8): several per DD


@dataclass(frozen=True, slots=True)
class Field:
    tag: int
    owner: ObjectType
    role: Role
    name: str | None = None  # the object's dataclass field; None for virtual/member tags


E, P, N, G = ObjectType.ENTITY, ObjectType.PORTAL, ObjectType.NODE, ObjectType.PORTAL_GROUP
D, S = ObjectType.DD, ObjectType.DDS
K, IX, W, RO, NX, M = (
    Role.KEY,
    Role.INDEX,
    Role.WRITABLE,
    Role.READ_ONLY,
    Role.NEXT_INDEX,
    Role.MEMBER,
)

# Per object, in the order a query asking for "all attributes" lists them (open-isns's
# order: keys first; an entity's period and timestamp before its index).
_TABLE: tuple[Field, ...] = (
    Field(Tag.ENTITY_IDENTIFIER, E, K, "eid"),
    Field(Tag.ENTITY_PROTOCOL, E, W, "protocol"),
    Field(Tag.MGMT_IP_ADDRESS, E, W, "mgmt_ip"),
    Field(Tag.PROTOCOL_VERSION_RANGE, E, W, "version_range"),
    Field(Tag.REGISTRATION_PERIOD, E, W, "registration_period"),
    Field(Tag.TIMESTAMP, E, RO, "timestamp"),
    Field(Tag.ENTITY_INDEX, E, IX, "index"),
    Field(Tag.ENTITY_ISAKMP_PHASE_1, E, W, "isakmp_phase1"),
    Field(Tag.ENTITY_CERTIFICATE, E, W, "certificate"),
    Field(Tag.ENTITY_NEXT_INDEX, E, NX),
    Field(Tag.PORTAL_IP_ADDRESS, P, K, "ip"),
    Field(Tag.PORTAL_TCP_UDP_PORT, P, K, "port"),
    Field(Tag.PORTAL_SYMBOLIC_NAME, P, W, "symbolic_name"),
    Field(Tag.ESI_INTERVAL, P, W, "esi_interval"),
    Field(Tag.ESI_PORT, P, W, "esi_port"),
    Field(Tag.PORTAL_INDEX, P, IX, "index"),
    Field(Tag.SCN_PORT, P, W, "scn_port"),
    Field(Tag.PORTAL_SECURITY_BITMAP, P, W, "security_bitmap"),
    Field(Tag.PORTAL_ISAKMP_PHASE_1, P, W, "isakmp_phase1"),
    Field(Tag.PORTAL_ISAKMP_PHASE_2, P, W, "isakmp_phase2"),
    Field(Tag.PORTAL_CERTIFICATE, P, W, "certificate"),
    Field(Tag.PORTAL_NEXT_INDEX, P, NX),
    Field(Tag.ISCSI_NAME, N, K, "name"),
    Field(Tag.ISCSI_NODE_TYPE, N, W, "node_type"),
    Field(Tag.ISCSI_ALIAS, N, W, "alias"),
    Field(Tag.ISCSI_SCN_BITMAP, N, W, "scn_bitmap"),
    Field(Tag.ISCSI_NODE_INDEX, N, IX, "index"),
    Field(Tag.WWNN_TOKEN, N, W, "wwnn_token"),
    Field(Tag.ISCSI_AUTH_METHOD, N, W, "auth_method"),
    Field(Tag.ISCSI_NODE_NEXT_INDEX, N, NX),
    Field(Tag.PG_ISCSI_NAME, G, K, "node_name"),
    Field(Tag.PG_PORTAL_IP_ADDR, G, K, "portal_ip"),
    Field(Tag.PG_PORTAL_TCP_UDP_PORT, G, K, "portal_port"),
    Field(Tag.PG_TAG, G, W, "tag"),
    Field(Tag.PG_INDEX, G, IX, "index"),
    Field(Tag.PG_NEXT_INDEX, G, NX),
    Field(Tag.DD_SET_ID, S, K, "id"),
    Field(Tag.DD_SET_SYMBOLIC_NAME, S, W, "name"),
    Field(Tag.DD_SET_STATUS, S, W, "status"),
    Field(Tag.DD_SET_NEXT_ID, S, NX),
    Field(Tag.DD_ID, D, K, "id"),
    Field(Tag.DD_SYMBOLIC_NAME, D, W, "name"),
    Field(Tag.DD_FEATURES, D, W, "features"),
    Field(Tag.DD_MEMBER_ISCSI_INDEX, D, M),
    Field(Tag.DD_MEMBER_ISCSI_NAME, D, M),
    Field(Tag.DD_MEMBER_PORTAL_INDEX, D, M),
    Field(Tag.DD_MEMBER_PORTAL_IP_ADDR, D, M),
    Field(Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT, D, M),
    Field(Tag.DD_ID_NEXT_ID, D, NX),
)

FIELDS: dict[int, Field] = {f.tag: f for f in _TABLE}

KEY_TAGS: dict[ObjectType, tuple[int, ...]] = {
    t: tuple(f.tag for f in _TABLE if f.owner is t and f.role is K) for t in ObjectType
}
INDEX_TAGS: dict[int, ObjectType] = {f.tag: f.owner for f in _TABLE if f.role is IX}
NEXT_INDEX_TAGS: dict[int, ObjectType] = {f.tag: f.owner for f in _TABLE if f.role is NX}
# Fields rendered for "all attributes" and saved by persistence, per object type.
STORED: dict[ObjectType, tuple[Field, ...]] = {
    t: tuple(f for f in _TABLE if f.owner is t and f.name is not None) for t in ObjectType
}

_NODE_MEMBER_TAGS = (Tag.DD_MEMBER_ISCSI_INDEX, Tag.DD_MEMBER_ISCSI_NAME)
_PORTAL_MEMBER_TAGS = (
    Tag.DD_MEMBER_PORTAL_INDEX,
    Tag.DD_MEMBER_PORTAL_IP_ADDR,
    Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT,
)


def is_fc(tag: int) -> bool:
    """iFCP / Fibre Channel attributes: recognised, not implemented (6.6-6.8)."""
    return FC_TAG_RANGE.start <= tag < FC_TAG_RANGE.stop or tag == Tag.DD_MEMBER_FC_PORT_NAME


_PYTHON_TYPES: dict[ValueKind, type | tuple[type, ...]] = {
    ValueKind.TEXT: str,
    ValueKind.U32: int,
    ValueKind.U64: int,
    ValueKind.IP_ADDRESS: (IPv4Address, IPv6Address),
    ValueKind.PORT: PortNumber,
    ValueKind.OPAQUE: bytes,
}
_LIMITS = {ValueKind.U32: 1 << 32, ValueKind.U64: 1 << 64}


def value_fits(tag: int, value: AttrValue) -> bool:
    """True when a non-None `value` has the type (and range) tag `tag` carries."""
    kind = spec_for(tag).kind
    if not isinstance(value, _PYTHON_TYPES.get(kind, ())):
        return False
    limit = _LIMITS.get(kind)
    return limit is None or (isinstance(value, int) and 0 <= value < limit)


_NAME_TAGS = frozenset(
    (Tag.ENTITY_IDENTIFIER, Tag.ISCSI_NAME, Tag.PG_ISCSI_NAME, Tag.DD_MEMBER_ISCSI_NAME)
)


def normalize_value(tag: int, value: AttrValue) -> AttrValue:
    """Names case-folded, IPv4-mapped addresses as IPv4: the form stored and compared."""
    if isinstance(value, str) and tag in _NAME_TAGS:
        return normalize_name(value)
    if isinstance(value, IPv4Address | IPv6Address):
        return normalize_ip(value)
    return value


def lookup_key(kind: ObjectType, values: Sequence[AttrValue]) -> OrderKey:
    """The dictionary key of the object of `kind` whose key attributes (KEY_TAGS order,
    values normalised and type-checked) are `values`."""
    if kind is ObjectType.PORTAL:
        ip, port = values
        assert isinstance(ip, IPv4Address | IPv6Address) and isinstance(port, PortNumber)
        return portal_key(ip, port)
    if kind is ObjectType.PORTAL_GROUP:
        name, ip, port = values
        assert isinstance(name, str) and isinstance(ip, IPv4Address | IPv6Address)
        assert isinstance(port, PortNumber)
        return (name, *portal_key(ip, port))
    (value,) = values
    assert isinstance(value, str | int)
    return value


def render(obj: RegistryObject, tags: Sequence[int] | None = None) -> list[Attribute]:
    """The response attributes of `obj`: those of `tags` it has a value for, in that order,
    or all of them when `tags` is None (RFC 4171 5.6.5.2, 5.7.5.2).

    A NULL PGT is a value (the PG denies access), so it is listed as a zero-length TLV.
    """
    kind = object_type(obj)
    fields = STORED[kind] if tags is None else [FIELDS[t] for t in tags if t in FIELDS]
    out: list[Attribute] = []
    for f in fields:
        if f.owner is not kind or f.name is None:
            continue
        value = getattr(obj, f.name)
        if value is not None or f.tag == Tag.PG_TAG:
            out.append(Attribute(f.tag, value))
    if isinstance(obj, DiscoveryDomain):
        out += _dd_members(obj, tags)
    return out


def _dd_members(dd: DiscoveryDomain, tags: Sequence[int] | None) -> list[Attribute]:
    """One group of member attributes per member (6.11.2.3-8)."""
    wanted = None if tags is None else frozenset(tags)
    out: list[Attribute] = []
    if wanted is None or not wanted.isdisjoint(_NODE_MEMBER_TAGS):
        for name, index in dd.nodes.items():
            out += _member_attributes(name, index, wanted)
    if wanted is None or not wanted.isdisjoint(_PORTAL_MEMBER_TAGS):
        for key, index in dd.portals.items():
            out += _member_attributes(key, index, wanted)
    return out


def _member_attributes(
    member: str | PortalKey, index: int, wanted: frozenset[int] | None = None
) -> list[Attribute]:
    """A DD member as DD Member attributes: iSCSI index and name, or portal index,
    address and port; only the `wanted` tags when given."""
    values: dict[int, AttrValue]
    if isinstance(member, str):
        values = {Tag.DD_MEMBER_ISCSI_INDEX: index, Tag.DD_MEMBER_ISCSI_NAME: member}
    else:
        ip, port = portal_address(member)
        values = {
            Tag.DD_MEMBER_PORTAL_INDEX: index,
            Tag.DD_MEMBER_PORTAL_IP_ADDR: ip,
            Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT: port,
        }
    return [Attribute(t, v) for t, v in values.items() if wanted is None or t in wanted]
