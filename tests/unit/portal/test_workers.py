"""Where commands run: at once on the event loop when they need not wait for the disk and
nothing is ahead of them on their unit, else in the unit's worker, in arrival order."""

import asyncio
import struct
import threading

import pytest

from isns_server.portal.iscsi.pdu import ScsiCommand
from isns_server.portal.runtime.workers import UnitWorkers
from isns_server.portal.session.tasks import Job, ScsiTask
from isns_server.scsi import (
    LogicalUnit,
    MemoryBackstore,
    ScsiResult,
    ScsiTarget,
    UnitIdentity,
)

from ...polling import eventually

BLOCK = 512


def rw16(opcode: int, lba: int) -> bytes:
    return struct.pack(">BBQIxx", opcode, 0, lba, 1)


class SlowStore(MemoryBackstore):
    """Writes wait until the test lets them go, like a busy disk."""

    def __init__(self) -> None:
        super().__init__(1 << 20)
        self.go = threading.Event()
        self.writer_threads: set[str] = set()

    def write(self, offset: int, data: bytes | memoryview) -> None:
        self.writer_threads.add(threading.current_thread().name)
        self.go.wait(5)
        super().write(offset, data)


@pytest.mark.asyncio
async def test_a_read_waits_behind_a_write_to_its_unit_and_sees_its_data() -> None:
    store = SlowStore()
    target = ScsiTarget({0: LogicalUnit(store, UnitIdentity("iqn.2026-11.org.example:t", 1, 0))})
    workers = UnitWorkers(asyncio.get_running_loop())
    answers: list[tuple[int, ScsiResult]] = []
    finished = asyncio.Event()

    def done(task: Job, result: ScsiResult) -> None:
        assert isinstance(task, ScsiTask)
        answers.append((task.itt, result))
        if len(answers) == 2:
            finished.set()

    def task(itt: int, cdb: bytes, data: bytes = b"") -> ScsiTask:
        command = ScsiCommand(itt=itt, cdb=cdb, expected_data_transfer_length=BLOCK)
        return ScsiTask(command, bytearray(data), target, "nexus")

    inquiry = task(1, bytes([0x12, 0, 0, 0, 36]))
    assert workers.submit(inquiry, done) is not None  # nothing queued, no disk: at once
    assert workers.submit(task(2, rw16(0x8A, 0), b"\xab" * BLOCK), done) is None
    assert workers.submit(task(3, rw16(0x88, 0)), done) is None  # cached, behind the write
    assert answers == []
    store.go.set()
    await asyncio.wait_for(finished.wait(), 5)
    assert [itt for itt, _ in answers] == [2, 3]
    assert bytes(answers[1][1].data) == b"\xab" * BLOCK
    assert store.writer_threads == {"lun 0 of iqn.2026-11.org.example:t"}  # never the loop
    now = workers.submit(task(4, rw16(0x88, 0)), done)  # the unit is idle again: at once
    assert now is not None and bytes(now.data) == b"\xab" * BLOCK
    await asyncio.to_thread(workers.stop)


@pytest.mark.asyncio
async def test_soon_from_a_result_runs_once_after_the_batch() -> None:
    store = SlowStore()
    target = ScsiTarget({0: LogicalUnit(store, UnitIdentity("iqn.2026-11.org.example:t", 1, 0))})
    workers = UnitWorkers(asyncio.get_running_loop())
    events: list[str] = []
    all_done = asyncio.Event()

    def flush() -> None:
        events.append("flush")
        all_done.set()

    def done(task: Job, result: ScsiResult) -> None:
        assert isinstance(task, ScsiTask)
        events.append(f"done {task.itt}")
        workers.soon.call(flush)

    for itt in (1, 2):
        command = ScsiCommand(itt=itt, cdb=rw16(0x8A, itt), expected_data_transfer_length=BLOCK)
        workers.submit(ScsiTask(command, bytearray(BLOCK), target, "nexus"), done)
    # Both writes wait in the worker for the disk: the first at it, the second behind.
    await eventually(lambda: store.writer_threads, what="the first write at the disk", within=5)
    store.go.set()
    await asyncio.wait_for(all_done.wait(), 5)
    await eventually(
        lambda: list(events),
        lambda seen: "done 2" in seen and seen[-1] == "flush",
        what="both writes done, then a flush",
        within=5,
    )
    assert events.count("flush") <= 2
    assert [e for e in events if e != "flush"] == ["done 1", "done 2"]
    await asyncio.to_thread(workers.stop)
