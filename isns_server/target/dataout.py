"""Solicited Data-Out for one write command (RFC 3720 10.7, 10.8), sans-IO.

The command's immediate data comes first; the rest is asked for with R2Ts of at most
MaxBurstLength, one at a time (the portal negotiates MaxOutstandingR2T=1), and arrives
in order (DataPDUInOrder=Yes), straight into the buffer the SCSI layer then writes.

A DataSN out of sequence means a PDU was lost to a digest error (RFC 3720 6.8). Without
recovery R2Ts (ErrorRecoveryLevel 0) the task ends with CHECK CONDITION, "protocol
service CRC error", once the sequence is over (6.7 b): the rest of it is discarded, the
connection lives on. Any other break of the rules cannot be recovered from.
"""

from dataclasses import dataclass

from .iscsi.pdu import DataOut, ScsiCommand
from .scsi.constants import AdditionalSense, SenseKey
from .scsi.sense import CheckCondition


class DataOutError(Exception):
    """The initiator broke the Data-Out rules in a way the connection cannot recover
    from at ErrorRecoveryLevel 0 (6.1.4)."""


@dataclass(frozen=True, slots=True)
class BurstRequest:
    """What one R2T asks for."""

    ttt: int
    r2tsn: int
    offset: int
    length: int


class DataOutTransfer:
    def __init__(self, command: ScsiCommand, length: int, max_burst: int) -> None:
        self.command = command
        self.buffer = bytearray(length)
        immediate = command.data[:length]  # more than expected is dropped (overflow)
        self.buffer[: len(immediate)] = immediate
        self.received = len(immediate)
        self._max_burst = max_burst
        self._r2tsn = 0
        self._burst: BurstRequest | None = None
        self._datasn = 0
        self.sequence_error: str | None = None  # what went wrong, for the log
        self._sequence_over = False

    @property
    def complete(self) -> bool:
        return self.sequence_error is None and self.received >= len(self.buffer)

    @property
    def failed(self) -> CheckCondition | None:
        """Once a sequence with a DataSN error has ended (its F bit): how the command
        ends instead of running (6.7 b). Until then neither this nor `complete` is set."""
        if self.sequence_error is None or not self._sequence_over:
            return None
        return CheckCondition(SenseKey.ABORTED_COMMAND, AdditionalSense.PROTOCOL_SERVICE_CRC_ERROR)

    def next_burst(self, ttt: int) -> BurstRequest:
        length = min(self._max_burst, len(self.buffer) - self.received)
        self._burst = BurstRequest(ttt, self._r2tsn, self.received, length)
        self._r2tsn += 1
        self._datasn = 0
        return self._burst

    @property
    def burst_done(self) -> bool:
        if self.sequence_error is not None:
            return False  # no more R2Ts: the command ends with `failed`
        burst = self._burst
        return burst is None or self.received >= burst.offset + burst.length

    def receive(self, pdu: DataOut) -> None:
        burst = self._burst
        if burst is None or pdu.ttt != burst.ttt:
            raise DataOutError(f"Data-Out with target transfer tag {pdu.ttt:#x} not asked for")
        if self.sequence_error is None and pdu.datasn != self._datasn:
            self.sequence_error = f"Data-Out DataSN {pdu.datasn}, expected {self._datasn}"
        if self.sequence_error is not None:  # offsets may skip the lost PDU: discard all
            self._sequence_over = pdu.final
            return
        data = pdu.data
        end = pdu.buffer_offset + len(data)
        if pdu.buffer_offset != self.received or end > burst.offset + burst.length:
            raise DataOutError(
                f"Data-Out for bytes {pdu.buffer_offset}..{end}, expected from {self.received}"
                f" up to {burst.offset + burst.length}"
            )
        if pdu.final != (end == burst.offset + burst.length):
            raise DataOutError("Data-Out F bit does not match the end of the burst")
        self.buffer[pdu.buffer_offset : end] = data
        self.received = end
        self._datasn += 1
