"""ESI and registration expiry, driven by the `now` the tests pass: no sleeping."""

from ipaddress import IPv4Address

import pytest

from isns_server.isnsp.constants import Flags, FunctionId, NodeType, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber, response
from isns_server.registry import EsiProbe, Policy, Registry, Tick
from isns_server.registry.deadlines import Deadlines

from .builders import NOW, a, call, eid, iqn, ok, operating_of, portal, register, status, values

I1, T1 = iqn("i1"), iqn("t1")
TIMERS = Policy(esi_min_interval=10, esi_max_interval=60, esi_retries=2, registration_period=600)


def esi_portal(address: str, interval: int, esi_port: int | None = 4000) -> tuple[Attribute, ...]:
    extra = [a(Tag.ESI_INTERVAL, interval)]
    if esi_port is not None:
        extra.append(a(Tag.ESI_PORT, PortNumber(esi_port, udp=True)))
    return portal(address, 3260, *extra)


def monitored(interval: int = 10, policy: Policy = TIMERS) -> Registry:
    """Entity host1: initiator i1 on portal 127.0.0.1:3260, ESI on 127.0.0.1:4000/udp."""
    registry = Registry(policy)
    node = (a(Tag.ISCSI_NAME, I1), a(Tag.ISCSI_NODE_TYPE, int(NodeType.INITIATOR)))
    ok(register(registry, I1, "host1", esi_portal("127.0.0.1", interval), node))
    return registry


def esi_answer(probe: EsiProbe, status: Status = Status.SUCCESSFUL) -> Message:
    request = Message(FunctionId.ESI, 5, Flags.SERVER, probe.message.attributes)
    return response(request, status, probe.message.attributes)


def test_the_esi_interval_is_clamped_and_returned() -> None:
    registry = Registry(TIMERS)
    outcome = register(registry, I1, "host1", esi_portal("127.0.0.1", 1), (a(Tag.ISCSI_NAME, I1),))
    assert values(operating_of(outcome), Tag.ESI_INTERVAL) == [10]
    outcome = register(registry, I1, "host1", esi_portal("127.0.0.2", 3600))
    assert values(operating_of(outcome), Tag.ESI_INTERVAL) == [60]


def test_an_esi_interval_needs_an_esi_port_on_some_portal() -> None:
    registry = Registry(TIMERS)
    node = (a(Tag.ISCSI_NAME, I1),)
    no_port = register(registry, I1, "host1", esi_portal("127.0.0.1", 10, None), node)
    assert status(no_port) == Status.INVALID_REGISTRATION and not registry.db.entities
    # Another portal's ESI Port serves: ESI for 127.0.0.1 goes to 127.0.0.2:4000 (6.3.5).
    both = (
        *esi_portal("127.0.0.1", 10, None),
        *portal("127.0.0.2", 3260, a(Tag.ESI_PORT, PortNumber(4000, udp=True))),
    )
    ok(register(registry, I1, "host1", both, node))
    (probe,) = registry.tick(NOW + 10).probes
    assert probe.destination == (IPv4Address("127.0.0.2"), PortNumber(4000, udp=True))


def test_esi_messages_then_retransmissions_then_removal() -> None:
    registry = monitored()
    assert registry.next_deadline() == NOW + 10
    assert registry.tick(NOW + 9.9) == Tick()
    (first,) = registry.tick(NOW + 10).probes
    assert (first.attempt, first.timeout) == (1, 5.0)
    assert first.destination == (IPv4Address("127.0.0.1"), PortNumber(4000, udp=True))
    assert first.message == Message(
        FunctionId.ESI,
        0,
        Flags.SERVER,
        (
            a(Tag.TIMESTAMP, int(NOW + 10)),
            a(Tag.ENTITY_IDENTIFIER, "host1"),
            a(Tag.PORTAL_IP_ADDRESS, IPv4Address("127.0.0.1")),
            a(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
        ),
    )
    (second,) = registry.tick(NOW + 15).probes
    assert second.attempt == 2
    assert registry.tick(NOW + 19.9) == Tick()
    tick = registry.tick(NOW + 20)  # two intervals without an answer
    assert not tick.probes
    assert [r.portal for r in tick.removals] == [(IPv4Address("127.0.0.1"), PortNumber(3260)), None]
    assert tick.dirty == {("entity", "host1")}
    assert registry.export_record(("entity", "host1")) is None
    assert not registry.db.nodes
    assert registry.next_deadline() is None


def test_an_answer_restarts_the_interval_and_refreshes_the_entity() -> None:
    registry = monitored()
    (probe,) = registry.tick(NOW + 10).probes
    assert registry.esi_answered(probe, esi_answer(probe), NOW + 11)
    assert registry.db.entities["host1"].timestamp == int(NOW + 11)
    assert registry.tick(NOW + 20.9) == Tick()
    (again,) = registry.tick(NOW + 21).probes
    assert again.attempt == 1


@pytest.mark.parametrize("bad", ["status", "portal", "function"])
def test_answers_that_do_not_answer(bad: str) -> None:
    registry = monitored()
    (probe,) = registry.tick(NOW + 10).probes
    registry.tick(NOW + 15)
    answer = esi_answer(probe)
    if bad == "status":
        answer = esi_answer(probe, Status.MESSAGE_FORMAT_ERROR)
    elif bad == "portal":
        attrs = (*answer.attributes[:3], a(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3261)))
        answer = Message(answer.function, 5, Flags.CLIENT, attrs, Status.SUCCESSFUL)
    else:
        answer = Message(FunctionId.SCN_RSP, 5, Flags.CLIENT, answer.attributes, Status.SUCCESSFUL)
    assert not registry.esi_answered(probe, answer, NOW + 11)
    assert registry.tick(NOW + 20).removals


