"""DevAttrReg (RFC 4171 5.6.5.1, 5.7.5.1): register or update an entity and its contents.

Three steps, so that a rejected message changes nothing: parse the Operating Attributes
into object specs (`_parse_objects`), resolve them against the database and check every
rule (`_resolve`), then apply (`_apply`) through primitives that cannot fail.
"""

from dataclasses import dataclass, field
from typing import cast

from ..isnsp.constants import Flags, NodeType, Status, Tag
from ..isnsp.messages import Attribute, AttrValue, IPAddress
from ..names import iscsi_name_problem
from .context import Context, Reply
from .database import UPDATED, Database
from .objects import (
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
)
from .outcome import Reject, entity_ref
from .schema import (
    FIELDS,
    INDEX_TAGS,
    KEY_TAGS,
    Role,
    is_fc,
    lookup_key,
    normalize_value,
    render,
    value_fits,
)

E, P, N, G = ObjectType.ENTITY, ObjectType.PORTAL, ObjectType.NODE, ObjectType.PORTAL_GROUP
_LAST_SERVER_TAG = 384  # 256-384: query-only server attributes (6.9, 6.10.1)
_PG_KEY_AND_TAG = (*KEY_TAGS[G], Tag.PG_TAG)


@dataclass(slots=True)
class PgLink:
    """A PGT and the objects following it after a portal (node names) or a node (portal
    keys): the PGs those form with that portal or node get this PGT (5.6.5.1)."""

    tag: int | None
    peers: list[str | PortalKey] = field(default_factory=list)


@dataclass(slots=True)
class ObjectSpec:
    """One object of the Operating Attributes, named by its key or by its index."""

    kind: ObjectType
    key: OrderKey | None  # the lookup key; None when named by index (or an empty EID)
    index: int | None
    attrs: list[Attribute] = field(default_factory=list)  # non-key, values normalised
    links: list[PgLink] = field(default_factory=list)
    existing: RegistryObject | None = None  # set by _resolve
    address: IPAddress | None = None  # a portal's address as sent; the key unifies its forms


def dev_attr_reg(ctx: Context) -> Reply:
    specs = _parse_objects(ctx.operating)
    plan = _resolve(ctx, specs)
    return _apply(ctx, plan)


# --- parsing ----------------------------------------------------------------------------


def _parse_objects(operating: tuple[Attribute, ...]) -> list[ObjectSpec]:
    """Split the Operating Attributes into objects (5.6.4): each starts with its key
    attributes (or index) followed by its own non-key attributes; a portal or node may
    be followed by PGT groups. Anything out of that order is a Message Format Error."""
    specs: list[ObjectSpec] = []
    values = [_registrable(attr) for attr in operating]
    i, count = 0, len(operating)
    while i < count:
        tag, value = operating[i].tag, values[i]
        role = FIELDS[tag].role
        owner = FIELDS[tag].owner
        current = specs[-1] if specs else None
        link = current.links[-1] if current and current.links else None
        if tag == Tag.PG_TAG and current is not None and current.kind in (P, N):
            current.links.append(PgLink(_pgt(value)))
            i += 1
        elif link is not None and current is not None and _is_link_peer(current, operating, i):
            if current.kind is P:
                link.peers.append(_name(value))
                i += 1
            else:
                pair = (Tag.PG_PORTAL_IP_ADDR, Tag.PG_PORTAL_TCP_UDP_PORT)
                link.peers.append(cast(PortalKey, _key_at(operating, values, i, P, pair)))
                i += 2
        elif role is Role.INDEX:
            if not isinstance(value, int):
                raise Reject(Status.INVALID_REGISTRATION)
            specs.append(ObjectSpec(owner, None, value))
            i += 1
        elif role is Role.KEY and tag == KEY_TAGS[owner][0]:
            key_tags = KEY_TAGS[owner]
            empty_eid = owner is E and value is None
            key = None if empty_eid else _key_at(operating, values, i, owner)
            address = values[i] if owner is P else None
            specs.append(ObjectSpec(owner, key, None, address=cast(IPAddress | None, address)))
            i += len(key_tags)
        elif (
            current is not None
            and not current.links
            and owner is current.kind
            and role is Role.WRITABLE
        ):
            if any(a.tag == tag for a in current.attrs):
                raise Reject(Status.INVALID_REGISTRATION)  # one value per attribute
            if tag == Tag.PG_TAG:
                _pgt(value)
            current.attrs.append(Attribute(tag, value))
            i += 1
        else:
            raise Reject(Status.MESSAGE_FORMAT_ERROR)
    return specs


