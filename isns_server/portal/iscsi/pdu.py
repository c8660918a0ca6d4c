"""iSCSI PDUs (RFC 3720 section 10) as frozen dataclasses that know their BHS layout.

Each class lists its fields in wire order with the byte offset of the RFC's diagram
(`_u32(24)` is "bytes 24-27"). `@_pdu` compiles that list once into a struct.Struct
and a table for the flag bits of bytes 0-1, so unpacking a BHS is one unpack_from,
one dict lookup and the constructor call. Reserved fields are not modelled: they are
sent as zero and ignored on receipt; bits the RFC fixes to 1 (most F bits, the I bit
of a Login Request) are always sent and never checked.

Numeric fields are plain ints (compare them with the IntEnums of `constants`), so an
unknown value from the wire round-trips instead of failing to parse.
"""

import operator
import struct
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass, field, fields
from typing import Any, ClassVar, Self, TypeVar

from .constants import BHS_LENGTH, RESERVED_TAG, AhsType, Opcode, TaskAttribute

DataSegment = bytes | bytearray | memoryview

_IMMEDIATE = 0x4000  # byte 0 bit 6 of the 16-bit (byte 0, byte 1) pair
_FINAL = 0x0080  # byte 1 bit 7


@dataclass(frozen=True, slots=True)
class Wire:
    """Where a field sits in the 48-byte BHS."""

    offset: int
    size: int = 1  # bytes
    mask: int = 0  # non-zero: a bit field inside byte `offset` (0 or 1)
    flag: bool = False  # a one-bit field, exposed as bool
    octets: bool = False  # raw bytes (ISID, CDB) rather than an integer


def _wire(wire: Wire, default: object) -> Any:
    return field(default=default, metadata={"wire": wire})


def _flag(byte: int, mask: int, default: bool = False) -> Any:
    return _wire(Wire(byte, mask=mask, flag=True), default)


def _bits(byte: int, mask: int, default: int = 0) -> Any:
    return _wire(Wire(byte, mask=mask), default)


def _u8(offset: int) -> Any:
    return _wire(Wire(offset, 1), 0)


def _u16(offset: int) -> Any:
    return _wire(Wire(offset, 2), 0)


def _u32(offset: int, default: int = 0) -> Any:
    return _wire(Wire(offset, 4), default)


def _u64(offset: int) -> Any:
    return _wire(Wire(offset, 8), 0)


def _octets(offset: int, size: int) -> Any:
    return _wire(Wire(offset, size, octets=True), bytes(size))


@dataclass(frozen=True, slots=True)
class Ahs:
    """An Additional Header Segment (10.2.2); `data` is the AHS-Specific part from byte 3."""

    ahs_type: int
    data: bytes


_BitField = tuple[str, int, int, bool]  # name, mask within the 16-bit (byte 0, byte 1), shift, flag


@dataclass(frozen=True, slots=True)
class _Layout:
    fixed: int  # opcode and always-set bits, as the 16-bit (byte 0, byte 1) value
    bit_fields: tuple[_BitField, ...]
    bits_by_value: dict[int, tuple[int | bool, ...]]  # (byte 0, byte 1) & bit_mask -> values
    bit_mask: int
    body: struct.Struct  # byte 0, byte 1, then the other fields; bytes 4-7 are left to framing
    body_values: Callable[[Any], tuple[Any, ...]]
    octets: tuple[tuple[str, int], ...]  # bytes fields and their size, checked before packing


