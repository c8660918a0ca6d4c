"""State Change Notifications as the agent receives them (RFC 4171 5.6.5.8, 5.7.5.8).

    Destination Attribute, Timestamp, then per event: SCN Bitmap, source attributes...

The source attributes name what changed: a Storage Node's iSCSI Name, followed in a
management SCN by the DD_ID / DD_Set_ID that caused it, or a DD or DD set alone. open-isns
puts its own Source attribute before the destination, so the destination is the last
iSCSI Name before the Timestamp. `Pending` turns SCNs into the objects to read again.
"""

import math
from dataclasses import dataclass, field

from isns_server.isnsp.constants import ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, response

# Objects awaiting a re-read beyond which one full re-read of the registry is cheaper,
# and the most a flood of SCNs can make the bridge remember.
MAX_PENDING = 1024
# SCNs each within BURST_GAP seconds of the one before: a burst. One of BURST_SIZE or
# more may have overflowed the server's queue for us (ours holds 100 per recipient).
BURST_GAP = 1.0
BURST_SIZE = 64


class ScnFormatError(Exception):
    """An SCN the agent cannot read; answered Message Format Error."""


@dataclass(frozen=True, slots=True)
class Event:
    bitmap: ScnBitmap
    attributes: tuple[Attribute, ...]  # the source attributes after the bitmap


@dataclass(frozen=True, slots=True)
class StateChange:
    destination: str
    events: tuple[Event, ...]


def parse_scn(message: Message) -> StateChange:
    attributes = [a for a in message.attributes if a.tag != Tag.DELIMITER]
    stamp = next((i for i, a in enumerate(attributes) if a.tag == Tag.TIMESTAMP), None)
    if stamp is None:
        raise ScnFormatError("no Timestamp attribute")
    names = [a.value for a in attributes[:stamp] if a.tag == Tag.ISCSI_NAME]
    if not names or not isinstance(names[-1], str):
        raise ScnFormatError("no iSCSI Name destination before the Timestamp")
    events: list[Event] = []
    for attribute in attributes[stamp + 1 :]:
        if attribute.tag == Tag.ISCSI_SCN_BITMAP:
            if not isinstance(attribute.value, int):
                raise ScnFormatError("an SCN Bitmap without a value")
            events.append(Event(ScnBitmap(attribute.value & 0xFF), ()))
        elif not events:
            raise ScnFormatError(f"tag {attribute.tag} before the first SCN Bitmap")
        else:
            last = events[-1]
            events[-1] = Event(last.bitmap, (*last.attributes, attribute))
    return StateChange(names[-1], tuple(events))


def scn_response(message: Message, destination: str) -> Message:
    """SCNRsp: the destination attribute back (5.7.5.8)."""
    return response(message, Status.SUCCESSFUL, keys=(Attribute(Tag.ISCSI_NAME, destination),))


@dataclass(slots=True)
class Pending:
    """What SCNs said changed since the bridge last looked. Merged, so a burst of SCNs
    costs one query per object; capped, so a flood costs one full re-read."""

    nodes: set[str] = field(default_factory=set)
    domains: set[int] = field(default_factory=set)
    domain_sets: set[int] = field(default_factory=set)
    entities: set[str] = field(default_factory=set)
    everything: bool = False

    def __bool__(self) -> bool:
        return self.everything or bool(
            self.nodes or self.domains or self.domain_sets or self.entities
        )

    def add(self, change: StateChange) -> None:
        for event in change.events:
            self._add_event(event)
        if len(self.nodes) + len(self.domains) + len(self.entities) > MAX_PENDING:
            self.resync()

    def resync(self) -> None:
        self.nodes.clear()
        self.domains.clear()
        self.domain_sets.clear()
        self.entities.clear()
        self.everything = True

    def take(self) -> "Pending":
        """Everything pending, leaving this empty."""
        taken = Pending(self.nodes, self.domains, self.domain_sets, self.entities, self.everything)
        self.nodes, self.domains, self.domain_sets, self.entities = set(), set(), set(), set()
        self.everything = False
        return taken

    def _add_event(self, event: Event) -> None:
        understood = False
        for attribute in event.attributes:
            tag, value = attribute.tag, attribute.value
            if tag == Tag.ISCSI_NAME and isinstance(value, str):
                self.nodes.add(value)
            elif tag == Tag.DD_ID and isinstance(value, int):
                self.domains.add(value)
            elif tag == Tag.DD_SET_ID and isinstance(value, int):
                self.domain_sets.add(value)
            elif tag == Tag.ENTITY_IDENTIFIER and isinstance(value, str):
                self.entities.add(value)
            else:
                continue
            understood = True
        if not understood:  # a portal, a PG or something newer: re-read it all
            self.resync()


@dataclass(slots=True)
class BurstWatch:
    """Tells when SCNs may have been lost. A server drops the oldest SCNs queued for a
    recipient that cannot keep up, and says nothing (RFC 4171 SCNs carry no sequence
    number); the ones still delivered then come back to back, a run of at least the
    queue's length. After such a run has settled (`settled`), the registry is read
    whole again. `now` is passed in."""

    gap: float = BURST_GAP
    size: int = BURST_SIZE
    _run: int = 0
    _last: float = -math.inf

    def arrived(self, now: float) -> None:
        if now - self._last > self.gap:
            self._run = 0
        self._run += 1
        self._last = now

    def settles_at(self) -> float:
        """When a large burst will have settled; infinity when there is none."""
        return self._last + self.gap if self._run >= self.size else math.inf

    def settled(self, now: float) -> bool:
        return now >= self.settles_at()

    def reset(self) -> None:
        """The registry has been read whole: what came before is covered."""
        self._run = 0
