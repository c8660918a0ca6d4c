"""iSNSP PDU framing (RFC 4171 5, 5.1, 5.5): the 12-byte header and the auth block."""

from struct import Struct
from typing import NamedTuple

from .constants import HEADER_LENGTH, ISNSP_VERSION, Flags, Status
from .errors import MessageFormatError

HEADER = Struct(">HHHHHH")  # version, function, PDU length, flags, transaction, sequence
MAX_PDU_PAYLOAD = 0xFFFC  # largest 4-byte-aligned value of the 16-bit PDU LENGTH
# One PDU per UDP datagram: keep it under a typical Ethernet MTU minus IP/UDP headers.
UDP_MAX_PDU_PAYLOAD = 1400

# Authentication block (5.5): BSD, block length, timestamp, SPI length, SPI, authenticator.
# It follows the PDU payload and is not counted in PDU LENGTH (the 5 figure: total length
# 12 + N + L; open-isns frames it the same way).
AUTH_BLOCK_HEAD = Struct(">IIQI")
AUTH_BLOCK_MIN_LENGTH = AUTH_BLOCK_HEAD.size
AUTH_BLOCK_MAX_LENGTH = 0x10000  # no RFC limit; a DSA signature plus an SPI is far smaller

_AUTH = int(Flags.AUTH)


class PduHeader(NamedTuple):
    version: int
    function: int
    length: int  # of the payload, excluding the header and any auth block
    flags: int
    xid: int
    sequence: int


_new_header = tuple.__new__  # PduHeader._make without its length check: unpack gives 6


def parse_header(data: bytes | bytearray, offset: int = 0) -> PduHeader:
    """Read the header at `offset` (12 bytes must be there) and check what framing needs.

    Raises a fatal MessageFormatError: with another version or a misaligned length the
    rest of the stream cannot be trusted to be split at the right places.
    """
    fields = HEADER.unpack_from(data, offset)
    version, function, length, _flags, xid, _sequence = fields
    if version != ISNSP_VERSION:
        raise MessageFormatError(
            f"iSNSP version {version} is not supported (only {ISNSP_VERSION})",
            status=Status.VERSION_NOT_SUPPORTED,
            function=function,
            xid=xid,
            fatal=True,
        )
    if length & 3:
        raise MessageFormatError(
            f"PDU length {length} is not a multiple of 4 (RFC 4171 5.1.3)",
            function=function,
            xid=xid,
            fatal=True,
        )
    return _new_header(PduHeader, fields)


def pdu_end(data: bytes | bytearray, offset: int, header: PduHeader) -> int | None:
    """Offset just past the PDU at `offset`, auth block included; None if `data` ends first."""
    end = offset + HEADER_LENGTH + header.length
    if header.flags & _AUTH:
        if len(data) < end + AUTH_BLOCK_MIN_LENGTH:
            return None
        _bsd, auth_length, _timestamp, spi_length = AUTH_BLOCK_HEAD.unpack_from(data, end)
        if not AUTH_BLOCK_MIN_LENGTH <= auth_length <= AUTH_BLOCK_MAX_LENGTH or (
            spi_length > auth_length - AUTH_BLOCK_MIN_LENGTH
        ):
            raise MessageFormatError(
                f"authentication block length {auth_length} (SPI length {spi_length}) "
                "is impossible (RFC 4171 5.5)",
                function=header.function,
                xid=header.xid,
                fatal=True,
            )
        end += auth_length
    return end if len(data) >= end else None


def build_pdu(function: int, flags: int, xid: int, sequence: int, payload: bytes) -> bytes:
    """One PDU: header then payload (which the caller keeps within MAX_PDU_PAYLOAD)."""
    return HEADER.pack(ISNSP_VERSION, function, len(payload), flags, xid, sequence) + payload
