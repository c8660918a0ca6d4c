"""How addresses are written in logs and messages (IPv6 hosts in brackets), and read
back from text."""

from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any


def host_port(host: str, port: int) -> str:
    """`127.0.0.1:3205`, `[::1]:3205`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def peer_text(address: Any) -> str:
    """A socket address (as asyncio's `peername` gives it) for a log line."""
    if isinstance(address, tuple) and len(address) >= 2:
        return host_port(str(address[0]), int(address[1]))
    return str(address)


def parse_ip(text: str) -> IPv4Address | IPv6Address | None:
    """The address `text` writes, an IPv4-mapped one as the IPv4 address it carries (a
    dual-stack socket's view of an IPv4 peer); None when `text` is no address."""
    try:
        address = ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def peer_ip(peer: str) -> IPv4Address | IPv6Address | None:
    """The address in a `peer_text` (IPv4-mapped as IPv4); None for the description of an
    in-process caller ("the iSCSI portal")."""
    host = peer[1:].partition("]")[0] if peer.startswith("[") else peer.rpartition(":")[0]
    return parse_ip(host)
