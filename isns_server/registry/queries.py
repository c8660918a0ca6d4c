"""DevAttrQry and DevGetNext (RFC 4171 5.6.5.2, 5.6.5.3, 5.7.5.2, 5.7.5.3)."""

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import IPv4Address, IPv6Address

from ..isnsp.constants import NodeType, Status, Tag
from ..isnsp.messages import Attribute
from .context import Context, Reply
from .database import Database
from .objects import (
    DiscoveryDomain,
    DiscoveryDomainSet,
    ObjectType,
    OrderKey,
    RegistryObject,
    address_key,
    order_key,
    portal_address,
)
from .outcome import Reject
from .relations import everything, related
from .schema import (
    FIELDS,
    INDEX_TAGS,
    KEY_TAGS,
    NEXT_INDEX_TAGS,
    Role,
    is_fc,
    lookup_key,
    normalize_value,
    render,
    value_fits,
)
from .zoning import Scope

_COUNTER_OF = {
    ObjectType.ENTITY: "entity",
    ObjectType.PORTAL: "portal",
    ObjectType.NODE: "node",
    ObjectType.PORTAL_GROUP: "pg",
    ObjectType.DD: "dd",
    ObjectType.DDS: "dds",
}


def dev_attr_qry(ctx: Context) -> Reply:
    """Objects matching the Message Key, each followed by the requested attributes of the
    objects related to it; no key: every visible object of each requested type.

    A key naming one object (its key attributes or index) that matches nothing visible is
    answered No Such Entry, as open-isns does and as 6.3.4 expects for an entity that was
    deregistered; any other key matching nothing is a successful, empty answer (5.6.5.2).
    """
    ctx.require_known()
    scope = ctx.scope
    kind, keys = _message_key(ctx.keys)
    groups, next_tags = _requested(ctx.operating)
    matched = None if kind is None else _matching(ctx.db, scope, kind, keys)
    out: list[Attribute] = []
    if not groups and not next_tags:  # "all Operating Attributes" (5.7.5.2)
        for obj in scope.visible(ObjectType.ENTITY) if matched is None else matched:
            for item in everything(scope, obj):
                out += render(item)
    elif matched is None:
        for group_kind, tags in groups:
            for item in scope.visible(group_kind):
                out += render(item, tags)
    else:
        for obj in matched:
            for group_kind, tags in groups:
                for item in related(scope, obj, group_kind):
                    out += render(item, tags)
    for tag in next_tags:
        owner = NEXT_INDEX_TAGS[tag]
        out.append(Attribute(tag, ctx.db.next_free(_COUNTER_OF[owner], _ids_in_use(ctx.db, owner))))
    return ctx.keys, tuple(out)


def dev_get_next(ctx: Context) -> Reply:
    """The object after the Message Key in the scoped order: by key (3.8), or by index
    when the key is an index attribute. A key that names no object (say, one deregistered
    between two calls) still has a place in that order, so the walk goes on from there."""
    ctx.require_known()
    kind, by_index, after = _position(ctx.keys)
    filters, wanted = _get_next_operating(kind, ctx.operating)
    for obj in _objects_after(ctx.db, ctx.scope, kind, by_index, after):
        if all(_matches(obj, attr) for attr in filters):
            key_tags = (_INDEX_TAG[kind],) if by_index else KEY_TAGS[kind]
            return tuple(render(obj, key_tags)), tuple(render(obj, wanted or None))
    raise Reject(Status.NO_SUCH_ENTRY)


# --- Message Keys ------------------------------------------------------------------------

# The tag that numbers objects of each type: its index, or its key for DDs and DD sets.
_INDEX_TAG: dict[ObjectType, int] = {
    kind: next((tag for tag, owner in INDEX_TAGS.items() if owner is kind), KEY_TAGS[kind][0])
    for kind in ObjectType
}


def _checked(attr: Attribute, status: Status) -> Attribute:
    """`attr` with its value normalised, once its tag is known to be one we implement and
    its value of the right type (else `status`)."""
    if is_fc(attr.tag) or attr.tag not in FIELDS:
        raise Reject(Status.ATTRIBUTE_NOT_IMPLEMENTED)
    if attr.value is not None and not value_fits(attr.tag, attr.value):
        raise Reject(status)
    value = normalize_value(attr.tag, attr.value)
    return attr if value is attr.value else Attribute(attr.tag, value)


def _message_key(keys: Sequence[Attribute]) -> tuple[ObjectType | None, list[Attribute]]:
    """The one object type all Message Key attributes belong to (5.6.5.2), and the
    attributes normalised."""
    kind = None
    checked = []
    for attr in keys:
        checked.append(_checked(attr, Status.INVALID_QUERY))
        field = FIELDS[attr.tag]
        if field.role is Role.NEXT_INDEX or kind not in (None, field.owner):
            raise Reject(Status.INVALID_QUERY)
        kind = field.owner
    return kind, checked


def _matching(
    db: Database, scope: Scope, kind: ObjectType, keys: list[Attribute]
) -> list[RegistryObject]:
    """The visible objects of `kind` the (normalised) key attributes match. Those that
    name one object by key or index must find it (else No Such Entry); any others filter."""
    values = {attr.tag: attr.value for attr in keys}
    index, key_tags = values.get(_INDEX_TAG[kind]), KEY_TAGS[kind]
    obj: RegistryObject | None
    naming: tuple[int, ...]
    if isinstance(index, int) and key_tags != (_INDEX_TAG[kind],):
        obj, naming = db.by_index(kind).get(index), (_INDEX_TAG[kind],)
    elif all(values.get(tag) is not None for tag in key_tags):
        obj, naming = db.table(kind).get(lookup_key(kind, [values[t] for t in key_tags])), key_tags
    else:
        return [obj for obj in scope.visible(kind) if all(_matches(obj, a) for a in keys)]
    filters = [attr for attr in keys if attr.tag not in naming]
    if obj is None or not scope.sees(obj) or not all(_matches(obj, a) for a in filters):
        raise Reject(Status.NO_SUCH_ENTRY)
    return [obj]


