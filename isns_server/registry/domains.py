"""DDReg, DDDereg, DDSReg, DDSDereg (RFC 4171 5.6.5.9-12, 5.7.5.9-12): discovery domains
and DD sets, which only Control Nodes manage (2.4)."""

from collections.abc import Callable, Mapping
from typing import TypeVar, cast

from ..isnsp.constants import Status, Tag
from ..isnsp.messages import Attribute, AttrValue
from ..names import iscsi_name_problem
from .context import Context, Reply
from .database import UPDATED, Database
from .objects import DiscoveryDomain, DiscoveryDomainSet, ObjectType, PortalKey
from .outcome import Reject
from .schema import is_fc, lookup_key, normalize_value, render, value_fits

Member = TypeVar("Member")
DomainT = TypeVar("DomainT", DiscoveryDomain, DiscoveryDomainSet)

_DD_TAGS = (Tag.DD_ID, Tag.DD_SYMBOLIC_NAME, Tag.DD_FEATURES)
_DDS_TAGS = (Tag.DD_SET_ID, Tag.DD_SET_SYMBOLIC_NAME, Tag.DD_SET_STATUS)
_MEMBER_TAGS = frozenset(
    (
        Tag.DD_MEMBER_ISCSI_INDEX,
        Tag.DD_MEMBER_ISCSI_NAME,
        Tag.DD_MEMBER_PORTAL_INDEX,
        Tag.DD_MEMBER_PORTAL_IP_ADDR,
    )
)
_REG, _DEREG = Status.INVALID_REGISTRATION, Status.INVALID_DEREGISTRATION
DDMember = str | PortalKey  # an iSCSI name or a portal


def dd_reg(ctx: Context) -> Reply:
    """Create a DD or update one named by the Message Key, adding the listed members. The
    answer is the whole DD as open-isns gives it: ID, name, features and every member
    with the index it holds, which covers what 5.7.5.9 asks for (new members' indexes)."""
    ctx.require_control()
    db, journal = ctx.db, ctx.journal
    dd = _keyed(ctx.keys, Tag.DD_ID, db.dds, registering=True)
    members: list[DDMember]
    scalars, members = _parse(ctx, _DD_TAGS, lambda i: _dd_member(ctx, i, _REG), _REG)
    dd_id, name = _identity(scalars, dd, _DD_TAGS, db.dds, db.dd_names)
    features = scalars.get(Tag.DD_FEATURES)
    if dd is None:
        dd_id = dd_id or db.allocate_id("dd", db.dds, journal)
        name = name or _free_name(db.dd_names, "isns.dd", dd_id)
        dd = db.add_dd(dd_id, name, features if isinstance(features, int) else 0, journal)
    else:
        changed = False
        if name is not None and name != dd.name:
            db.rename_dd(dd, name)
            changed = True
        if isinstance(features, int) and features != dd.features:
            dd.features, changed = features, True
        if changed:
            journal.record(UPDATED, dd, db.dd_members_registered(dd))
    for member in members:
        if isinstance(member, str):
            db.add_dd_node(dd, member, journal)
        else:
            db.add_dd_portal(dd, member, journal)
    return ctx.keys, tuple(render(dd))


def dd_dereg(ctx: Context) -> Reply:
    """Remove the DD of the Message Key, or only the listed members (5.6.5.10). An
    unknown DD or member is not an error."""
    ctx.require_control()
    db = ctx.db
    dd = _keyed(ctx.keys, Tag.DD_ID, db.dds, registering=False)
    members: list[DDMember]
    _, members = _parse(ctx, _DD_TAGS, lambda i: _dd_member(ctx, i, _DEREG, dd), _DEREG)
    if dd is None:
        return (), ()
    if not ctx.operating:
        db.remove_dd(dd, ctx.journal)
    for member in members:
        if isinstance(member, str) and member in dd.nodes:
            db.remove_dd_node(dd, member, ctx.journal)
        elif not isinstance(member, str) and member in dd.portals:
            db.remove_dd_portal(dd, member, ctx.journal)
    return (), ()


