"""DevDereg (RFC 4171 5.6.5.4, 5.7.5.4): remove entities, portals and nodes."""

from collections.abc import Iterable

from ..isnsp.constants import Status
from ..isnsp.messages import Attribute, AttrValue
from .context import Context, Reply
from .database import Database
from .objects import NetworkEntity, ObjectType, Portal, RegistryObject, StorageNode, object_type
from .outcome import Journal, Reject
from .schema import FIELDS, KEY_TAGS, Role, is_fc, lookup_key, normalize_value, render, value_fits

_DEREGISTRABLE = (ObjectType.ENTITY, ObjectType.PORTAL, ObjectType.NODE)


def dev_dereg(ctx: Context) -> Reply:
    """Remove the objects the Operating Attributes name, with everything that depended on
    them only; an entity left with no portal and no node goes too. Objects that do not
    exist are not an error. A non-Control source may only remove objects of its own
    entity: otherwise nothing is removed and the answer lists the objects refused."""
    ctx.require_known()
    targets = _named_objects(ctx)
    scope = ctx.scope
    if not scope.is_control:
        refused = [obj for obj in targets if _entity(obj) is not scope.entity]
        if refused:
            attrs = [a for obj in refused for a in render(obj, KEY_TAGS[object_type(obj)])]
            raise Reject(Status.SOURCE_UNAUTHORIZED, tuple(attrs))
    remove_objects(ctx.db, targets, ctx.journal)
    return (), ()


def remove_objects(db: Database, targets: Iterable[RegistryObject], journal: Journal) -> None:
    """Deregister entities, portals and nodes with everything that depended on them only;
    an entity left with no portal and no node goes too (5.6.5.4). The one removal path:
    DevDereg, ESI failures and expired registrations all take it."""
    emptied: dict[int, NetworkEntity] = {}
    for obj in targets:
        entity = _entity(obj)
        if db.entities.get(entity.eid) is not entity:
            continue  # already gone with an entity named earlier
        if isinstance(obj, NetworkEntity):
            db.remove_entity(obj, journal)
            continue
        if isinstance(obj, StorageNode) and db.nodes.get(obj.name) is obj:
            db.remove_node(obj, journal)
        elif isinstance(obj, Portal) and db.portals.get(obj.key) is obj:
            db.remove_portal(obj, journal)
        emptied[id(entity)] = entity
    for entity in emptied.values():
        if not entity.nodes and not entity.portals and db.entities.get(entity.eid) is entity:
            db.remove_entity(entity, journal)  # its last portal and node are gone


def _named_objects(ctx: Context) -> list[RegistryObject]:
    """The registered objects named by the Operating Attributes: an EID, a portal's
    address and port, an iSCSI name, or a portal, node or entity index. Other attributes
    of a named object may follow its key (Microsoft's initiator sends the Entity
    Protocol with the EID); they are ignored."""
    operating = ctx.operating
    if not operating:
        raise Reject(Status.MESSAGE_FORMAT_ERROR)
    found: list[RegistryObject] = []
    kind: ObjectType | None = None
    i = 0
    while i < len(operating):
        attr = operating[i]
        if is_fc(attr.tag):
            raise Reject(Status.ATTRIBUTE_NOT_IMPLEMENTED)
        field = FIELDS.get(attr.tag)
        if field is None or field.owner not in _DEREGISTRABLE:
            raise Reject(Status.INVALID_DEREGISTRATION)
        if field.role is Role.INDEX:
            index = _value(attr)
            obj = ctx.db.by_index(field.owner).get(index) if isinstance(index, int) else None
            width = 1
        elif field.role is Role.KEY and attr.tag == KEY_TAGS[field.owner][0]:
            width = len(KEY_TAGS[field.owner])
            given = operating[i : i + width]
            if tuple(a.tag for a in given) != KEY_TAGS[field.owner]:
                raise Reject(Status.MESSAGE_FORMAT_ERROR)
            obj = ctx.db.table(field.owner).get(lookup_key(field.owner, [_value(a) for a in given]))
        elif field.owner is kind:
            i += 1  # a non-key attribute of the object just named
            continue
        else:
            raise Reject(Status.INVALID_DEREGISTRATION)
        kind = field.owner
        if obj is not None:
            found.append(obj)
        i += width
    return found


def _value(attr: Attribute) -> AttrValue:
    if attr.value is None or not value_fits(attr.tag, attr.value):
        raise Reject(Status.INVALID_DEREGISTRATION)
    return normalize_value(attr.tag, attr.value)


def _entity(obj: RegistryObject) -> NetworkEntity:
    assert isinstance(obj, NetworkEntity | Portal | StorageNode)
    return obj if isinstance(obj, NetworkEntity) else obj.entity
