"""Data transfers over a real socket: with header and data digests the digests the portal
sends check out (every Data-In, split at the initiator's MaxRecvDataSegmentLength) and
data it receives, immediate and solicited, lands intact; with InitialR2T=No an
unsolicited Data-Out sequence up to FirstBurstLength is taken, the rest asked for with
several R2Ts outstanding."""

import os
import struct
from pathlib import Path

from isns_server.portal.iscsi.pdu import R2T, DataIn, DataOut, ScsiCommand, ScsiResponse
from isns_server.portal.iscsi.text import decode_text
from isns_server.scsi.constants import ScsiStatus

from ..initiator import RawInitiator
from ..processes import OurServer

TARGET = "iqn.2026-11.org.example.test:disk1"
INITIATOR = "iqn.2026-11.org.example.test:host1"
BLOCK = 512
SEGMENT = 4096  # our MaxRecvDataSegmentLength: a 128 KiB read comes in 32 Data-In PDUs


def cdb16(opcode: int, lba: int, blocks: int) -> bytes:
    return struct.pack(">BBQIxx", opcode, 0, lba, blocks)


def start(our_server: OurServer, tmp_path: Path) -> int:
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(tmp_path / "disk1.img"), "size": "1MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    return port


def read_back(initiator: RawInitiator, length: int, cmdsn: int) -> tuple[bytes, int]:
    """The first `length` bytes of the LUN, and how many Data-In PDUs brought them."""
    read = ScsiCommand(
        read=True,
        itt=cmdsn,
        cmdsn=cmdsn,
        cdb=cdb16(0x88, 0, length // BLOCK),
        expected_data_transfer_length=length,
    )
    initiator.send(read)
    received, pieces = b"", 0
    while True:
        pdu = initiator.receive()  # the reader checks the digests, if any, of every PDU
        assert isinstance(pdu, DataIn) and pdu.itt == cmdsn, pdu
        received += bytes(pdu.data)
        pieces += 1
        if pdu.status_present:
            assert pdu.status == ScsiStatus.GOOD
            return received, pieces


def test_digests_on_every_pdu_of_the_data_path(our_server: OurServer, tmp_path: Path) -> None:
    port = start(our_server, tmp_path)
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

        received, pieces = read_back(initiator, len(data), cmdsn=2)
        assert pieces == len(data) // SEGMENT and received == data


def test_unsolicited_data_then_several_r2ts(our_server: OurServer, tmp_path: Path) -> None:
    port = start(our_server, tmp_path)
    data = os.urandom(256 * 1024)
    first_burst, max_burst = 16 * 1024, 32 * 1024
    with RawInitiator(port) as initiator:
        response = initiator.enter_full_feature(
            ("InitiatorName", INITIATOR),
            ("SessionType", "Normal"),
            ("TargetName", TARGET),
            ("InitialR2T", "No"),
            ("ImmediateData", "No"),
            ("FirstBurstLength", str(first_burst)),
            ("MaxBurstLength", str(max_burst)),
            ("MaxOutstandingR2T", "4"),
        )
        assert ("MaxOutstandingR2T", "4") in decode_text(response.data)
        write = ScsiCommand(
            write=True,
            final=False,  # 10.3.1: unsolicited Data-Out PDUs follow
            itt=1,
            cmdsn=1,
            cdb=cdb16(0x8A, 0, len(data) // BLOCK),
            expected_data_transfer_length=len(data),
        )
        initiator.send(write)
        for datasn, offset in enumerate(range(0, first_burst, 8192)):  # TTT 0xffffffff
            chunk = data[offset : offset + 8192]
            last = offset + len(chunk) == first_burst
            initiator.send(
                DataOut(final=last, itt=1, datasn=datasn, buffer_offset=offset, data=chunk)
            )
        outstanding: list[R2T] = []
        offset = first_burst
        while True:
            pdu = initiator.receive()
            if isinstance(pdu, ScsiResponse):
                break
            assert isinstance(pdu, R2T), pdu
            outstanding.append(pdu)
            if len(outstanding) < 4 and pdu.buffer_offset + max_burst < len(data):
                continue  # the target asks for up to four bursts at once
            for r2t in outstanding:  # answered in offset order (DataSequenceInOrder)
                assert r2t.buffer_offset == offset
                chunk = data[offset : offset + r2t.desired_data_transfer_length]
                initiator.send(
                    DataOut(final=True, itt=1, ttt=r2t.ttt, buffer_offset=offset, data=chunk)
                )
                offset += len(chunk)
            outstanding = []
        assert pdu.status == ScsiStatus.GOOD and offset == len(data), pdu
        received, _ = read_back(initiator, len(data), cmdsn=2)
        assert received == data