def _matches(obj: RegistryObject, attr: Attribute) -> bool:
    """Does `obj` have the (normalised) value of `attr`? Zero-length matches anything."""
    wanted = attr.value
    if wanted is None:
        return True
    field = FIELDS[attr.tag]
    if field.name is not None:
        value = getattr(obj, field.name)
        if attr.tag == Tag.ISCSI_NODE_TYPE:  # a bitmap: has at least the asked-for types
            return isinstance(wanted, int) and NodeType(value or 0) & wanted == wanted
        if isinstance(wanted, IPv4Address | IPv6Address):
            return value is not None and address_key(value) == address_key(wanted)
        return bool(value == wanted)
    assert isinstance(obj, DiscoveryDomain)  # the DD Member attributes
    if attr.tag == Tag.DD_MEMBER_ISCSI_NAME:
        return wanted in obj.nodes
    if attr.tag == Tag.DD_MEMBER_ISCSI_INDEX:
        return wanted in obj.nodes.values()
    if attr.tag == Tag.DD_MEMBER_PORTAL_INDEX:
        return wanted in obj.portals.values()
    if isinstance(wanted, IPv4Address | IPv6Address):
        return any(address == address_key(wanted) for address, _port in obj.portals)
    return any(portal_address(key)[1] == wanted for key in obj.portals)


# --- Operating Attributes ----------------------------------------------------------------


def _requested(
    operating: Sequence[Attribute],
) -> tuple[list[tuple[ObjectType, list[int]]], list[int]]:
    """The requested tags grouped per object type in order of first mention, and the Next
    Index tags. Tags the server keeps no value for (vendor-specific, server attributes)
    are not returned and not an error (5.6.5.2)."""
    groups: dict[ObjectType, list[int]] = {}
    next_tags: list[int] = []
    for attr in operating:
        if is_fc(attr.tag):
            raise Reject(Status.ATTRIBUTE_NOT_IMPLEMENTED)
        field = FIELDS.get(attr.tag)
        if field is None:
            continue
        if field.role is Role.NEXT_INDEX:
            next_tags.append(attr.tag)
        else:
            groups.setdefault(field.owner, []).append(attr.tag)
    return list(groups.items()), next_tags


def _ids_in_use(db: Database, kind: ObjectType) -> Mapping[int, object] | None:
    """Clients choose DD and DD set IDs too; indexes are the server's alone."""
    if kind is ObjectType.DD or kind is ObjectType.DDS:
        return db.by_index(kind)
    return None


# --- DevGetNext ----------------------------------------------------------------------------

_CACHED_WALKS = 64  # zoned walks remembered at once (each holds its visible keys)


def _position(keys: Sequence[Attribute]) -> tuple[ObjectType, bool, OrderKey | None]:
    """(object type, ordered by index?, key to continue after; None: from the start)."""
    if not keys:
        raise Reject(Status.MESSAGE_FORMAT_ERROR)
    kind, checked = _message_key(keys)
    assert kind is not None
    tags = tuple(attr.tag for attr in checked)
    values = [attr.value for attr in checked]
    by_index = tags == (_INDEX_TAG[kind],) and tags != KEY_TAGS[kind]
    if not by_index and tags != KEY_TAGS[kind]:
        raise Reject(Status.MESSAGE_FORMAT_ERROR)
    if all(value is None for value in values):
        return kind, by_index, None
    if any(value is None for value in values):
        raise Reject(Status.MESSAGE_FORMAT_ERROR)
    if by_index:
        (index,) = values
        assert isinstance(index, int)
        return kind, True, index
    return kind, False, lookup_key(kind, values)


def _get_next_operating(
    kind: ObjectType, operating: Sequence[Attribute]
) -> tuple[list[Attribute], list[int]]:
    """(attributes the next object must match, tags to return). All must be of the key's
    object type; zero-length ones come last (5.6.5.3)."""
    filters: list[Attribute] = []
    wanted: list[int] = []
    for attr in operating:
        checked = _checked(attr, Status.INVALID_QUERY)
        if FIELDS[attr.tag].owner is not kind:
            raise Reject(Status.INVALID_QUERY)
        if attr.value is None:
            wanted.append(attr.tag)
        elif wanted:
            raise Reject(Status.MESSAGE_FORMAT_ERROR)
        else:
            filters.append(checked)
    return filters, wanted


def _objects_after(
    db: Database, scope: Scope, kind: ObjectType, by_index: bool, after: OrderKey | None
) -> Iterable[RegistryObject]:
    if scope.is_control:
        return db.in_order(kind, after, by_index)
    # A zoned walk: the source's visible objects, sorted once until the database changes
    # (a walk of n objects then costs O(n log n), not O(n) per step).
    cache_key = (scope.name, kind, by_index)
    keys = db.scope_cache.get(cache_key)
    if keys is None:
        objects = scope.visible(kind)
        keys = sorted(map(_index_of, objects)) if by_index else list(map(order_key, objects))
        if len(db.scope_cache) >= _CACHED_WALKS:
            db.scope_cache.clear()
        db.scope_cache[cache_key] = keys
    start = 0 if after is None else bisect_right(keys, after)
    table = db.by_index(kind) if by_index else db.table(kind)
    return (table[keys[i]] for i in range(start, len(keys)))


def _index_of(obj: RegistryObject) -> int:
    return obj.id if isinstance(obj, DiscoveryDomain | DiscoveryDomainSet) else obj.index
