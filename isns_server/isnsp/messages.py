"""Typed iSNSP messages: what the codec produces and consumes (RFC 4171 5.1, 5.6).

A message is its header fields plus a flat attribute list in wire order:
requests carry Source, Message Key attributes, Delimiter, Operating attributes;
responses carry a Status and then Message Key attributes, Delimiter, Operating
attributes. `split()` gives the three parts; builders put the Delimiter in.
"""

from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

from .constants import Flags, FunctionId, Status, Tag


@dataclass(frozen=True, slots=True)
class PortNumber:
    """A Portal TCP/UDP Port value (RFC 4171 6.3.2): port number plus the UDP bit."""

    port: int
    udp: bool = False

    def __str__(self) -> str:
        return f"{self.port}/{'udp' if self.udp else 'tcp'}"


IPAddress = IPv4Address | IPv6Address


def unwrap_ipv4(address: IPAddress) -> IPAddress:
    """The IPv4 address an IPv4-compatible IPv6 address (::a.b.c.d, deprecated by RFC 4291
    2.5.5.1) stands for; any other address as it is. open-isns registers IPv4 portals in
    that form where RFC 4171 6.3.1 wants IPv4-mapped, and means IPv4."""
    value = int(address)
    # 0.x.x.x is no host address, so ::1 and other low values stay IPv6.
    if isinstance(address, IPv6Address) and value >> 32 == 0 and value >> 24:
        return IPv4Address(value)
    return address


def address_text(address: IPAddress, port: PortNumber) -> str:
    """An address and port as logs show them: `127.0.0.1:3260/tcp`, `[::1]:3260/tcp`."""
    address = unwrap_ipv4(address)
    host = f"[{address}]" if address.version == 6 else str(address)
    return f"{host}:{port}"


# None is a zero-length TLV: a query key asking for "any value", or an attribute requested
# back in a query's operating attributes.
AttrValue = str | int | bytes | IPAddress | PortNumber | None


@dataclass(frozen=True, slots=True)
class Attribute:
    tag: int
    value: AttrValue = None


DELIMITER = Attribute(Tag.DELIMITER, None)


@dataclass(frozen=True, slots=True)
class Message:
    """One iSNSP message, however many PDUs carried it."""

    function: int  # a FunctionId, or an unknown value kept so it can be answered
    xid: int
    flags: Flags = Flags.NONE
    attributes: tuple[Attribute, ...] = ()
    status: Status | int | None = None  # responses only
    payload: bytes | None = field(default=None, compare=False)  # non-TLV payloads (Heartbeat)

    @property
    def is_response(self) -> bool:
        return bool(self.function & 0x8000)

    def split(self) -> tuple[Attribute | None, tuple[Attribute, ...], tuple[Attribute, ...]]:
        """(source, message keys, operating attributes). Source is None for responses."""
        attrs = self.attributes
        source: Attribute | None = None
        if not self.is_response:
            if not attrs:
                return None, (), ()
            source, attrs = attrs[0], attrs[1:]
        for i, attr in enumerate(attrs):
            if attr.tag == Tag.DELIMITER:
                return source, attrs[:i], attrs[i + 1 :]
        return source, attrs, ()


def request(
    function: FunctionId,
    xid: int,
    source: Attribute | None,
    keys: tuple[Attribute, ...] = (),
    operating: tuple[Attribute, ...] = (),
    flags: Flags = Flags.NONE,
) -> Message:
    """Build a client request in RFC wire order."""
    attrs: tuple[Attribute, ...] = ((source,) if source is not None else ()) + keys
    if operating:
        attrs += (DELIMITER, *operating)
    return Message(function, xid, flags | Flags.CLIENT, attrs)


def response(
    to: Message,
    status: Status,
    keys: tuple[Attribute, ...] = (),
    operating: tuple[Attribute, ...] = (),
) -> Message:
    """Build the server's response to `to` in RFC wire order."""
    attrs: tuple[Attribute, ...] = keys
    if operating:
        attrs += (DELIMITER, *operating)
    return Message(to.function | 0x8000, to.xid, Flags.SERVER, attrs, status)
