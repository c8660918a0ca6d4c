"""Shared LUNs under mixed load: each logical unit's state is changed by its worker only.

Several sessions, each on its own connection and thread, send reads, writes, LUN resets,
PERSISTENT RESERVE commands and EXTENDED COPY to the same two LUNs for a bounded count
and time, with the server checking that no thread but a unit's worker changes its state
(ISNS_SERVER_CHECK_UNIT_OWNER, set by tests/processes.py). Each session writes and copies
only its own blocks, so everything it reads back is known. The answers allowed are GOOD,
a UNIT ATTENTION (the other sessions' resets; the command runs again) and RESERVATION
CONFLICT (another session's reservation; run again): never HARDWARE ERROR, and the log
holds no traceback.
"""

import random
import struct
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from isns_server.portal.iscsi.pdu import (
    AsyncMessage,
    DataIn,
    ScsiCommand,
    ScsiResponse,
    TaskManagementRequest,
    TaskManagementResponse,
)
from isns_server.scsi.constants import ScsiStatus, SenseKey

from ..initiator import RawInitiator
from ..processes import OurServer

TARGET = "iqn.2026-11.org.example.test:shared"
INITIATOR = "iqn.2026-11.org.example.test:stress"
NORMAL = (("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", TARGET))
BLOCK = 512
SESSIONS = 4
REGION = 32  # blocks of each LUN that belong to one session
OPERATIONS = 120  # per session
SECONDS = 60.0  # per session, at most
RETRIES = 50  # a command answered UNIT ATTENTION or RESERVATION CONFLICT, run again
LUN_RESET = 5
REGISTER_AND_IGNORE, RESERVE, RELEASE = 0x06, 0x01, 0x02
WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 5


def lun_field(lun: int) -> int:
    return lun << 48


