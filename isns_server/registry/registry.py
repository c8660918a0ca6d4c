"""The registry's entry point: one iSNSP request in, one Outcome out (no I/O, no clock)."""

from collections.abc import Callable, Iterable

from ..isnsp.constants import FunctionId, Status, Tag
from ..isnsp.messages import Attribute, IPAddress, Message, request, response
from ..names import normalize_name
from . import persistence
from .context import Context, Reply
from .database import Database
from .deregistration import dev_dereg
from .domains import dd_dereg, dd_reg, dds_dereg, dds_reg
from .liveness import EsiProbe, Liveness, Tick
from .notifications import notifications, zoning_snapshot
from .outcome import Journal, Outcome, Ref, Reject
from .persistence import Record, StoredRef
from .policy import Policy
from .queries import dev_attr_qry, dev_get_next
from .registration import dev_attr_reg
from .subscriptions import scn_dereg, scn_event, scn_reg
from .zoning import Scope, VisibleTarget, is_control_node, visible_targets

Handler = Callable[[Context], Reply]

# Every function this server may be asked for. None: answered Message Not Supported.
HANDLERS: dict[int, Handler | None] = {
    FunctionId.DEV_ATTR_REG: dev_attr_reg,
    FunctionId.DEV_ATTR_QRY: dev_attr_qry,
    FunctionId.DEV_GET_NEXT: dev_get_next,
    FunctionId.DEV_DEREG: dev_dereg,
    FunctionId.DD_REG: dd_reg,
    FunctionId.DD_DEREG: dd_dereg,
    FunctionId.DDS_REG: dds_reg,
    FunctionId.DDS_DEREG: dds_dereg,
    FunctionId.SCN_REG: scn_reg,
    FunctionId.SCN_DEREG: scn_dereg,
    FunctionId.SCN_EVENT: scn_event,
    FunctionId.ESI: None,  # sent by servers, not to them
    FunctionId.HEARTBEAT: None,  # ditto (multicast by a server, 5.6.5.14)
    FunctionId.RQST_DOM_ID: None,  # iFCP only
    FunctionId.RLSE_DOM_ID: None,  # iFCP only
    FunctionId.GET_DOM_ID: None,  # iFCP only
}
# The source named in changes the server makes for its own configuration; it is given
# Control rights only there, never when a client sends it.
CONFIGURATION_SOURCE = "iqn.2026-11.org.isns-server:configuration"
# The functions that can change who sees whom: SCNs compare visibility before and after.
ZONING_FUNCTIONS = frozenset(
    (FunctionId.DD_REG, FunctionId.DD_DEREG, FunctionId.DDS_REG, FunctionId.DDS_DEREG)
)


