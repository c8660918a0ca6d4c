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

Memory for the data is taken when the first Data-Out carrying some arrives, not when the
command announces its length: a write that is announced and never sent costs nothing
but its bookkeeping. It is borrowed from the portal's `WriteBudget`, shared by every
session, and goes back when the buffer itself is freed: when the write fails, or once
the task that wrote it is done with it, even after its session ended. When the budget
cannot cover it, the data is discarded as after a mistake and
the command ends TASK SET FULL (SAM-5 5.3), which initiators retry. Data asked for that
stops arriving ends the task after `WritePolicy.timeout` (`expired`): at
ErrorRecoveryLevel 0 there is no recovery R2T (6.1.4.1), so the command ends with CHECK
CONDITION, ABORTED COMMAND, INITIATOR RESPONSE TIMEOUT (SPC-4 4Bh/06h), and its memory
goes back to the budget.

Anything else shows the initiator's sequences are not ours: a Target Transfer Tag never
given, an R2T answered before the earlier ones ended or with other bytes than it asked
for (the initiator must deliver exactly those, 3.2.4.2), data at another offset (which
3.2.4.2 lets a target end the session for) or past FirstBurstLength, an F bit missing at
a sequence's end. Where its data belongs and when its sequences end are then unknown, so
only closing the connection recovers (6.1.4.2).
"""

import threading
import weakref
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from ...scsi import ScsiResult
from ...scsi.constants import AdditionalSense, ScsiStatus, SenseKey
from ...scsi.sense import CheckCondition
from ..iscsi.constants import RESERVED_TAG
from ..iscsi.negotiation import SessionParameters
from ..iscsi.pdu import DataOut, ScsiCommand


class DataOutError(Exception):
    """The initiator broke the Data-Out rules in a way the connection cannot recover
    from at ErrorRecoveryLevel 0 (6.1.4)."""


@dataclass(frozen=True, slots=True)
class DataOutFailure:
    """What fails the task, not the connection: what happened, for the log, and the
    iSCSI condition the task ends with (10.4.7.2); no sense: TASK SET FULL, the
    portal had no memory left for the data."""

    reason: str
    sense: AdditionalSense | None

    def result(self) -> ScsiResult:
        if self.sense is None:
            return ScsiResult(ScsiStatus.TASK_SET_FULL)
        return CheckCondition(SenseKey.ABORTED_COMMAND, self.sense).result()

    @property
    def outcome(self) -> str:
        """How the command ends, for the log."""
        if self.sense is None:
            return "TASK SET FULL (the initiator retries it later)"
        return f"ABORTED COMMAND, {self.sense.name.replace('_', ' ')}"


class WriteBudget:
    """Bytes of write data the whole portal may hold at once (waiting for the rest of
    their Data-Out, or being written): one per process, lent to every session. Buffers
    are lent on the event loop and may be freed on a LUN worker thread, hence the lock."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.held = 0
        self._lock = threading.Lock()

    @property
    def available(self) -> int:
        return self.capacity - self.held

    def lend(self, size: int) -> "WriteBuffer | None":
        """A zeroed buffer of `size` bytes whose memory comes back when it is freed;
        None: not that much is left."""
        with self._lock:
            if size > self.capacity - self.held:
                return None
            self.held += size
        buffer = WriteBuffer(size)
        weakref.finalize(buffer, self._give_back, size)
        return buffer

    def _give_back(self, size: int) -> None:
        with self._lock:
            self.held -= size


class WriteBuffer(bytearray):
    """A bytearray the budget can watch (a plain one takes no weak references)."""

    __slots__ = ("__weakref__",)


@dataclass(frozen=True, slots=True)
class WritePolicy:
    budget: WriteBudget
    timeout: float  # seconds Data-Out asked for may take to arrive, PDU after PDU


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
    def __init__(
        self,
        command: ScsiCommand,
        length: int,
        limits: DataOutLimits,
        policy: WritePolicy,
        now: float,
    ) -> None:
        self.command = command
        self.length = length
        immediate = command.data[:length]  # more than expected is dropped (overflow)
        self._immediate = memoryview(immediate)  # the command's own buffer, no copy
        self._buffer: WriteBuffer | None = None  # lent when the rest starts to arrive
        self.received = len(immediate)  # bytes in, in offset order
        self._policy = policy
        self._heard = now  # when the command or its last Data-Out arrived
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
    def buffer(self) -> bytearray | memoryview:
        """The data received: all of it once `complete`."""
        return self._immediate if self._buffer is None else self._buffer

    @property
    def complete(self) -> bool:
        return self.failure is None and self.received >= self.length

    @property
    def deadline(self) -> float:
        """When the Data-Out it waits for is overdue (see `expired`)."""
        return self._heard + self._policy.timeout

    def expired(self) -> DataOutFailure:
        """The initiator stopped sending the data asked for: the task ends now, its
        memory goes back, and Data-Out still coming for it is answered with a Reject."""
        self.release()
        return DataOutFailure(
            f"no Data-Out for {self._policy.timeout:g} s with {self.length - self.received}"
            f" of {self.length} bytes still to come",
            AdditionalSense.INITIATOR_RESPONSE_TIMEOUT,
        )

    def release(self) -> None:
        """The transfer is dropped: its memory goes back to the budget."""
        self._buffer = None

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
        while outstanding < self._limits.max_outstanding_r2t and self._asked < self.length:
            length = min(self._limits.max_burst, self.length - self._asked)
            burst = BurstRequest(new_tag(), self._r2tsn, self._asked, length)
            self._sequences.append(_Sequence(burst.ttt, burst.offset + length))
            self._asked += length
            self._r2tsn += 1
            outstanding += 1
            bursts.append(burst)
        return bursts

    def receive(self, pdu: DataOut, now: float) -> None:
        self._heard = now
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
            self.failure = self._mistake(pdu, sequence) or self._allocate()
        if self.failure is None:  # after a mistake offsets may skip a lost PDU: discard all
            assert self._buffer is not None
            end = pdu.buffer_offset + len(pdu.data)
            self._buffer[pdu.buffer_offset : end] = pdu.data
            self.received = end
            sequence.datasn += 1
        if pdu.final:
            self._sequences.popleft()

    def _allocate(self) -> DataOutFailure | None:
        """The whole buffer, borrowed from the budget, once data beyond the immediate
        arrives; a failure if the budget cannot lend it."""
        if self._buffer is not None:
            return None
        budget = self._policy.budget
        self._buffer = budget.lend(self.length)
        if self._buffer is None:
            return DataOutFailure(
                f"no memory for {self.length} bytes of write data: the portal holds"
                f" {budget.held} of its {budget.capacity} (portal.max_write_buffer)",
                None,
            )
        self._buffer[: len(self._immediate)] = self._immediate
        return None

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