@dataclass
class Session:
    port: int
    number: int
    rng: random.Random
    initiator: RawInitiator = field(init=False)
    itt: int = 1
    cmdsn: int = 1
    key: int = 0
    resets: int = 0
    copies: int = 0
    unexpected: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.initiator = RawInitiator(self.port, timeout=30.0)
        self.initiator.enter_full_feature(*NORMAL)
        self.key = 0x5700 + self.number

    def _answer(self, itt: int) -> tuple[int, bytes, bytes]:
        """Status, sense and data of command `itt`; async events and other answers pass."""
        data = b""
        while True:
            pdu = self.initiator.receive()
            if isinstance(pdu, AsyncMessage):
                continue  # another session's reset: reported again to the next command
            if isinstance(pdu, DataIn) and pdu.itt == itt:
                data += bytes(pdu.data)
                if pdu.status_present:
                    return pdu.status, b"", data
            elif isinstance(pdu, ScsiResponse) and pdu.itt == itt:
                return pdu.status, bytes(pdu.data[2:]), data
            elif not isinstance(pdu, TaskManagementResponse):
                raise AssertionError(f"unexpected {pdu}")

    def execute(
        self, lun: int, cdb: bytes, out: bytes = b"", read: int = 0, conflict_ends: bool = False
    ) -> tuple[int, bytes]:
        """With `conflict_ends`, RESERVATION CONFLICT is an answer (a RESERVE while
        another session holds the reservation), not a reason to try again."""
        for _ in range(RETRIES):
            itt, self.itt = self.itt, self.itt + 1
            command = ScsiCommand(
                read=bool(read),
                write=bool(out),
                lun=lun_field(lun),
                itt=itt,
                cmdsn=self.cmdsn,
                cdb=cdb.ljust(16, b"\0"),
                expected_data_transfer_length=read or len(out),
                data=out,
            )
            self.cmdsn += 1
            self.initiator.send(command)
            status, sense, data = self._answer(itt)
            if status == ScsiStatus.RESERVATION_CONFLICT:
                if conflict_ends:
                    return status, data
                continue
            if status == ScsiStatus.CHECK_CONDITION and sense[2] & 0x0F == SenseKey.UNIT_ATTENTION:
                continue
            if status != ScsiStatus.GOOD:
                key = sense[2] & 0x0F if sense else None
                self.unexpected.append(f"cdb {cdb[0]:#04x}: status {status:#x} key {key}")
            return status, data
        self.unexpected.append(f"cdb {cdb[0]:#04x}: still refused after {RETRIES} tries")
        return -1, b""

    def reset(self, lun: int) -> None:
        itt, self.itt = self.itt, self.itt + 1
        self.initiator.send(
            TaskManagementRequest(
                immediate=True, function=LUN_RESET, lun=lun_field(lun), itt=itt, cmdsn=self.cmdsn
            )
        )
        while True:
            pdu = self.initiator.receive()
            if isinstance(pdu, TaskManagementResponse) and pdu.itt == itt:
                if pdu.response != 0:
                    self.unexpected.append(f"LUN RESET answered {pdu.response}")
                self.resets += 1
                return
            assert isinstance(pdu, AsyncMessage), pdu

    def write(self, lun: int, lba: int, data: bytes) -> None:
        self.execute(lun, struct.pack(">BBQIxx", 0x8A, 0, lba, len(data) // BLOCK), data)

    def read(self, lun: int, lba: int, blocks: int) -> bytes:
        _, data = self.execute(
            lun, struct.pack(">BBQIxx", 0x88, 0, lba, blocks), read=blocks * BLOCK
        )
        return data

    def prout(self, action: int, key: int, new: int, kind: int = 0) -> None:
        parameters = struct.pack(">QQ4xB3x", key, new, 0)
        cdb = bytes([0x5F, action, kind, 0, 0, 0, 0, 0, 24])
        self.execute(0, cdb, parameters, conflict_ends=action == RESERVE)

    def read_keys(self) -> None:
        self.execute(0, bytes([0x5E, 0, 0, 0, 0, 0, 0, 0, 255]), read=255)

    def xcopy(self, cscds: list[bytes], blocks: int, source_lba: int, destination_lba: int) -> None:
        descriptors = b"".join(cscds)
        segment = struct.pack(">BBHHHxxHQQ", 0x02, 0, 24, 0, 1, blocks, source_lba, destination_lba)
        parameters = struct.pack(">BBHxxxxII", self.number, 0, len(descriptors), len(segment), 0)
        parameters += descriptors + segment
        self.execute(0, struct.pack(">BB8xIxx", 0x83, 0, len(parameters)), parameters)
        self.copies += 1


def naa_cscd(session: Session, lun: int) -> bytes:
    """The identification CSCD descriptor of `lun`, by the NAA designator of its Device
    Identification VPD page (SPC-4 7.8.6)."""
    _, page = session.execute(lun, bytes([0x12, 1, 0x83, 0, 255]), read=255)
    offset = 4
    while offset < len(page):
        kind, length = page[offset + 1], page[offset + 3]
        if kind & 0x3F == 0x03:  # NAA, associated with the logical unit
            designator = page[offset + 4 : offset + 4 + length]
            return struct.pack(
                ">BBHBBxB20sI", 0xE4, 0, 0, 0x01, 0x03, len(designator), designator, BLOCK
            )
        offset += 4 + length
    raise AssertionError("no NAA designator")


def run(session: Session, cscds: list[bytes], expected: dict[tuple[int, int], bytes]) -> None:
    """Random operations on this session's region of both LUNs; `expected` (LUN, block)
    is what each of its blocks must hold."""
    base = session.number * REGION
    deadline = time.monotonic() + SECONDS
    for _ in range(OPERATIONS):
        if time.monotonic() > deadline or session.unexpected:
            return
        choice = session.rng.random()
        lun = session.rng.choice((0, 1))
        lba = base + session.rng.randrange(REGION - 4)
        blocks = session.rng.randint(1, 4)
        if choice < 0.35:
            data = session.rng.randbytes(blocks * BLOCK)
            session.write(lun, lba, data)
            for i in range(blocks):
                expected[(lun, lba + i)] = data[i * BLOCK : (i + 1) * BLOCK]
        elif choice < 0.65:
            want = b"".join(expected.get((lun, lba + i), bytes(BLOCK)) for i in range(blocks))
            if session.read(lun, lba, blocks) != want:
                session.unexpected.append(f"LUN {lun} blocks {lba}+{blocks}: wrong data")
        elif choice < 0.72:
            session.reset(lun)
        elif choice < 0.85:
            action = session.rng.choice(("register", "keys", "reserve", "release"))
            if action == "register":
                session.prout(REGISTER_AND_IGNORE, 0, session.key)
            elif action == "keys":
                session.read_keys()
            else:
                code = RESERVE if action == "reserve" else RELEASE
                session.prout(code, session.key, 0, WRITE_EXCLUSIVE_REGISTRANTS_ONLY)
        else:
            session.xcopy(cscds, blocks, lba, lba)  # LUN 0 to LUN 1, same blocks
            for i in range(blocks):
                expected[(1, lba + i)] = expected.get((0, lba + i), bytes(BLOCK))
    # Released, so that the final check reads without another session's reservation
    session.prout(RELEASE, session.key, 0, WRITE_EXCLUSIVE_REGISTRANTS_ONLY)


def test_sessions_sharing_luns_never_see_a_hardware_error(
    our_server: OurServer, tmp_path: Path
) -> None:
    port = our_server.enable_portal()
    luns = [
        {"lun": lun, "path": str(tmp_path / f"shared{lun}.img"), "size": "1MiB"} for lun in (0, 1)
    ]
    our_server.configure(targets=[{"name": TARGET, "luns": luns}])
    our_server.start()
    sessions = [Session(port, n, random.Random(n)) for n in range(SESSIONS)]
    cscds = [naa_cscd(sessions[0], 0), naa_cscd(sessions[0], 1)]
    for session in sessions:
        session.prout(REGISTER_AND_IGNORE, 0, session.key)  # registrants may write
    expected: list[dict[tuple[int, int], bytes]] = [{} for _ in sessions]
    failures: list[BaseException] = []

    def drive(session: Session, wanted: dict[tuple[int, int], bytes]) -> None:
        try:
            run(session, cscds, wanted)
        except BaseException as error:  # reported by the test's thread
            failures.append(error)

    threads = [
        threading.Thread(target=drive, args=(session, wanted))
        for session, wanted in zip(sessions, expected, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(SECONDS + 30)
    assert not any(thread.is_alive() for thread in threads)
    assert failures == []
    assert [s.unexpected for s in sessions] == [[] for _ in sessions]
    for session, wanted in zip(sessions, expected, strict=True):
        for (lun, lba), data in sorted(wanted.items()):
            assert session.read(lun, lba, 1) == data, (session.number, lun, lba)
    assert sum(s.resets for s in sessions) > 0 and sum(s.copies for s in sessions) > 0
    for session in sessions:
        session.initiator.sock.close()
    assert our_server.stop() == 0
    log = our_server.log()
    for sign in ("Traceback", "internal error", "not by its owner", "HARDWARE"):
        assert sign not in log