class Registry:
    """The iSNS database and the rules of RFC 4171 sections 3-6 applied to requests.

    `handle` applies one request atomically: a rejected request changes nothing. Any
    request from a registered node refreshes its entity's Timestamp and registration
    (6.2.6); that alone is not reported dirty, so a restarted server sees the time of
    the last change. `tick` runs ESI and registration expiry (liveness.py).
    """

    def __init__(self, policy: Policy, database: Database | None = None) -> None:
        self.policy = policy
        self.db = database if database is not None else Database()
        self.liveness = Liveness(self.db, policy)

    @classmethod
    def restore(cls, records: Iterable[tuple[StoredRef, Record]], policy: Policy) -> "Registry":
        """A registry holding what `export_record` once produced."""
        return cls(policy, persistence.restore(records))

    def handle(self, message: Message, now: float, address: IPAddress | None = None) -> Outcome:
        """`address`: where the request came from (None: an in-process caller). Sent from
        outside `Policy.control_networks`, it is answered as for an ordinary node: a
        Control Node's name there gives no control rights."""
        handler = HANDLERS.get(message.function)
        if handler is None:
            return Outcome(response(message, Status.MESSAGE_NOT_SUPPORTED))
        source, keys, operating = message.split()
        if source is None or source.tag != Tag.ISCSI_NAME or not isinstance(source.value, str):
            fc = source is not None and source.tag == Tag.FC_PORT_NAME_WWPN
            status = Status.ATTRIBUTE_NOT_IMPLEMENTED if fc else Status.SOURCE_ABSENT
            return Outcome(response(message, status))
        name = normalize_name(source.value)
        scope = Scope(self.db, self.policy, name, self.in_control_network(address))
        self.liveness.start(now)
        if scope.node is not None:
            self.liveness.heard(scope.node.entity, now)
        return self._apply(handler, message, scope, keys, operating, now)

    def in_control_network(self, address: IPAddress | None) -> bool:
        """Whether a request from `address` may use a Control Node's rights: control by
        name alone would let any host rezone the fabric."""
        return address is None or any(address in net for net in self.policy.control_networks)

    def control_node_outside(self, message: Message, address: IPAddress | None) -> str | None:
        """The Source of `message` when it names a Control Node but `address` is outside
        `Policy.control_networks`: `handle` answers it without control rights."""
        if self.in_control_network(address):
            return None
        source = message.split()[0]
        if source is None or not isinstance(source.value, str):
            return None
        name = normalize_name(source.value)
        return name if is_control_node(self.policy, name, self.db.nodes.get(name)) else None

    def ensure_domain(self, name: str, members: Iterable[str], now: float) -> Outcome:
        """Make the discovery domain `name` exist with at least `members`: what the
        configuration's `discovery_domains` declare. Members added over iSNS stay."""
        dd_id = self.db.dd_names.get(name)
        keys = () if dd_id is None else (Attribute(Tag.DD_ID, dd_id),)
        operating = (
            Attribute(Tag.DD_SYMBOLIC_NAME, name),
            *(Attribute(Tag.DD_MEMBER_ISCSI_NAME, normalize_name(m)) for m in members),
        )
        message = request(FunctionId.DD_REG, 0, Attribute(Tag.ISCSI_NAME, CONFIGURATION_SOURCE))
        scope = Scope(self.db, self.policy, CONFIGURATION_SOURCE)
        scope.is_control = True  # the administrator's own configuration, not a client
        return self._apply(dd_reg, message, scope, keys, operating, now)

    def _apply(
        self,
        handler: Handler,
        message: Message,
        scope: Scope,
        keys: tuple[Attribute, ...],
        operating: tuple[Attribute, ...],
        now: float,
    ) -> Outcome:
        zoning = message.function in ZONING_FUNCTIONS and self.db.subscribers
        before = zoning_snapshot(self.db) if zoning else None
        journal = Journal()
        context = Context(self.db, self.policy, message, scope, keys, operating, now, journal)
        try:
            answer_keys, answer_operating = handler(context)
        except Reject as reject:
            return Outcome(response(message, reject.status, operating=reject.attrs))
        if journal.dirty:
            self.db.scope_cache.clear()
            self.liveness.sync(_entities(journal.dirty), now)
        return Outcome(
            response(message, Status.SUCCESSFUL, answer_keys, answer_operating),
            frozenset(journal.dirty),
            tuple(journal.changes),
            notifications(self.db, self.policy, journal, before, now),
        )

    def tick(self, now: float) -> Tick:
        """The ESI messages due at `now`, and the removal of registrations that died."""
        return self.liveness.tick(now)

    def next_deadline(self) -> float | None:
        """When `tick` next has something to do (None: nothing is timed)."""
        return self.liveness.next_deadline()

    def esi_answered(self, probe: EsiProbe, answer: Message, now: float) -> bool:
        """Take the response to an ESI; False when it does not answer `probe`."""
        return self.liveness.answered(probe, answer, now)

    def heard_from(self, name: str, now: float) -> None:
        """Node `name` answered us (an SCN response): that refreshes its entity (6.2.6)."""
        node = self.db.nodes.get(normalize_name(name))
        if node is not None:
            self.liveness.heard(node.entity, now)

    def reload(self, records: Iterable[tuple[StoredRef, Record]], now: float) -> None:
        """Replace what is in memory with `records`, what the store holds: after a failed
        write, the changes that were not saved are undone. Timers of the entities that
        stay keep running; an entity brought back starts its timers at `now`."""
        before = list(self.db.entities)
        self.db = persistence.restore(records)
        self.liveness.db = self.db
        self.liveness.sync({*before, *self.db.entities}, now)

    def apply(self, records: Iterable[tuple[StoredRef, Record | None]], now: float) -> None:
        """Take the records another server sharing the store committed (None: the object
        is gone): those objects are replaced, everything else stays. No SCN is due: the
        server that made the change sends them. A registration written there refreshes
        its entity here too, so that whichever server runs expiry counts from it."""
        eids = persistence.apply_records(self.db, records)
        self.db.scope_cache.clear()
        self.liveness.sync(eids, now)
        for eid in eids:
            if (entity := self.db.entities.get(eid)) is not None:
                self.liveness.heard(entity, now)

    def last_heard(self, name: str) -> int | None:
        """When node `name`'s entity last sent a message or registered (its Timestamp);
        None when it is not registered."""
        node = self.db.nodes.get(normalize_name(name))
        return None if node is None else node.entity.timestamp

    def export_record(self, ref: StoredRef) -> Record | None:
        """The JSON-serialisable record of `ref` (from Outcome.dirty); None once gone."""
        return persistence.export_record(self.db, ref)

    def may_see(
        self, initiator_name: str, target_name: str, address: IPAddress | None = None
    ) -> bool:
        """Whether zoning lets `initiator_name` see the registered node `target_name` (False
        when it is not registered): the iSNS rule, for the portal's login-time check.
        `address`: the initiator's, as for `handle` (a Control Node's name sees the whole
        fabric only from `Policy.control_networks`)."""
        node = self.db.nodes.get(normalize_name(target_name))
        name = normalize_name(initiator_name)
        scope = Scope(self.db, self.policy, name, self.in_control_network(address))
        return node is not None and scope.sees_node(node)

    def visible_targets(
        self, initiator_name: str, address: IPAddress | None = None
    ) -> list[VisibleTarget]:
        """The targets `initiator_name` may discover, with the portals that reach them:
        the same zoning as iSNS queries, for the SendTargets portal. `address`: as for
        `may_see`."""
        name = normalize_name(initiator_name)
        control = self.in_control_network(address)
        return visible_targets(self.db, self.policy, name, control)


def _entities(refs: Iterable[Ref]) -> list[str]:
    """The EIDs among persistence refs."""
    return [str(ident) for kind, ident in refs if kind == "entity"]
