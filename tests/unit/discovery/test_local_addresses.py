"""Which addresses are this host's, for previous-responder lists (RFC 2608 8.1)."""

from ipaddress import IPv4Address, IPv6Address, ip_address

from discovery_agent.local_addresses import CACHE_SECONDS, CACHE_SIZE, LocalAddresses


def test_loopback_is_always_local_and_others_are_asked_once_a_while() -> None:
    asked: list[str] = []
    now = [0.0]

    def probe(address: IPv4Address | IPv6Address) -> bool:
        asked.append(str(address))
        return str(address) == "192.0.2.2"

    local = LocalAddresses(probe, clock=lambda: now[0])
    assert local(ip_address("127.0.0.2")) and local(ip_address("::1"))
    assert not local(ip_address("239.255.255.253")) and not local(ip_address("0.0.0.0"))
    assert asked == []  # none of these needs the routing table
    for _ in range(3):
        assert local(ip_address("192.0.2.2")) and not local(ip_address("192.0.2.9"))
    assert asked == ["192.0.2.2", "192.0.2.9"]  # a retransmission storm costs nothing more
    now[0] = CACHE_SECONDS + 1  # a VIP may have moved: ask again
    assert local(ip_address("192.0.2.2")) and asked[-1] == "192.0.2.2"


def test_the_cache_is_bounded() -> None:
    local = LocalAddresses(lambda address: False, clock=lambda: 0.0)
    for n in range(3 * CACHE_SIZE):
        local(IPv4Address(0x0A000000 + n))
    assert len(local._known) <= CACHE_SIZE
