"""The minimal SCSI layer: CDB in, status/sense/data out (SPC-4, SBC-3)."""

import os
import struct
import threading
from pathlib import Path
from typing import cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isns_server.scsi import (
    Backstore,
    FileBackstore,
    LogicalUnit,
    MemoryBackstore,
    ScsiResult,
    ScsiTarget,
    UnitIdentity,
    decode_lun,
    encode_lun,
)
from isns_server.scsi.constants import ScsiStatus

from . import inline

TARGET = "iqn.2026-11.org.example.test:disk1"
SIZE = 8 << 20


@pytest.fixture
def target(tmp_path: Path) -> ScsiTarget:
    store = FileBackstore(tmp_path / "lun0.img", SIZE, False, "targets[0].luns[0]")
    return ScsiTarget({0: LogicalUnit(store, UnitIdentity(TARGET, 1, 0))})


def cdb(*values: int) -> bytes:
    return bytes(values).ljust(16, b"\0")


def lun_field(lun: int) -> int:
    return int.from_bytes(encode_lun(lun), "big")


def sense_of(result: ScsiResult) -> tuple[int, int, int]:
    """(sense key, ASC, ASCQ) of fixed-format sense data."""
    assert result.status == ScsiStatus.CHECK_CONDITION
    assert result.sense[0] == 0x70 and len(result.sense) == 18
    return result.sense[2], result.sense[12], result.sense[13]


ILLEGAL_OPCODE = (0x05, 0x20, 0x00)
INVALID_FIELD = (0x05, 0x24, 0x00)
LBA_OUT_OF_RANGE = (0x05, 0x21, 0x00)
NO_SUCH_LUN = (0x05, 0x25, 0x00)


def test_standard_inquiry(target: ScsiTarget) -> None:
    result = target.execute(0, cdb(0x12, 0, 0, 0, 255))
    data = result.data
    assert result.status == ScsiStatus.GOOD and len(data) == 96
    assert data[0] == 0x00 and data[2] == 0x06 and data[3] == 0x12 and data[4] == 91
    assert data[8:16] == b"ISNSSRV " and data[16:32] == b"PORTAL DISK     "
    assert struct.unpack_from(">4H", data, 58) == (0x00A0, 0x0960, 0x0460, 0x04C0)
    assert target.execute(0, cdb(0x12, 0, 0, 0, 36)).data == data[:36]  # allocation length


def test_vpd_pages(target: ScsiTarget) -> None:
    supported = target.execute(0, cdb(0x12, 1, 0x00, 0, 255)).data
    assert supported == bytes([0, 0x00, 0, 7, 0x00, 0x80, 0x83, 0x8F, 0xB0, 0xB1, 0xB2])
    serial = bytes(target.execute(0, cdb(0x12, 1, 0x80, 0, 255)).data)
    assert serial[1] == 0x80 and serial[3] == 16 and serial[4:].isalnum()
    assert serial[4:].decode() == UnitIdentity(TARGET, 1, 0).serial  # name and LUN only
    identification = bytes(target.execute(0, cdb(0x12, 1, 0x83, 0, 255)).data)
    length = struct.unpack_from(">H", identification, 2)[0]
    assert len(identification) == 4 + length
    descriptors = []
    position = 4
    while position < len(identification):
        header = identification[position : position + 4]
        descriptors.append(
            (header[0], header[1], identification[position + 4 : position + 4 + header[3]])
        )
        position += 4 + header[3]
    naa, vendor, port, port_name, device = descriptors
    assert naa[1] == 0x03 and naa[2][0] >> 4 == 3 and len(naa[2]) == 8
    assert vendor[2] == b"ISNSSRV " + serial[4:]
    assert port == (0x51, 0x94, b"\0\0\0\1")  # iSCSI, PIV, target port, relative port 1
    assert port_name[2].rstrip(b"\0") == f"{TARGET},t,0x0001".encode()
    assert device[1] == 0xA8 and device[2].rstrip(b"\0") == TARGET.encode()
    assert all(len(d[2]) % 4 == 0 for d in (port_name, device))


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (cdb(0x12, 0, 0x80, 0, 255), INVALID_FIELD),  # a page code without EVPD
        (cdb(0x12, 1, 0xB3, 0, 255), INVALID_FIELD),  # a page we do not have
        (cdb(0x03, 1, 0, 0, 18), INVALID_FIELD),  # descriptor-format sense
        (cdb(0x9E, 0x11, *[0] * 8, 0, 0, 0, 32), INVALID_FIELD),  # another service action
        (cdb(0xA0, 0, 7, 0, 0, 0, 0, 0, 1, 0), INVALID_FIELD),  # unknown SELECT REPORT
        (cdb(0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 8), INVALID_FIELD),  # allocation under 16
        (cdb(0x28, 0x20, 0, 0, 0, 0, 0, 0, 1, 0), INVALID_FIELD),  # RDPROTECT: no PI here
        (cdb(0x28, 0, 0xFF, 0, 0, 0, 0, 0, 1, 0), LBA_OUT_OF_RANGE),
        (cdb(0x2A, 0, 0, 0, 0x40, 0, 0, 0, 1, 0), LBA_OUT_OF_RANGE),
        (cdb(0x5E, 0x1F, *[0] * 5, 0, 8), INVALID_FIELD),  # unknown service action
        (cdb(0xFF), ILLEGAL_OPCODE),
    ],
)
def test_check_conditions(target: ScsiTarget, command: bytes, expected: tuple[int, ...]) -> None:
    assert sense_of(target.execute(0, command)) == expected


