"""What handling one message produced: the response, what persistence must rewrite, and
the changes a State Change Notification layer reacts to (RFC 4171 6.4.4 event types)."""

from dataclasses import dataclass

from ..isnsp.constants import ScnBitmap, Status
from ..isnsp.messages import Attribute, IPAddress, Message, PortNumber
from .objects import (
    DiscoveryDomain,
    DiscoveryDomainSet,
    NetworkEntity,
    ObjectType,
    Portal,
    PortalGroup,
    RegistryObject,
    StorageNode,
    object_type,
)

# A persisted record's reference: ("entity", eid), ("dd", dd_id), ("dds", dds_id), or
# COUNTERS for the next-index counters that keep indexes from ever being reused.
Ref = tuple[str, str | int]
COUNTERS: Ref = ("counters", "next-index")

ObjectKey = tuple[str | int | IPAddress | PortNumber, ...]


def entity_ref(eid: str) -> Ref:
    return ("entity", eid)


def dd_ref(dd_id: int) -> Ref:
    return ("dd", dd_id)


def dds_ref(dds_id: int) -> Ref:
    return ("dds", dds_id)


@dataclass(frozen=True, slots=True)
class Change:
    """One database change.

    `event` is one of OBJECT_ADDED, OBJECT_UPDATED, OBJECT_REMOVED (any object) or
    DD_MEMBER_ADDED, DD_MEMBER_REMOVED (a node or portal joining/leaving DD `domain`, or
    a DD joining/leaving DD set `domain`). `key` is the object's key attribute values.
    `names` are the iSCSI names the change is about: the node itself (registered or,
    as a DD member, not), the nodes of a changed entity or portal, the registered
    members of a changed DD or DD set.
    """

    event: ScnBitmap
    object_type: ObjectType
    key: ObjectKey
    names: frozenset[str]
    domain: int | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """A State Change Notification for node `recipient` (5.6.5.8): `message`, to be sent
    to any one of `destinations` (its entity's portals' SCN Ports, by address). Its
    transaction ID is 0: the sender numbers each transmission."""

    recipient: str
    destinations: tuple[tuple[IPAddress, PortNumber], ...]
    message: Message


@dataclass(frozen=True, slots=True)
class Outcome:
    """`response` to send; `dirty`: the records to rewrite (Registry.export_record gives
    each, None for one to delete) before the response may go out; `changes`, in the
    order they happened; `notifications`: the SCNs the changes call for, to be sent once
    they are durable."""

    response: Message
    dirty: frozenset[Ref] = frozenset()
    changes: tuple[Change, ...] = ()
    notifications: tuple[Notification, ...] = ()


class Reject(Exception):
    """Refuse the whole message with `status` (5.4: a non-zero status rejects all of it).

    Handlers raise it before changing anything; `attrs` are the operating attributes of
    the error response (the invalid attributes, 5.7.5.1, 6.11.1.2)."""

    def __init__(self, status: Status, attrs: tuple[Attribute, ...] = ()) -> None:
        super().__init__(status.name)
        self.status = status
        self.attrs = attrs


def object_key(obj: RegistryObject) -> ObjectKey:
    if isinstance(obj, NetworkEntity):
        return (obj.eid,)
    if isinstance(obj, StorageNode):
        return (obj.name,)
    if isinstance(obj, Portal):
        return (obj.ip, obj.port)
    if isinstance(obj, PortalGroup):
        return (obj.node_name, obj.portal_ip, obj.portal_port)
    return (obj.id,)


class Journal:
    """Collects the dirty refs and changes of one message while it is applied, the nodes
    it removed (SCNs still need their entity and type), and the SCN events a client asked
    to have sent (SCNEvent, 5.6.5.7)."""

    __slots__ = ("changes", "dirty", "removed_nodes", "requested")

    def __init__(self) -> None:
        self.dirty: set[Ref] = set()
        self.changes: list[Change] = []
        self.removed_nodes: dict[str, StorageNode] = {}
        self.requested: list[tuple[StorageNode, ScnBitmap]] = []

    def record(self, event: ScnBitmap, obj: RegistryObject, names: frozenset[str]) -> None:
        """An object was added, updated or removed."""
        self.changes.append(Change(event, object_type(obj), object_key(obj), names))
        if event == ScnBitmap.OBJECT_REMOVED and isinstance(obj, StorageNode):
            self.removed_nodes[obj.name] = obj
        if isinstance(obj, DiscoveryDomain):
            self.dirty.add(dd_ref(obj.id))
        elif isinstance(obj, DiscoveryDomainSet):
            self.dirty.add(dds_ref(obj.id))
        else:
            self.dirty.add(
                entity_ref(obj.eid if isinstance(obj, NetworkEntity) else obj.entity.eid)
            )

    def member(
        self,
        event: ScnBitmap,
        domain: DiscoveryDomain | DiscoveryDomainSet,
        member_type: ObjectType,
        key: ObjectKey,
        names: frozenset[str],
    ) -> None:
        """A node or portal joined or left a DD, or a DD joined or left a DD set."""
        self.changes.append(Change(event, member_type, key, names, domain.id))
        is_dd = isinstance(domain, DiscoveryDomain)
        self.dirty.add(dd_ref(domain.id) if is_dd else dds_ref(domain.id))
