"""Zoning insight for administrators: why an initiator sees a target, and what a proposed
DD or DD set change would do before it is made. Pure, over the live database; the rules
are zoning.py's (control node, same entity, shared enabled DD, default DD).

A preview works on an overlay of the memberships and DD set states the change touches,
so it costs the size of the DDs involved (plus the default DD's members when a node
enters or leaves it), never a copy of the registry.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from ..isnsp.constants import DDSetStatus, NodeType
from ..names import normalize_name
from .database import Database
from .policy import Policy
from .zoning import is_control_node

# The ID a preview gives a DD or DD set it would create (real IDs are positive).
NEW_DD = -1


@dataclass(frozen=True, slots=True)
class Reason:
    """One way the initiator sees the target. `kind`: control_node (the initiator is
    one), same_entity, discovery_domain (`dd_id`, `dd_name`, enabled by `dd_sets`, or by
    being in no DD set when that is empty), default_dd (both are members of no DD)."""

    kind: str
    dd_id: int | None = None
    dd_name: str | None = None
    dd_sets: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    initiator: str
    target: str
    visible: bool
    target_registered: bool
    reasons: tuple[Reason, ...]
    # Shared DDs that zone nothing now: every DD set they are in is disabled.
    disabled_domains: tuple[Reason, ...] = ()


def explain(db: Database, policy: Policy, initiator: str, target: str) -> Explanation:
    """Whether `initiator` sees `target` and through what. An unregistered target is seen
    by nobody (there is nothing to report), but the DDs that would zone it are listed."""
    initiator, target = normalize_name(initiator), normalize_name(target)
    i_node, t_node = db.nodes.get(initiator), db.nodes.get(target)
    reasons: list[Reason] = []
    disabled: list[Reason] = []
    if is_control_node(policy, initiator, i_node):
        reasons.append(Reason("control_node"))
    if i_node is not None and t_node is not None and i_node.entity is t_node.entity:
        reasons.append(Reason("same_entity"))
    shared = db.node_domains.get(initiator, set()) & db.node_domains.get(target, set())
    for dd_id in sorted(shared):
        dd = db.dds[dd_id]
        sets = sorted(db.dd_sets.get(dd_id, ()))
        enabled = tuple(db.ddss[s].name for s in sets if db.ddss[s].status & DDSetStatus.ENABLED)
        reason = Reason("discovery_domain", dd_id, dd.name, enabled)
        (reasons if db.dd_active(dd_id) else disabled).append(reason)
    undomained = initiator not in db.node_domains and target not in db.node_domains
    if policy.default_dd and undomained:
        reasons.append(Reason("default_dd"))
    registered = t_node is not None
    return Explanation(
        initiator, target, registered and bool(reasons), registered, tuple(reasons), tuple(disabled)
    )


@dataclass(slots=True)
class ProposedChange:
    """A DD or DD set change as the write API would make it. Members are normalised iSCSI
    names (portal members change which portals are reported, not who sees whom). A DD
    being created is `NEW_DD`."""

    members_added: dict[int, set[str]] = field(default_factory=dict)
    members_removed: dict[int, set[str]] = field(default_factory=dict)
    dds_deleted: set[int] = field(default_factory=set)
    set_enabled: dict[int, bool] = field(default_factory=dict)
    set_members_added: dict[int, set[int]] = field(default_factory=dict)
    set_members_removed: dict[int, set[int]] = field(default_factory=dict)
    sets_deleted: set[int] = field(default_factory=set)


Pair = tuple[str, str]  # (initiator, target)


@dataclass(frozen=True, slots=True)
class Preview:
    """Pairs that would start and stop seeing each other (sorted, at most `limit` each;
    the counts are complete), and the live sessions that would lose access."""

    added: tuple[Pair, ...]
    removed: tuple[Pair, ...]
    added_count: int
    removed_count: int
    sessions_losing_access: tuple[Pair, ...]


class _Zoning:
    """Memberships and DD activity, before (`change` None) or after a proposed change."""

    def __init__(self, db: Database, change: ProposedChange | None) -> None:
        self.db = db
        self.change = change or ProposedChange()

    def dd_nodes(self, dd_id: int) -> set[str]:
        c = self.change
        if dd_id in c.dds_deleted:
            return set()
        dd = self.db.dds.get(dd_id)
        names = set(dd.nodes) if dd is not None else set()
        return (names | c.members_added.get(dd_id, set())) - c.members_removed.get(dd_id, set())

    def domains_of(self, name: str) -> set[int]:
        c = self.change
        domains = set(self.db.node_domains.get(name, ()))
        domains |= {d for d, names in c.members_added.items() if name in names}
        domains -= {d for d, names in c.members_removed.items() if name in names}
        return domains - c.dds_deleted

    def active(self, dd_id: int) -> bool:
        c, db = self.change, self.db
        sets = set(db.dd_sets.get(dd_id, ()))
        sets |= {s for s, dds in c.set_members_added.items() if dd_id in dds}
        sets -= {s for s, dds in c.set_members_removed.items() if dd_id in dds}
        sets -= c.sets_deleted
        if dd_id in c.dds_deleted:
            return False
        return not sets or any(self._set_enabled(s) for s in sets)

    def _set_enabled(self, dds_id: int) -> bool:
        if dds_id in self.change.set_enabled:
            return self.change.set_enabled[dds_id]
        dds = self.db.ddss.get(dds_id)
        return dds is not None and bool(dds.status & DDSetStatus.ENABLED)

    def undomained(self, name: str) -> bool:
        return not self.domains_of(name)

    def sees(self, policy: Policy, initiator: str, target: str) -> bool:
        """zoning.Scope.sees_node's rule for one registered target."""
        db = self.db
        t_node = db.nodes.get(target)
        if t_node is None:
            return False
        i_node = db.nodes.get(initiator)
        if is_control_node(policy, initiator, i_node):
            return True
        if i_node is not None and i_node.entity is t_node.entity:
            return True
        i_domains, t_domains = self.domains_of(initiator), self.domains_of(target)
        if not i_domains and not t_domains:
            return policy.default_dd
        return any(self.active(d) for d in i_domains & t_domains)

    def reachable(self, policy: Policy, name: str, default_members: Iterable[str]) -> set[str]:
        """Names `name` may share a DD or the default DD with (a superset of whom it sees)."""
        found: set[str] = set()
        domains = self.domains_of(name)
        for dd_id in domains:
            found |= self.dd_nodes(dd_id)
        if policy.default_dd and not domains:
            found.update(n for n in default_members if self.undomained(n))
        return found


