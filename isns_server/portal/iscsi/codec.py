"""Framing of iSCSI PDUs on a byte stream (RFC 3720 10.2), sans-IO.

`PduReader` cuts received bytes into PDUs; `encode_pdu` gives the pieces of one PDU
for a scatter/gather write. Digests and MaxRecvDataSegmentLength are whatever the
connection negotiated: the owner sets them on the reader when they take effect.
"""

import struct

from . import digests
from .constants import (
    BHS_LENGTH,
    DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH,
    DIGEST_LENGTH,
    MAX_DATA_SEGMENT_LENGTH,
)
from .errors import (
    DataDigestError,
    DataSegmentTooLongError,
    HeaderDigestError,
    IscsiError,
    PduFormatError,
    UnsupportedOpcodeError,
)
from .pdu import PDU_CLASSES, Ahs, DataSegment, Pdu

_LENGTHS = struct.Struct(">I")  # bytes 4-7: TotalAHSLength (words) | DataSegmentLength
_AHS_HEADER = struct.Struct(">HB")  # AHSLength, AHSType
_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")  # indexed by length % 4

# While a data segment is arriving, get_buffer() lends the PDU's own buffer when at least
# this much is missing; below it one recv into the scratch buffer (one small copy) beats
# a short read that ends at the segment and leaves the next header for another syscall.
_DIRECT_MIN = 16 * 1024
_SCRATCH_SIZE = 64 * 1024


def _padded(length: int) -> int:
    return (length + 3) & ~3


