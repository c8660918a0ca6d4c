"""Reads and writes with header and data digests over a real socket: the digests the
portal sends check out (every Data-In, split at the initiator's MaxRecvDataSegmentLength),
and data it receives with digests, immediate and solicited, lands intact."""

import os
import struct
from pathlib import Path

from isns_server.target.iscsi.constants import ScsiStatus
from isns_server.target.iscsi.pdu import R2T, DataIn, DataOut, ScsiCommand, ScsiResponse

from ..initiator import RawInitiator
from ..processes import OurServer

TARGET = "iqn.2026-11.org.example.test:disk1"
INITIATOR = "iqn.2026-11.org.example.test:host1"
BLOCK = 512
SEGMENT = 4096  # our MaxRecvDataSegmentLength: a 128 KiB read comes in 32 Data-In PDUs


def cdb16(opcode: int, lba: int, blocks: int) -> bytes:
    return struct.pack(">BBQIxx", opcode, 0, lba, blocks)


def test_digests_on_every_pdu_of_the_data_path(our_server: OurServer, tmp_path: Path) -> None:
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(tmp_path / "disk1.img"), "size": "1MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    data = os.urandom(128 * 1024)
    with RawInitiator(port) as initiator:
        initiator.enter_full_feature(
            ("InitiatorName", INITIATOR),
            ("SessionType", "Normal"),
            ("TargetName", TARGET),
            ("HeaderDigest", "CRC32C"),
            ("DataDigest", "CRC32C"),
            ("MaxRecvDataSegmentLength", str(SEGMENT)),
            ("InitialR2T", "Yes"),
        )
        assert initiator.digests == (True, True)
        # 16 KiB immediate (up to FirstBurstLength), the rest solicited by R2Ts.
        immediate = 16 * 1024
        write = ScsiCommand(
            write=True,
            itt=1,
            cmdsn=1,
            cdb=cdb16(0x8A, 0, len(data) // BLOCK),
            expected_data_transfer_length=len(data),
            data=data[:immediate],
        )
        initiator.send(write)
        offset = immediate
        while True:
            pdu = initiator.receive()
            if isinstance(pdu, ScsiResponse):
                break
            assert isinstance(pdu, R2T), pdu
            assert pdu.buffer_offset == offset
            chunk = data[offset : offset + pdu.desired_data_transfer_length]
            initiator.send(
                DataOut(final=True, itt=1, ttt=pdu.ttt, buffer_offset=offset, data=chunk)
            )
            offset += len(chunk)
        assert pdu.status == ScsiStatus.GOOD and offset == len(data), pdu

        read = ScsiCommand(
            read=True,
            itt=2,
            cmdsn=2,
            cdb=cdb16(0x88, 0, len(data) // BLOCK),
            expected_data_transfer_length=len(data),
        )
        initiator.send(read)
        received, pieces = b"", 0
        while True:
            pdu = initiator.receive()  # the reader checks both digests of every PDU
            assert isinstance(pdu, DataIn) and len(pdu.data) <= SEGMENT, pdu
            received += bytes(pdu.data)
            pieces += 1
            if pdu.status_present:
                break
        assert pdu.status == ScsiStatus.GOOD
        assert pieces == len(data) // SEGMENT and received == data