def _registrable(attr: Attribute) -> AttrValue:
    """The normalised value of an attribute a client may send in a registration."""
    tag = attr.tag
    if Tag.ISNS_SERVER_VENDOR_OUI <= tag <= _LAST_SERVER_TAG:
        raise Reject(Status.INVALID_REGISTRATION)
    if is_fc(tag) or tag not in FIELDS:
        raise Reject(Status.ATTRIBUTE_NOT_IMPLEMENTED)
    f = FIELDS[tag]
    if f.owner in (ObjectType.DD, ObjectType.DDS) or f.role in (Role.READ_ONLY, Role.NEXT_INDEX):
        raise Reject(Status.INVALID_REGISTRATION)  # DDReg's, or not the client's to set
    value = attr.value
    if value is not None and not value_fits(tag, value):
        raise Reject(Status.INVALID_REGISTRATION)
    value = normalize_value(tag, value)
    is_name = isinstance(value, str) and tag in (Tag.ISCSI_NAME, Tag.PG_ISCSI_NAME)
    if is_name and iscsi_name_problem(str(value)) is not None:
        raise Reject(Status.INVALID_REGISTRATION, (attr,))
    return value


def _pgt(value: AttrValue) -> int | None:
    """A PGT: 0-65535, or NULL for a zero-length value (6.5.4)."""
    if value is None:
        return None
    if not isinstance(value, int) or value > 0xFFFF:
        raise Reject(Status.INVALID_REGISTRATION)
    return value


def _is_link_peer(current: ObjectSpec, operating: tuple[Attribute, ...], i: int) -> bool:
    """Is operating[i] a PG iSCSI Name (after a portal) or a PG Portal address (after a
    node) of the open PGT group, rather than the start of an explicit PG object?"""
    tag = operating[i].tag
    if current.kind is P:
        following = operating[i + 1].tag if i + 1 < len(operating) else None
        return tag == Tag.PG_ISCSI_NAME and following != Tag.PG_PORTAL_IP_ADDR
    return tag == Tag.PG_PORTAL_IP_ADDR


def _key_at(
    attrs: tuple[Attribute, ...],
    values: list[AttrValue],
    i: int,
    kind: ObjectType,
    tags: tuple[int, ...] = (),
) -> OrderKey:
    """The lookup key of an object of `kind` from the attributes starting at attrs[i]
    (`values`: their checked values): its key attributes, or `tags` standing for them (a
    PG Portal pair names a portal)."""
    expected = tags or KEY_TAGS[kind]
    end = i + len(expected)
    if tuple(a.tag for a in attrs[i:end]) != expected:
        raise Reject(Status.MESSAGE_FORMAT_ERROR)  # key attributes belong together (5.6.4)
    key_values = values[i:end]
    if any(v is None for v in key_values):
        raise Reject(Status.INVALID_REGISTRATION)
    return lookup_key(kind, key_values)


def _name(value: AttrValue) -> str:
    if not isinstance(value, str):
        raise Reject(Status.INVALID_REGISTRATION)
    return value


# --- resolving --------------------------------------------------------------------------


@dataclass(slots=True)
class Plan:
    target: NetworkEntity | None  # None: a new entity
    eid: str | None  # the EID to create it with; None: assign one
    entity_spec: ObjectSpec | None
    specs: list[ObjectSpec]  # the other objects, in message order
    replace: RegistryObject | None  # what the Replace bit removes first
    entity_keyed: bool  # the message acts on an entity (not on a portal, node or PG)
    key_named: bool  # the Message Key named the entity (an EID, or its index)


