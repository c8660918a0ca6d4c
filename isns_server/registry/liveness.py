"""What keeps a registration alive (RFC 4171 6.2.6, 6.3.4, 5.6.5.13): Entity Status
Inquiry of the portals that asked for it, and the Registration Period of every entity.
Pure: `due(now)` says what to send and what has died; the caller sends and reports the
answers with `answered()`.

- Registration Period (6.2.6): an entity is removed when that many seconds pass without
  a message from it; any message from one of its nodes, and any ESI or SCN response,
  refreshes it. An entity with period 0 relies on ESI; if its ESI portals go, the
  configured `registration_period` applies instead, so nothing stays forever.
- ESI (6.3.4): a portal with a non-zero ESI Interval is sent an ESI one interval after
  its last answer (or after it registered), then again every interval/esi_retries until
  it answers; after `esi_retries` unanswered messages, at twice the interval, it is
  deregistered. When that leaves its entity with no ESI-monitored portal and the entity
  has been silent for two intervals too, the entity goes as well.
- Removals take DevDereg's path (`deregistration.remove_objects`), so persistence and
  SCNs see them like any other deregistration.
- After a restart every timer starts again from the first `now` the registry is given:
  nothing expires for time the server itself was down.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address, IPv6Address

from ..isnsp.constants import Flags, FunctionId, Status, Tag
from ..isnsp.messages import Attribute, IPAddress, Message, PortNumber, address_text
from .database import Database
from .deadlines import Deadlines
from .deregistration import remove_objects
from .notifications import notifications
from .objects import (
    NetworkEntity,
    Portal,
    PortalKey,
    RegistryObject,
    portal_address,
    portal_key,
)
from .outcome import Journal, Notification, Ref
from .policy import Policy

Address = tuple[IPAddress, PortNumber]


@dataclass(frozen=True, slots=True)
class EsiProbe:
    """One ESI message to send (5.6.5.13) to `destination`, the portal's ESI Port; an
    answer later than `timeout` seconds counts as none."""

    portal: PortalKey
    destination: Address
    message: Message
    timeout: float
    attempt: int  # 1 to esi_retries


class Cause(Enum):
    EXPIRED = "registration period ran out"
    ESI_PORTAL = "portal did not answer ESI"
    ESI_ENTITY = "no portal answers ESI"


@dataclass(frozen=True, slots=True)
class Removal:
    """An entity or portal the registry removed by itself; `describe()` is for the log."""

    cause: Cause
    eid: str
    seconds: int  # the Registration Period or the ESI window (two intervals) that ran out
    names: tuple[str, ...] = ()  # the entity's nodes, when the whole entity went
    portal: Address | None = None  # ESI_PORTAL: the portal, and where its ESI went
    destination: Address | None = None
    retries: int = 0

    def describe(self) -> str:
        nodes = f" (nodes {', '.join(self.names)})" if self.names else ""
        if self.cause is Cause.EXPIRED:
            return (
                f"entity {self.eid}{nodes} removed: no iSNS message from it within its "
                f"registration period of {self.seconds} s; it is gone or was restarted "
                "without re-registering"
            )
        if self.cause is Cause.ESI_ENTITY:
            return (
                f"entity {self.eid}{nodes} removed: none of its portals answers ESI and it "
                f"sent nothing for {self.seconds} s"
            )
        assert self.portal is not None and self.destination is not None
        portal, esi = address_text(*self.portal), address_text(*self.destination)
        return (
            f"portal {portal} of entity {self.eid} removed: {self.retries} ESI messages "
            f"to {esi} went unanswered for {self.seconds} s; the client is down, or a "
            "firewall blocks its ESI port"
        )


@dataclass(frozen=True, slots=True)
class Tick:
    """What `Liveness.tick` produced: ESI messages to send now, and what it removed with
    the records to rewrite and the SCNs to send, as an Outcome has them."""

    probes: tuple[EsiProbe, ...] = ()
    removals: tuple[Removal, ...] = ()
    dirty: frozenset[Ref] = frozenset()
    notifications: tuple[Notification, ...] = ()


@dataclass(slots=True)
class _Watch:
    """ESI monitoring of one portal."""

    eid: str
    destination: Address
    interval: int
    answered: float  # the last answer, or when monitoring began
    sent: int = 0  # ESI messages sent since then


class Liveness:
    """The Registration Period and ESI timers of every entity in `db`."""

    def __init__(self, db: Database, policy: Policy) -> None:
        self.db = db
        self.policy = policy
        self._heard: dict[str, float] = {}  # the last message from each entity
        self._expiry: Deadlines[str] = Deadlines()
        self._watches: dict[PortalKey, _Watch] = {}
        self._watched: dict[str, set[PortalKey]] = {}  # the watched portals of each entity
        self._esi: Deadlines[PortalKey] = Deadlines()
        self._started = False

    # --- keeping up with the registry ---------------------------------------------------

    def start(self, now: float) -> None:
        """Start every timer from `now`, once (the first time the registry is used)."""
        if not self._started:
            self._started = True
            self.sync(self.db.entities, now)  # sync changes no entity: no copy needed

    def heard(self, entity: NetworkEntity, now: float) -> None:
        """A message came from `entity`: its registration is refreshed (6.2.6)."""
        entity.timestamp = int(now)
        self._heard[entity.eid] = now
        self._schedule_expiry(entity)

    def sync(self, eids: Iterable[str], now: float) -> None:
        """Follow what a message changed in these entities: new, changed or removed
        portals, Registration Periods, entities."""
        for eid in eids:
            entity = self.db.entities.get(eid)
            watched = self._watched.get(eid)
            if entity is None:
                self._heard.pop(eid, None)
                self._expiry.discard(eid)
                for key in list(watched or ()):
                    self._unwatch(key)
                continue
            self._heard.setdefault(eid, now)
            wanted = dict(_monitored(entity))
            for key in watched - wanted.keys() if watched else ():
                self._unwatch(key)
            for key, (destination, interval) in wanted.items():
                watch = self._watches.get(key)
                if watch is None or (watch.destination, watch.interval) != (destination, interval):
                    self._watches[key] = _Watch(eid, destination, interval, now)
                    self._watched.setdefault(eid, set()).add(key)
                    self._esi.set(key, now + interval)
            self._schedule_expiry(entity)

    def next_deadline(self) -> float | None:
        """No timer runs out before this time; None: no timer at all (0: start now)."""
        if not self._started:
            return 0.0 if self.db.entities else None
        times = [t for t in (self._expiry.next(), self._esi.next()) if t is not None]
        return min(times, default=None)

    # --- for the management API ------------------------------------------------------

    def expires_at(self, eid: str) -> float | None:
        """When entity `eid`'s Registration Period runs out (None: it has none)."""
        return self._expiry.get(eid)

    def esi_state(self, key: PortalKey) -> tuple[float, int] | None:
        """(last ESI answer or start of monitoring, ESIs unanswered since) of a portal."""
        watch = self._watches.get(key)
        return None if watch is None else (watch.answered, watch.sent)

    # --- the clock ------------------------------------------------------------------------

    def tick(self, now: float) -> Tick:
        """ESI messages due at `now`, and the removal of what has died, applied."""
        self.start(now)
        probes, dead = self._due_esi(now)
        targets: list[RegistryObject] = []
        removals: list[Removal] = []
        for eid in self._expiry.pop_due(now):
            entity = self.db.entities.get(eid)
            if entity is not None:
                targets.append(entity)
                period = self._period(entity) or 0
                removals.append(Removal(Cause.EXPIRED, eid, period, tuple(entity.nodes)))
        self._dead_portals(now, dead, targets, removals)
        if not targets:
            return Tick(tuple(probes))
        journal = Journal()
        remove_objects(self.db, targets, journal)
        self.db.scope_cache.clear()
        self.sync({removal.eid for removal in removals}, now)
        notes = notifications(self.db, self.policy, journal, None, now)
        return Tick(tuple(probes), tuple(removals), frozenset(journal.dirty), notes)

    def answered(self, probe: EsiProbe, answer: Message, now: float) -> bool:
        """Take `answer` to `probe`: True when it is a successful ESI response echoing the
        probed portal (5.7.5.13), which refreshes the portal and its entity."""
        echoed = {attr.tag: attr.value for attr in answer.attributes}
        ip, port = echoed.get(Tag.PORTAL_IP_ADDRESS), echoed.get(Tag.PORTAL_TCP_UDP_PORT)
        valid = (
            answer.function == FunctionId.ESI_RSP
            and answer.status == Status.SUCCESSFUL
            and isinstance(ip, IPv4Address | IPv6Address)
            and isinstance(port, PortNumber)
            and portal_key(ip, port) == probe.portal  # in either form of an IPv4 address
        )
        watch = self._watches.get(probe.portal)
        if not valid or watch is None:
            return False
        watch.answered, watch.sent = now, 0
        self._esi.set(probe.portal, now + watch.interval)
        entity = self.db.entities.get(watch.eid)
        if entity is not None:
            self.heard(entity, now)
        return True

    # --- internals --------------------------------------------------------------------

    def _period(self, entity: NetworkEntity) -> int | None:
        """Seconds of silence `entity` may keep: its Registration Period, or the default
        when it asked for 0 but no portal of it is ESI-monitored any more."""
        period = entity.registration_period
        if not period and not any(True for _ in _monitored(entity)):
            return self.policy.registration_period
        return period

    def _schedule_expiry(self, entity: NetworkEntity) -> None:
        period = self._period(entity)
        if period:
            self._expiry.set(entity.eid, self._heard.get(entity.eid, 0.0) + period)
        else:
            self._expiry.discard(entity.eid)

    def _unwatch(self, key: PortalKey) -> _Watch:
        watch = self._watches.pop(key)
        keys = self._watched[watch.eid]
        keys.discard(key)
        if not keys:
            del self._watched[watch.eid]
        self._esi.discard(key)
        return watch

    def _due_esi(self, now: float) -> tuple[list[EsiProbe], list[tuple[PortalKey, _Watch]]]:
        """(ESI messages to send, watches whose last message went unanswered)."""
        retries = self.policy.esi_retries
        probes, dead = [], []
        for key in self._esi.pop_due(now):
            watch = self._watches[key]
            if watch.sent >= retries:
                dead.append((key, self._unwatch(key)))
                continue
            watch.sent += 1
            # Retransmissions spread over the second interval: all before 2x (6.3.4).
            step = watch.interval / retries
            self._esi.set(key, watch.answered + watch.interval + watch.sent * step)
            portal = self.db.portals.get(key)
            address = (portal.ip, portal.port) if portal is not None else portal_address(key)
            message = _esi_message(watch.eid, address, now)
            probes.append(EsiProbe(key, watch.destination, message, step, watch.sent))
        return probes, dead

    def _dead_portals(
        self,
        now: float,
        dead: list[tuple[PortalKey, _Watch]],
        targets: list[RegistryObject],
        removals: list[Removal],
    ) -> None:
        """Remove the portals whose ESI window ran out, and their entities when nothing
        else keeps them (6.3.4)."""
        for key, watch in dead:
            portal = self.db.portals.get(key)
            if portal is None or portal.entity.eid != watch.eid:
                continue
            window = 2 * watch.interval
            targets.append(portal)
            address = portal_address(key)
            removals.append(
                Removal(
                    Cause.ESI_PORTAL, watch.eid, window, (), address, watch.destination, watch.sent
                )
            )
            entity = portal.entity
            silent = now - self._heard.get(watch.eid, now) >= window
            if watch.eid not in self._watched and silent and entity not in targets:
                targets.append(entity)
                removals.append(Removal(Cause.ESI_ENTITY, watch.eid, window, tuple(entity.nodes)))


