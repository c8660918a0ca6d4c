"""Bad input on the iSCSI data path gets RFC 3720's answer, over real sockets: nothing
reaches the LUN from the bad request, and another session on the same target keeps
reading and writing all along."""

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from isns_server.portal.iscsi.constants import (
    RESERVED_TAG,
    RejectReason,
    ServiceResponse,
)
from isns_server.portal.iscsi.pdu import R2T, DataIn, DataOut, Reject, ScsiCommand, ScsiResponse
from isns_server.scsi.constants import AdditionalSense, ScsiStatus, SenseKey

from ..initiator import RawInitiator
from ..processes import OurServer

TARGET = "iqn.2026-11.org.example.test:disk1"
INITIATOR = "iqn.2026-11.org.example.test:host1"
NORMAL = (("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", TARGET))
BLOCK = 512
BYSTANDER_ISID = bytes.fromhex("400001370001")
INVALID_FIELD_IN_CDB = (SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_FIELD_IN_CDB)
BYSTANDER_LBA = 100  # where the bystander writes; the bad requests aim at blocks 0..7


@pytest.fixture
def lun_path(tmp_path: Path) -> Path:
    return tmp_path / "disk1.img"


@pytest.fixture
def portal(our_server: OurServer, lun_path: Path) -> Iterator[int]:
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(lun_path), "size": "1MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    yield port


def lun_bytes(path: Path, lba: int, blocks: int) -> bytes:
    with path.open("rb") as file:
        file.seek(lba * BLOCK)
        return file.read(blocks * BLOCK).ljust(blocks * BLOCK, b"\0")


def cdb16(opcode: int, lba: int, blocks: int, flags: int = 0) -> bytes:
    return struct.pack(">BBQIBB", opcode, flags, lba, blocks, 0, 0)


def write16(lba: int, blocks: int, flags: int = 0) -> bytes:
    return cdb16(0x8A, lba, blocks, flags)


def read16(lba: int, blocks: int, flags: int = 0) -> bytes:
    return cdb16(0x88, lba, blocks, flags)


