"""Which portals the targets are registered on, from the listen addresses."""

import asyncio
import socket
from ipaddress import ip_address

import pytest

from isns_server.config import ListenAddress
from isns_server.portal import server
from isns_server.portal.server import advertised_portals
from isns_server.registry import TargetPortal


def test_concrete_listen_addresses_are_registered_as_they_are() -> None:
    listen = (ListenAddress("127.0.0.1", 3260), ListenAddress("::1", 3261))
    assert asyncio.run(advertised_portals(listen)) == (
        TargetPortal(ip_address("127.0.0.1"), 3260, 1),
        TargetPortal(ip_address("::1"), 3261, 1),
    )


def test_a_wildcard_becomes_the_hosts_addresses(monkeypatch: pytest.MonkeyPatch) -> None:
    async def getaddrinfo(host: str, port: object, family: int = 0) -> list[tuple[object, ...]]:
        assert host == "storage1" and family == socket.AF_INET
        return [(family, 1, 6, "", (address, 0)) for address in ("127.0.1.1", "192.0.2.7")]

    monkeypatch.setattr(socket, "gethostname", lambda: "storage1")

    async def resolve() -> tuple[TargetPortal, ...]:
        monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", getaddrinfo)
        return await advertised_portals((ListenAddress("0.0.0.0", 3260),))

    assert asyncio.run(resolve()) == (TargetPortal(ip_address("192.0.2.7"), 3260, 1),)
    assert server.entity_id() == "isns-server-portal.storage1"


def test_a_wildcard_on_a_host_without_other_addresses_falls_back_to_loopback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(socket, "gethostname", lambda: "localhost")
    portals = asyncio.run(advertised_portals((ListenAddress("0.0.0.0", 3260),)))
    assert portals == (TargetPortal(ip_address("127.0.0.1"), 3260, 1),)
    assert "list the addresses initiators use in portal.listen" in caplog.text