def dds_reg(ctx: Context) -> Reply:
    """Create a DD set or update one named by the Message Key (name, status), adding the
    listed DDs, which are created when they do not exist (5.6.5.11, 5.7.5.11)."""
    ctx.require_control()
    db, journal = ctx.db, ctx.journal
    dds = _keyed(ctx.keys, Tag.DD_SET_ID, db.ddss, registering=True)
    scalars, members = _parse(ctx, _DDS_TAGS, lambda i: _dds_member(ctx, i, _REG), _REG)
    dds_id, name = _identity(scalars, dds, _DDS_TAGS, db.ddss, db.dds_names)
    status = scalars.get(Tag.DD_SET_STATUS)
    if dds is None:
        dds_id = dds_id or db.allocate_id("dds", db.ddss, journal)
        name = name or _free_name(db.dds_names, "isns.dds", dds_id)
        dds = db.add_dds(dds_id, name, status if isinstance(status, int) else 0, journal)
    else:
        changed = False
        if name is not None and name != dds.name:
            db.rename_dds(dds, name)
            changed = True
        if isinstance(status, int) and status != dds.status:
            dds.status, changed = status, True  # may enable or disable its DDs
        if changed:
            journal.record(UPDATED, dds, db.dds_members_registered(dds))
    out = render(dds, _DDS_TAGS)
    for dd_id in members:
        dd = db.dds.get(dd_id)
        if dd is None:
            dd = db.add_dd(dd_id, _free_name(db.dd_names, "isns.dd", dd_id), 0, journal)
            out += render(dd, _DD_TAGS)  # the values the server assigned (5.6.5.11)
        else:
            out.append(Attribute(Tag.DD_ID, dd_id))
        db.add_dds_member(dds, dd, journal)
    return ctx.keys, tuple(out)


def dds_dereg(ctx: Context) -> Reply:
    """Remove the DD set of the Message Key, or only the listed DDs from it (5.6.5.12)."""
    ctx.require_control()
    db = ctx.db
    dds = _keyed(ctx.keys, Tag.DD_SET_ID, db.ddss, registering=False)
    _, members = _parse(ctx, _DDS_TAGS, lambda i: _dds_member(ctx, i, _DEREG), _DEREG)
    if dds is None:
        return (), ()
    if not ctx.operating:
        db.remove_dds(dds, ctx.journal)
    for dd_id in members:
        if dd_id in dds.dds:
            db.remove_dds_member(dds, db.dds[dd_id], ctx.journal)
    return (), ()


# --- shared parsing -------------------------------------------------------------------------


def _keyed(
    keys: tuple[Attribute, ...], tag: int, table: Mapping[int, DomainT], registering: bool
) -> DomainT | None:
    """The DD or DD set the Message Key names. A registration may omit the key (or send
    it zero-length) to create one, and must name an existing one otherwise; a
    deregistration must carry the key, and an unknown ID is not an error."""
    if not keys or (len(keys) == 1 and keys[0].tag == tag and keys[0].value is None):
        if registering:
            return None
        raise Reject(Status.MESSAGE_FORMAT_ERROR)
    if len(keys) != 1 or keys[0].tag != tag or not isinstance(keys[0].value, int):
        raise Reject(Status.MESSAGE_FORMAT_ERROR)
    found = table.get(keys[0].value)
    if found is None and registering:
        raise Reject(Status.INVALID_REGISTRATION)
    return found


def _parse(
    ctx: Context,
    scalar_tags: tuple[int, int, int],
    member: Callable[[int], tuple[Member | None, int] | None],
    invalid: Status,
) -> tuple[dict[int, AttrValue], list[Member]]:
    """(ID/name/features-or-status values by tag, members) of the Operating Attributes.
    `member(i)` parses the member starting at operating[i]: (member or None when it names
    nothing known, attributes used), or None when operating[i] is no member attribute.
    A deregistration ignores the scalar attributes but still checks them."""
    scalars: dict[int, AttrValue] = {}
    members: list[Member] = []
    operating = ctx.operating
    i = 0
    while i < len(operating):
        attr = operating[i]
        if is_fc(attr.tag):
            raise Reject(Status.ATTRIBUTE_NOT_IMPLEMENTED)
        if attr.tag in scalar_tags:
            if attr.tag in scalars or (
                attr.value is not None and not value_fits(attr.tag, attr.value)
            ):
                raise Reject(invalid)
            scalars[attr.tag] = attr.value
            i += 1
            continue
        parsed = member(i)
        if parsed is None:
            raise Reject(invalid)
        found, used = parsed
        if found is not None:
            members.append(found)
        i += used
    return scalars, members


