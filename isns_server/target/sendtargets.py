"""SendTargets answers (RFC 3720 appendix D, 12.3, 12.8): target records as text pairs."""

from collections.abc import Iterable
from ipaddress import IPv4Address, IPv6Address

from ..registry import TargetPortal, VisibleTarget

Pair = tuple[str, str]


def target_address(portal: TargetPortal) -> str:
    """TargetAddress=<ip>:<port>,<portal group tag>, IPv6 addresses in brackets (12.8)."""
    return f"{_host(portal.address)}:{portal.port},{portal.group_tag}"


def _host(address: IPv4Address | IPv6Address) -> str:
    if isinstance(address, IPv4Address):
        return str(address)
    if not int(address) >> 32 and int(address) >> 24:
        # IPv4-compatible ::a.b.c.d (RFC 4291 2.5.5.1): open-isns' isnsadm registers IPv4
        # portals that way, and initiators need the IPv4 address.
        return str(IPv4Address(int(address)))
    return f"[{address}]"


def target_records(targets: Iterable[VisibleTarget]) -> list[Pair]:
    """One record per target: TargetName, then a TargetAddress per portal (appendix D)."""
    pairs: list[Pair] = []
    for target in targets:
        pairs.append(("TargetName", target.name))
        pairs += [("TargetAddress", target_address(portal)) for portal in target.portals]
    return pairs