def preview(
    db: Database,
    policy: Policy,
    change: ProposedChange,
    sessions: Iterable[Pair] = (),
    limit: int = 1000,
) -> Preview:
    """What `change` would do: initiator-target pairs gained and lost, and which of the
    live `sessions` (initiator, target) zoning would no longer allow."""
    before, after = _Zoning(db, None), _Zoning(db, change)
    affected = _affected(db, change, before)
    # The default DD's members after the change: registered nodes in no DD, plus those
    # the change takes out of their last DD.
    default_members = set(db.undomained) | {n for n in affected if n in db.nodes}
    added: set[Pair] = set()
    removed: set[Pair] = set()
    for name in affected:
        candidates = before.reachable(policy, name, default_members) | after.reachable(
            policy, name, default_members
        )
        for other in candidates:
            for pair in _oriented(db, name, other):
                was, now = before.sees(policy, *pair), after.sees(policy, *pair)
                if was != now:
                    (added if now else removed).add(pair)
    losing = tuple(
        (i, t)
        for i, t in ((normalize_name(i), normalize_name(t)) for i, t in sessions)
        if before.sees(policy, i, t) and not after.sees(policy, i, t)
    )
    return Preview(
        tuple(sorted(added)[:limit]),
        tuple(sorted(removed)[:limit]),
        len(added),
        len(removed),
        losing,
    )


def _affected(db: Database, change: ProposedChange, before: _Zoning) -> set[str]:
    """Every name whose memberships, or whose DDs' activity, the change touches."""
    names: set[str] = set()
    for members in (*change.members_added.values(), *change.members_removed.values()):
        names |= members
    touched_dds = set(change.dds_deleted)
    touched_sets = (
        set(change.set_enabled)
        | set(change.set_members_added)
        | set(change.set_members_removed)
        | change.sets_deleted
    )
    for dds_id in touched_sets:
        dds = db.ddss.get(dds_id)
        if dds is not None:
            touched_dds |= dds.dds
        touched_dds |= change.set_members_added.get(dds_id, set())
    for dd_id in touched_dds:
        names |= before.dd_nodes(dd_id)
    return names


def _oriented(db: Database, a: str, b: str) -> Iterator[Pair]:
    """(initiator, target) pairs between `a` and `b`: a registered target is the target;
    an unregistered name may be an initiator (initiators often never register)."""
    if a == b:
        return
    if _is_target(db, b) and _may_initiate(db, a):
        yield (a, b)
    if _is_target(db, a) and _may_initiate(db, b):
        yield (b, a)


def _is_target(db: Database, name: str) -> bool:
    node = db.nodes.get(name)
    return node is not None and bool((node.node_type or 0) & NodeType.TARGET)


def _may_initiate(db: Database, name: str) -> bool:
    node = db.nodes.get(name)
    return node is None or bool((node.node_type or 0) & (NodeType.INITIATOR | NodeType.CONTROL))
