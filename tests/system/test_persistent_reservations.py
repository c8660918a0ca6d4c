"""APTPL over real sockets: a registration and reservation made with APTPL=1 are there
again after the server restarts; a damaged reservation file stops the next start with a
message naming it."""

import struct
import subprocess
import sys
from pathlib import Path

from isns_server.portal.iscsi.pdu import DataIn, ScsiCommand, ScsiResponse
from isns_server.scsi.constants import ScsiStatus

from ..initiator import ISID, RawInitiator
from ..processes import OurServer

TARGET = "iqn.2026-11.org.example.test:disk1"
INITIATOR = "iqn.2026-11.org.example.test:host1"
NORMAL = (("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", TARGET))
REGISTER, RESERVE = 0, 1
WRITE_EXCLUSIVE = 1
APTPL = 0x01


class Session:
    def __init__(self, port: int) -> None:
        self.initiator = RawInitiator(port, isid=ISID)  # one nexus across restarts
        self.initiator.enter_full_feature(*NORMAL)
        self.cmdsn = 1

    def close(self) -> None:
        self.initiator.sock.close()

    def execute(self, cdb: bytes, data: bytes = b"", read: int = 0) -> tuple[int, bytes]:
        command = ScsiCommand(
            read=bool(read),
            write=bool(data),
            itt=self.cmdsn,
            cmdsn=self.cmdsn,
            cdb=cdb.ljust(16, b"\0"),
            expected_data_transfer_length=read or len(data),
            data=data,
        )
        self.cmdsn += 1
        self.initiator.send(command)
        received = b""
        while True:
            pdu = self.initiator.receive()
            if isinstance(pdu, ScsiResponse):
                return pdu.status, received
            assert isinstance(pdu, DataIn), pdu
            received += bytes(pdu.data)
            if pdu.status_present:
                return pdu.status, received

    def prout(self, action: int, key: int, new: int, kind: int = 0, flags: int = 0) -> int:
        parameters = struct.pack(">QQ4xB3x", key, new, flags)
        status, _ = self.execute(bytes([0x5F, action, kind, 0, 0, 0, 0, 0, 24]), parameters)
        return status

    def prin(self, action: int) -> bytes:
        status, data = self.execute(bytes([0x5E, action, 0, 0, 0, 0, 0, 0, 255]), read=255)
        assert status == ScsiStatus.GOOD
        return data


def test_aptpl_reservations_survive_a_restart(our_server: OurServer, tmp_path: Path) -> None:
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(tmp_path / "disk1.img"), "size": "1MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    session = Session(port)
    try:
        assert session.prout(REGISTER, 0, 0xABC, flags=APTPL) == ScsiStatus.GOOD
        assert session.prout(RESERVE, 0xABC, 0, kind=WRITE_EXCLUSIVE) == ScsiStatus.GOOD
    finally:
        session.close()
    assert our_server.stop() == 0
    saved = tmp_path / "data" / "reservations" / TARGET / "lun0.json"
    assert saved.exists()

    our_server.start()
    session = Session(port)  # the same initiator port (name and ISID): the same nexus
    try:
        keys = session.prin(0)  # READ KEYS
        assert struct.unpack_from(">IIQ", keys) == (0, 8, 0xABC)  # generation 0 after power on
        reservation = session.prin(1)  # READ RESERVATION
        assert struct.unpack_from(">IIQ4xxB", reservation) == (0, 16, 0xABC, WRITE_EXCLUSIVE)
        assert session.prin(2)[2:4] == bytes([0x11, 0x81])  # PTPL_C; TMV and PTPL_A
        assert session.prout(REGISTER, 0xABC, 0xABC) == ScsiStatus.GOOD  # APTPL=0
        assert not saved.exists()
    finally:
        session.close()
    assert our_server.stop() == 0

    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text("{")
    config = tmp_path / "isns-server.yaml"
    done = subprocess.run(
        [sys.executable, "-m", "isns_server", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 1
    assert f"{saved}: cannot read the saved persistent reservations" in done.stderr
    assert "delete the file to start without them" in done.stderr
