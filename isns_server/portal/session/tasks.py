"""A session's SCSI tasks while their logical units run them (SAM-5 4.6, RFC 3720 10.5).

A command leaves the session as a `ScsiTask`, runs at once or on its unit's worker
(workers.py) and comes back with its result; meanwhile task management can only mark it
aborted, since a disk call cannot be taken back. A task management function that aborts
running tasks answers once they have all ended (10.5.1); an aborted task is never
answered.

A `UnitJob` is work on one unit's state that is no command: a reset, the end of a nexus,
a rescan. It goes the same way as a task that changes something (on the unit's worker,
in order with its commands, a barrier like a write), so that only the worker ever
changes the unit's state.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from ...scsi import LogicalUnit, ScsiResult, ScsiTarget, WouldBlock, may_run_now
from ...scsi.constants import AdditionalSense, SenseKey
from ...scsi.sense import CheckCondition
from ..iscsi.pdu import Pdu, ScsiCommand

log = logging.getLogger(__name__)

Answer = Callable[[], Pdu]  # builds a deferred response when it can be sent


@dataclass(eq=False, slots=True)
class ScsiTask:
    command: ScsiCommand
    data_out: bytearray | memoryview  # all the Data-Out the command will get
    target: ScsiTarget
    nexus: str  # the I_T nexus that sent it
    aborted: bool = False

    @property
    def itt(self) -> int:
        return self.command.itt

    @property
    def reorderable(self) -> bool:
        """It changes nothing (a read, an INQUIRY): it may pass or be passed by others
        like it, never by anything else (SAM-5 8.6: SIMPLE tasks)."""
        return may_run_now(self.command.full_cdb[0])

    @property
    def unit(self) -> LogicalUnit | None:
        """The unit that runs it; None: the target answers (REPORT LUNS, absent LUNs)."""
        return self.target.unit(self.command.lun)

    def execute(self) -> ScsiResult:
        """Runs the command, waiting for the disk if it must: on a worker thread, or on
        the event loop only when no unit holds its LUN (no disk behind it)."""
        return self._execute(nowait=False)

    def execute_now(self) -> ScsiResult | None:
        """Runs the command if it need not wait for the disk (a read the page cache
        holds, a command that touches no medium); None: it changed nothing, run it with
        `execute` instead."""
        try:
            return self._execute(nowait=True)
        except WouldBlock:
            return None

    def _execute(self, nowait: bool) -> ScsiResult:
        """A failing disk or a fault of ours fails this command only (SPC-4 4.5.6)."""
        command = self.command
        try:
            return self.target.execute(
                command.lun, command.full_cdb, self.data_out, self.nexus, nowait
            )
        except WouldBlock:
            raise  # for execute_now: nothing happened
        except OSError as error:
            log.error(
                "%s: LUN %#x: command %#04x failed: %s; answered MEDIUM ERROR: check the"
                " LUN's backing file or device and the kernel log",
                self.nexus,
                command.lun >> 48,
                command.full_cdb[0],
                error,
            )
            code = AdditionalSense.UNRECOVERED_READ_ERROR
            if not command.read:
                code = AdditionalSense.WRITE_ERROR
            return CheckCondition(SenseKey.MEDIUM_ERROR, code).result()
        except Exception:
            log.exception(
                "%s: internal error running command %#04x", self.nexus, command.full_cdb[0]
            )
            failure = CheckCondition(
                SenseKey.HARDWARE_ERROR, AdditionalSense.INTERNAL_TARGET_FAILURE
            )
            return failure.result()


@dataclass(eq=False, slots=True)
class UnitJob:
    """`work` run by `unit`'s worker; what it returns is kept in `outcome`."""

    unit: LogicalUnit
    work: Callable[[], object]
    outcome: object = None
    reorderable: ClassVar[bool] = False  # a barrier: it changes the unit

    def execute(self) -> ScsiResult:
        try:
            self.outcome = self.work()
        except Exception:
            identity = self.unit.state.identity
            log.exception(
                "internal error in %s on LUN %d of %s", self, identity.lun, identity.target_name
            )
            return CheckCondition(
                SenseKey.HARDWARE_ERROR, AdditionalSense.INTERNAL_TARGET_FAILURE
            ).result()
        return ScsiResult()

    def execute_now(self) -> ScsiResult | None:
        return None  # never on the event loop


Job = ScsiTask | UnitJob  # what the LUN workers run


@dataclass(slots=True)
class _Waiting:
    tasks: set[Job]
    answer: Answer


@dataclass(slots=True)
class TaskSet:
    """The tasks of one session that are running, by Initiator Task Tag."""

    _running: dict[int, ScsiTask] = field(default_factory=dict)
    _waiting: list[_Waiting] = field(default_factory=list)

    def get(self, itt: int) -> ScsiTask | None:
        return self._running.get(itt)

    def start(self, task: ScsiTask) -> None:
        self._running[task.itt] = task

    def on_lun(self, lun: int) -> list[ScsiTask]:
        return [task for task in self._running.values() if task.command.lun == lun]

    def all(self) -> list[ScsiTask]:
        return list(self._running.values())

    def abort(
        self, tasks: Iterable[ScsiTask], answer: Answer, jobs: Iterable[UnitJob] = ()
    ) -> Pdu | None:
        """Marks `tasks` aborted; `answer` runs when the last of them and of `jobs` (just
        started) ends, or now (its response returned) if none is running."""
        running = [task for task in tasks if self._running.get(task.itt) is task]
        for task in running:
            task.aborted = True
        waiting: set[Job] = {*running, *jobs}
        if not waiting:
            return answer()
        self._waiting.append(_Waiting(waiting, answer))
        return None

    def finish(self, task: Job) -> list[Pdu]:
        """`task` ended: the responses of the task management it was holding back."""
        if isinstance(task, ScsiTask) and self._running.get(task.itt) is task:
            del self._running[task.itt]
        ready = []
        for waiting in self._waiting:
            waiting.tasks.discard(task)
            if not waiting.tasks:
                ready.append(waiting)
        self._waiting = [w for w in self._waiting if w.tasks]
        return [waiting.answer() for waiting in ready]

    def clear(self) -> None:
        """The session ended: whatever still runs finishes unanswered."""
        for task in self._running.values():
            task.aborted = True
        self._running.clear()
        self._waiting.clear()