def _resolve(ctx: Context, specs: list[ObjectSpec]) -> Plan:
    db, scope = ctx.db, ctx.scope
    entity_spec = specs.pop(0) if specs and specs[0].kind is E else None
    if any(spec.kind is E for spec in specs):
        # One entity per message, listed first (5.6.5.1, 5.6.4 containment order).
        raise Reject(Status.INVALID_REGISTRATION if entity_spec else Status.MESSAGE_FORMAT_ERROR)
    key_obj, key_eid = _message_key(db, ctx.keys)
    replace_bit = bool(ctx.message.flags & Flags.REPLACE) and bool(ctx.keys)
    entity_keyed = key_obj is None or isinstance(key_obj, NetworkEntity)
    replace: RegistryObject | None
    if entity_keyed:
        key_eid = key_obj.eid if isinstance(key_obj, NetworkEntity) else key_eid
        eid = _entity_eid(db, key_eid, entity_spec)
        target = db.entities.get(eid) if eid is not None else None
        if eid is None and scope.node is not None and not scope.is_control:
            target = scope.entity  # as open-isns: an EID-less registration is the source's
        replace = target if replace_bit else None
    else:
        assert isinstance(key_obj, Portal | StorageNode | PortalGroup)
        eid, target = None, key_obj.entity
        if not specs or _find(db, specs[0]) is not key_obj:
            raise Reject(Status.INVALID_UPDATE)  # the key object's keys may not change
        if entity_spec is not None or any(spec.kind is not G for spec in specs[1:]):
            raise Reject(Status.INVALID_REGISTRATION)  # not subordinate to the key object
        replace = key_obj if replace_bit and not isinstance(key_obj, PortalGroup) else None
    _authorize(ctx, target, specs)
    seen: set[object] = set()
    for spec in specs:
        spec.existing = _find(db, spec)
        if spec.index is not None and spec.existing is None:
            raise Reject(Status.INVALID_REGISTRATION)  # an index names a registered object
        identity = spec.existing if spec.existing is not None else (spec.kind, spec.key)
        if identity in seen:
            raise Reject(Status.INVALID_REGISTRATION)  # an object appears once (5.6.5.1)
        seen.add(identity)
        if spec.existing is not None and _entity_of(spec.existing) is not target:
            # Another entity's object. A registered node reaching into it is unauthorized
            # (5.6.1); otherwise it is an attempt to move it, and containment never
            # changes (5.6.5.1): Invalid Registration, as isnsd answers.
            intruder = scope.node is not None and not scope.is_control
            raise Reject(Status.SOURCE_UNAUTHORIZED if intruder else Status.INVALID_REGISTRATION)
        _check_node_type(ctx, spec)
    _check_portal_groups(db, target, specs)
    _check_esi(target, replace, specs)
    if (target is None or replace is target) and not any(s.kind in (P, N) for s in specs):
        raise Reject(Status.INVALID_REGISTRATION)  # a new entity needs a portal or node
    return Plan(target, eid, entity_spec, specs, replace, entity_keyed, key_eid is not None)


def _message_key(
    db: Database, keys: tuple[Attribute, ...]
) -> tuple[RegistryObject | None, str | None]:
    """(existing key object, EID of the key): an EID key may name a new entity, any other
    key must name a registered portal, node or PG (5.6.5.1)."""
    if not keys:
        return None, None
    tags = tuple(attr.tag for attr in keys)
    values = [_registrable(attr) for attr in keys]
    if tags == (Tag.ENTITY_IDENTIFIER,):
        eid = values[0]
        if eid is not None and not isinstance(eid, str):
            raise Reject(Status.INVALID_REGISTRATION)
        return (db.entities.get(eid) if eid else None), eid or None
    kind = next((k for k in (P, N, G) if tags == KEY_TAGS[k]), None)
    if kind is not None:
        found = db.table(kind).get(_key_at(keys, values, 0, kind))
    elif len(tags) == 1 and tags[0] in INDEX_TAGS:
        value = keys[0].value
        found = db.by_index(INDEX_TAGS[tags[0]]).get(value) if isinstance(value, int) else None
    else:
        raise Reject(Status.MESSAGE_FORMAT_ERROR)  # not a registration key
    if found is None:
        raise Reject(Status.INVALID_REGISTRATION)
    return found, None


