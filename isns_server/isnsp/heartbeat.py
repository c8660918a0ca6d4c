"""The Name Service Heartbeat payload (RFC 4171 5.6.5.14), which is not TLVs:

    Active Server IP Address (16) | iSNS TCP Port (2) | iSNS UDP Port (2) | Interval (4)
    | Counter (4) | RESERVED (2) | Backup Servers (2)
    | per backup server: IP Address (16) | TCP Port (2) | UDP Port (2) | vendor-specific...

Addresses are 16 bytes, IPv4 as IPv4-mapped IPv6. A Heartbeat has no response, so a bad
one raises `MessageFormatError` for the receiver to log and drop.
"""

from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from struct import Struct

from .constants import Flags, FunctionId
from .errors import MessageFormatError
from .messages import IPAddress, Message

_FIXED = Struct(">16sHHIIHH")
_SERVER = Struct(">16sHH")
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


@dataclass(frozen=True, slots=True)
class ServerAddress:
    """Where an iSNS server answers; a UDP port of 0 means it does not use UDP."""

    address: IPAddress
    tcp_port: int
    udp_port: int


@dataclass(frozen=True, slots=True)
class Heartbeat:
    active: ServerAddress
    interval: int  # seconds between heartbeats
    counter: int  # heartbeats sent since the server became active, from 0
    backups: tuple[ServerAddress, ...] = ()
    vendor: bytes = b""  # vendor-specific, a multiple of 4 bytes


def encode_heartbeat(heartbeat: Heartbeat) -> bytes:
    if len(heartbeat.vendor) % 4:
        raise ValueError("vendor-specific Heartbeat data must be a multiple of 4 bytes")
    active = heartbeat.active
    head = _FIXED.pack(
        _packed(active.address),
        active.tcp_port,
        active.udp_port,
        heartbeat.interval,
        heartbeat.counter,
        0,
        len(heartbeat.backups),
    )
    backups = b"".join(
        _SERVER.pack(_packed(b.address), b.tcp_port, b.udp_port) for b in heartbeat.backups
    )
    return head + backups + heartbeat.vendor


def decode_heartbeat(payload: bytes) -> Heartbeat:
    """The Heartbeat `payload` carries; MessageFormatError when it cannot be one."""
    if len(payload) < _FIXED.size:
        raise _bad(f"{len(payload)} bytes, the fixed part alone is {_FIXED.size}")
    raw, tcp, udp, interval, counter, _reserved, count = _FIXED.unpack_from(payload)
    end = _FIXED.size + count * _SERVER.size
    if end > len(payload):
        raise _bad(f"{count} backup servers do not fit in {len(payload)} bytes")
    if tcp == 0 or interval == 0:
        raise _bad(f"TCP port {tcp} and interval {interval} must not be 0")
    backups = tuple(
        ServerAddress(_address(a), t, u)
        for a, t, u in (
            _SERVER.unpack_from(payload, _FIXED.size + i * _SERVER.size) for i in range(count)
        )
    )
    return Heartbeat(
        ServerAddress(_address(raw), tcp, udp), interval, counter, backups, payload[end:]
    )


def heartbeat_message(heartbeat: Heartbeat, xid: int) -> Message:
    return Message(FunctionId.HEARTBEAT, xid, Flags.SERVER, payload=encode_heartbeat(heartbeat))


def _packed(address: IPAddress) -> bytes:
    return (
        _V4_MAPPED_PREFIX + address.packed if isinstance(address, IPv4Address) else address.packed
    )


def _address(raw: bytes) -> IPAddress:
    if raw.startswith(_V4_MAPPED_PREFIX):
        return IPv4Address(raw[12:])
    return IPv6Address(raw)


def _bad(detail: str) -> MessageFormatError:
    return MessageFormatError(f"bad Heartbeat: {detail}", function=FunctionId.HEARTBEAT)
