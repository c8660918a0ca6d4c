"""SendTargets answers (RFC 3720 appendix D, 12.3, 12.8): target records as text pairs."""

from collections.abc import Iterable

from ...isnsp.messages import IPAddress, unwrap_ipv4
from ...registry import TargetPortal, VisibleTarget

Pair = tuple[str, str]


def target_address(portal: TargetPortal) -> str:
    """TargetAddress=<ip>:<port>,<portal group tag>, IPv6 addresses in brackets (12.8)."""
    return f"{_host(portal.address)}:{portal.port},{portal.group_tag}"


def _host(address: IPAddress) -> str:
    address = unwrap_ipv4(address)  # initiators need the IPv4 address open-isns meant
    return str(address) if address.version == 4 else f"[{address}]"


def target_records(targets: Iterable[VisibleTarget]) -> list[Pair]:
    """One record per target: TargetName, then a TargetAddress per portal (appendix D)."""
    pairs: list[Pair] = []
    for target in targets:
        pairs.append(("TargetName", target.name))
        pairs += [("TargetAddress", target_address(portal)) for portal in target.portals]
    return pairs