def test_a_portal_dies_but_an_entity_that_still_talks_stays() -> None:
    registry = monitored()
    registry.tick(NOW + 10)
    ok(call(registry, FunctionId.DEV_ATTR_QRY, I1, [a(Tag.ISCSI_NAME, I1)], now=NOW + 12))
    registry.tick(NOW + 15)
    tick = registry.tick(NOW + 20)
    assert [r.portal is not None for r in tick.removals] == [True]
    assert I1 in registry.db.nodes and not registry.db.portals
    # Without ESI, the entity now lives by its registration period (600 s, from NOW + 12).
    assert registry.next_deadline() == NOW + 612
    assert registry.tick(NOW + 612).removals[0].names == (I1,)


def test_registration_period_expiry_and_refresh() -> None:
    registry = Registry(TIMERS)
    entity = (eid("host1"), a(Tag.REGISTRATION_PERIOD, 30))
    ok(register(registry, I1, None, entity, (a(Tag.ISCSI_NAME, I1),)))
    assert registry.next_deadline() == NOW + 30
    outcome = call(registry, FunctionId.DEV_ATTR_QRY, I1, [a(Tag.ISCSI_NAME, I1)], now=NOW + 20)
    ok(outcome)  # any message refreshes
    assert registry.tick(NOW + 30) == Tick()
    tick = registry.tick(NOW + 50)
    (removal,) = tick.removals
    assert (removal.eid, removal.names, removal.seconds) == ("host1", (I1,), 30)
    assert "registration period of 30 s" in removal.describe()
    assert tick.dirty == {("entity", "host1")} and not registry.db.entities


def test_a_removal_notifies_like_a_deregistration() -> None:
    registry = monitored()
    scn = a(Tag.SCN_PORT, PortNumber(9000, udp=True))
    watcher = (a(Tag.ISCSI_NAME, iqn("i2")), a(Tag.ISCSI_SCN_BITMAP, int(ScnBitmap.OBJECT_REMOVED)))
    ok(register(registry, iqn("i2"), "host2", portal("127.0.0.2", 3260, scn), watcher))
    registry.tick(NOW + 10)
    registry.tick(NOW + 15)
    (note,) = registry.tick(NOW + 20).notifications
    assert note.recipient == iqn("i2")
    assert note.message.attributes[2:] == (
        a(Tag.ISCSI_SCN_BITMAP, int(ScnBitmap.OBJECT_REMOVED)),
        a(Tag.ISCSI_NAME, I1),
    )


def test_timers_restart_from_now_after_a_restart() -> None:
    registry = monitored()
    records = [(ref, registry.export_record(ref)) for ref in [("entity", "host1")]]
    later = NOW + 1000  # the server was down meanwhile
    restored = Registry.restore([(r, rec) for r, rec in records if rec], TIMERS)
    assert restored.next_deadline() == 0.0  # start now
    assert restored.tick(later) == Tick()
    assert restored.next_deadline() == later + 10
    (probe,) = restored.tick(later + 10).probes
    assert probe.attempt == 1


def test_deregistering_stops_monitoring() -> None:
    registry = monitored()
    ok(call(registry, FunctionId.DEV_DEREG, I1, [], [eid("host1")]))
    assert registry.tick(NOW + 100) == Tick()
    assert registry.next_deadline() is None


def test_removal_descriptions_say_what_and_why() -> None:
    registry = monitored()
    registry.tick(NOW + 10)
    registry.tick(NOW + 15)
    portal_gone, entity_gone = (r.describe() for r in registry.tick(NOW + 20).removals)
    assert portal_gone == (
        "portal 127.0.0.1:3260/tcp of entity host1 removed: 2 ESI messages to "
        "127.0.0.1:4000/udp went unanswered for 20 s; the client is down, or a firewall "
        "blocks its ESI port"
    )
    assert entity_gone == (
        f"entity host1 (nodes {I1}) removed: none of its portals answers ESI and it sent "
        "nothing for 20 s"
    )


def test_deadlines() -> None:
    deadlines: Deadlines[str] = Deadlines()
    deadlines.set("a", 10)
    deadlines.set("b", 5)
    deadlines.set("a", 20)  # later: no heap push
    deadlines.set("b", 3)  # earlier
    assert deadlines.next() == 3 and len(deadlines) == 2
    assert deadlines.pop_due(9) == ["b"]
    assert deadlines.pop_due(15) == []  # a moved to 20
    deadlines.set("c", 12)
    deadlines.discard("c")
    assert deadlines.pop_due(20) == ["a"]
    assert deadlines.next() is None and len(deadlines) == 0
