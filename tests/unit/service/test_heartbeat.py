"""The heartbeat socket: multicast only with TTL 1 out of a chosen interface; the sender's
beats and pauses; the log of heartbeats received."""

import asyncio
import socket
from ipaddress import ip_address

import pytest

from isns_server.config import ListenAddress
from isns_server.isnsp.codec import DatagramDecoder
from isns_server.isnsp.constants import FunctionId
from isns_server.isnsp.heartbeat import (
    Heartbeat,
    ServerAddress,
    decode_heartbeat,
    heartbeat_message,
)
from isns_server.isnsp.messages import Message
from isns_server.service.heartbeat import (
    HeartbeatError,
    HeartbeatMonitor,
    HeartbeatSender,
    heartbeat_socket,
)

from ...polling import Pacer

GROUP = ListenAddress("239.255.0.1", 3205)  # only connected to: a UDP connect sends nothing
SENDER = ip_address("127.0.0.9")


def test_multicast_leaves_with_ttl_1_through_the_listen_interface() -> None:
    with heartbeat_socket(GROUP, "127.0.0.1") as sock:
        assert sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL) == 1
        interface = sock.getsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, 4)
        assert socket.inet_ntoa(interface) == "127.0.0.1"
        assert sock.getsockname()[0] == "127.0.0.1"
        assert sock.getpeername() == ("239.255.0.1", 3205)


@pytest.mark.parametrize(
    ("destination", "source", "problem"),
    [
        (GROUP, "0.0.0.0", "not a specific IPv4 address"),
        (GROUP, "::1", "not a specific IPv4 address"),
        (ListenAddress("ff02::1", 3205), "::1", "IPv6 multicast"),
    ],
)
def test_multicast_needs_a_chosen_ipv4_interface(
    destination: ListenAddress, source: str, problem: str
) -> None:
    with pytest.raises(HeartbeatError, match=problem):
        heartbeat_socket(destination, source)


def test_unicast_from_a_wildcard_listener() -> None:
    with heartbeat_socket(ListenAddress("127.0.0.1", 3205), "0.0.0.0") as sock:
        assert sock.getpeername() == ("127.0.0.1", 3205)


def test_received_heartbeats_are_logged_once_per_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    monitor = HeartbeatMonitor()
    beat = heartbeat_message(Heartbeat(ServerAddress(SENDER, 3205, 0), 10, 1), 1)
    monitor.received(beat, "127.0.0.9:3205")
    monitor.received(beat, "127.0.0.9:3205")
    monitor.received(Message(FunctionId.HEARTBEAT, 2, payload=b"\0" * 4), "127.0.0.9:3205")
    levels = [(r.levelname, r.getMessage()[:40]) for r in caplog.records]
    assert levels == [
        ("INFO", "Heartbeat from iSNS server 127.0.0.9 (TC"),
        ("DEBUG", "Heartbeat from iSNS server 127.0.0.9 (TC"),
        ("WARNING", "ignored a malformed Heartbeat from 127.0"),
    ]


class Transport(asyncio.DatagramTransport):
    """The heartbeats the sender hands its transport, decoded; no socket."""

    def __init__(self) -> None:
        super().__init__()
        self.beats: list[Heartbeat] = []
        self.closed = False

    def sendto(self, data: bytes | bytearray | memoryview, addr: object = None) -> None:
        message = DatagramDecoder().receive_datagram(bytes(data), ("127.0.0.1", 3205))
        assert message is not None
        self.beats.append(decode_heartbeat(message.payload or b""))

    def close(self) -> None:
        self.closed = True


async def test_the_sender_beats_then_pauses_for_the_interval() -> None:
    transport, pacer = Transport(), Pacer(hold=True)
    sender = HeartbeatSender(GROUP, 30, ListenAddress("127.0.0.1", 3205), sleep=pacer)
    active = ServerAddress(ip_address("127.0.0.1"), 3205, 3205)
    run = asyncio.create_task(sender._run(transport, active))
    for counter in range(3):
        assert await pacer.asked() == 30  # one beat, then the interval
        assert transport.beats == [Heartbeat(active, 30, n) for n in range(counter + 1)]
        pacer.resume()
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert transport.closed
