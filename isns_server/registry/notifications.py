"""Who hears about a change, and what each hears: State Change Notifications (RFC 4171
2.2.3, 5.6.5.8, 6.4.4), built from one message's Journal. Pure: the service layer only
moves the resulting messages.

- A regular registration hears about the Storage Nodes it sees (zoning.py), each as
  OBJECT_ADDED, OBJECT_UPDATED or OBJECT_REMOVED with the node's iSCSI Name, the net
  effect of the message (a Replace re-registration is an update). A zoning change is
  reported to exactly the nodes that gain or lose sight of another: that node is
  OBJECT_ADDED to (or OBJECT_REMOVED from) their view, which is how 6.4.4 words it
  ("added to ... the Discovery Domain"); the DD/DDS MEMBER bits are management-only.
- A change to an entity, portal or portal group is an OBJECT_UPDATED of the entity's
  nodes that remain: clients (open-isns `isnsdd`) read OBJECT_REMOVED with a node's name
  as "that node is gone".
- A management registration (Control Nodes only) hears about everything: every node,
  DD and DD set change, DD/DDS MEMBER events with the DD_ID / DD Set ID that caused
  them, all with the MANAGEMENT REGISTRATION/SCN bit set.
- TARGET_AND_SELF_ONLY / INITIATOR_AND_SELF_ONLY keep only reports about targets /
  initiators, and about the recipient itself.

Visibility before a DD or DD set change is read from `zoning_snapshot()`, taken before
the message is applied; the same `Scope` rule then answers "did W see X" before and after.
"""

import copy
from collections.abc import Iterator

from ..isnsp.constants import Flags, FunctionId, NodeType, ScnBitmap, Tag
from ..isnsp.messages import Attribute, Message
from .database import Database
from .objects import (
    DiscoveryDomain,
    DiscoveryDomainSet,
    ObjectType,
    StorageNode,
)
from .outcome import Change, Journal, Notification
from .policy import Policy
from .zoning import Scope, is_control_node

ADDED, UPDATED, REMOVED = ScnBitmap.OBJECT_ADDED, ScnBitmap.OBJECT_UPDATED, ScnBitmap.OBJECT_REMOVED
MEMBER_ADDED, MEMBER_REMOVED = ScnBitmap.DD_MEMBER_ADDED, ScnBitmap.DD_MEMBER_REMOVED
MANAGEMENT = ScnBitmap.MANAGEMENT_REGISTRATION
EVENTS = ADDED | UPDATED | REMOVED | MEMBER_ADDED | MEMBER_REMOVED
ONLY_TYPES = ScnBitmap.TARGET_AND_SELF_ONLY | ScnBitmap.INITIATOR_AND_SELF_ONLY
ENTRIES_PER_MESSAGE = 50  # keeps one SCN to a few UDP datagrams after a large zoning change

_N, _P, _G, _E = ObjectType.NODE, ObjectType.PORTAL, ObjectType.PORTAL_GROUP, ObjectType.ENTITY
_DD, _DDS = ObjectType.DD, ObjectType.DDS
Entry = tuple[int, tuple[Attribute, ...]]  # SCN bitmap, the source attributes after it


def zoning_snapshot(db: Database) -> Database:
    """`db` as it zones now, for comparison after a DD or DD set change: the same objects,
    with copies of what those messages change (memberships, DD set status)."""
    view = copy.copy(db)
    view.node_domains = {name: set(ids) for name, ids in db.node_domains.items()}
    view.dd_sets = {dd_id: set(ids) for dd_id, ids in db.dd_sets.items()}
    view.undomained = dict(db.undomained)
    view.dds = {
        i: DiscoveryDomain(i, dd.name, dd.features, dict(dd.nodes), dict(dd.portals))
        for i, dd in db.dds.items()
    }
    view.ddss = {
        i: DiscoveryDomainSet(i, dds.name, dds.status, set(dds.dds)) for i, dds in db.ddss.items()
    }
    return view


def notifications(
    db: Database, policy: Policy, journal: Journal, before: Database | None, now: float
) -> tuple[Notification, ...]:
    """The SCNs for what `journal` recorded; `before` is the zoning snapshot taken before
    a DD or DD set message, None for any other message (which cannot change zoning)."""
    if not db.subscribers:
        return ()
    plan = _Plan(db, policy)
    _node_events(plan, journal)
    if before is not None:
        _zoning_events(plan, journal.changes, before)
    _management_events(plan, journal.changes)
    for node, bitmap in journal.requested:
        for viewer in plan.viewers(node):
            plan.add(viewer, bitmap, _name(node), node)
    return tuple(plan.messages(now))