class Session:
    """A normal session on TARGET keeping its own CmdSN."""

    def __init__(self, port: int, isid: bytes | None = None) -> None:
        self.initiator = RawInitiator(port, timeout=3.0)
        header = {"isid": isid} if isid is not None else {}
        response = self.initiator.login(*NORMAL, **header)
        assert response.status == 0 and response.transit, response
        self.cmdsn = 1
        self.itt = 0x100

    def close(self) -> None:
        self.initiator.sock.close()

    def command(self, cdb: bytes, **fields: Any) -> ScsiCommand:
        self.itt += 1
        command = ScsiCommand(itt=self.itt, cmdsn=self.cmdsn, cdb=cdb, **fields)
        self.cmdsn += 1
        return command

    def response(self) -> ScsiResponse:
        pdu = self.initiator.receive()
        assert isinstance(pdu, ScsiResponse), pdu
        return pdu

    def write(self, lba: int, data: bytes) -> ScsiResponse:
        """A write with all its data immediate (ImmediateData=Yes, FirstBurst 64 KiB)."""
        cdb = write16(lba, len(data) // BLOCK)
        self.initiator.send(
            self.command(cdb, write=True, expected_data_transfer_length=len(data), data=data)
        )
        return self.response()

    def read(self, lba: int, blocks: int) -> bytes:
        length = blocks * BLOCK
        command = self.command(read16(lba, blocks), read=True, expected_data_transfer_length=length)
        self.initiator.send(command)
        data = b""
        while True:
            pdu = self.initiator.receive()
            assert isinstance(pdu, DataIn) and pdu.itt == command.itt, pdu
            data += bytes(pdu.data)
            if pdu.status_present:
                assert pdu.status == ScsiStatus.GOOD
                return data


@pytest.fixture
def bystander(portal: int) -> Iterator[Session]:
    session = Session(portal, BYSTANDER_ISID)
    yield session
    session.close()


def still_serves(bystander: Session, rounds: list[int]) -> None:
    """The other session writes a fresh pattern and reads it back."""
    rounds.append(len(rounds) + 1)
    pattern = bytes([len(rounds)]) * BLOCK
    response = bystander.write(BYSTANDER_LBA, pattern)
    assert response.status == ScsiStatus.GOOD, response
    assert bystander.read(BYSTANDER_LBA, 1) == pattern


def sense_of(response: ScsiResponse) -> tuple[int, int]:
    """Sense key and ASC/ASCQ of fixed-format sense data after its SenseLength."""
    (length,) = struct.unpack_from(">H", response.data)
    sense = bytes(response.data[2 : 2 + length])
    assert sense[0] & 0x7F == 0x70, sense.hex()
    return sense[2] & 0x0F, sense[12] << 8 | sense[13]


def test_data_path_bad_input(
    portal: int, bystander: Session, lun_path: Path, our_server: OurServer
) -> None:
    rounds: list[int] = []
    still_serves(bystander, rounds)
    session = Session(portal)
    try:
        # 1. A CDB with a bad field for its opcode: WRITE(16) and READ(16) with
        # WRPROTECT/RDPROTECT set on a LUN without protection information.
        data = b"\xa5" * BLOCK
        bad_write = session.command(
            write16(0, 1, flags=0x20), write=True, expected_data_transfer_length=BLOCK, data=data
        )
        session.initiator.send(bad_write)
        response = session.response()
        assert response.itt == bad_write.itt
        assert response.response == ServiceResponse.COMMAND_COMPLETED
        assert response.status == ScsiStatus.CHECK_CONDITION
        assert sense_of(response) == INVALID_FIELD_IN_CDB
        bad_read = session.command(
            read16(0, 1, flags=0x20), read=True, expected_data_transfer_length=BLOCK
        )
        session.initiator.send(bad_read)
        response = session.response()  # no Data-In: status and sense only
        assert response.status == ScsiStatus.CHECK_CONDITION
        assert sense_of(response) == INVALID_FIELD_IN_CDB
        assert lun_bytes(lun_path, 0, 1) == bytes(BLOCK)
        assert session.read(0, 1) == bytes(BLOCK)  # the session goes on
        still_serves(bystander, rounds)

        # 2. More immediate data than the Expected Data Transfer Length, for a CDB that
        # wants two blocks: only the expected block is written, and the SCSI Response
        # reports a residual overflow of the block the EDTL left out (10.4.1).
        data = b"\x11" * BLOCK + b"\x22" * BLOCK + b"\x33" * BLOCK
        overflow = session.command(
            write16(2, 2), write=True, expected_data_transfer_length=BLOCK, data=data
        )
        session.initiator.send(overflow)
        response = session.response()
        assert response.itt == overflow.itt and response.status == ScsiStatus.GOOD
        assert response.residual_overflow and not response.residual_underflow
        assert response.residual_count == BLOCK
        assert lun_bytes(lun_path, 2, 1) == b"\x11" * BLOCK
        assert lun_bytes(lun_path, 3, 2) == bytes(2 * BLOCK)  # nothing beyond the EDTL
        still_serves(bystander, rounds)

        # 3. Data-Out for a task that does not exist: Reject, Protocol Error (10.17.1;
        # no R2T asked for it), the header returned; the session goes on.
        stray = DataOut(final=True, itt=0xBAD, ttt=0x1234, datasn=0, data=b"\x44" * BLOCK)
        session.initiator.send(stray)
        reject = session.initiator.receive()
        assert isinstance(reject, Reject), reject
        assert reject.reason == RejectReason.PROTOCOL_ERROR
        assert bytes(reject.data[16:20]) == (0xBAD).to_bytes(4, "big")
        assert session.read(0, 8) == bytes(2 * BLOCK) + b"\x11" * BLOCK + bytes(5 * BLOCK)
        still_serves(bystander, rounds)
    finally:
        session.close()

    # 4. A DataSN gap in a solicited Data-Out sequence: a PDU was lost (6.8). At
    # ErrorRecoveryLevel 0 the rest of the sequence is discarded and the command ends
    # with CHECK CONDITION, PROTOCOL SERVICE CRC ERROR (6.7 b); the write never runs and
    # the connection lives on.
    session = Session(portal)
    try:
        write = session.command(write16(6, 2), write=True, expected_data_transfer_length=2 * BLOCK)
        session.initiator.send(write)  # no immediate data: an R2T asks for it all
        r2t = session.initiator.receive()
        assert isinstance(r2t, R2T) and r2t.itt == write.itt, r2t
        assert (r2t.buffer_offset, r2t.desired_data_transfer_length) == (0, 2 * BLOCK)
        first = DataOut(itt=write.itt, ttt=r2t.ttt, datasn=0, data=b"\x55" * BLOCK)
        gap = DataOut(
            final=True,
            itt=write.itt,
            ttt=r2t.ttt,
            datasn=2,
            buffer_offset=BLOCK,
            data=b"\x66" * BLOCK,
        )
        session.initiator.send(first)
        session.initiator.send(gap)
        failed = session.response()
        assert failed.status == ScsiStatus.CHECK_CONDITION
        assert sense_of(failed) == (
            SenseKey.ABORTED_COMMAND,
            AdditionalSense.PROTOCOL_SERVICE_CRC_ERROR,
        )
        assert lun_bytes(lun_path, 6, 2) == bytes(2 * BLOCK)
        assert session.write(40, b"\x77" * BLOCK).status == ScsiStatus.GOOD  # still usable
    finally:
        session.close()
    still_serves(bystander, rounds)

    # 4b. Data-Out for a live task with a Target Transfer Tag no R2T gave: the same
    # protocol error at ErrorRecoveryLevel 0, the connection ends, nothing is written.
    session = Session(portal)
    try:
        write = session.command(write16(6, 1), write=True, expected_data_transfer_length=BLOCK)
        session.initiator.send(write)
        r2t = session.initiator.receive()
        assert isinstance(r2t, R2T) and r2t.itt == write.itt, r2t
        wrong = DataOut(final=True, itt=write.itt, ttt=r2t.ttt ^ 0x5A5A, data=b"\x66" * BLOCK)
        session.initiator.send(wrong)
        assert session.initiator.closed()
        assert lun_bytes(lun_path, 6, 2) == bytes(2 * BLOCK)
    finally:
        session.close()
    still_serves(bystander, rounds)

    # 5. Non-immediate commands outside [ExpCmdSN, MaxCmdSN]: silently dropped
    # (3.2.2.1); the next command in the window is answered, the only answer.
    session = Session(portal)
    try:
        assert session.read(0, 1) == bytes(BLOCK)  # CmdSN 1; ExpCmdSN now 2
        for cmdsn in (session.cmdsn - 1, session.cmdsn + 32, session.cmdsn + 1000):
            data = b"\x77" * BLOCK
            dropped = ScsiCommand(
                write=True,
                itt=0x900 + (cmdsn & 0xFF),
                cmdsn=cmdsn,
                cdb=write16(8, 1),
                expected_data_transfer_length=BLOCK,
                data=data,
            )
            session.initiator.send(dropped)
        response = session.write(9, b"\x88" * BLOCK)  # CmdSN 2: in the window
        assert response.status == ScsiStatus.GOOD and response.itt == session.itt
        assert response.expcmdsn == session.cmdsn  # only this one advanced it
        # MaxCmdSN was ExpCmdSN + 31 before it too: CmdSN 34 and 1002 lay beyond the window
        assert response.maxcmdsn == response.expcmdsn + 31
        assert session.read(8, 2) == bytes(BLOCK) + b"\x88" * BLOCK  # a Data-In: nothing else came
        assert lun_bytes(lun_path, 8, 1) == bytes(BLOCK)
    finally:
        session.close()
    still_serves(bystander, rounds)
    log = our_server.log()
    assert "Data-Out DataSN 2, expected 1: a PDU was lost (task 0x101): the write fails" in log
    assert "closing the connection: Data-Out with target transfer tag" in log


def test_unexpected_unsolicited_data_fails_the_task_not_the_connection(
    portal: int, lun_path: Path, our_server: OurServer
) -> None:
    """Data-Out with the reserved Target Transfer Tag for a command whose F bit said no
    unsolicited data follows: it is dropped, the R2T still has to be answered, then the
    command ends with CHECK CONDITION, ABORTED COMMAND, 0Ch/0Ch (RFC 3720 10.4.7.2);
    nothing is written and the same connection goes on."""
    session = Session(portal)
    try:
        kept = b"\x11" * BLOCK
        assert session.write(6, kept).status == ScsiStatus.GOOD
        write = session.command(
            write16(6, 2), write=True, final=True, expected_data_transfer_length=2 * BLOCK
        )
        session.initiator.send(write)
        r2t = session.initiator.receive()
        assert isinstance(r2t, R2T) and r2t.itt == write.itt, r2t
        assert (r2t.buffer_offset, r2t.desired_data_transfer_length) == (0, 2 * BLOCK)
        unsolicited = DataOut(final=True, itt=write.itt, ttt=RESERVED_TAG, data=b"\x99" * BLOCK)
        answer = DataOut(final=True, itt=write.itt, ttt=r2t.ttt, data=b"\x66" * 2 * BLOCK)
        session.initiator.send(unsolicited)
        session.initiator.send(answer)
        failed = session.response()
        assert failed.itt == write.itt and failed.status == ScsiStatus.CHECK_CONDITION
        assert sense_of(failed) == (
            SenseKey.ABORTED_COMMAND,
            AdditionalSense.WRITE_ERROR_UNEXPECTED_UNSOLICITED_DATA,
        )
        assert lun_bytes(lun_path, 6, 2) == kept + bytes(BLOCK)
        assert session.read(6, 2) == kept + bytes(BLOCK)  # the same connection serves on
    finally:
        session.close()
    log = our_server.log()
    assert "unsolicited Data-Out at byte 0 where none may come (task 0x102)" in log