def _monitored(entity: NetworkEntity) -> Iterable[tuple[PortalKey, tuple[Address, int]]]:
    """The entity's portals with a non-zero ESI Interval, with where their ESI goes: their
    own ESI Port, else another portal's (6.3.5: any one of those with an ESI Port)."""
    with_port = [p for p in entity.portals.values() if p.esi_port is not None]
    if not with_port:
        return
    for key, portal in entity.portals.items():
        if portal.esi_interval:
            carrier: Portal = portal if portal.esi_port is not None else with_port[0]
            assert carrier.esi_port is not None
            yield key, ((carrier.ip, carrier.esi_port), portal.esi_interval)


def _esi_message(eid: str, portal: tuple[IPAddress, PortNumber], now: float) -> Message:
    """ESI: Timestamp, Entity_ID, Portal IP Address, Portal TCP/UDP Port (5.6.5.13), the
    address as the client registered it."""
    ip, port = portal
    attrs = (
        Attribute(Tag.TIMESTAMP, int(now)),
        Attribute(Tag.ENTITY_IDENTIFIER, eid),
        Attribute(Tag.PORTAL_IP_ADDRESS, ip),
        Attribute(Tag.PORTAL_TCP_UDP_PORT, port),
    )
    return Message(FunctionId.ESI, 0, Flags.SERVER, attrs)
