"""Growing a LUN online: the administrator extends the file and sends SIGHUP; a logged-in
initiator is told CAPACITY DATA HAS CHANGED at once (an Async Message) and again with its
next command, then READ CAPACITY (16) reports the new size."""

import os
import signal
import struct
import subprocess
from pathlib import Path

from isns_server.portal.iscsi.pdu import AsyncMessage, DataIn, ScsiCommand, ScsiResponse
from isns_server.scsi.constants import AdditionalSense, ScsiStatus, SenseKey

from ..initiator import RawInitiator
from ..peers import require
from ..polling import eventually_sync
from ..processes import OurServer

TARGET = "iqn.2026-11.org.example.test:disk1"
INITIATOR = "iqn.2026-11.org.example.test:host1"
NORMAL = (("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", TARGET))
READ_CAPACITY_16 = bytes([0x9E, 0x10]) + bytes(11) + bytes([32, 0, 0])


def read_capacity(initiator: RawInitiator, cmdsn: int) -> int | tuple[int, int]:
    """The capacity in bytes, or the sense key and ASC/ASCQ of a CHECK CONDITION."""
    command = ScsiCommand(
        read=True, itt=cmdsn, cmdsn=cmdsn, cdb=READ_CAPACITY_16, expected_data_transfer_length=32
    )
    initiator.send(command)
    pdu = initiator.receive()
    if isinstance(pdu, ScsiResponse):
        assert pdu.status == ScsiStatus.CHECK_CONDITION, pdu
        sense = bytes(pdu.data[2:])
        return sense[2] & 0x0F, sense[12] << 8 | sense[13]
    assert isinstance(pdu, DataIn) and pdu.status == ScsiStatus.GOOD, pdu
    last_lba, block = struct.unpack_from(">QI", pdu.data)
    return int((last_lba + 1) * block)


def test_sighup_publishes_a_grown_lun(our_server: OurServer, tmp_path: Path) -> None:
    lun_path = tmp_path / "disk1.img"
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(lun_path), "size": "1MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    assert our_server.process is not None
    with RawInitiator(port) as initiator:
        initiator.enter_full_feature(*NORMAL)
        assert read_capacity(initiator, 1) == 1 << 20

        our_server.process.send_signal(signal.SIGHUP)
        unchanged = "LUN rescan: no LUN changed size"
        eventually_sync(our_server.log, lambda log: unchanged in log, what=repr(unchanged))
        assert read_capacity(initiator, 2) == 1 << 20  # no unit attention

        os.truncate(lun_path, 3 << 20)
        our_server.process.send_signal(signal.SIGHUP)
        changed = (
            f"target {TARGET} LUN 0: capacity changed from 1048576 to 3145728 bytes;"
            " initiators get a unit attention"
        )
        eventually_sync(our_server.log, lambda log: changed in log, what=repr(changed))
        capacity_changed = (SenseKey.UNIT_ATTENTION, AdditionalSense.CAPACITY_DATA_HAS_CHANGED)
        event = initiator.receive()  # 10.9.1: a SCSI asynchronous event, unasked
        assert isinstance(event, AsyncMessage) and event.async_event == 0, event
        sense = bytes(event.data[2:])
        assert (sense[2] & 0x0F, sense[12] << 8 | sense[13]) == capacity_changed
        assert read_capacity(initiator, 3) == capacity_changed
        assert read_capacity(initiator, 4) == 3 << 20

    # an independent initiator (libiscsi) sees the new size too
    done = subprocess.run(
        [require("iscsi-readcapacity16"), f"iscsi://127.0.0.1:{port}/{TARGET}/0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "Total size:3145728" in done.stdout, done.stdout
    assert our_server.process.poll() is None  # SIGHUP did not end it
