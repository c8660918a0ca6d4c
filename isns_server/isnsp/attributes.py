"""Attribute TLVs (RFC 4171 5.3, 6.1): which Python type each tag carries, and the codec.

Value types:
- text (EID, names, aliases...): UTF-8, NUL-terminated, zero-padded to 4 bytes; decoded
  to `str` without the NUL. The RFC's maximum field size (NUL and padding included) is
  enforced both ways.
- 4- and 8-byte numbers (indexes, bitmaps, Timestamp, WWNs...): `int`.
- 16-byte IP addresses: `IPv4Address` when IPv4-mapped (::ffff:a.b.c.d), else `IPv6Address`.
- Portal/ESI/SCN/PG/DD-member ports (6.3.2, 6.3.5, 6.3.7): `PortNumber`.
- certificates, ISAKMP proposals, FC-4 bitmaps, vendor-specific and unknown tags: `bytes`,
  padding included (their own formats say where they end, 5.3.1).
- a zero-length TLV in any tag: `None`.

Decoding errors raise `MessageFormatError` (non-fatal: the message was framed fine);
encoding a value of the wrong type or range raises `TypeError`/`ValueError`, since that
is a bug in our own code rather than bad input from a peer.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address, IPv6Address
from struct import Struct
from struct import error as StructError

from .constants import PORT_UDP_BIT, Tag
from .errors import MessageFormatError
from .messages import Attribute, AttrValue, PortNumber


class ValueKind(Enum):
    DELIMITER = "delimiter"  # always zero-length (5.6.3)
    TEXT = "text"
    U32 = "u32"
    U64 = "u64"
    IP_ADDRESS = "ip-address"
    PORT = "port"
    OPAQUE = "opaque"


@dataclass(frozen=True, slots=True)
class AttributeSpec:
    """How one tag's value is carried. `size` is the exact value length for fixed-size
    kinds, the maximum field length for TEXT, and None when the RFC sets no limit."""

    kind: ValueKind
    size: int | None = None


_TEXT_256 = AttributeSpec(ValueKind.TEXT, 256)
_TEXT_224 = AttributeSpec(ValueKind.TEXT, 224)  # iSCSI Name: 223 bytes + NUL (6.4.1)
_TEXT = AttributeSpec(ValueKind.TEXT)
_U32 = AttributeSpec(ValueKind.U32, 4)
_U64 = AttributeSpec(ValueKind.U64, 8)
_IP = AttributeSpec(ValueKind.IP_ADDRESS, 16)
_PORT = AttributeSpec(ValueKind.PORT, 4)
_OPAQUE = AttributeSpec(ValueKind.OPAQUE)

# RFC 4171 6.1 table. Tags not listed (vendor-specific 257-2048, unassigned) are OPAQUE.
ATTRIBUTE_SPECS: dict[int, AttributeSpec] = {
    Tag.DELIMITER: AttributeSpec(ValueKind.DELIMITER, 0),
    # Network Entity (6.2)
    Tag.ENTITY_IDENTIFIER: _TEXT_256,
    Tag.ENTITY_PROTOCOL: _U32,
    Tag.MGMT_IP_ADDRESS: _IP,
    Tag.TIMESTAMP: _U64,
    Tag.PROTOCOL_VERSION_RANGE: _U32,  # max version << 16 | min version
    Tag.REGISTRATION_PERIOD: _U32,
    Tag.ENTITY_INDEX: _U32,
    Tag.ENTITY_NEXT_INDEX: _U32,
    Tag.ENTITY_ISAKMP_PHASE_1: _OPAQUE,
    Tag.ENTITY_CERTIFICATE: _OPAQUE,
    # Portal (6.3)
    Tag.PORTAL_IP_ADDRESS: _IP,
    Tag.PORTAL_TCP_UDP_PORT: _PORT,
    Tag.PORTAL_SYMBOLIC_NAME: _TEXT_256,
    Tag.ESI_INTERVAL: _U32,
    Tag.ESI_PORT: _PORT,
    Tag.PORTAL_INDEX: _U32,
    Tag.SCN_PORT: _PORT,
    Tag.PORTAL_NEXT_INDEX: _U32,
    Tag.PORTAL_SECURITY_BITMAP: _U32,
    Tag.PORTAL_ISAKMP_PHASE_1: _OPAQUE,
    Tag.PORTAL_ISAKMP_PHASE_2: _OPAQUE,
    Tag.PORTAL_CERTIFICATE: _OPAQUE,
    # iSCSI Storage Node (6.4)
    Tag.ISCSI_NAME: _TEXT_224,
    Tag.ISCSI_NODE_TYPE: _U32,
    Tag.ISCSI_ALIAS: _TEXT_256,
    Tag.ISCSI_SCN_BITMAP: _U32,
    Tag.ISCSI_NODE_INDEX: _U32,
    Tag.WWNN_TOKEN: _U64,
    Tag.ISCSI_NODE_NEXT_INDEX: _U32,
    Tag.ISCSI_AUTH_METHOD: _TEXT,
    # Portal Group (6.5)
    Tag.PG_ISCSI_NAME: _TEXT_224,
    Tag.PG_PORTAL_IP_ADDR: _IP,
    Tag.PG_PORTAL_TCP_UDP_PORT: _PORT,
    Tag.PG_TAG: _U32,  # zero-length (None) registers a NULL PGT (6.5.4)
    Tag.PG_INDEX: _U32,
    Tag.PG_NEXT_INDEX: _U32,
    # FC Port (6.6): recognised so they round-trip; WWNs are 64-bit integers
    Tag.FC_PORT_NAME_WWPN: _U64,
    Tag.PORT_ID: _U32,
    Tag.FC_PORT_TYPE: _U32,
    Tag.SYMBOLIC_PORT_NAME: _TEXT_256,
    Tag.FABRIC_PORT_NAME: _U64,
    Tag.HARD_ADDRESS: _U32,
    Tag.PORT_IP_ADDRESS: _IP,
    Tag.CLASS_OF_SERVICE: _U32,
    Tag.FC4_TYPES: AttributeSpec(ValueKind.OPAQUE, 32),
    Tag.FC4_DESCRIPTOR: _TEXT_256,
    Tag.FC4_FEATURES: AttributeSpec(ValueKind.OPAQUE, 128),
    Tag.IFCP_SCN_BITMAP: _U32,
    Tag.PORT_ROLE: _U32,
    Tag.PERMANENT_PORT_NAME: _U64,
    Tag.FC4_TYPE_CODE: _U32,
    # FC Node (6.7)
    Tag.FC_NODE_NAME_WWNN: _U64,
    Tag.SYMBOLIC_NODE_NAME: _TEXT_256,
    Tag.NODE_IP_ADDRESS: _IP,
    Tag.NODE_IPA: _U64,
    Tag.PROXY_ISCSI_NAME: _TEXT_256,
    # iFCP switch (6.8)
    Tag.SWITCH_NAME: _U64,
    Tag.PREFERRED_ID: _U32,
    Tag.ASSIGNED_ID: _U32,
    Tag.VIRTUAL_FABRIC_ID: _TEXT_256,
    # Server (6.9)
    Tag.ISNS_SERVER_VENDOR_OUI: _U32,
    # Discovery Domain Set (6.11.1)
    Tag.DD_SET_ID: _U32,
    Tag.DD_SET_SYMBOLIC_NAME: _TEXT_256,
    Tag.DD_SET_STATUS: _U32,
    Tag.DD_SET_NEXT_ID: _U32,
    # Discovery Domain (6.11.2)
    Tag.DD_ID: _U32,
    Tag.DD_SYMBOLIC_NAME: _TEXT_256,
    Tag.DD_MEMBER_ISCSI_INDEX: _U32,
    Tag.DD_MEMBER_ISCSI_NAME: _TEXT_224,
    Tag.DD_MEMBER_FC_PORT_NAME: _U64,
    Tag.DD_MEMBER_PORTAL_INDEX: _U32,
    Tag.DD_MEMBER_PORTAL_IP_ADDR: _IP,
    Tag.DD_MEMBER_PORTAL_TCP_UDP_PORT: _PORT,
    Tag.DD_FEATURES: _U32,
    Tag.DD_ID_NEXT_ID: _U32,
}


def spec_for(tag: int) -> AttributeSpec:
    """The value format of `tag`; unknown and vendor-specific tags are opaque bytes."""
    return ATTRIBUTE_SPECS.get(tag, _OPAQUE)


def tag_name(tag: int) -> str:
    """`TAG_NAME (n)` for messages to administrators."""
    try:
        return f"{Tag(tag).name} ({tag})"
    except ValueError:
        return f"tag {tag}"


# --- decoding -------------------------------------------------------------------------

_TL = Struct(">II")
_U32_AT = Struct(">I")
_U64_AT = Struct(">Q")
_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
_PORT_MASK = 0xFFFF
_KIND_U32, _KIND_U64, _KIND_TEXT = ValueKind.U32, ValueKind.U64, ValueKind.TEXT
_KIND_PORT, _KIND_IP, _KIND_OPAQUE = ValueKind.PORT, ValueKind.IP_ADDRESS, ValueKind.OPAQUE
_KIND_DELIMITER = ValueKind.DELIMITER


class _BadValue(Exception):
    """A value problem; the TLV loop adds the tag and offset."""


# Decoding is the server's hot path, so the loop below dispatches on the kind inline
# instead of calling one decoder function per tag. Each tag maps to its Tag member (for
# readable reprs), kind and size: the exact value length of fixed-size kinds, the maximum
# for TEXT, -1 for variable-length OPAQUE.
_NO_LIMIT = -1
_DECODE_TABLE: dict[int, tuple[int, ValueKind, int]] = {
    tag: (Tag(tag), spec.kind, _NO_LIMIT if spec.size is None else spec.size)
    for tag, spec in ATTRIBUTE_SPECS.items()
}

# Decoded attributes by their whole TLV bytes. Clients repeat the same TLVs all the time
# (their Source name, node type, portal, the zero-length TLVs of every query), and a hit
# skips decoding and building the frozen Attribute. Bounded; cleared when full, so
# unique-value traffic only costs the lookup.
_MEMO: dict[bytes, Attribute] = {}
_MEMO_ENTRIES = 4096
_MEMO_MAX_TLV = 8 + 256  # the longest text the RFC bounds


def decode_tlvs(data: bytes, start: int, end: int) -> tuple[Attribute, ...]:
    """Decode the TLVs in `data[start:end]`; offsets in errors count from the start of `data`."""
    attrs: list[Attribute] = []
    append = attrs.append
    unpack_tl = _TL.unpack_from
    unpack_u32 = _U32_AT.unpack_from
    table = _DECODE_TABLE
    memo = _MEMO
    U32, TEXT, PORT, IP_ADDRESS = _KIND_U32, _KIND_TEXT, _KIND_PORT, _KIND_IP
    pos = start
    tag = 0
    value: AttrValue
    try:
        while pos < end:
            if end - pos < 8:
                raise MessageFormatError(
                    f"truncated attribute at payload offset {pos}: "
                    f"{end - pos} bytes left, a TLV header needs 8"
                )
            tag, length = unpack_tl(data, pos)
            vpos = pos + 8
            if length > end - vpos:
                raise _BadValue(f"length {length} runs past the end of the message")
            if length & 3:
                raise _BadValue(f"length {length} is not a multiple of 4 (RFC 4171 5.3.1)")
            tlv_end = vpos + length
            tlv = data[pos:tlv_end] if length <= _MEMO_MAX_TLV else None
            if tlv is not None:
                attr = memo.get(tlv)
                if attr is not None:
                    append(attr)
                    pos = tlv_end
                    continue
            member, kind, size = table.get(tag) or (tag, _KIND_OPAQUE, _NO_LIMIT)
            if length == 0:
                value = None
            elif kind is U32 and length == 4:
                value = unpack_u32(data, vpos)[0]
            elif kind is TEXT:
                value = _text(data, vpos, length, size)
            elif size != _NO_LIMIT and length != size:
                raise _BadValue(f"value is {length} bytes, must be {size}")
            elif kind is PORT:
                # Bits 0-14 (the high ones) are reserved: ignored, as receivers should.
                number = unpack_u32(data, vpos)[0]
                value = PortNumber(number & _PORT_MASK, bool(number & PORT_UDP_BIT))
            elif kind is IP_ADDRESS:
                if data[vpos : vpos + 12] == _V4_MAPPED_PREFIX:
                    value = IPv4Address(unpack_u32(data, vpos + 12)[0])
                else:
                    value = IPv6Address(int.from_bytes(data[vpos:tlv_end], "big"))
            elif kind is _KIND_U64:
                value = _U64_AT.unpack_from(data, vpos)[0]
            else:
                value = bytes(data[vpos:tlv_end])
            attr = Attribute(member, value)
            append(attr)
            if tlv is not None:
                if len(memo) >= _MEMO_ENTRIES:
                    memo.clear()
                memo[tlv] = attr
            pos = tlv_end
    except _BadValue as exc:
        raise MessageFormatError(
            f"bad attribute {tag_name(tag)} at payload offset {pos}: {exc}"
        ) from None
    return tuple(attrs)


def _text(data: bytes, pos: int, length: int, max_size: int) -> str:
    if max_size != _NO_LIMIT and length > max_size:
        raise _BadValue(f"value is {length} bytes, more than the {max_size} allowed")
    text = data[pos : pos + length].rstrip(b"\0")
    if len(text) == length:
        raise _BadValue("text is not NUL-terminated")
    if b"\0" in text:
        raise _BadValue("text contains a NUL byte before its end")
    try:
        return text.decode()
    except UnicodeDecodeError as exc:
        raise _BadValue(f"text is not valid UTF-8 (byte {exc.start})") from None


def decode_attributes(payload: bytes) -> tuple[Attribute, ...]:
    """Decode a TLV payload (a request's whole payload, a response's after the status)."""
    return decode_tlvs(payload, 0, len(payload))


# --- encoding -------------------------------------------------------------------------

_TLV_U32 = Struct(">III")
_TLV_U64 = Struct(">IIQ")
_TL_V4_MAPPED = Struct(">II10xHI")  # tag, length 16, ::ffff:a.b.c.d
_TL_ZERO = Struct(">I4x")  # a zero-length TLV


def _check_type(value: AttrValue, kind: type | tuple[type, ...], what: str) -> None:
    if not isinstance(value, kind):
        raise TypeError(f"expected {what}, got {value!r}")


# Encoded text values (UTF-8, NUL, padding) by string: responses repeat the same names.
_TEXT_MEMO: dict[str, bytes] = {}


def _encode_text(tag: int, value: AttrValue, max_size: int) -> bytes:
    encoded = _TEXT_MEMO.get(value)  # type: ignore[arg-type]  # checked when missing
    if encoded is None:
        _check_type(value, str, "a str")
        assert isinstance(value, str)
        raw = value.encode()
        if b"\0" in raw:
            raise ValueError(f"text {value!r} contains a NUL character")
        # NUL terminator, then zero padding to 4 bytes
        encoded = raw + bytes(((len(raw) + 4) & ~3) - len(raw))
        if len(_TEXT_MEMO) >= _MEMO_ENTRIES:
            _TEXT_MEMO.clear()
        _TEXT_MEMO[value] = encoded
    size = len(encoded)
    if max_size != _NO_LIMIT and size > max_size:
        raise ValueError(f"text is {size} bytes with NUL and padding, over {max_size}")
    return _TL.pack(tag, size) + encoded


def _encode_other(tag: int, value: AttrValue, kind: ValueKind, size: int) -> bytes:
    """Kinds less common than u32 and text."""
    if kind is _KIND_PORT:
        _check_type(value, PortNumber, "a PortNumber")
        assert isinstance(value, PortNumber)
        if not 0 <= value.port <= _PORT_MASK:
            raise ValueError(f"port {value.port} is out of range")
        return _TLV_U32.pack(tag, 4, value.port | (PORT_UDP_BIT if value.udp else 0))
    if kind is _KIND_IP:
        if isinstance(value, IPv4Address):
            return _TL_V4_MAPPED.pack(tag, 16, 0xFFFF, int(value))
        _check_type(value, IPv6Address, "an IPv4Address or IPv6Address")
        assert isinstance(value, IPv6Address)
        return _TL.pack(tag, 16) + value.packed
    if kind is _KIND_U64:
        _check_type(value, int, "an int")
        return _TLV_U64.pack(tag, 8, value)
    if kind is _KIND_U32:
        _check_type(value, int, "an int")
        return _TLV_U32.pack(tag, 4, value)
    if kind is _KIND_DELIMITER:
        raise ValueError("the Delimiter cannot carry a value")
    _check_type(value, bytes, "bytes")
    assert isinstance(value, bytes)
    if size != _NO_LIMIT and len(value) != size:
        raise ValueError(f"value is {len(value)} bytes, must be {size}")
    padded = (len(value) + 3) & ~3  # opaque values are zero-padded too (5.3.1)
    return _TL.pack(tag, padded) + value + bytes(padded - len(value))


def encode_attributes(attrs: Iterable[Attribute]) -> bytes:
    """The TLVs of `attrs`, in order.

    Raises TypeError/ValueError for a value its tag cannot carry (text too long, int out
    of range, wrong Python type...).
    """
    return b"".join(encode_tlvs(attrs))


def encode_tlvs(attrs: Iterable[Attribute]) -> list[bytes]:
    """One TLV per attribute of `attrs` (see encode_attributes): a message split over
    several PDUs is cut between them."""
    parts: list[bytes] = []
    append = parts.append
    table = _DECODE_TABLE
    pack_zero = _TL_ZERO.pack
    pack_u32 = _TLV_U32.pack
    U32, TEXT = _KIND_U32, _KIND_TEXT
    tag = 0
    try:
        for attr in attrs:
            tag, value = attr.tag, attr.value
            if value is None:
                append(pack_zero(tag))
                continue
            _member, kind, size = table.get(tag) or (tag, _KIND_OPAQUE, _NO_LIMIT)
            if kind is U32 and value.__class__ is int:
                append(pack_u32(tag, 4, value))
            elif kind is TEXT:
                append(_encode_text(tag, value, size))
            else:
                append(_encode_other(tag, value, kind, size))
    except TypeError as exc:
        raise TypeError(f"cannot encode {tag_name(tag)}: {exc}") from None
    except (ValueError, StructError) as exc:
        raise ValueError(f"cannot encode {tag_name(tag)}: {exc}") from None
    return parts


def encode_attribute(attr: Attribute) -> bytes:
    """One TLV (see encode_attributes)."""
    return encode_attributes((attr,))
