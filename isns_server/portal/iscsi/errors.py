"""Errors the iSCSI codec raises, each carrying how a target answers it.

`fatal` errors mean the byte stream can no longer be cut into PDUs (or must not
be): close the connection (RFC 3720 6.6 format errors, 6.7 header digest errors;
we have no sync-and-steering layer to find the next PDU). Non-fatal errors concern
exactly one PDU, already consumed: answer with a Reject carrying `reject_reason`
and `header` (10.17.4) and keep reading.
"""

from typing import ClassVar

from .constants import LoginStatus, RejectReason
from .pdu import Pdu


class IscsiError(Exception):
    """Base of every error the codec raises."""

    fatal: ClassVar[bool] = True
    reject_reason: ClassVar[RejectReason | None] = None

    def __init__(self, message: str, *, header: bytes = b"") -> None:
        super().__init__(message)
        # The offending PDU's BHS + AHS when known: the data segment of a Reject.
        self.header = header


class PduFormatError(IscsiError):
    """A header the codec cannot frame or parse (bad AHS, ...): close the connection."""


class DataSegmentTooLongError(PduFormatError):
    """DataSegmentLength above the MaxRecvDataSegmentLength we declared (12.12).

    Fatal rather than skipped: a peer ignoring the negotiated limit is broken, and
    skipping would mean accepting up to 16 MiB we said we would not take.
    """

    def __init__(self, length: int, limit: int, *, header: bytes) -> None:
        super().__init__(
            f"DataSegmentLength {length} exceeds MaxRecvDataSegmentLength {limit}",
            header=header,
        )
        self.length = length
        self.limit = limit


class HeaderDigestError(IscsiError):
    """Header digest mismatch: the lengths cannot be trusted, close the connection (6.7)."""


class DataDigestError(IscsiError):
    """Data digest mismatch on a PDU whose header was sound (6.7).

    Answer with Reject(DATA_DIGEST_ERROR); for a Data-Out also recover the burst
    (recovery R2T, or CHECK CONDITION "protocol service CRC error"). `pdu` is the
    parsed PDU (its data is the corrupted payload) so ITT/TTT/DataSN/offset are known.
    """

    fatal = False
    reject_reason = RejectReason.DATA_DIGEST_ERROR

    def __init__(self, pdu: Pdu, *, header: bytes) -> None:
        super().__init__(f"data digest error in {type(pdu).__name__}", header=header)
        self.pdu = pdu


class UnsupportedOpcodeError(IscsiError):
    """A reserved or vendor-specific opcode; the PDU was framed and skipped (10.17.1)."""

    fatal = False
    reject_reason = RejectReason.COMMAND_NOT_SUPPORTED

    def __init__(self, opcode: int, *, header: bytes) -> None:
        super().__init__(f"unsupported opcode 0x{opcode:02x}", header=header)
        self.opcode = opcode


class TextFormatError(IscsiError):
    """Key=value text that breaks RFC 3720 5.1 (or our limits on it).

    In the Login Phase the answer is a Login reject with `login_status`; in a Text
    negotiation, a Reject with `reject_reason` (5.2: "protocol error").
    """

    fatal = False
    reject_reason = RejectReason.PROTOCOL_ERROR
    login_status: ClassVar[LoginStatus] = LoginStatus.INITIATOR_ERROR