def _entity_eid(db: Database, key_eid: str | None, spec: ObjectSpec | None) -> str | None:
    """The EID the message names, in its key or its entity object; they must agree."""
    spec_eid: str | None = None
    if spec is not None and spec.index is not None:
        entity = db.entity_index.get(spec.index)
        if entity is None:
            raise Reject(Status.INVALID_REGISTRATION)
        spec_eid = entity.eid
    elif spec is not None and isinstance(spec.key, str):
        spec_eid = spec.key
    if key_eid and spec_eid and key_eid != spec_eid:
        raise Reject(Status.INVALID_REGISTRATION)
    return key_eid or spec_eid


def _authorize(ctx: Context, target: NetworkEntity | None, specs: list[ObjectSpec]) -> None:
    """5.6.1: a non-Control source changes only its own entity. A source not registered
    yet may register itself (into a new entity, or joining an existing one, as isnsd
    allows); otherwise it is unknown."""
    scope = ctx.scope
    if scope.is_control:
        return
    if scope.node is None:
        if not any(spec.kind is N and spec.key == scope.name for spec in specs):
            raise Reject(Status.SOURCE_UNKNOWN)
    elif target is not scope.entity:
        raise Reject(Status.SOURCE_UNAUTHORIZED)


def _check_node_type(ctx: Context, spec: ObjectSpec) -> None:
    """Only configured Control Nodes may register the Control type (6.4.2, 2.4), and only
    from isns.control_networks."""
    allowed = ctx.policy.control_nodes if ctx.scope.control_network else frozenset()
    for attr in spec.attrs:
        control = isinstance(attr.value, int) and attr.value & NodeType.CONTROL
        if attr.tag == Tag.ISCSI_NODE_TYPE and control and _node_of(spec) not in allowed:
            raise Reject(Status.SOURCE_UNAUTHORIZED)


def _check_esi(
    target: NetworkEntity | None, replace: RegistryObject | None, specs: list[ObjectSpec]
) -> None:
    """6.3.5: an entity registered for ESI monitoring (a non-zero ESI Interval) needs an
    ESI Port on at least one of its portals, as it will have them after this message."""
    if not any(a.tag == Tag.ESI_INTERVAL and a.value for s in specs for a in s.attrs):
        return
    ports: dict[object, bool] = {}
    if target is not None and replace is not target:
        ports = {key: p.esi_port is not None for key, p in target.portals.items()}
        if isinstance(replace, Portal):
            del ports[replace.key]
    for spec in specs:
        if spec.kind is P:
            port = next((a for a in spec.attrs if a.tag == Tag.ESI_PORT), None)
            key = _portal_of(spec)
            if port is not None or key not in ports:
                ports[key] = port is not None and port.value is not None
    if not any(ports.values()):
        raise Reject(Status.INVALID_REGISTRATION)


def _check_portal_groups(
    db: Database, target: NetworkEntity | None, specs: list[ObjectSpec]
) -> None:
    """A PG relates a node and a portal of one entity; either may be unregistered, none
    may belong to another entity, and an explicit PG must name one of this entity's
    objects (3.4, 6.5.1-3)."""
    names = {_node_of(spec) for spec in specs if spec.kind is N}
    portals = {_portal_of(spec) for spec in specs if spec.kind is P}
    if target is not None:
        names.update(target.nodes)
        portals.update(target.portals)

    def check(name: str, portal: PortalKey, explicit: bool) -> None:
        related = (db.nodes.get(name), db.portals.get(portal), db.pgs.get((name, *portal)))
        if any(obj is not None and obj.entity is not target for obj in related):
            raise Reject(Status.INVALID_REGISTRATION)
        if explicit and name not in names and portal not in portals:
            raise Reject(Status.INVALID_REGISTRATION)

    for spec in specs:
        for link in spec.links:
            for peer in link.peers:
                if isinstance(peer, str):
                    check(peer, _portal_of(spec), False)
                else:
                    check(_node_of(spec), peer, False)
        if spec.kind is G and spec.existing is None:
            check(*_pg_of(spec), True)


