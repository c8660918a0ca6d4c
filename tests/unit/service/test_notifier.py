"""SCN delivery: first answering port wins, bounded retries paused by the schedule,
bounded queues, and a dead recipient never delays another."""

import logging
import time
from collections.abc import AsyncIterator
from ipaddress import IPv4Address

import pytest

from isns_server.isnsp.constants import Flags, FunctionId, Status, Tag
from isns_server.isnsp.messages import Attribute, IPAddress, Message, PortNumber
from isns_server.registry import Notification
from isns_server.service import notifier as notifier_module
from isns_server.service.notifier import Notifier
from isns_server.service.outbound import Outbound

from ...polling import Pacer, eventually
from .test_outbound import udp_peer

LOOPBACK = IPv4Address("127.0.0.1")


def notification(recipient: str, *ports: int) -> Notification:
    message = Message(FunctionId.SCN, 0, Flags.SERVER, (Attribute(Tag.ISCSI_NAME, recipient),))
    return Notification(
        recipient, tuple((LOOPBACK, PortNumber(p, udp=True)) for p in ports), message
    )


@pytest.fixture
async def outbound() -> AsyncIterator[Outbound]:
    outbound = Outbound()
    yield outbound
    await outbound.close()


class Unanswered(Outbound):
    """No SCN port ever answers; no socket is opened."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[IPAddress, int]] = []

    async def request(
        self, message: Message, address: IPAddress, port: PortNumber, timeout: float
    ) -> Message | None:
        self.sent.append((address, port.port))
        return None


async def settle(notifier: Notifier) -> None:
    await eventually(lambda: not notifier._workers, what="SCN delivery to end", within=5)


async def test_the_first_port_that_answers_takes_it(outbound: Outbound) -> None:
    dead, dead_port = await udp_peer(answer=False)
    alive, alive_port = await udp_peer()
    delivered: list[str] = []
    notifier = Notifier(outbound, retries=3, on_delivered=delivered.append, timeout=0.1)
    notifier.submit([notification("iqn.x:a", dead_port, alive_port)])
    await settle(notifier)
    assert delivered == ["iqn.x:a"]
    assert len(dead.received) == 1 and len(alive.received) == 1
    dead.transport.close()
    alive.transport.close()


async def test_an_undeliverable_scn_is_retried_then_dropped_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outbound, pacer = Unanswered(), Pacer()
    notifier = Notifier(outbound, retries=3, sleep=pacer)
    notifier.submit([notification("iqn.x:a", 5001)])
    await settle(notifier)
    assert outbound.sent == [(LOOPBACK, 5001)] * 3
    assert pacer.pauses == [notifier_module.RETRY_PAUSE, 2 * notifier_module.RETRY_PAUSE]
    assert "SCN for iqn.x:a not delivered: no answer from its SCN port (127.0.0.1:5001/udp)" in (
        caplog.text
    )
    assert "after 3 attempts" in caplog.text


async def test_each_round_tries_every_port_and_the_pause_doubles() -> None:
    outbound, pacer = Unanswered(), Pacer()
    notifier = Notifier(outbound, retries=5, pause=0.25, sleep=pacer)
    notifier.submit([notification("iqn.x:a", 5001, 5002)])
    await settle(notifier)
    assert outbound.sent == [(LOOPBACK, 5001), (LOOPBACK, 5002)] * 5
    assert pacer.pauses == [0.25, 0.5, 1.0, 2.0]  # none before the first round


async def test_a_dead_recipient_delays_only_itself(
    outbound: Outbound, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    dead, dead_port = await udp_peer(answer=False)
    alive, alive_port = await udp_peer()
    notifier = Notifier(outbound, retries=3, timeout=1.0)
    start = time.monotonic()
    notifier.submit([notification("iqn.x:dead", dead_port)] * 150)  # never blocks
    assert time.monotonic() - start < 0.1
    assert len(notifier._queues["iqn.x:dead"]) == notifier_module.QUEUE_LIMIT
    assert caplog.text.count("are piling up") == 1
    notifier.submit([notification("iqn.x:alive", alive_port)])
    await eventually(lambda: alive.received, what="the live recipient's SCN", within=0.5)
    await notifier.close()
    dead.transport.close()
    alive.transport.close()


async def test_an_scn_answered_with_an_error_is_delivered_but_logged(
    outbound: Outbound, caplog: pytest.LogCaptureFixture
) -> None:
    peer, port = await udp_peer(status=Status.SCN_EVENT_REJECTED)
    delivered: list[str] = []
    notifier = Notifier(outbound, retries=3, on_delivered=delivered.append, timeout=0.5)
    notifier.submit([notification("iqn.x:a", port)])
    await settle(notifier)
    assert delivered == ["iqn.x:a"] and len(peer.received) == 1  # not retried
    assert "answered our SCN with status SCN_EVENT_REJECTED (16)" in caplog.text
    peer.transport.close()


async def test_a_recipient_silent_since_the_restart_is_reported_as_such_at_info(
    outbound: Outbound, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    dead, port = await udp_peer(answer=False)
    heard = {"iqn.x:old": 1_000.0, "iqn.x:live": 2_000.0}
    notifier = Notifier(
        outbound, retries=1, timeout=0.05, last_heard=heard.get, clock=lambda: 1_500.0
    )
    notifier.submit([notification("iqn.x:old", port)])
    heard["iqn.x:old"] = 1_600.0  # it re-registers elsewhere: this SCN still went to the old port
    await settle(notifier)
    (line,) = [r for r in caplog.records if "iqn.x:old" in r.getMessage()]
    assert line.levelno == logging.INFO
    assert "registered before this server started" in line.getMessage()
    assert "registration stays until its registration period" in line.getMessage()
    notifier.submit([notification("iqn.x:live", port)])  # heard from after the start
    await settle(notifier)
    (line,) = [r for r in caplog.records if "iqn.x:live" in r.getMessage()]
    assert line.levelno == logging.WARNING and "Check that the client is running" in line.message
    dead.transport.close()


async def test_undelivered_scns_are_logged_once_per_recipient_and_interval(
    outbound: Outbound, caplog: pytest.LogCaptureFixture
) -> None:
    dead, port = await udp_peer(answer=False)
    now = [0.0]
    notifier = Notifier(outbound, retries=1, timeout=0.05, clock=lambda: now[0])
    for _ in range(3):
        notifier.submit([notification("iqn.x:a", port)])
        await settle(notifier)
    assert caplog.text.count("SCN for iqn.x:a not delivered") == 1
    now[0] += notifier_module.LOG_INTERVAL
    notifier.submit([notification("iqn.x:a", port)])
    await settle(notifier)
    assert caplog.text.count("SCN for iqn.x:a not delivered") == 2
    assert "(and 2 more like it" in caplog.text
    dead.transport.close()
