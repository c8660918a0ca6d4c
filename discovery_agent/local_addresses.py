"""Whether an address is one of this host's, configured for SLP or not.

RFC 2608 8.1: a DA that finds its address in a request's previous responder list does
not answer again, and a user agent lists whatever source address our reply came from,
a secondary address or a VIP included. The kernel's routing table knows which addresses
are local: a UDP socket "connected" to a local address leaves from that very address
(connect() on UDP sends nothing; it only chooses the route). Answers are cached for a
while, so a retransmission storm costs no system calls, and the cache is bounded.
"""

import socket
import time
from collections.abc import Callable
from ipaddress import IPv4Address, IPv6Address, ip_address

IPAddress = IPv4Address | IPv6Address

CACHE_SECONDS = 60.0  # addresses move (a VIP fails over); look again after this long
CACHE_SIZE = 1024


def routes_to_itself(address: IPAddress) -> bool:
    family = socket.AF_INET6 if isinstance(address, IPv6Address) else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((str(address), 9))
            return ip_address(probe.getsockname()[0]) == address
    except OSError:  # no route, or an address that needs a scope (link-local)
        return False


class LocalAddresses:
    def __init__(
        self,
        probe: Callable[[IPAddress], bool] = routes_to_itself,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._probe = probe
        self._clock = clock
        self._known: dict[IPAddress, tuple[bool, float]] = {}  # -> (local, until)

    def __call__(self, address: IPAddress) -> bool:
        if address.is_loopback:
            return True  # all of 127.0.0.0/8 is this host's on Linux, not only 127.0.0.1
        if address.is_multicast or address.is_unspecified:
            return False
        now = self._clock()
        known = self._known.get(address)
        if known is not None and known[1] > now:
            return known[0]
        if len(self._known) >= CACHE_SIZE:
            self._known.clear()
        local = self._probe(address)
        self._known[address] = (local, now + CACHE_SECONDS)
        return local
