"""The heartbeat socket: multicast only with TTL 1 out of a chosen interface; the log of
heartbeats received."""

import socket
from ipaddress import ip_address

import pytest

from isns_server.config import ListenAddress
from isns_server.isnsp.constants import FunctionId
from isns_server.isnsp.heartbeat import Heartbeat, ServerAddress, heartbeat_message
from isns_server.isnsp.messages import Message
from isns_server.service.heartbeat import HeartbeatError, HeartbeatMonitor, heartbeat_socket

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