class _Plan:
    """The SCN entries collected per recipient, with the lookups they share."""

    def __init__(self, db: Database, policy: Policy) -> None:
        self.db = db
        self.policy = policy
        self.entries: dict[str, list[Entry]] = {}
        self.reported: set[tuple[str, Entry]] = set()
        self.scopes: dict[str, Scope] = {}
        self.controls = [n for n in db.subscribers.values() if self.is_control(n)]
        self.managers = [n for n in self.controls if (n.scn_bitmap or 0) & MANAGEMENT]

    def is_control(self, node: StorageNode) -> bool:
        return is_control_node(self.policy, node.name, node)

    def scope(self, name: str) -> Scope:
        scope = self.scopes.get(name)
        if scope is None:
            scope = self.scopes[name] = Scope(self.db, self.policy, name)
        return scope

    def viewers(self, node: StorageNode) -> list[StorageNode]:
        """The subscribers that see `node` now (a removed node: as it was zoned)."""
        db, subscribers = self.db, self.db.subscribers
        found = {id(n): n for n in self.controls}
        found.update((id(n), n) for n in node.entity.nodes.values() if n.name in subscribers)
        domains = db.node_domains.get(node.name)
        if domains:
            for dd_id in domains:
                members = (subscribers.get(name) for name in db.dds[dd_id].nodes)
                found.update((id(n), n) for n in members if n is not None)
        elif self.policy.default_dd:
            small, large = sorted((db.undomained, subscribers), key=len)
            found.update((id(n), n) for name, n in small.items() if name in large)
        return [n for n in found.values() if self.scope(n.name).sees_node(node)]

    def add(
        self,
        recipient: StorageNode,
        bitmap: int,
        attrs: tuple[Attribute, ...],
        subject: StorageNode | None,
    ) -> None:
        """Report `bitmap` with source `attrs` to `recipient` if its SCN Bitmap asks for it."""
        wanted = recipient.scn_bitmap or 0
        if not bitmap & wanted & EVENTS:
            return
        if subject is not None and subject.name != recipient.name and wanted & ONLY_TYPES:
            types = subject.node_type or 0
            targets = wanted & ScnBitmap.TARGET_AND_SELF_ONLY and types & NodeType.TARGET
            initiators = wanted & ScnBitmap.INITIATOR_AND_SELF_ONLY and types & NodeType.INITIATOR
            if not (targets or initiators):
                return
        if wanted & MANAGEMENT and self.is_control(recipient):
            bitmap |= MANAGEMENT
        entry = (bitmap, attrs)
        if (recipient.name, entry) not in self.reported:
            self.reported.add((recipient.name, entry))
            self.entries.setdefault(recipient.name, []).append(entry)

    def messages(self, now: float) -> Iterator[Notification]:
        for name, entries in self.entries.items():
            node = self.db.nodes.get(name)
            if node is None:
                continue  # the recipient itself went away in this message
            destinations = tuple(
                (portal.ip, portal.scn_port)
                for portal in node.entity.portals.values()
                if portal.scn_port is not None
            )
            if not destinations:
                continue
            head = (Attribute(Tag.ISCSI_NAME, name), Attribute(Tag.TIMESTAMP, int(now)))
            for start in range(0, len(entries), ENTRIES_PER_MESSAGE):
                body = [
                    attr
                    for bitmap, attrs in entries[start : start + ENTRIES_PER_MESSAGE]
                    for attr in (Attribute(Tag.ISCSI_SCN_BITMAP, bitmap), *attrs)
                ]
                message = Message(FunctionId.SCN, 0, Flags.SERVER, (*head, *body))
                yield Notification(name, destinations, message)


def _name(node: StorageNode) -> tuple[Attribute, ...]:
    return (Attribute(Tag.ISCSI_NAME, node.name),)


def _node_events(plan: _Plan, journal: Journal) -> None:
    """Each node a change touched, reported once, as the net effect of the message."""
    db = plan.db
    first: dict[str, int] = {}
    touched: dict[str, None] = {}
    for change in journal.changes:
        if change.domain is not None:
            continue  # a membership change: zoning, not the object itself
        if change.object_type is _N:
            name = str(change.key[0])
            first.setdefault(name, change.event)
            touched[name] = None
        elif change.object_type in (_P, _G, _E):
            touched.update(dict.fromkeys(change.names))
    for name in touched:
        existed = first.get(name) != ADDED
        node = db.nodes.get(name)
        if node is not None:
            event = UPDATED if existed else ADDED
        elif existed and name in journal.removed_nodes:
            node, event = journal.removed_nodes[name], REMOVED
        else:
            continue  # added and removed again within one message
        for viewer in plan.viewers(node):
            plan.add(viewer, event, _name(node), node)


