"""The registry's entry point: one iSNSP request in, one Outcome out (no I/O, no clock)."""

from collections.abc import Callable, Iterable

from ..isnsp.constants import FunctionId, Status, Tag
from ..isnsp.messages import Message, response
from . import persistence
from .context import Context, Reply
from .database import Database
from .deregistration import dev_dereg
from .domains import dd_dereg, dd_reg, dds_dereg, dds_reg
from .objects import normalize_name
from .outcome import Journal, Outcome, Reject
from .persistence import Record, StoredRef
from .policy import Policy
from .queries import dev_attr_qry, dev_get_next
from .registration import dev_attr_reg
from .zoning import Scope, VisibleTarget, visible_targets

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
    FunctionId.SCN_REG: None,  # SCN support is a separate layer, not written yet
    FunctionId.SCN_DEREG: None,  # ditto
    FunctionId.SCN_EVENT: None,  # ditto
    FunctionId.ESI: None,  # sent by servers, not to them
    FunctionId.HEARTBEAT: None,  # ditto (multicast by a server, 5.6.5.14)
    FunctionId.RQST_DOM_ID: None,  # iFCP only
    FunctionId.RLSE_DOM_ID: None,  # iFCP only
    FunctionId.GET_DOM_ID: None,  # iFCP only
}


class Registry:
    """The iSNS database and the rules of RFC 4171 sections 3-6 applied to requests.

    `handle` applies one request atomically: a rejected request changes nothing. Any
    request from a registered node refreshes its entity's Timestamp (6.2.6); that alone
    is not reported dirty, so a restarted server sees the time of the last change.
    """

    def __init__(self, policy: Policy, database: Database | None = None) -> None:
        self.policy = policy
        self.db = database if database is not None else Database()

    @classmethod
    def restore(cls, records: Iterable[tuple[StoredRef, Record]], policy: Policy) -> "Registry":
        """A registry holding what `export_record` once produced."""
        return cls(policy, persistence.restore(records))

    def handle(self, message: Message, now: float) -> Outcome:
        handler = HANDLERS.get(message.function)
        if handler is None:
            return Outcome(response(message, Status.MESSAGE_NOT_SUPPORTED))
        source, keys, operating = message.split()
        if source is None or source.tag != Tag.ISCSI_NAME or not isinstance(source.value, str):
            fc = source is not None and source.tag == Tag.FC_PORT_NAME_WWPN
            status = Status.ATTRIBUTE_NOT_IMPLEMENTED if fc else Status.SOURCE_ABSENT
            return Outcome(response(message, status))
        scope = Scope(self.db, self.policy, normalize_name(source.value))
        if scope.node is not None:
            scope.node.entity.timestamp = int(now)
        journal = Journal()
        context = Context(self.db, self.policy, message, scope, keys, operating, now, journal)
        try:
            answer_keys, answer_operating = handler(context)
        except Reject as reject:
            return Outcome(response(message, reject.status, operating=reject.attrs))
        if journal.dirty:
            self.db.scope_cache.clear()
        return Outcome(
            response(message, Status.SUCCESSFUL, answer_keys, answer_operating),
            frozenset(journal.dirty),
            tuple(journal.changes),
        )

    def export_record(self, ref: StoredRef) -> Record | None:
        """The JSON-serialisable record of `ref` (from Outcome.dirty); None once gone."""
        return persistence.export_record(self.db, ref)

    def visible_targets(self, initiator_name: str) -> list[VisibleTarget]:
        """The targets `initiator_name` may discover, with the portals that reach them:
        the same zoning as iSNS queries, for the SendTargets portal."""
        return visible_targets(self.db, self.policy, normalize_name(initiator_name))
