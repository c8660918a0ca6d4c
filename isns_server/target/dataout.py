"""Data-Out for one write command (RFC 3720 3.2.4.2, 10.7, 10.8), sans-IO.

The command's immediate data comes first. With InitialR2T=No and the command's F bit
clear, an unsolicited sequence follows up to FirstBurstLength (3.2.4.2: all of it, or all
the data if less). The rest is asked for with R2Ts of at most MaxBurstLength, up to
MaxOutstandingR2T at a time. DataSequenceInOrder and DataPDUInOrder are Yes, so the data
arrives in offset order, sequence after sequence, straight into the buffer the SCSI layer
then writes; each sequence numbers its PDUs from DataSN 0.

A DataSN out of sequence means a PDU was lost to a digest error (6.8). Without recovery
R2Ts (ErrorRecoveryLevel 0) the task ends with CHECK CONDITION, "protocol service CRC
error", once the sequences asked for are over (6.7 b): the rest is discarded, the
connection lives on. Any other break of the rules cannot be recovered from.
"""

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .iscsi.constants import RESERVED_TAG
from .iscsi.negotiation import SessionParameters
from .iscsi.pdu import DataOut, ScsiCommand
from .scsi.constants import AdditionalSense, SenseKey
from .scsi.sense import CheckCondition


class DataOutError(Exception):
    """The initiator broke the Data-Out rules in a way the connection cannot recover
    from at ErrorRecoveryLevel 0 (6.1.4)."""


@dataclass(frozen=True, slots=True)
class DataOutLimits:
    """The session's negotiated rules for outgoing data (12.10-12.17)."""

    max_burst: int
    first_burst: int
    initial_r2t: bool
    max_outstanding_r2t: int

    @classmethod
    def of(cls, parameters: SessionParameters) -> "DataOutLimits":
        return cls(
            parameters.max_burst_length,
            parameters.first_burst_length,
            parameters.initial_r2t,
            parameters.max_outstanding_r2t,
        )


@dataclass(frozen=True, slots=True)
class BurstRequest:
    """What one R2T asks for."""

    ttt: int
    r2tsn: int
    offset: int
    length: int


@dataclass(slots=True)
class _Sequence:
    """Data-Out PDUs expected for one R2T, or the unsolicited burst (TTT 0xffffffff)."""

    ttt: int
    end: int  # buffer offset just past its last byte
    datasn: int = 0  # of the next PDU


class DataOutTransfer:
    def __init__(self, command: ScsiCommand, length: int, limits: DataOutLimits) -> None:
        self.command = command
        immediate = command.data[:length]  # more than expected is dropped (overflow)
        self.buffer: bytearray | memoryview
        if len(immediate) == length:  # all there: the command's own buffer, no copy
            self.buffer = memoryview(immediate)
        else:
            self.buffer = bytearray(length)
            self.buffer[: len(immediate)] = immediate
        self.received = len(immediate)  # bytes in, in offset order
        self._limits = limits
        self._sequences: deque[_Sequence] = deque()  # expected, in offset order
        self._asked = self.received  # end of the data announced or asked for so far
        self._r2tsn = 0
        self.sequence_error: str | None = None  # what went wrong, for the log
        unsolicited_end = min(limits.first_burst, length)
        if not limits.initial_r2t and not command.final and self.received < unsolicited_end:
            self._asked = unsolicited_end
            self._sequences.append(_Sequence(RESERVED_TAG, unsolicited_end))

    @property
    def complete(self) -> bool:
        return self.sequence_error is None and self.received >= len(self.buffer)

    @property
    def failed(self) -> CheckCondition | None:
        """Once every sequence asked for has ended after a DataSN error: how the command
        ends instead of running (6.7 b). Until then neither this nor `complete` is set."""
        if self.sequence_error is None or self._sequences:
            return None
        return CheckCondition(SenseKey.ABORTED_COMMAND, AdditionalSense.PROTOCOL_SERVICE_CRC_ERROR)

    def next_bursts(self, new_tag: Callable[[], int]) -> list[BurstRequest]:
        """The R2Ts to send now: as many as MaxOutstandingR2T allows."""
        bursts: list[BurstRequest] = []
        if self.sequence_error is not None:
            return bursts  # no more R2Ts: the command ends with `failed`
        outstanding = sum(1 for s in self._sequences if s.ttt != RESERVED_TAG)
        while outstanding < self._limits.max_outstanding_r2t and self._asked < len(self.buffer):
            length = min(self._limits.max_burst, len(self.buffer) - self._asked)
            burst = BurstRequest(new_tag(), self._r2tsn, self._asked, length)
            self._sequences.append(_Sequence(burst.ttt, burst.offset + length))
            self._asked += length
            self._r2tsn += 1
            outstanding += 1
            bursts.append(burst)
        return bursts

    def receive(self, pdu: DataOut) -> None:
        sequence = self._sequences[0] if self._sequences else None
        if sequence is None or pdu.ttt != sequence.ttt:
            if all(pdu.ttt != s.ttt for s in self._sequences):
                raise DataOutError(f"Data-Out with target transfer tag {pdu.ttt:#x} not asked for")
            raise DataOutError(f"Data-Out for R2T {pdu.ttt:#x} before the earlier ones ended")
        if self.sequence_error is None and pdu.datasn != sequence.datasn:
            self.sequence_error = f"Data-Out DataSN {pdu.datasn}, expected {sequence.datasn}"
        if self.sequence_error is not None:  # offsets may skip the lost PDU: discard all
            if pdu.final:
                self._sequences.popleft()
            return
        data = pdu.data
        end = pdu.buffer_offset + len(data)
        if pdu.buffer_offset != self.received or end > sequence.end:
            raise DataOutError(
                f"Data-Out for bytes {pdu.buffer_offset}..{end}, expected from {self.received}"
                f" up to {sequence.end}"
            )
        if pdu.final != (end == sequence.end):
            raise DataOutError("Data-Out F bit does not match the end of the sequence")
        self.buffer[pdu.buffer_offset : end] = data
        self.received = end
        sequence.datasn += 1
        if pdu.final:
            self._sequences.popleft()
