"""How addresses are written in logs and messages: IPv6 hosts in brackets."""

from typing import Any


def host_port(host: str, port: int) -> str:
    """`127.0.0.1:3205`, `[::1]:3205`."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def peer_text(address: Any) -> str:
    """A socket address (as asyncio's `peername` gives it) for a log line."""
    if isinstance(address, tuple) and len(address) >= 2:
        return host_port(str(address[0]), int(address[1]))
    return str(address)