def _zoning_events(plan: _Plan, changes: list[Change], before: Database) -> None:
    """OBJECT_ADDED / OBJECT_REMOVED for each subscriber that gained or lost sight of a
    node through a DD or DD set change, and OBJECT_UPDATED when only the portals it sees
    of a node changed (a portal joined or left a DD)."""
    db = plan.db
    watchers = db.subscribers
    # (watcher, subject) pairs whose visibility may differ; True: only the portals may.
    pairs: dict[tuple[str, str], bool] = {}
    for change in changes:
        if change.domain is not None and change.object_type is _N:
            moved = str(change.key[0])
            partners = _members(change.domain, before, db)
            if (moved in before.node_domains) != (moved in db.node_domains):
                partners |= before.undomained.keys() | db.undomained.keys()  # left/joined it
            for partner in partners:
                if moved in watchers:
                    pairs[(moved, partner)] = False
                if partner in watchers:
                    pairs[(partner, moved)] = False
        elif change.domain is not None and change.object_type is _P:
            for member in _members(change.domain, before, db) & watchers.keys():
                pairs.update(((member, name), True) for name in change.names)
    for dd_id in _domains_named(changes, before, db):
        if before.dd_active(dd_id) != (dd_id in db.dds and db.dd_active(dd_id)):
            members = _members(dd_id, before, db)
            pairs.update(((a, b), False) for a in members & watchers.keys() for b in members)
    scopes_before: dict[str, Scope] = {}
    for (watcher, subject), portals_only in pairs.items():
        x = db.nodes.get(subject)
        if x is None or watcher == subject:
            continue
        scope_before = scopes_before.get(watcher)
        if scope_before is None:
            scope_before = scopes_before[watcher] = Scope(before, plan.policy, watcher)
        seen = scope_before.sees_node(x)
        sees = plan.scope(watcher).sees_node(x)
        if portals_only and seen and sees:
            plan.add(watchers[watcher], UPDATED, _name(x), x)
        elif seen != sees:
            plan.add(watchers[watcher], ADDED if sees else REMOVED, _name(x), x)


def _members(dd_id: int, before: Database, db: Database) -> set[str]:
    """Node members of DD `dd_id` before or after the message."""
    members = set(before.dds[dd_id].nodes) if dd_id in before.dds else set()
    if dd_id in db.dds:
        members.update(db.dds[dd_id].nodes)
    return members


def _domains_named(changes: list[Change], before: Database, db: Database) -> set[int]:
    """The DDs whose enabled state the changes may have altered."""
    found: set[int] = set()
    for change in changes:
        (ident,) = change.key[:1]
        if change.object_type is _DD and isinstance(ident, int):
            found.add(ident)
        elif change.object_type is _DDS and isinstance(ident, int):
            dds_id = ident
            for view in (before, db):
                if dds_id in view.ddss:
                    found.update(view.ddss[dds_id].dds)
    return found


def _management_events(plan: _Plan, changes: list[Change]) -> None:
    """What only management registrations hear: DD and DD set changes, with the IDs."""
    if not plan.managers:
        return
    db = plan.db
    for change in changes:
        kind, key = change.object_type, change.key
        reports: list[tuple[tuple[Attribute, ...], StorageNode | None]] = []
        if change.domain is not None and kind in (_N, _P):
            dd = Attribute(Tag.DD_ID, change.domain)
            names = (str(key[0]),) if kind is _N else sorted(change.names)
            reports = [((Attribute(Tag.ISCSI_NAME, n), dd), db.nodes.get(n)) for n in names]
        elif change.domain is not None and kind is _DD:
            reports = [
                ((Attribute(Tag.DD_ID, key[0]), Attribute(Tag.DD_SET_ID, change.domain)), None)
            ]
        elif kind is _DD:
            reports = [((Attribute(Tag.DD_ID, key[0]),), None)]
        elif kind is _DDS:
            reports = [((Attribute(Tag.DD_SET_ID, key[0]),), None)]
        for attrs, subject in reports:
            for manager in plan.managers:
                plan.add(manager, change.event, attrs, subject)
