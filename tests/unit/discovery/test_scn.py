"""SCN messages as RFC 4171 5.6.5.8 lays them out (and as open-isns sends them), and what
the bridge reads again because of them."""

import math

import pytest

from discovery_agent.scn import (
    MAX_PENDING,
    BurstWatch,
    Event,
    Pending,
    ScnFormatError,
    StateChange,
    parse_scn,
    scn_response,
)
from isns_server.isnsp.codec import StreamDecoder, encode_message
from isns_server.isnsp.constants import Flags, FunctionId, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute, Message

AGENT = "iqn.2026-11.org.example.test:agent"
DISK = "iqn.2026-11.org.example.test:disk1"
MANAGEMENT = ScnBitmap.MANAGEMENT_REGISTRATION
ADDED, REMOVED = ScnBitmap.OBJECT_ADDED, ScnBitmap.OBJECT_REMOVED
NOW = Attribute(Tag.TIMESTAMP, 1_795_000_000)


def scn(*attributes: Attribute) -> Message:
    """An SCN through the wire codec, as the listener receives it."""
    decoder = StreamDecoder()
    for pdu in encode_message(Message(FunctionId.SCN, 9, Flags.SERVER, attributes)):
        decoder.receive_data(pdu)
    message = decoder.next_message()
    assert message is not None
    return message


def bitmap(value: ScnBitmap) -> Attribute:
    return Attribute(Tag.ISCSI_SCN_BITMAP, int(value))


def test_rfc_layout_with_management_dd_attributes() -> None:
    message = scn(
        Attribute(Tag.ISCSI_NAME, AGENT),
        NOW,
        bitmap(MANAGEMENT | ADDED),
        Attribute(Tag.ISCSI_NAME, DISK),
        bitmap(MANAGEMENT | ScnBitmap.DD_MEMBER_ADDED),
        Attribute(Tag.ISCSI_NAME, DISK),
        Attribute(Tag.DD_ID, 3),
        bitmap(MANAGEMENT | ScnBitmap.OBJECT_UPDATED),
        Attribute(Tag.DD_SET_ID, 2),
    )
    change = parse_scn(message)
    assert change == StateChange(
        AGENT,
        (
            Event(MANAGEMENT | ADDED, (Attribute(Tag.ISCSI_NAME, DISK),)),
            Event(
                MANAGEMENT | ScnBitmap.DD_MEMBER_ADDED,
                (Attribute(Tag.ISCSI_NAME, DISK), Attribute(Tag.DD_ID, 3)),
            ),
            Event(MANAGEMENT | ScnBitmap.OBJECT_UPDATED, (Attribute(Tag.DD_SET_ID, 2),)),
        ),
    )
    reply = scn_response(message, change.destination)
    assert (reply.function, reply.xid, reply.status) == (FunctionId.SCN_RSP, 9, Status.SUCCESSFUL)
    assert reply.attributes == (Attribute(Tag.ISCSI_NAME, AGENT),)  # RFC 4171 5.7.5.8


def test_open_isns_layout_leads_with_its_own_source() -> None:
    message = scn(
        Attribute(Tag.ISCSI_NAME, "iqn.2026-11.org.example.test:isnsd"),
        Attribute(Tag.ISCSI_NAME, AGENT),
        NOW,
        bitmap(MANAGEMENT | REMOVED),
        Attribute(Tag.ISCSI_NAME, DISK),
    )
    assert parse_scn(message).destination == AGENT


@pytest.mark.parametrize(
    "attributes",
    [
        (Attribute(Tag.ISCSI_NAME, AGENT),),  # no timestamp
        (NOW, bitmap(ADDED), Attribute(Tag.ISCSI_NAME, DISK)),  # no destination
        (Attribute(Tag.ISCSI_NAME, AGENT), NOW, Attribute(Tag.ISCSI_NAME, DISK)),  # no bitmap
        (Attribute(Tag.ISCSI_NAME, AGENT), NOW, Attribute(Tag.ISCSI_SCN_BITMAP)),  # empty one
    ],
)
def test_unreadable_scns(attributes: tuple[Attribute, ...]) -> None:
    with pytest.raises(ScnFormatError):
        parse_scn(scn(*attributes))


def change(*events: tuple[ScnBitmap, tuple[Attribute, ...]]) -> StateChange:
    return StateChange(AGENT, tuple(Event(b, a) for b, a in events))


def test_pending_merges_what_to_read_again() -> None:
    pending = Pending()
    assert not pending
    pending.add(change((ADDED, (Attribute(Tag.ISCSI_NAME, DISK),))))
    pending.add(change((ADDED, (Attribute(Tag.ISCSI_NAME, DISK), Attribute(Tag.DD_ID, 3)))))
    pending.add(change((ADDED, (Attribute(Tag.DD_ID, 3), Attribute(Tag.DD_SET_ID, 2)))))
    pending.add(change((REMOVED, (Attribute(Tag.ENTITY_IDENTIFIER, "stor1"),))))
    taken = pending.take()
    assert (taken.nodes, taken.domains, taken.domain_sets, taken.entities) == (
        {DISK},
        {3},
        {2},
        {"stor1"},
    )
    assert not taken.everything and not pending


def test_anything_unrecognised_or_a_flood_means_one_full_read() -> None:
    pending = Pending()
    portal = (Attribute(Tag.PORTAL_IP_ADDRESS), Attribute(Tag.PORTAL_TCP_UDP_PORT))
    pending.add(change((ScnBitmap.OBJECT_UPDATED, portal)))
    assert pending.take().everything
    flood = [(ADDED, (Attribute(Tag.ISCSI_NAME, f"{DISK}-{n}"),)) for n in range(MAX_PENDING + 1)]
    pending.add(change(*flood))
    taken = pending.take()
    assert taken.everything and not taken.nodes  # bounded memory, one re-read


def test_a_burst_large_enough_to_lose_scns_asks_for_a_full_read_once_settled() -> None:
    watch = BurstWatch(gap=1.0, size=64)
    for n in range(63):
        watch.arrived(n * 0.5)  # back to back, but not enough to overflow a queue
    assert watch.settles_at() == math.inf and not watch.settled(100.0)
    watch.arrived(31.5)
    assert watch.settles_at() == 32.5
    assert not watch.settled(32.0)  # still going
    watch.arrived(32.0)
    assert not watch.settled(32.5) and watch.settled(33.0)
    watch.reset()  # the full read covers it
    assert not watch.settled(100.0)
    for n in range(100):
        watch.arrived(200.0 + n * 2.0)  # spread out: each SCN alone, nothing piles up
    assert watch.settles_at() == math.inf
