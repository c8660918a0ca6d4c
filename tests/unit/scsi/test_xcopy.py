"""EXTENDED COPY between the logical units of one target (SPC-4 6.4)."""

import struct

import pytest

from isns_server.scsi import (
    LogicalUnit,
    MemoryBackstore,
    ScsiResult,
    ScsiTarget,
    UnitIdentity,
)
from isns_server.scsi.constants import ScsiStatus

TARGET = "iqn.2026-11.org.example.test:disk1"
BLOCK = 512
A = "iqn.2026-11.org.example.test:a,i,0x000000000001"
B = "iqn.2026-11.org.example.test:b,i,0x000000000002"
NAA = 0x03


class CountingBackstore(MemoryBackstore):
    flushes = 0

    def flush(self) -> None:
        self.flushes += 1


def unit(lun: int, blocks: int = 64, read_only: bool = False) -> LogicalUnit:
    return LogicalUnit(MemoryBackstore(blocks * BLOCK, read_only), UnitIdentity(TARGET, 1, lun))


def lun_field(lun: int) -> int:
    return lun << 48  # single level, peripheral addressing


def write(target: ScsiTarget, lun: int, lba: int, data: bytes, nexus: str = A) -> None:
    command = struct.pack(">BBQIxx", 0x8A, 0, lba, len(data) // BLOCK)
    assert target.execute(lun_field(lun), command, data, nexus).status == ScsiStatus.GOOD


def read(target: ScsiTarget, lun: int, lba: int, blocks: int) -> bytes:
    command = struct.pack(">BBQIxx", 0x88, 0, lba, blocks)
    return bytes(target.execute(lun_field(lun), command).data)


def cscd(designator: bytes) -> bytes:
    """An identification CSCD descriptor (E4h) for a block device of 512-byte blocks."""
    return struct.pack(">BBHBBxB20sI", 0xE4, 0, 0, 0x01, NAA, len(designator), designator, BLOCK)


def xcopy(
    target: ScsiTarget,
    lun: int,
    cscds: list[bytes],
    segments: list[tuple[int, int, int, int, int]],
    nexus: str = A,
) -> ScsiResult:
    """EXTENDED COPY (LID1) sent to `lun`; segments: (source CSCD, destination CSCD,
    blocks, source LBA, destination LBA)."""
    descriptors = b"".join(cscds)
    body = b"".join(struct.pack(">BBHHHxxHQQ", 0x02, 0, 24, *s) for s in segments)
    parameters = struct.pack(">BBHxxxxII", 1, 0, len(descriptors), len(body), 0)
    parameters += descriptors + body
    command = struct.pack(">BB8xIxx", 0x83, 0, len(parameters))
    return target.execute(lun_field(lun), command, parameters, nexus)


def naa(target: ScsiTarget, lun: int) -> bytes:
    return target.units[lun].state.identity.naa


def sense_of(result: ScsiResult) -> tuple[int, int, int]:
    assert result.status == ScsiStatus.CHECK_CONDITION
    return result.sense[2], result.sense[12], result.sense[13]


@pytest.fixture
def target() -> ScsiTarget:
    return ScsiTarget({0: unit(0), 1: unit(1)})


def test_copy_from_lun_0_to_lun_1(target: ScsiTarget) -> None:
    write(target, 0, 0, b"lun0 -> " * 256)
    cscds = [cscd(naa(target, 0)), cscd(naa(target, 1))]
    assert xcopy(target, 0, cscds, [(0, 1, 4, 0, 10)]).status == ScsiStatus.GOOD
    assert read(target, 1, 10, 4) == b"lun0 -> " * 256
    assert read(target, 0, 10, 4) == bytes(4 * BLOCK)  # the source unit is not written


def test_a_unit_can_copy_between_two_others(target: ScsiTarget) -> None:
    """The unit receiving the command need not be source or destination."""
    target = ScsiTarget({**target.units, 2: unit(2)})
    write(target, 1, 5, b"1" * BLOCK)
    cscds = [cscd(naa(target, 2)), cscd(naa(target, 1))]
    assert xcopy(target, 0, cscds, [(1, 0, 1, 5, 7)]).status == ScsiStatus.GOOD
    assert read(target, 2, 7, 1) == b"1" * BLOCK


def test_a_unit_of_another_target_is_unreachable(target: ScsiTarget) -> None:
    stranger = UnitIdentity("iqn.2026-11.org.example.test:disk2", 1, 1).naa
    for cscds in ([cscd(naa(target, 0)), cscd(stranger)], [cscd(naa(target, 0))]):
        result = xcopy(target, 0, cscds, [(0, 1, 1, 0, 0)])
        assert sense_of(result) == (0x0A, 0x08, 0x04)  # COPY ABORTED, UNREACHABLE


def test_every_segment_is_checked_against_its_own_units_before_copying() -> None:
    target = ScsiTarget({0: unit(0, blocks=64), 1: unit(1, blocks=8)})
    write(target, 0, 0, b"x" * BLOCK)
    cscds = [cscd(naa(target, 0)), cscd(naa(target, 1))]
    past_the_end = [(0, 0, 1, 0, 20), (0, 1, 1, 0, 8)]  # the first fits, the second not
    assert sense_of(xcopy(target, 0, cscds, past_the_end))[0] == 0x0A  # COPY ABORTED
    assert read(target, 0, 20, 1) == bytes(BLOCK)  # nothing copied


def test_only_the_destination_must_be_writable() -> None:
    target = ScsiTarget({0: unit(0, read_only=True), 1: unit(1)})
    cscds = [cscd(naa(target, 0)), cscd(naa(target, 1))]
    assert xcopy(target, 0, cscds, [(0, 1, 1, 0, 0)]).status == ScsiStatus.GOOD
    assert sense_of(xcopy(target, 1, cscds, [(1, 0, 1, 0, 0)])) == (0x07, 0x27, 0x00)


def test_an_ejected_medium_is_unreachable() -> None:
    removable = LogicalUnit(MemoryBackstore(64 * BLOCK), UnitIdentity(TARGET, 1, 1), removable=True)
    target = ScsiTarget({0: unit(0), 1: removable})
    eject = bytes([0x1B, 0, 0, 0, 0x02, 0])  # START STOP UNIT, LOEJ=1 START=0
    assert target.execute(lun_field(1), eject).status == ScsiStatus.GOOD
    cscds = [cscd(naa(target, 0)), cscd(naa(target, 1))]
    for segment in ((0, 1, 1, 0, 0), (1, 0, 1, 0, 0)):
        assert sense_of(xcopy(target, 0, cscds, [segment])) == (0x0A, 0x08, 0x04)


def test_the_destination_reservation_applies(target: ScsiTarget) -> None:
    assert target.execute(lun_field(1), bytes([0x16, 0, 0, 0, 0, 0]), nexus=B).status == 0
    write(target, 0, 0, b"x" * BLOCK)
    cscds = [cscd(naa(target, 0)), cscd(naa(target, 1))]
    result = xcopy(target, 0, cscds, [(0, 1, 1, 0, 0)], nexus=A)
    assert result.status == ScsiStatus.RESERVATION_CONFLICT
    assert xcopy(target, 0, cscds, [(0, 1, 1, 0, 0)], nexus=B).status == ScsiStatus.GOOD


def test_a_write_through_destination_is_flushed_once() -> None:
    stores = [CountingBackstore(64 * BLOCK), CountingBackstore(64 * BLOCK)]
    units = {
        lun: LogicalUnit(store, UnitIdentity(TARGET, 1, lun), write_cache=lun == 0)
        for lun, store in enumerate(stores)
    }
    target = ScsiTarget(units)
    cscds = [cscd(naa(target, 0)), cscd(naa(target, 1))]
    assert xcopy(target, 0, cscds, [(0, 1, 1, 0, 0), (0, 1, 1, 1, 1)]).status == 0
    assert [store.flushes for store in stores] == [0, 1]