@dataclass(frozen=True, slots=True)
class Pdu:
    """Base of all PDUs: fields common to every opcode come after the opcode's own."""

    OPCODE: ClassVar[Opcode]
    _layout: ClassVar[_Layout]

    _: KW_ONLY
    ahs: tuple[Ahs, ...] = ()
    # Out of hash (the reader hands out memoryviews, which do not hash) and out of repr
    # (a 256 KiB payload in a log line helps nobody).
    data: DataSegment = field(default=b"", hash=False, repr=False)

    @classmethod
    def unpack(
        cls, bhs: DataSegment, *, ahs: tuple[Ahs, ...] = (), data: DataSegment = b""
    ) -> Self:
        """Build the PDU from its BHS (the first 48 bytes of `bhs`); no length checks."""
        layout = cls._layout
        raw = layout.body.unpack_from(bhs)
        bits = layout.bits_by_value[(raw[0] << 8 | raw[1]) & layout.bit_mask]
        return cls(*bits, *raw[2:], ahs=ahs, data=data)

    def pack_bhs(self, buf: bytearray, total_ahs_length: int, data_segment_length: int) -> None:
        """Write the 48-byte BHS at the start of `buf`.

        Raises ValueError for a field that does not fit its place in the header.
        """
        layout = self._layout
        first = layout.fixed
        for name, mask, shift, _ in layout.bit_fields:
            value = int(getattr(self, name))
            if value << shift & ~mask or value < 0:
                raise ValueError(f"{type(self).__name__}.{name}={value} does not fit its bits")
            first |= value << shift
        for name, size in layout.octets:
            if len(getattr(self, name)) > size:
                raise ValueError(f"{type(self).__name__}.{name} is longer than {size} bytes")
        try:
            layout.body.pack_into(buf, 0, first >> 8, first & 0xFF, *layout.body_values(self))
        except struct.error as exc:
            raise ValueError(f"{type(self).__name__}: {exc}") from None
        _AHS_AND_DATA_LENGTH.pack_into(buf, 4, total_ahs_length << 24 | data_segment_length)


_AHS_AND_DATA_LENGTH = struct.Struct(">I")  # TotalAHSLength (1 byte) | DataSegmentLength (3)
_INT_CODES = {1: "B", 2: "H", 4: "I", 8: "Q"}

PDU_CLASSES: dict[int, type[Pdu]] = {}

P = TypeVar("P", bound=Pdu)


def _pdu(opcode: Opcode, *, fixed: int = 0) -> Callable[[type[P]], type[P]]:
    """Register a PDU class and compile its layout; `fixed` = always-set bits of bytes 0-1."""

    def compile_layout(cls: type[P]) -> type[P]:
        bit_fields: list[_BitField] = []
        names: list[str] = []
        octets: list[tuple[str, int]] = []
        fmt, position = ">BB", 2
        for f in fields(cls):
            if f.kw_only:
                continue
            wire: Wire = f.metadata["wire"]
            if wire.mask:
                if names or wire.offset not in (0, 1):
                    raise TypeError(f"{cls.__name__}.{f.name}: bit fields come first, in bytes 0-1")
                mask = wire.mask << (8 if wire.offset == 0 else 0)
                bit_fields.append((f.name, mask, (mask & -mask).bit_length() - 1, wire.flag))
                continue
            # Bytes 4-7 (TotalAHSLength, DataSegmentLength) are padding here: framing owns them.
            if wire.offset < position or (wire.offset < 8 and wire.offset + wire.size > 4):
                raise TypeError(f"{cls.__name__}.{f.name}: fields must follow wire order")
            gap = wire.offset - position
            code = f"{wire.size}s" if wire.octets else _INT_CODES[wire.size]
            fmt += (f"{gap}x" if gap else "") + code
            position = wire.offset + wire.size
            names.append(f.name)
            if wire.octets:
                octets.append((f.name, wire.size))
        fmt += f"{BHS_LENGTH - position}x" if position < BHS_LENGTH else ""
        body = struct.Struct(fmt)
        if body.size != BHS_LENGTH or len(names) < 2:
            raise TypeError(f"{cls.__name__}: layout does not describe a BHS")
        bit_mask = 0
        for _, mask, _, _ in bit_fields:
            bit_mask |= mask
        cls.OPCODE = opcode
        cls._layout = _Layout(
            fixed=opcode << 8 | fixed,
            bit_fields=tuple(bit_fields),
            bits_by_value={value: _split_bits(value, bit_fields) for value in _submasks(bit_mask)},
            bit_mask=bit_mask,
            body=body,
            body_values=operator.attrgetter(*names),
            octets=tuple(octets),
        )
        PDU_CLASSES[opcode] = cls
        return cls

    return compile_layout