def test_capacity_and_unit_ready(target: ScsiTarget) -> None:
    blocks = SIZE // 512
    assert target.execute(0, cdb(0x00)) == ScsiResult()
    assert target.execute(0, cdb(0x25)).data == struct.pack(">II", blocks - 1, 512)
    capacity = target.execute(0, cdb(0x9E, 0x10, *[0] * 8, 0, 0, 0, 32)).data
    # 512-byte physical blocks; LBPME and LBPRZ: a sparse file is thin provisioned
    assert capacity == struct.pack(">QIBBH", blocks - 1, 512, 0, 0, 0xC000) + bytes(16)
    assert len(target.execute(0, cdb(0x9E, 0x10, *[0] * 8, 0, 0, 0, 12)).data) == 12


@pytest.mark.parametrize(("physical", "exponent", "granularity"), [(4096, 3, 8), (16384, 5, 32)])
def test_physical_block_size_is_reported_and_aligned_to(
    tmp_path: Path, physical: int, exponent: int, granularity: int
) -> None:
    store = FileBackstore(tmp_path / "lun0.img", SIZE, False, "targets[0].luns[0]")
    unit = LogicalUnit(store, UnitIdentity(TARGET, 1, 0), physical_block_size=physical)
    target = ScsiTarget({0: unit})
    capacity = target.execute(0, cdb(0x9E, 0x10, *[0] * 8, 0, 0, 0, 32)).data
    assert capacity[8:12] == struct.pack(">I", 512) and capacity[13] == exponent
    limits = target.execute(0, cdb(0x12, 1, 0xB0, 0, 255)).data
    optimal_transfer, optimal_unmap = struct.unpack_from(">H", limits, 6)[0], limits[28:32]
    assert optimal_transfer == granularity
    assert optimal_unmap == struct.pack(">I", granularity)


@pytest.mark.parametrize("physical", [0, 1000, 256, 512 << 16])
def test_a_physical_block_size_that_is_not_512_times_a_power_of_two_is_refused(
    tmp_path: Path, physical: int
) -> None:
    store = FileBackstore(tmp_path / "lun0.img", SIZE, False, "targets[0].luns[0]")
    with pytest.raises(ValueError, match="physical block size"):
        LogicalUnit(store, UnitIdentity(TARGET, 1, 0), physical_block_size=physical)


def test_request_sense_reports_no_sense(target: ScsiTarget) -> None:
    result = target.execute(0, cdb(0x03, 0, 0, 0, 252))
    assert result.status == ScsiStatus.GOOD and result.data[0] == 0x70 and result.data[2] == 0