def _node_of(spec: ObjectSpec) -> str:
    if isinstance(spec.existing, StorageNode):
        return spec.existing.name
    return cast(str, spec.key)


def _portal_of(spec: ObjectSpec) -> PortalKey:
    if isinstance(spec.existing, Portal):
        return spec.existing.key
    return cast(PortalKey, spec.key)


def _pg_of(spec: ObjectSpec) -> tuple[str, PortalKey]:
    if isinstance(spec.existing, PortalGroup):
        return spec.existing.node_name, spec.existing.portal_key
    name, address, port = cast(PGKey, spec.key)
    return name, (address, port)


def _entity_of(obj: RegistryObject) -> NetworkEntity | None:
    return obj.entity if isinstance(obj, Portal | StorageNode | PortalGroup) else None


def _find(db: Database, spec: ObjectSpec) -> RegistryObject | None:
    if spec.index is not None:
        return db.by_index(spec.kind).get(spec.index)
    return db.table(spec.kind).get(spec.key) if spec.key is not None else None


# --- applying ---------------------------------------------------------------------------


def _apply(ctx: Context, plan: Plan) -> Reply:
    db, journal = ctx.db, ctx.journal
    target = plan.target
    if isinstance(plan.replace, NetworkEntity):
        # Replace: deregister the entity and all it holds, then register the message.
        db.remove_entity(plan.replace, journal)
        plan.eid, target = plan.replace.eid, None
        for spec in plan.specs:
            spec.existing = None
    elif isinstance(plan.replace, StorageNode):
        db.remove_node(plan.replace, journal)
        plan.specs[0].existing = None
    elif isinstance(plan.replace, Portal):
        db.remove_portal(plan.replace, journal)
        plan.specs[0].existing = None
    created = target is None
    if target is None:
        target = db.add_entity(plan.eid or db.new_eid(journal), journal)
    entity_attrs = plan.entity_spec.attrs if plan.entity_spec else []
    _set_attributes(target, entity_attrs, ctx, updated=not created)
    out: list[Attribute] = []
    registered: list[RegistryObject] = []
    for spec in plan.specs:
        obj = _register(db, target, spec, ctx)
        registered.append(obj)
        # Its keys and what the message set; an explicit PG always with its PGT (5.7.5.1).
        own = (a.tag for a in spec.attrs)
        out += render(obj, _PG_KEY_AND_TAG if spec.kind is G else (*KEY_TAGS[spec.kind], *own))
        for link in spec.links:
            for peer in link.peers:
                out += render(_link(db, target, obj, peer, link.tag, ctx), _PG_KEY_AND_TAG)
    _default_portal_groups(db, target, registered, ctx)
    target.timestamp = int(ctx.now)
    journal.dirty.add(entity_ref(target.eid))
    period_assigned = _registration_period(target, ctx)
    if not plan.entity_keyed:
        return ctx.keys, tuple(out)
    # The entity leads, so the client learns the EID it got and the period it was given.
    entity_tags = [a.tag for a in entity_attrs if a.tag != Tag.REGISTRATION_PERIOD]
    if period_assigned or len(entity_tags) < len(entity_attrs):
        entity_tags.append(Tag.REGISTRATION_PERIOD)
    head = [Attribute(Tag.ENTITY_IDENTIFIER, target.eid), *render(target, entity_tags)]
    keys = ctx.keys if plan.key_named else (Attribute(Tag.ENTITY_IDENTIFIER, target.eid),)
    return keys, tuple(head + out)


