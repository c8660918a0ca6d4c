"""One connection in the Full Feature Phase, target side (RFC 3720 3.3, 10), sans-IO.

`FullFeatureSession` takes the PDUs received after a successful login and returns the
PDUs to send. A discovery session accepts only SendTargets and a Logout closing the
session; everything else is rejected (3.3). A normal session also runs SCSI commands
against its target's logical units. Non-immediate commands pass through the CmdSN
window first, so even a rejected command is acknowledged in order. NOP-In pings keep
watch on a silent initiator (10.19): `deadline` and `handle_timer` drive them.

A write command whose data is not all immediate waits in `_transfers` for the Data-Out
PDUs its R2Ts ask for; Data-Out is not numbered by CmdSN (3.2.2.1). Its memory is
borrowed from the portal's write budget (dataout.py) and given back when it is freed;
one whose data stops coming ends at its deadline, which `handle_timer` also keeps. A
command with all its data leaves as a `ScsiTask` in `SessionStep.tasks`: the caller has
it run (at once, or on its unit's worker thread) and hands the result to `complete`,
which builds the response. `counters` keeps the session's traffic for the API.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from ipaddress import IPv4Address, IPv6Address
from typing import Protocol

from ...names import iscsi_name_problem, normalize_name
from ...registry import VisibleTarget
from ...scsi import LogicalUnit, ScsiResult, ScsiTarget, encode_lun
from ...scsi.constants import AdditionalSense, ScsiStatus, SenseKey
from ...scsi.sense import CheckCondition
from ..iscsi.codec import encode_pdu
from ..iscsi.constants import (
    RESERVED_TAG,
    AsyncEvent,
    LogoutReasonCode,
    LogoutResponseCode,
    RejectReason,
    TaskManagementFunction,
    TaskManagementResponseCode,
)
from ..iscsi.errors import TextFormatError
from ..iscsi.keys import KEYS, NOT_UNDERSTOOD, SessionType, parse_numerical
from ..iscsi.login import LoginResult
from ..iscsi.pdu import (
    R2T,
    AsyncMessage,
    DataIn,
    DataOut,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Pdu,
    Reject,
    ScsiCommand,
    TaskManagementRequest,
    TaskManagementResponse,
    TextRequest,
    TextResponse,
)
from ..iscsi.text import KeyValuePairs
from .cmdsn import SERIAL_MASK, CommandWindow, serial_distance
from .dataout import (
    DataOutError,
    DataOutFailure,
    DataOutLimits,
    DataOutTransfer,
    WriteBudget,
    WritePolicy,
)
from .responses import ResponseNumbers, command_responses, sense_segment
from .sendtargets import Pair, target_records
from .tasks import Job, ScsiTask, TaskSet, UnitJob
from .text_exchange import TextExchange, TextRejected

Command = NopOut | ScsiCommand | TaskManagementRequest | TextRequest | LogoutRequest
_MRDSL = KEYS["MaxRecvDataSegmentLength"]
_LOGOUT_REASONS = frozenset(LogoutReasonCode)
_MAX_WRITE = 16 << 20  # bytes one write command may announce; a bigger one is refused
# Data-Out bytes a session may have announced at once (waiting for R2T data or being
# written); a write past it, or past what the portal's budget has left, is answered TASK
# SET FULL, and the initiator retries it later (SAM-5 5.3)
_WRITE_BUDGET = 64 << 20

log = logging.getLogger(__name__)


class SessionServices(Protocol):
    """What a session asks of the portal."""

    def visible_targets(
        self, initiator_name: str, peer: IPv4Address | IPv6Address | None
    ) -> list[VisibleTarget]:
        """Targets the initiator, connected from `peer`, may discover: the registry's
        zoning (None: an in-process caller)."""
        ...

    def local_target(self, name: str) -> VisibleTarget | None:
        """A target of this portal with the portals it is registered on."""
        ...

    def scsi_target(self, name: str) -> ScsiTarget | None: ...


@dataclass(frozen=True, slots=True)
class KeepalivePolicy:
    interval: float = 30.0  # seconds of silence before a NOP-In ping; 0: never
    timeout: float = 15.0  # seconds the initiator has to answer it


@dataclass(slots=True)
class SessionStep:
    """PDUs to send, in order, and SCSI tasks to start; then the connection ends if the
    initiator `logged_out`, or for the reason in `close`."""

    pdus: list[Pdu] = field(default_factory=list)
    tasks: list[Job] = field(default_factory=list)
    logged_out: bool = False
    close: str | None = None


@dataclass(slots=True)
class SessionCounters:
    """A session's traffic so far: SCSI commands answered, Data-In bytes sent (read) and
    Data-Out bytes of the commands that completed GOOD (written)."""

    commands: int = 0
    bytes_read: int = 0
    bytes_written: int = 0


class FullFeatureSession:
    def __init__(
        self,
        login: LoginResult,
        services: SessionServices,
        keepalive: KeepalivePolicy,
        command_window: int,
        now: float,
        push: Callable[["SessionStep"], None] = lambda step: None,
        writes: WritePolicy | None = None,
    ) -> None:
        """`push` sends what the session says unasked (asynchronous events); `writes` is
        the portal's write budget and Data-Out timeout (default: a budget of its own)."""
        self.login = login
        self.parameters = login.parameters
        self.discovery = login.session_type is SessionType.DISCOVERY
        self._services = services
        self._keepalive = keepalive
        self._window: CommandWindow[Command] = CommandWindow(login.cmdsn, command_window)
        self._statsn = login.statsn
        self._max_send = self.parameters.initiator_max_recv_data_segment_length
        self._pending_max_send: int | None = None  # declared in a text sequence not yet over
        self._text = TextExchange(self._new_tag)
        self._next_tag = 1
        target_name = self.parameters.target_name
        self._scsi = (
            None if self.discovery or not target_name else services.scsi_target(target_name)
        )
        self._heard = now
        self._ping: float | None = None  # when the unanswered NOP-In ping was sent
        self._transfers: dict[int, DataOutTransfer] = {}  # by Initiator Task Tag
        self._data_out_limits = DataOutLimits.of(self.parameters)
        self._writes = writes or WritePolicy(WriteBudget(_WRITE_BUDGET), 60.0)
        self._write_failed = False  # a write failure was logged as a warning
        self._tasks = TaskSet()
        self.counters = SessionCounters()
        # The I_T nexus: the initiator port name (RFC 3720 appendix E.2)
        self.nexus = f"{self.parameters.initiator_name},i,0x{login.isid.hex()}"
        self.reinstated = False  # a new login took over the nexus (5.3.5)
        self._push = push
        if self._scsi is not None:
            self._scsi.nexuses.add(self.nexus)
            self._scsi.attention_listeners[self.nexus] = self._unit_attention

    # Receiving -----------------------------------------------------------------------

    def receive(self, pdu: Pdu, now: float) -> SessionStep:
        self._heard = now
        self._ping = None  # whatever it sent, the initiator is alive
        step = SessionStep()
        if isinstance(pdu, NopOut) and pdu.itt == RESERVED_TAG:
            return step  # no response, no CmdSN, whatever the I bit says (10.18.1)
        if isinstance(pdu, DataOut):
            self._data_out(pdu, now, step)
            return step
        if not isinstance(pdu, Command):
            step.pdus.append(self._not_allowed(pdu))
            return step
        for command in self._window.admit(pdu):
            self._deliver(command, step)
            if step.logged_out:
                break
        return step

    def reject(self, reason: RejectReason, header: bytes) -> Reject:
        """A Reject for a PDU the codec could not accept (digest, opcode, text format)."""
        numbers = self._numbers(advance=True)  # 10.17.3: StatSN advances after a Reject
        return Reject(
            reason=reason,
            statsn=numbers.statsn,
            expcmdsn=numbers.expcmdsn,
            maxcmdsn=numbers.maxcmdsn,
            data=header,
        )

    def _deliver(self, command: Command, step: SessionStep) -> None:
        if isinstance(command, TextRequest):
            step.pdus.append(self._text_request(command))
        elif isinstance(command, LogoutRequest):
            self._logout(command, step)
        elif self.discovery:
            step.pdus.append(self._not_allowed(command))
        elif isinstance(command, NopOut):
            step.pdus.append(self._nop_echo(command))
        elif isinstance(command, ScsiCommand):
            self._scsi_command(command, step)
        else:
            self._task_management(command, step)

    def _not_allowed(self, pdu: Pdu) -> Reject:
        """3.3: a discovery session rejects all but SendTargets and Logout; anything else
        unexpected here (a Login Request, a target opcode, SNACK at ErrorRecoveryLevel 0,
        Data-Out with no R2T outstanding) is a protocol error."""
        return self.reject(RejectReason.PROTOCOL_ERROR, _header(pdu))

    # Text ----------------------------------------------------------------------------

    def _text_request(self, request: TextRequest) -> Pdu:
        try:
            reply = self._text.receive(request, self._answer, self._max_send)
        except TextRejected as rejected:
            return self.reject(rejected.reason, _header(request))
        except TextFormatError:
            return self.reject(RejectReason.PROTOCOL_ERROR, _header(request))
        if reply.final and self._pending_max_send is not None:
            self._max_send, self._pending_max_send = self._pending_max_send, None
        numbers = self._numbers(advance=True)
        return TextResponse(
            final=reply.final,
            continue_=reply.continue_,
            lun=request.lun if reply.ttt != RESERVED_TAG else 0,  # 10.10.4
            itt=request.itt,
            ttt=reply.ttt,
            statsn=numbers.statsn,
            expcmdsn=numbers.expcmdsn,
            maxcmdsn=numbers.maxcmdsn,
            data=reply.data,
        )

    def _answer(self, pairs: KeyValuePairs) -> list[Pair]:
        keys = [key for key, _ in pairs]
        if "SendTargets" in keys and len(keys) > 1:
            raise TextRejected(  # appendix D: a SendTargets command is that one key
                RejectReason.PROTOCOL_ERROR, "SendTargets with other keys in one Text Request"
            )
        if self.discovery and "SendTargets" not in keys:
            raise TextRejected(  # 3.3: a discovery session takes SendTargets only
                RejectReason.PROTOCOL_ERROR, "a discovery session takes SendTargets only"
            )
        answers: list[Pair] = []
        for key, value in pairs:
            if key == "SendTargets":
                answers += self._send_targets(value)
            elif key not in KEYS:
                answers.append((key, NOT_UNDERSTOOD))  # 5.2: unknown keys are answered so
            elif key == "MaxRecvDataSegmentLength" and not self.discovery:
                number = parse_numerical(value)
                if number is None or not _MRDSL.low <= number <= _MRDSL.high:
                    raise TextRejected(RejectReason.PROTOCOL_ERROR, f"{key}={value} is invalid")
                self._pending_max_send = number  # 5.2: effective when the sequence ends
            elif key != "InitiatorAlias" or self.discovery:
                where = "a discovery session" if self.discovery else "the Full Feature Phase"
                raise TextRejected(RejectReason.PROTOCOL_ERROR, f"{key} is not allowed in {where}")
        return answers

    def _send_targets(self, value: str) -> list[Pair]:
        """Appendix D: in a discovery session All, or one name, of the targets zoning
        lets the initiator see; in a normal session only the session's own target, for
        All too (newer initiators send it there). Any other value is rejected: an empty
        answer would read as "no targets"."""
        everything = value in ("All", "")
        if not everything and iscsi_name_problem(normalize_name(value)) is not None:
            raise TextRejected(
                RejectReason.PROTOCOL_ERROR, "SendTargets is neither All, empty nor a name"
            )
        if self.discovery:
            if not value:
                return []  # no target is logged in to
            login = self.login
            visible = self._services.visible_targets(login.initiator_name, login.peer)
            wanted = normalize_name(value)
            return target_records(t for t in visible if value == "All" or t.name == wanted)
        own = self.parameters.target_name
        if own is None or (not everything and normalize_name(value) != normalize_name(own)):
            return []
        target = self._services.local_target(own)
        return target_records([target] if target else [])

    # Logout, NOP, task management, SCSI -----------------------------------------------

    def _logout(self, request: LogoutRequest, step: SessionStep) -> None:
        reason = request.reason_code
        if reason not in _LOGOUT_REASONS or (
            self.discovery and reason != LogoutReasonCode.CLOSE_SESSION
        ):
            step.pdus.append(self._not_allowed(request))
            return
        time2wait = time2retain = 0  # ignored by the initiator after a successful logout
        if reason == LogoutReasonCode.REMOVE_CONNECTION_FOR_RECOVERY:
            response = LogoutResponseCode.CONNECTION_RECOVERY_NOT_SUPPORTED  # ERL 0
            time2wait = self.parameters.default_time2wait
            time2retain = self.parameters.default_time2retain
        elif reason == LogoutReasonCode.CLOSE_CONNECTION and request.cid != self.login.cid:
            response = LogoutResponseCode.CID_NOT_FOUND  # one connection per session
        else:
            response = LogoutResponseCode.SUCCESS
            step.logged_out = True
        numbers = self._numbers(advance=True)
        step.pdus.append(
            LogoutResponse(
                response=response,
                itt=request.itt,
                statsn=numbers.statsn,
                expcmdsn=numbers.expcmdsn,
                maxcmdsn=numbers.maxcmdsn,
                time2wait=time2wait,
                time2retain=time2retain,
            )
        )

    def _nop_echo(self, nop: NopOut) -> NopIn:
        """10.19: answer a ping with its data, up to our sending limit."""
        numbers = self._numbers(advance=True)
        return NopIn(
            lun=nop.lun,
            itt=nop.itt,
            statsn=numbers.statsn,
            expcmdsn=numbers.expcmdsn,
            maxcmdsn=numbers.maxcmdsn,
            data=nop.data[: self._max_send],
        )

    def _task_management(self, request: TaskManagementRequest, step: SessionStep) -> None:
        """10.5: a write still waiting for Data-Out is dropped at once; a running task
        cannot be stopped, so the response waits until the tasks aborted have ended. A
        reset then also ends reservations and raises unit attentions."""
        response = TaskManagementResponseCode.FUNCTION_COMPLETE
        function = request.function
        affected: list[ScsiTask] = []
        reset: list[LogicalUnit] = []
        scsi = self._scsi
        if scsi is None:
            response = TaskManagementResponseCode.FUNCTION_NOT_SUPPORTED
        elif function == TaskManagementFunction.ABORT_TASK:
            task = self._tasks.get(request.referenced_task_tag)
            if task is not None:
                affected.append(task)
            elif not self._drop_transfer(request.referenced_task_tag):
                response = self._absent_task(request)
        elif function in (
            TaskManagementFunction.ABORT_TASK_SET,
            TaskManagementFunction.CLEAR_TASK_SET,
            TaskManagementFunction.LOGICAL_UNIT_RESET,
        ):
            unit = scsi.unit(request.lun)
            if unit is None:
                response = TaskManagementResponseCode.LUN_DOES_NOT_EXIST
            else:
                self._drop_transfers(request.lun)
                affected = self._tasks.on_lun(request.lun)
                if function == TaskManagementFunction.LOGICAL_UNIT_RESET:
                    reset.append(unit)
        elif function in (
            TaskManagementFunction.TARGET_WARM_RESET,
            TaskManagementFunction.TARGET_COLD_RESET,
        ):
            for itt in list(self._transfers):
                self._drop_transfer(itt)
            affected = self._tasks.all()
            reset += scsi.units.values()
        else:
            response = TaskManagementResponseCode.FUNCTION_NOT_SUPPORTED

        # The units' part of a reset runs on their workers, after what is queued there
        # (the tasks aborted included); their listeners are told once it is done.
        everyone = scsi.everyone(self.nexus) if scsi is not None else frozenset()
        resets = [UnitJob(unit, partial(unit.reset, everyone)) for unit in reset]
        step.tasks += resets

        def answer() -> Pdu:
            if scsi is not None:
                for job in resets:
                    scsi.announce_reset(job.unit, everyone)
            if response == TaskManagementResponseCode.FUNCTION_COMPLETE:
                name = TaskManagementFunction(function).name
                log.info("%s: %s on LUN %#x", self.nexus, name, request.lun)
            numbers = self._numbers(advance=True)
            return TaskManagementResponse(
                response=response,
                itt=request.itt,
                statsn=numbers.statsn,
                expcmdsn=numbers.expcmdsn,
                maxcmdsn=numbers.maxcmdsn,
            )

        now = self._tasks.abort(affected, answer, resets)
        if now is not None:
            step.pdus.append(now)

    def _absent_task(self, request: TaskManagementRequest) -> TaskManagementResponseCode:
        """10.5.1: a task not found but numbered inside the window before this request was
        received and completed: Function Complete; otherwise it does not exist."""
        window = self._window
        ahead = serial_distance(request.refcmdsn, window.expcmdsn)
        if 0 <= ahead < window.depth and serial_distance(request.refcmdsn, request.cmdsn) < 0:
            return TaskManagementResponseCode.FUNCTION_COMPLETE
        return TaskManagementResponseCode.TASK_DOES_NOT_EXIST

    def _drop_transfers(self, lun: int) -> None:
        for itt in [i for i, t in self._transfers.items() if t.command.lun == lun]:
            self._drop_transfer(itt)

    def _drop_transfer(self, itt: int) -> bool:
        """Whether a write was waiting for Data-Out under `itt`; its memory goes back."""
        transfer = self._transfers.pop(itt, None)
        if transfer is not None:
            transfer.release()
        return transfer is not None

    def _scsi_command(self, command: ScsiCommand, step: SessionStep) -> None:
        if self._scsi is None:
            step.pdus.append(self._not_allowed(command))
            return
        if command.itt in self._transfers or self._tasks.get(command.itt) is not None:
            step.pdus.append(self.reject(RejectReason.TASK_IN_PROGRESS, _header(command)))
            return
        length = command.expected_data_transfer_length if command.write else 0
        if length > _MAX_WRITE:
            refused = CheckCondition(SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_FIELD_IN_CDB)
            step.pdus += self._respond(command, refused.result())
            return
        if not length:  # no Data-Out to wait for (any data sent with it is dropped)
            self._start(command, bytearray(), step)
            return
        if (
            self._write_bytes_held() + length > _WRITE_BUDGET
            or length > self._writes.budget.available
        ):
            step.pdus += self._respond(command, ScsiResult(ScsiStatus.TASK_SET_FULL))
            return
        limits, now = self._data_out_limits, self._heard  # the command was just heard
        transfer = DataOutTransfer(command, length, limits, self._writes, now)
        if transfer.complete:
            self._start(command, transfer.buffer, step)
        else:
            self._transfers[command.itt] = transfer
            step.pdus += self._r2ts(transfer)

    def _write_bytes_held(self) -> int:
        waiting = sum(transfer.length for transfer in self._transfers.values())
        return waiting + sum(len(task.data_out) for task in self._tasks.all())

    def _data_out(self, pdu: DataOut, now: float, step: SessionStep) -> None:
        transfer = self._transfers.get(pdu.itt)
        if transfer is None:  # no write of this session is waiting for data (any more)
            step.pdus.append(self._not_allowed(pdu))
            return
        try:
            transfer.receive(pdu, now)
        except DataOutError as error:
            step.close = f"{error} (task {pdu.itt:#x}; RFC 3720 6.1.4.2)"
            return
        failed = transfer.failed
        if failed is not None:  # the sequences asked for are over (6.7 b)
            self._drop_transfer(pdu.itt)
            self._fail_write(transfer, failed, step)
        elif transfer.complete:
            del self._transfers[pdu.itt]
            self._start(transfer.command, transfer.buffer, step)
        else:
            step.pdus += self._r2ts(transfer)

    def _fail_write(
        self, transfer: DataOutTransfer, failed: DataOutFailure, step: SessionStep
    ) -> None:
        """The first failed write of a session is a warning, the rest (a stuck initiator's
        other writes, a flood) are debug lines: the first names the culprit."""
        level = logging.DEBUG if self._write_failed else logging.WARNING
        self._write_failed = True
        log.log(
            level,
            "%s: %s (task %#x): the write fails with %s and nothing is written",
            self.nexus,
            failed.reason,
            transfer.command.itt,
            failed.outcome,
        )
        step.pdus += self._respond(transfer.command, failed.result())

    def _r2ts(self, transfer: DataOutTransfer) -> list[R2T]:
        numbers = self._numbers(advance=False)  # 10.8.3: an R2T carries, not uses, StatSN
        return [
            R2T(
                lun=transfer.command.lun,
                itt=transfer.command.itt,
                ttt=burst.ttt,
                statsn=numbers.statsn,
                expcmdsn=numbers.expcmdsn,
                maxcmdsn=numbers.maxcmdsn,
                r2tsn=burst.r2tsn,
                buffer_offset=burst.offset,
                desired_data_transfer_length=burst.length,
            )
            for burst in transfer.next_bursts(self._new_tag)
        ]

    def _start(
        self, command: ScsiCommand, data_out: bytearray | memoryview, step: SessionStep
    ) -> None:
        assert self._scsi is not None
        task = ScsiTask(command, data_out, self._scsi, self.nexus)
        self._tasks.start(task)
        step.tasks.append(task)

    def complete(self, task: Job, result: ScsiResult) -> SessionStep:
        """A task started by an earlier step ended with `result`: its response, unless it
        was aborted, then the task management responses that were waiting for it."""
        step = SessionStep()
        if isinstance(task, ScsiTask) and not task.aborted:
            if result.status == ScsiStatus.GOOD:
                self.counters.bytes_written += len(task.data_out)
            step.pdus += self._respond(task.command, result)
        step.pdus += self._tasks.finish(task)
        return step

    def _respond(self, command: ScsiCommand, result: ScsiResult) -> list[Pdu]:
        numbers = self._numbers(advance=True)
        pdus: list[Pdu] = list(command_responses(command, result, numbers, self._max_send))
        self.counters.commands += 1
        self.counters.bytes_read += sum(len(p.data) for p in pdus if isinstance(p, DataIn))
        return pdus

    def _unit_attention(self, lun: int, sense: bytes) -> None:
        """10.9.1: a SCSI asynchronous event the moment a unit attention arises; the unit
        attention also stays pending for the next command, for initiators that ignore it."""
        numbers = self._numbers(advance=True)  # 10.9: an Async Message advances StatSN
        event = AsyncMessage(
            lun=int.from_bytes(encode_lun(lun), "big"),
            statsn=numbers.statsn,
            expcmdsn=numbers.expcmdsn,
            maxcmdsn=numbers.maxcmdsn,
            async_event=AsyncEvent.SCSI_ASYNC_EVENT,
            data=sense_segment(sense),
        )
        self._push(SessionStep([event]))

    def close(self) -> list[UnitJob]:
        """The session ends: what its I_T nexus held (RESERVE (6)) is released by the jobs
        returned, for the units' workers, unless a reinstating session carries it on."""
        for itt in list(self._transfers):
            self._drop_transfer(itt)
        self._tasks.clear()
        if self._scsi is None or self.reinstated:
            return []
        if self._scsi.attention_listeners.get(self.nexus) == self._unit_attention:
            del self._scsi.attention_listeners[self.nexus]
        nexus = self.nexus
        units = self._scsi.forget_nexus(nexus)
        return [UnitJob(unit, partial(unit.nexus_lost, nexus)) for unit in units]

    # Keepalive -----------------------------------------------------------------------

    @property
    def deadline(self) -> float | None:
        """When `handle_timer` must run next; None: never."""
        deadlines = [transfer.deadline for transfer in self._transfers.values()]
        keepalive = self._keepalive_deadline
        if keepalive is not None:
            deadlines.append(keepalive)
        return min(deadlines, default=None)

    @property
    def _keepalive_deadline(self) -> float | None:
        if not self._keepalive.interval:
            return None
        if self.discovery:  # it may not answer pings (3.3): close it once idle too long
            return self._heard + self._keepalive.interval + self._keepalive.timeout
        if self._ping is not None:
            return self._ping + self._keepalive.timeout
        return self._heard + self._keepalive.interval

    def handle_timer(self, now: float) -> SessionStep:
        step = SessionStep()
        for itt in [i for i, t in self._transfers.items() if now >= t.deadline]:
            transfer = self._transfers.pop(itt)
            self._fail_write(transfer, transfer.expired(), step)
        deadline = self._keepalive_deadline
        if deadline is None or now < deadline:
            return step
        if self.discovery:
            step.close = f"discovery session idle for {now - self._heard:.0f} s"
            return step
        if self._ping is not None:
            step.close = f"no answer to a NOP-In ping in {self._keepalive.timeout:g} s"
            return step
        self._ping = now
        numbers = self._numbers(advance=False)  # 10.19.2: a ping does not advance StatSN
        ping = NopIn(
            ttt=self._new_tag(),
            statsn=numbers.statsn,
            expcmdsn=numbers.expcmdsn,
            maxcmdsn=numbers.maxcmdsn,
        )
        step.pdus.append(ping)
        return step

    # Numbers -------------------------------------------------------------------------

    def _numbers(self, *, advance: bool) -> ResponseNumbers:
        numbers = ResponseNumbers(self._statsn, self._window.expcmdsn, self._window.maxcmdsn)
        if advance:
            self._statsn = (self._statsn + 1) & SERIAL_MASK
        return numbers

    def _new_tag(self) -> int:
        tag = self._next_tag
        self._next_tag = tag % (RESERVED_TAG - 1) + 1  # 1 .. 0xfffffffe, never reserved
        return tag


def _header(pdu: Pdu) -> bytes:
    """The header (BHS and AHS) of a received PDU, for a Reject (10.17.4): re-encoded,
    so reserved fields read as zero."""
    return bytes(encode_pdu(pdu)[0])