def test_report_luns_lists_every_unit(tmp_path: Path) -> None:
    units = {
        lun: LogicalUnit(
            FileBackstore(tmp_path / f"{lun}.img", 4096, False, f"lun {lun}"),
            UnitIdentity(TARGET, 1, lun),
        )
        for lun in (300, 0, 7)
    }
    target = ScsiTarget(units)
    data = target.execute(lun_field(5), cdb(0xA0, 0, 0, 0, 0, 0, 0, 0, 1, 0)).data
    assert struct.unpack_from(">I", data)[0] == 24
    assert [data[i : i + 8] for i in range(8, 32, 8)] == [encode_lun(n) for n in (0, 7, 300)]
    assert encode_lun(300) == bytes([0x41, 0x2C]) + bytes(6)  # flat space addressing


def test_a_lun_without_a_unit(target: ScsiTarget) -> None:
    absent = lun_field(4)
    inquiry = target.execute(absent, cdb(0x12, 0, 0, 0, 36))
    assert inquiry.status == ScsiStatus.GOOD and inquiry.data[0] == 0x7F
    assert sense_of(target.execute(absent, cdb(0x12, 1, 0x80, 0, 255))) == NO_SUCH_LUN
    assert sense_of(target.execute(absent, cdb(0x00))) == NO_SUCH_LUN
    sense = target.execute(absent, cdb(0x03, 0, 0, 0, 18))
    assert sense.status == ScsiStatus.GOOD and sense.data[12] == 0x25  # reported as data
    assert sense_of(target.execute(1 << 63, cdb(0x00))) == NO_SUCH_LUN  # not addressable


@given(st.integers(0, 16383))
def test_lun_addressing_round_trips(lun: int) -> None:
    assert decode_lun(lun_field(lun)) == lun


class SizedOnly:
    """A backstore with a size and nothing else: all these commands need."""

    size = SIZE
    read_only = False

    def close(self) -> None:
        pass


@given(st.sampled_from([0, lun_field(1), 2**64 - 1]), st.binary(min_size=16, max_size=32))
def test_any_cdb_gets_a_status(lun: int, command: bytes) -> None:
    sized_only = cast(Backstore, SizedOnly())  # stands in for one: only its size is read
    target = ScsiTarget({0: LogicalUnit(sized_only, UnitIdentity(TARGET, 1, 0))})
    result = target.execute(lun, command)
    assert result.status in (ScsiStatus.GOOD, ScsiStatus.CHECK_CONDITION)


def test_a_grown_lun_reports_capacity_data_has_changed_to_every_nexus(tmp_path: Path) -> None:
    path = tmp_path / "lun0.img"
    target = ScsiTarget(
        {0: LogicalUnit(FileBackstore(path, SIZE, False, "lun"), UnitIdentity(TARGET, 1, 0))}
    )
    nexuses = ["iqn.a,i,0x400000000001", "iqn.b,i,0x400000000002"]
    target.nexuses.update(nexuses)
    assert inline.rescan(target) == []
    os.truncate(path, 2 * SIZE)
    assert inline.rescan(target) == [(0, SIZE, 2 * SIZE)]
    assert inline.rescan(target) == []  # reported once
    read_capacity_16 = cdb(0x9E, 0x10, *[0] * 8, 0, 0, 0, 32)
    for nexus in nexuses:
        assert sense_of(target.execute(0, read_capacity_16, nexus=nexus)) == (0x06, 0x2A, 0x09)
        result = target.execute(0, read_capacity_16, nexus=nexus)
        assert result.status == ScsiStatus.GOOD
        assert struct.unpack_from(">Q", result.data) == (2 * SIZE // 512 - 1,)


def test_a_unit_state_changed_by_a_second_thread_fails_the_owner_check() -> None:
    """Unit state has no locks: the thread that first changes it owns it (the tests turn
    the check on in conftest.py)."""
    lu = LogicalUnit(MemoryBackstore(SIZE), UnitIdentity("iqn.2026-11.org.example:t", 1, 0))
    lu.reset(["a"])
    failures: list[BaseException] = []

    def elsewhere() -> None:
        try:
            lu.nexus_lost("a")
        except AssertionError as error:
            failures.append(error)

    thread = threading.Thread(target=elsewhere, name="not the owner")
    thread.start()
    thread.join()
    assert len(failures) == 1 and "'not the owner', not by its owner" in str(failures[0])
    lu.nexus_lost("a")  # the owner still may