def _register(
    db: Database, target: NetworkEntity, spec: ObjectSpec, ctx: Context
) -> RegistryObject:
    """Create or update the object of `spec` in `target`."""
    if spec.kind is G:
        name, portal = _pg_of(spec)
        given = next((a.value for a in spec.attrs if a.tag == Tag.PG_TAG), 1)
        if isinstance(spec.existing, PortalGroup) and not spec.attrs:
            given = spec.existing.tag
        tag = given if isinstance(given, int) else None  # a zero-length PGT is NULL
        return db.set_pg(target, name, portal, tag, ctx.journal)
    obj = spec.existing
    if obj is not None:
        _set_attributes(obj, spec.attrs, ctx, updated=True)
        return obj
    if spec.kind is N:
        obj = db.add_node(target, _node_of(spec), ctx.journal)
    else:
        address, port = portal_address(_portal_of(spec))
        obj = db.add_portal(target, spec.address or address, port, ctx.journal)
    _set_attributes(obj, spec.attrs, ctx, updated=False)
    return obj


def _set_attributes(
    obj: RegistryObject, attrs: list[Attribute], ctx: Context, updated: bool
) -> None:
    """Store non-key attributes (a zero-length one clears its value); an existing object
    is reported updated only when a value changed (a refresh is no news to SCN)."""
    names = [cast(str, FIELDS[attr.tag].name) for attr in attrs]  # writable: all have one
    before = [getattr(obj, name) for name in names]
    for name, attr in zip(names, attrs, strict=True):
        setattr(obj, name, attr.value)
    if isinstance(obj, StorageNode):
        ctx.db.refresh_subscription(obj)  # the SCN Bitmap may be registered here too (6.4.4)
    elif isinstance(obj, Portal) and obj.esi_interval:
        # 6.3.4: the server may choose its own interval; the response tells the client.
        policy = ctx.policy
        obj.esi_interval = min(
            max(obj.esi_interval, policy.esi_min_interval), policy.esi_max_interval
        )
    if updated and before != [getattr(obj, name) for name in names]:
        ctx.journal.record(UPDATED, obj, _names(obj))


def _names(obj: RegistryObject) -> frozenset[str]:
    if isinstance(obj, StorageNode):
        return frozenset((obj.name,))
    entity = obj if isinstance(obj, NetworkEntity) else _entity_of(obj)
    return frozenset(entity.nodes) if entity is not None else frozenset()


def _link(
    db: Database,
    target: NetworkEntity,
    obj: RegistryObject,
    peer: str | PortalKey,
    tag: int | None,
    ctx: Context,
) -> PortalGroup:
    """The PG of a PGT group: `obj` (a portal or node) with `peer` (a node name or a
    portal key)."""
    if isinstance(peer, str):
        assert isinstance(obj, Portal)
        return db.set_pg(target, peer, obj.key, tag, ctx.journal)
    assert isinstance(obj, StorageNode)
    return db.set_pg(target, obj.name, peer, tag, ctx.journal)


def _default_portal_groups(
    db: Database, target: NetworkEntity, registered: list[RegistryObject], ctx: Context
) -> None:
    """PGT 1 for each pairing of a registered node or portal with the entity's portals
    or nodes that no PG covers yet (5.6.5.1), in the order open-isns creates them."""
    for obj in registered:
        if isinstance(obj, StorageNode):
            for key in target.portals:
                if (obj.name, *key) not in db.pgs:
                    db.set_pg(target, obj.name, key, 1, ctx.journal)
        elif isinstance(obj, Portal):
            key = obj.key
            for name in target.nodes:
                if (name, *key) not in db.pgs:
                    db.set_pg(target, name, key, 1, ctx.journal)


def _registration_period(entity: NetworkEntity, ctx: Context) -> bool:
    """Give a period to an entity that asked for none, or for 0 without ESI (6.2.6);
    True when the server chose it (it is then returned)."""
    period = entity.registration_period
    esi = any(p.esi_port is not None for p in entity.portals.values())
    if period is None or (period == 0 and not esi):
        entity.registration_period = ctx.policy.registration_period
        return True
    return False