def encode_pdu(
    pdu: Pdu, header_digest: bool = False, data_digest: bool = False
) -> list[bytes | memoryview]:
    """The PDU as buffers to write in order: header (+AHS, +digest), data, padding (+digest).

    The data segment is passed through without copying. Raises ValueError for a field
    that does not fit the wire format.
    """
    ahs_length = sum(_padded(3 + len(ahs.data)) for ahs in pdu.ahs)
    if ahs_length > 255 * 4:
        raise ValueError(f"AHS of {ahs_length} bytes exceeds TotalAHSLength")
    data = pdu.data if isinstance(pdu.data, bytes) else memoryview(pdu.data).cast("B")
    length = len(data)
    if length > MAX_DATA_SEGMENT_LENGTH:
        raise ValueError(f"data segment of {length} bytes exceeds DataSegmentLength")
    header_end = BHS_LENGTH + ahs_length
    header = bytearray(header_end + (DIGEST_LENGTH if header_digest else 0))
    pdu.pack_bhs(header, ahs_length // 4, length)
    position = BHS_LENGTH
    for ahs in pdu.ahs:
        try:
            _AHS_HEADER.pack_into(header, position, len(ahs.data), ahs.ahs_type)
        except struct.error as exc:
            raise ValueError(f"AHS: {exc}") from None
        header[position + 3 : position + 3 + len(ahs.data)] = ahs.data
        position += _padded(3 + len(ahs.data))
    if header_digest:
        header[header_end:] = digests.header_digest(memoryview(header)[:header_end])
    parts: list[bytes | memoryview] = [bytes(header)]
    if length:
        padding = _PADDING[length & 3]
        trailer = padding + digests.data_digest(data, padding) if data_digest else padding
        parts.append(data)
        if trailer:
            parts.append(trailer)
    return parts


class _PendingPdu:
    """A PDU whose header is parsed and whose data segment is still arriving."""

    __slots__ = ("ahs", "data_digest", "filled", "header", "length", "payload", "pdu_class")

    def __init__(
        self,
        pdu_class: type[Pdu] | None,
        header: bytes,
        ahs: tuple[Ahs, ...],
        length: int,
        data_digest: bool,
    ) -> None:
        self.pdu_class = pdu_class  # None for an opcode we do not know: skip it
        self.header = header  # BHS + AHS, without digest: what a Reject echoes
        self.ahs = ahs
        self.length = length
        self.data_digest = data_digest
        # Exactly data + padding + digest: never resized, so the data can be lent out.
        self.payload = bytearray(_padded(length) + (DIGEST_LENGTH if data_digest else 0))
        self.filled = 0

    def fill(self, data: DataSegment) -> int:
        """Copy what belongs to this PDU from the start of `data`; return how much."""
        taken = min(len(self.payload) - self.filled, len(data))
        self.payload[self.filled : self.filled + taken] = memoryview(data)[:taken]
        self.filled += taken
        return taken

    @property
    def complete(self) -> bool:
        return self.filled == len(self.payload)

    def finish(self) -> Pdu:
        if self.pdu_class is None:
            raise UnsupportedOpcodeError(self.header[0] & 0x3F, header=self.header)
        data = memoryview(self.payload)[: self.length].toreadonly() if self.length else b""
        pdu = self.pdu_class.unpack(self.header, ahs=self.ahs, data=data)
        if self.data_digest:
            end = len(self.payload) - DIGEST_LENGTH
            view = memoryview(self.payload)
            if digests.crc32c(view[:end]) != digests.from_wire(view[end:]):
                raise DataDigestError(pdu, header=self.header)
        return pdu


class PduReader:
    """Cuts a received byte stream into PDUs.

    Feed bytes with `receive_data` (or, for asyncio.BufferedProtocol, `get_buffer` and
    `buffer_updated`), then call `next_pdu` until it returns None. Errors are
    `IscsiError`s: after a non-fatal one the offending PDU has been consumed and
    reading can go on; after a fatal one every later call raises it again.

    Data segments come out as read-only memoryviews over a buffer owned by that PDU
    alone; payload bytes arriving after their header are copied straight into it (or,
    through `get_buffer`, received into it directly).
    """

    def __init__(
        self,
        *,
        header_digest: bool = False,
        data_digest: bool = False,
        max_recv_data_segment_length: int = DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH,
    ) -> None:
        # Negotiated settings; a change applies from the next PDU header on.
        self.header_digest = header_digest
        self.data_digest = data_digest
        self.max_recv_data_segment_length = max_recv_data_segment_length
        # Bytes not yet framed. CPython deletes from the front of a bytearray by moving its
        # start, so consuming PDUs one by one costs no quadratic copying.
        self._buffer = bytearray()
        self._pending: _PendingPdu | None = None
        self._error: IscsiError | None = None
        self._scratch: bytearray | None = None
        self._lent: _PendingPdu | bytearray | None = None  # what get_buffer() handed out

    def receive_data(self, data: DataSegment) -> None:
        """Bytes received from the connection (copied: the caller may reuse `data`)."""
        pending = self._pending
        if pending is not None and not self._buffer:
            taken = pending.fill(data)
            if taken == len(data):
                return
            data = memoryview(data)[taken:]
        self._buffer += data

    def get_buffer(self, sizehint: int = -1) -> memoryview:
        """Where the next received bytes should go (asyncio.BufferedProtocol)."""
        pending = self._pending
        if (
            pending is not None
            and not self._buffer
            and len(pending.payload) - pending.filled >= _DIRECT_MIN
        ):
            self._lent = pending
            return memoryview(pending.payload)[pending.filled :]
        if self._scratch is None:
            self._scratch = bytearray(_SCRATCH_SIZE)
        self._lent = self._scratch
        return memoryview(self._scratch)

    def buffer_updated(self, nbytes: int) -> None:
        """`nbytes` were written into the buffer `get_buffer` returned."""
        lent, self._lent = self._lent, None
        if isinstance(lent, _PendingPdu):
            lent.filled += nbytes
        elif lent is not None:
            self.receive_data(memoryview(lent)[:nbytes])

    def next_pdu(self) -> Pdu | None:
        """The next complete PDU, or None until more bytes arrive."""
        if self._error is not None:
            raise self._error
        try:
            if self._pending is None and not self._start_pdu():
                return None
            pending = self._pending
            if pending is None or not pending.complete:
                return None
            self._pending = None
            return pending.finish()
        except IscsiError as exc:
            if exc.fatal:
                self._error = exc
            raise

    def _start_pdu(self) -> bool:
        """Parse the next header from the buffer; False if it has not fully arrived."""
        buffer = self._buffer
        if len(buffer) < BHS_LENGTH:
            return False
        (lengths,) = _LENGTHS.unpack_from(buffer, 4)
        header_end = BHS_LENGTH + (lengths >> 24) * 4
        digest_end = header_end + (DIGEST_LENGTH if self.header_digest else 0)
        if len(buffer) < digest_end:
            return False
        header = bytes(buffer[:header_end])
        if self.header_digest and digests.crc32c(header) != digests.from_wire(
            buffer[header_end:digest_end]
        ):
            raise HeaderDigestError("header digest error", header=header)
        length = lengths & 0xFFFFFF
        if length > self.max_recv_data_segment_length:
            raise DataSegmentTooLongError(length, self.max_recv_data_segment_length, header=header)
        pending = _PendingPdu(
            PDU_CLASSES.get(header[0] & 0x3F),
            header,
            _parse_ahs(header),
            length,
            self.data_digest and length > 0,  # no data, no data digest (10.2.3)
        )
        if pending.payload:
            with memoryview(buffer) as view:  # released before the buffer shrinks below
                pending.fill(view[digest_end:])
        del buffer[: digest_end + pending.filled]
        self._pending = pending
        return True


def _parse_ahs(header: bytes) -> tuple[Ahs, ...]:
    """The AHS list of a header whose TotalAHSLength made it `len(header)` long."""
    segments: list[Ahs] = []
    position = BHS_LENGTH
    while position < len(header):  # TotalAHSLength counts words: at least 4 bytes remain
        length, ahs_type = _AHS_HEADER.unpack_from(header, position)
        end = position + 3 + length
        if end > len(header):
            raise PduFormatError(f"AHSLength {length} runs past TotalAHSLength", header=header)
        segments.append(Ahs(ahs_type, header[position + 3 : end]))
        position = _padded(end)
    return tuple(segments)