def _identity(
    scalars: dict[int, AttrValue],
    existing: DiscoveryDomain | DiscoveryDomainSet | None,
    tags: tuple[int, int, int],
    table: Mapping[int, object],
    names: Mapping[str, int],
) -> tuple[int | None, str | None]:
    """The ID and symbolic name a registration asks for, checked: an ID in both the key
    and the Operating Attributes must agree, a new one must be free; names are unique
    (6.11.1.2, 6.11.2.2: the clashing name is returned)."""
    id_tag, name_tag, _ = tags
    wanted_id = scalars.get(id_tag)
    if isinstance(wanted_id, int):
        taken = wanted_id == 0 or (existing is None and wanted_id in table)
        if taken or (existing is not None and wanted_id != existing.id):
            raise Reject(Status.INVALID_REGISTRATION)
    name = scalars.get(name_tag)
    if isinstance(name, str):
        owner = names.get(name)
        if owner is not None and (existing is None or owner != existing.id):
            raise Reject(Status.INVALID_REGISTRATION, (Attribute(name_tag, name),))
    return (wanted_id if isinstance(wanted_id, int) else None), (
        name if isinstance(name, str) else None
    )


def _free_name(names: Mapping[str, int], prefix: str, number: int) -> str:
    """A symbolic name for a DD or set the client did not name (5.6.5.9, 5.6.5.11)."""
    name, n = f"{prefix}{number}", 1
    while name in names:
        name, n = f"{prefix}{number}.{n}", n + 1
    return name


def _dd_member(
    ctx: Context, i: int, invalid: Status, dd: DiscoveryDomain | None = None
) -> tuple[DDMember | None, int] | None:
    """A DD member: an iSCSI name or portal address and port (registered or not), or the
    index of a registered node or portal (6.11.2.3-8). Deregistering from `dd` also
    accepts the index it keeps for an unregistered member; an unknown one is None."""
    db: Database = ctx.db
    registering = invalid is _REG
    operating = ctx.operating
    attr = operating[i]
    value = normalize_value(attr.tag, attr.value)
    if attr.value is None or not value_fits(attr.tag, attr.value):
        if attr.tag in _MEMBER_TAGS:
            raise Reject(invalid)
        return None
    if attr.tag == Tag.DD_MEMBER_ISCSI_NAME:
        assert isinstance(value, str)
        if registering and iscsi_name_problem(value) is not None:
            raise Reject(invalid, (attr,))
        return value, 1
    if attr.tag == Tag.DD_MEMBER_PORTAL_IP_ADDR:
        port = operating[i + 1] if i + 1 < len(operating) else None
        if port is None or port.tag != Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT:
            raise Reject(Status.MESSAGE_FORMAT_ERROR)  # an address needs its port
        if port.value is None or not value_fits(port.tag, port.value):
            raise Reject(invalid)
        return cast(PortalKey, lookup_key(ObjectType.PORTAL, [value, port.value])), 2
    held: DDMember | None
    if attr.tag == Tag.DD_MEMBER_ISCSI_INDEX:
        node = db.node_index.get(cast(int, value))
        if node is not None:
            return node.name, 1
        held = next((n for n, x in dd.nodes.items() if x == value), None) if dd else None
    elif attr.tag == Tag.DD_MEMBER_PORTAL_INDEX:
        portal = db.portal_index.get(cast(int, value))
        if portal is not None:
            return portal.key, 1
        held = next((k for k, x in dd.portals.items() if x == value), None) if dd else None
    else:
        if attr.tag == Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT:
            raise Reject(Status.MESSAGE_FORMAT_ERROR)  # a port without its address
        return None
    if registering:
        raise Reject(invalid)  # an index names a registered object (5.6.5.9)
    return held, 1


def _dds_member(ctx: Context, i: int, invalid: Status) -> tuple[int | None, int] | None:
    """A DD set member: a DD ID."""
    attr = ctx.operating[i]
    if attr.tag != Tag.DD_ID:
        return None
    if not isinstance(attr.value, int) or attr.value == 0:
        raise Reject(invalid)
    return attr.value, 1
