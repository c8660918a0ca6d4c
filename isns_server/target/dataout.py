"""Solicited Data-Out for one write command (RFC 3720 10.7, 10.8), sans-IO.

The command's immediate data comes first; the rest is asked for with R2Ts of at most
MaxBurstLength, one at a time (the portal negotiates MaxOutstandingR2T=1), and arrives
in order (DataPDUInOrder=Yes), straight into the buffer the SCSI layer then writes.
"""

from dataclasses import dataclass

from .iscsi.pdu import DataOut, ScsiCommand


class DataOutError(Exception):
    """The initiator broke the Data-Out rules; at ErrorRecoveryLevel 0 the connection
    cannot recover (6.1.4, 6.7)."""


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

    @property
    def complete(self) -> bool:
        return self.received >= len(self.buffer)

    def next_burst(self, ttt: int) -> BurstRequest:
        length = min(self._max_burst, len(self.buffer) - self.received)
        self._burst = BurstRequest(ttt, self._r2tsn, self.received, length)
        self._r2tsn += 1
        self._datasn = 0
        return self._burst

    @property
    def burst_done(self) -> bool:
        burst = self._burst
        return burst is None or self.received >= burst.offset + burst.length

    def receive(self, pdu: DataOut) -> None:
        burst = self._burst
        if burst is None or pdu.ttt != burst.ttt:
            raise DataOutError(f"Data-Out with target transfer tag {pdu.ttt:#x} not asked for")
        if pdu.datasn != self._datasn:
            raise DataOutError(f"Data-Out DataSN {pdu.datasn}, expected {self._datasn}")
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