def _submasks(mask: int) -> list[int]:
    """Every value whose set bits are a subset of `mask`."""
    found, value = [0], mask
    while value:
        found.append(value)
        value = (value - 1) & mask
    return found


def _split_bits(value: int, bit_fields: list[_BitField]) -> tuple[int | bool, ...]:
    return tuple(
        bool(value & mask) if is_flag else (value & mask) >> shift
        for _, mask, shift, is_flag in bit_fields
    )


# Initiator PDUs ---------------------------------------------------------------------------


@_pdu(Opcode.NOP_OUT, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class NopOut(Pdu):
    """10.18."""

    immediate: bool = _flag(0, 0x40)
    lun: int = _u64(8)
    itt: int = _u32(16, RESERVED_TAG)
    ttt: int = _u32(20, RESERVED_TAG)
    cmdsn: int = _u32(24)
    expstatsn: int = _u32(28)


@_pdu(Opcode.SCSI_COMMAND)
@dataclass(frozen=True, slots=True)
class ScsiCommand(Pdu):
    """10.3."""

    immediate: bool = _flag(0, 0x40)
    final: bool = _flag(1, 0x80, True)
    read: bool = _flag(1, 0x40)
    write: bool = _flag(1, 0x20)
    attr: int = _bits(1, 0x07, TaskAttribute.SIMPLE)
    lun: int = _u64(8)
    itt: int = _u32(16)
    expected_data_transfer_length: int = _u32(20)
    cmdsn: int = _u32(24)
    expstatsn: int = _u32(28)
    cdb: bytes = _octets(32, 16)

    @property
    def full_cdb(self) -> bytes:
        """The CDB including an Extended CDB AHS spill-over (10.2.2.3)."""
        for ahs in self.ahs:
            if ahs.ahs_type == AhsType.EXTENDED_CDB:
                return self.cdb + ahs.data[1:]  # data[0] is the reserved byte 3
        return self.cdb

    @property
    def bidi_read_data_length(self) -> int | None:
        """Expected Bidirectional Read Data Length (10.2.2.4), if the AHS is present."""
        for ahs in self.ahs:
            if ahs.ahs_type == AhsType.BIDI_READ_DATA_LENGTH and len(ahs.data) >= 5:
                return int.from_bytes(ahs.data[1:5], "big")
        return None


@_pdu(Opcode.TASK_MANAGEMENT_REQUEST, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class TaskManagementRequest(Pdu):
    """10.5."""

    immediate: bool = _flag(0, 0x40)
    function: int = _bits(1, 0x7F)  # TaskManagementFunction
    lun: int = _u64(8)
    itt: int = _u32(16)
    referenced_task_tag: int = _u32(20, RESERVED_TAG)
    cmdsn: int = _u32(24)
    expstatsn: int = _u32(28)
    refcmdsn: int = _u32(32)
    expdatasn: int = _u32(36)


@_pdu(Opcode.LOGIN_REQUEST, fixed=_IMMEDIATE)  # "always considered as immediate"
@dataclass(frozen=True, slots=True)
class LoginRequest(Pdu):
    """10.12."""

    transit: bool = _flag(1, 0x80)
    continue_: bool = _flag(1, 0x40)
    csg: int = _bits(1, 0x0C)  # LoginStage
    nsg: int = _bits(1, 0x03)
    version_max: int = _u8(2)
    version_min: int = _u8(3)
    isid: bytes = _octets(8, 6)
    tsih: int = _u16(14)
    itt: int = _u32(16)
    cid: int = _u16(20)
    cmdsn: int = _u32(24)
    expstatsn: int = _u32(28)


@_pdu(Opcode.TEXT_REQUEST)
@dataclass(frozen=True, slots=True)
class TextRequest(Pdu):
    """10.10."""

    immediate: bool = _flag(0, 0x40)
    final: bool = _flag(1, 0x80, True)
    continue_: bool = _flag(1, 0x40)
    lun: int = _u64(8)
    itt: int = _u32(16)
    ttt: int = _u32(20, RESERVED_TAG)
    cmdsn: int = _u32(24)
    expstatsn: int = _u32(28)


@_pdu(Opcode.DATA_OUT)
@dataclass(frozen=True, slots=True)
class DataOut(Pdu):
    """10.7."""

    final: bool = _flag(1, 0x80)
    lun: int = _u64(8)
    itt: int = _u32(16)
    ttt: int = _u32(20, RESERVED_TAG)
    expstatsn: int = _u32(28)
    datasn: int = _u32(36)
    buffer_offset: int = _u32(40)


@_pdu(Opcode.LOGOUT_REQUEST, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class LogoutRequest(Pdu):
    """10.14."""

    immediate: bool = _flag(0, 0x40)
    reason_code: int = _bits(1, 0x7F)  # LogoutReasonCode
    itt: int = _u32(16)
    cid: int = _u16(20)
    cmdsn: int = _u32(24)
    expstatsn: int = _u32(28)


@_pdu(Opcode.SNACK_REQUEST, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class SnackRequest(Pdu):
    """10.16."""

    snack_type: int = _bits(1, 0x0F)  # SnackType
    lun: int = _u64(8)
    itt: int = _u32(16, RESERVED_TAG)
    ttt: int = _u32(20, RESERVED_TAG)  # or the SNACK Tag of an R-Data SNACK
    expstatsn: int = _u32(28)
    begrun: int = _u32(40)
    runlength: int = _u32(44)


# Target PDUs ------------------------------------------------------------------------------


@_pdu(Opcode.NOP_IN, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class NopIn(Pdu):
    """10.19."""

    lun: int = _u64(8)
    itt: int = _u32(16, RESERVED_TAG)
    ttt: int = _u32(20, RESERVED_TAG)
    statsn: int = _u32(24)
    expcmdsn: int = _u32(28)
    maxcmdsn: int = _u32(32)


@_pdu(Opcode.SCSI_RESPONSE, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class ScsiResponse(Pdu):
    """10.4. The four residual flags are the RFC's o, u, O and U bits."""

    bidi_read_residual_overflow: bool = _flag(1, 0x10)
    bidi_read_residual_underflow: bool = _flag(1, 0x08)
    residual_overflow: bool = _flag(1, 0x04)
    residual_underflow: bool = _flag(1, 0x02)
    response: int = _u8(2)  # ServiceResponse
    status: int = _u8(3)  # SAM status (scsi.constants.ScsiStatus)
    itt: int = _u32(16)
    snack_tag: int = _u32(20)
    statsn: int = _u32(24)
    expcmdsn: int = _u32(28)
    maxcmdsn: int = _u32(32)
    expdatasn: int = _u32(36)
    bidi_read_residual_count: int = _u32(40)
    residual_count: int = _u32(44)


@_pdu(Opcode.TASK_MANAGEMENT_RESPONSE, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class TaskManagementResponse(Pdu):
    """10.6."""

    response: int = _u8(2)  # TaskManagementResponseCode
    itt: int = _u32(16)
    statsn: int = _u32(24)
    expcmdsn: int = _u32(28)
    maxcmdsn: int = _u32(32)


@_pdu(Opcode.LOGIN_RESPONSE)
@dataclass(frozen=True, slots=True)
class LoginResponse(Pdu):
    """10.13. `status` holds Status-Class and Status-Detail as the RFC's 4-digit code."""

    transit: bool = _flag(1, 0x80)
    continue_: bool = _flag(1, 0x40)
    csg: int = _bits(1, 0x0C)  # LoginStage
    nsg: int = _bits(1, 0x03)
    version_max: int = _u8(2)
    version_active: int = _u8(3)
    isid: bytes = _octets(8, 6)
    tsih: int = _u16(14)
    itt: int = _u32(16)
    statsn: int = _u32(24)
    expcmdsn: int = _u32(28)
    maxcmdsn: int = _u32(32)
    status: int = _u16(36)  # LoginStatus

    @property
    def status_class(self) -> int:  # LoginStatusClass
        return self.status >> 8

    @property
    def status_detail(self) -> int:
        return self.status & 0xFF


@_pdu(Opcode.TEXT_RESPONSE)
@dataclass(frozen=True, slots=True)
class TextResponse(Pdu):
    """10.11."""

    final: bool = _flag(1, 0x80, True)
    continue_: bool = _flag(1, 0x40)
    lun: int = _u64(8)
    itt: int = _u32(16)
    ttt: int = _u32(20, RESERVED_TAG)
    statsn: int = _u32(24)
    expcmdsn: int = _u32(28)
    maxcmdsn: int = _u32(32)


@_pdu(Opcode.DATA_IN)
@dataclass(frozen=True, slots=True)
class DataIn(Pdu):
    """10.7. `status_present` is the S bit: `status` and the residual are valid."""

    final: bool = _flag(1, 0x80)
    acknowledge: bool = _flag(1, 0x40)
    residual_overflow: bool = _flag(1, 0x04)
    residual_underflow: bool = _flag(1, 0x02)
    status_present: bool = _flag(1, 0x01)
    status: int = _u8(3)  # SAM status (scsi.constants.ScsiStatus)
    lun: int = _u64(8)
    itt: int = _u32(16)
    ttt: int = _u32(20, RESERVED_TAG)
    statsn: int = _u32(24)
    expcmdsn: int = _u32(28)
    maxcmdsn: int = _u32(32)
    datasn: int = _u32(36)
    buffer_offset: int = _u32(40)
    residual_count: int = _u32(44)


@_pdu(Opcode.LOGOUT_RESPONSE, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class LogoutResponse(Pdu):
    """10.15."""

    response: int = _u8(2)  # LogoutResponseCode
    itt: int = _u32(16)
    statsn: int = _u32(24)
    expcmdsn: int = _u32(28)
    maxcmdsn: int = _u32(32)
    time2wait: int = _u16(40)
    time2retain: int = _u16(42)


@_pdu(Opcode.R2T, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class R2T(Pdu):
    """10.8 Ready To Transfer."""

    lun: int = _u64(8)
    itt: int = _u32(16)
    ttt: int = _u32(20)  # never 0xffffffff in an R2T
    statsn: int = _u32(24)
    expcmdsn: int = _u32(28)
    maxcmdsn: int = _u32(32)
    r2tsn: int = _u32(36)
    buffer_offset: int = _u32(40)
    desired_data_transfer_length: int = _u32(44)


@_pdu(Opcode.ASYNC_MESSAGE, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class AsyncMessage(Pdu):
    """10.9."""

    lun: int = _u64(8)
    itt: int = _u32(16, RESERVED_TAG)  # the RFC fixes it to 0xffffffff
    statsn: int = _u32(24)
    expcmdsn: int = _u32(28)
    maxcmdsn: int = _u32(32)
    async_event: int = _u8(36)  # AsyncEvent
    async_vcode: int = _u8(37)
    parameter1: int = _u16(38)
    parameter2: int = _u16(40)
    parameter3: int = _u16(42)


@_pdu(Opcode.REJECT, fixed=_FINAL)
@dataclass(frozen=True, slots=True)
class Reject(Pdu):
    """10.17. The data segment carries the complete header of the rejected PDU."""

    reason: int = _u8(2)  # RejectReason
    itt: int = _u32(16, RESERVED_TAG)  # the RFC fixes it to 0xffffffff
    statsn: int = _u32(24)
    expcmdsn: int = _u32(28)
    maxcmdsn: int = _u32(32)
    datasn_or_r2tsn: int = _u32(36)
