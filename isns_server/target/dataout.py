"""Data-Out for one write command (RFC 3720 3.2.4.2, 10.7, 10.8), sans-IO.

The command's immediate data comes first. With InitialR2T=No and the command's F bit
clear, an unsolicited sequence follows up to FirstBurstLength (3.2.4.2: all of it, or all
the data if less). The rest is asked for with R2Ts of at most MaxBurstLength, up to
MaxOutstandingR2T at a time. DataSequenceInOrder and DataPDUInOrder are Yes, so the data
arrives in offset order, sequence after sequence, straight into the buffer the SCSI layer
then writes; each sequence numbers its PDUs from DataSN 0.

A mistake fails the task, not the connection, while every sequence asked for can still
be seen to end by its F bit, which 6.7 b waits for: the first found is what the task ends
with (CHECK CONDITION, ABORTED COMMAND, 10.4.7.2), and the data after it is discarded. A
DataSN out of sequence is a PDU lost to a digest error (6.8): at ErrorRecoveryLevel 0,
"protocol service CRC error". Unsolicited data where none may come bears the reserved
Target Transfer Tag, so it is told apart from every R2T's sequence and dropped whole:
"unexpected unsolicited data". An unsolicited burst ending short of FirstBurstLength
leaves the R2Ts' sequences, which start there, intact: "not enough unsolicited data".

Anything else shows the initiator's sequences are not ours: a Target Transfer Tag never
given, an R2T answered before the earlier ones ended or with other bytes than it asked
for (the initiator must deliver exactly those, 3.2.4.2), data at another offset (which
3.2.4.2 lets a target end the session for) or past FirstBurstLength, an F bit missing at
a sequence's end. Where its data belongs and when its sequences end are then unknown, so
only closing the connection recovers (6.1.4.2).
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
class DataOutFailure:
    """A mistake that fails the task, not the connection: what the initiator did, for
    the log, and the iSCSI condition the task ends with (10.4.7.2)."""

    reason: str
    sense: AdditionalSense

    @property
    def condition(self) -> CheckCondition:
        return CheckCondition(SenseKey.ABORTED_COMMAND, self.sense)


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
        self.failure: DataOutFailure | None = None  # the first mistake found
        unsolicited_end = min(limits.first_burst, length)
        if not limits.initial_r2t and not command.final and self.received < unsolicited_end:
            self._asked = unsolicited_end
            self._sequences.append(_Sequence(RESERVED_TAG, unsolicited_end))

    @property
    def complete(self) -> bool:
        return self.failure is None and self.received >= len(self.buffer)

    @property
    def failed(self) -> DataOutFailure | None:
        """Once every sequence asked for has ended after a mistake: how the command ends
        instead of running (6.7 b). Until then neither this nor `complete` is set."""
        return None if self._sequences else self.failure

    def next_bursts(self, new_tag: Callable[[], int]) -> list[BurstRequest]:
        """The R2Ts to send now: as many as MaxOutstandingR2T allows."""
        bursts: list[BurstRequest] = []
        if self.failure is not None:
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
        if pdu.ttt == RESERVED_TAG and (sequence is None or sequence.ttt != RESERVED_TAG):
            if self.failure is None:
                self.failure = DataOutFailure(
                    f"unsolicited Data-Out at byte {pdu.buffer_offset} where none may come",
                    AdditionalSense.WRITE_ERROR_UNEXPECTED_UNSOLICITED_DATA,
                )
            return  # dropped whole: it is in no sequence
        if sequence is None or pdu.ttt != sequence.ttt:
            if all(pdu.ttt != s.ttt for s in self._sequences):
                raise DataOutError(f"Data-Out with target transfer tag {pdu.ttt:#x} not asked for")
            raise DataOutError(f"Data-Out for R2T {pdu.ttt:#x} before the earlier ones ended")
        if self.failure is None:
            self.failure = self._mistake(pdu, sequence)
        if self.failure is None:  # after a mistake offsets may skip a lost PDU: discard all
            end = pdu.buffer_offset + len(pdu.data)
            self.buffer[pdu.buffer_offset : end] = pdu.data
            self.received = end
            sequence.datasn += 1
        if pdu.final:
            self._sequences.popleft()

    def _mistake(self, pdu: DataOut, sequence: _Sequence) -> DataOutFailure | None:
        """What fails the task in this PDU of `sequence`, if anything; raises DataOutError
        for what cannot be recovered from."""
        if pdu.datasn != sequence.datasn:
            return DataOutFailure(
                f"Data-Out DataSN {pdu.datasn}, expected {sequence.datasn}: a PDU was lost",
                AdditionalSense.PROTOCOL_SERVICE_CRC_ERROR,
            )
        end = pdu.buffer_offset + len(pdu.data)
        if pdu.buffer_offset != self.received or end > sequence.end:
            raise DataOutError(
                f"Data-Out for bytes {pdu.buffer_offset}..{end}, expected from {self.received}"
                f" up to {sequence.end}"
            )
        if pdu.final and end < sequence.end and sequence.ttt == RESERVED_TAG:
            return DataOutFailure(
                f"unsolicited Data-Out ended at byte {end}, short of {sequence.end}",
                AdditionalSense.WRITE_ERROR_NOT_ENOUGH_UNSOLICITED_DATA,
            )
        if pdu.final != (end == sequence.end):
            raise DataOutError("Data-Out F bit does not match the end of the sequence")
        return None
