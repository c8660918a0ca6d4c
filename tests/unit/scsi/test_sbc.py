"""Block commands over a sparse file: data round trips, FUA, WRITE SAME with UNMAP,
COMPARE AND WRITE, VERIFY, GET LBA STATUS, mode pages, reservations."""

import struct
from pathlib import Path

import pytest

from isns_server.scsi import (
    FileBackstore,
    LogicalUnit,
    MemoryBackstore,
    ScsiResult,
    ScsiTarget,
    UnitIdentity,
    WouldBlock,
)
from isns_server.scsi.constants import AdditionalSense, ScsiStatus

from . import inline

TARGET = "iqn.2026-11.org.example.test:disk1"
SIZE = 1 << 20
BLOCK = 512
A = "iqn.2026-11.org.example.test:a,i,0x000000000001"
B = "iqn.2026-11.org.example.test:b,i,0x000000000002"
READ_OF_WRITE = {0x0A: 0x08, 0x2A: 0x28, 0xAA: 0xA8, 0x8A: 0x88}  # 6, 10, 12, 16


@pytest.fixture
def target(tmp_path: Path) -> ScsiTarget:
    store = FileBackstore(tmp_path / "lun0.img", SIZE, False, "lun")
    return ScsiTarget({0: LogicalUnit(store, UnitIdentity(TARGET, 1, 0))})


def cdb(*values: int) -> bytes:
    return bytes(values).ljust(16, b"\0")


def rw16(opcode: int, lba: int, blocks: int, flags: int = 0) -> bytes:
    return struct.pack(">BBQIxx", opcode, flags, lba, blocks)


def sense_of(result: ScsiResult) -> tuple[int, int, int]:
    assert result.status == ScsiStatus.CHECK_CONDITION
    return result.sense[2], result.sense[12], result.sense[13]


def test_write_then_read_every_cdb_size(target: ScsiTarget) -> None:
    writes = [
        cdb(0x0A, 0, 0, 8, 2),
        cdb(0x2A, 0, 0, 0, 0, 8, 0, 0, 2),
        cdb(0xAA, 0, 0, 0, 0, 8, 0, 0, 0, 2),
        rw16(0x8A, 8, 2),
    ]
    for number, write in enumerate(writes):
        data = bytes([number + 1]) * 2 * BLOCK
        result = target.execute(0, write, data)
        assert result == ScsiResult(data_out_length=2 * BLOCK)
        read = bytes([READ_OF_WRITE[write[0]]]) + write[1:]
        assert bytes(target.execute(0, read).data) == data


def test_fua_and_synchronize_cache_flush(target: ScsiTarget) -> None:
    assert target.execute(0, rw16(0x8A, 0, 1, flags=0x08), bytes(BLOCK)).status == 0
    assert target.execute(0, cdb(0x35)).status == ScsiStatus.GOOD
    assert sense_of(target.execute(0, cdb(0x35, 0, 0, 0, 0x10, 0))) == (0x05, 0x21, 0x00)


class CountingFlushes(MemoryBackstore):
    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.flushes = 0

    def flush(self) -> None:
        self.flushes += 1


@pytest.mark.parametrize("write_cache", [True, False])
def test_write_same_flushes_only_when_write_through(write_cache: bool) -> None:
    """WRITE SAME has no FUA: bit 3 of its byte 1 is UNMAP, which must not cost an
    fdatasync on a write-back unit (libiscsi's WriteSame*.Unmap send hundreds)."""
    store = CountingFlushes(SIZE)
    target = ScsiTarget({0: LogicalUnit(store, UnitIdentity(TARGET, 1, 0), write_cache)})
    unmap_10 = cdb(0x41, 0x08, 0, 0, 0, 0, 0, 0, 8)
    unmap_16 = struct.pack(">BBQIxx", 0x93, 0x08, 0, 8)
    for same in (unmap_10, unmap_16, struct.pack(">BBQIxx", 0x93, 0, 0, 8)):
        assert target.execute(0, same, bytes(BLOCK)).status == ScsiStatus.GOOD
    assert store.flushes == (0 if write_cache else 3)
    assert target.execute(0, rw16(0x8A, 0, 1, flags=0x08), bytes(BLOCK)).status == 0
    assert store.flushes == (1 if write_cache else 4)  # WRITE (16) with FUA


@pytest.mark.parametrize("sent", [BLOCK, 200, 700])
def test_a_short_data_out_writes_what_was_sent(target: ScsiTarget, sent: int) -> None:
    """GOOD never stands for data dropped: the bytes sent are written, also into the
    middle of a block (as tgtd does); the transport reports the residual."""
    target.execute(0, rw16(0x8A, 0, 2), b"\xff" * 2 * BLOCK)
    result = target.execute(0, rw16(0x8A, 0, 2), bytes(sent))
    assert result.status == ScsiStatus.GOOD and result.data_out_length == 2 * BLOCK
    stored = bytes(target.execute(0, rw16(0x88, 0, 2)).data)
    assert stored == bytes(sent) + b"\xff" * (2 * BLOCK - sent)


def test_a_short_data_out_ors_what_was_sent_and_is_all_or_nothing_atomically(
    target: ScsiTarget,
) -> None:
    target.execute(0, rw16(0x8A, 0, 1), b"\x0f" * BLOCK)
    assert target.execute(0, rw16(0x8B, 0, 1), b"\xf0" * 200).status == ScsiStatus.GOOD
    assert bytes(target.execute(0, rw16(0x88, 0, 1)).data) == b"\xff" * 200 + b"\x0f" * 312
    atomic = struct.pack(">BBQHHxx", 0x9C, 0, 0, 0, 1)  # WRITE ATOMIC (16), one block
    refused = target.execute(0, atomic, bytes(200))
    assert sense_of(refused) == (0x05, 0x0E, 0x03)  # INVALID FIELD IN COMMAND IU
    assert bytes(target.execute(0, rw16(0x88, 0, 1)).data) == b"\xff" * 200 + b"\x0f" * 312
    assert target.execute(0, atomic, bytes(BLOCK)).status == ScsiStatus.GOOD


def test_write_same_with_unmap_deallocates(target: ScsiTarget) -> None:
    target.execute(0, rw16(0x8A, 0, 16), b"\x55" * 16 * BLOCK)
    status = target.execute(0, cdb(0x9E, 0x12, *[0] * 8, 0, 0, 0, 24)).data
    assert status[20] == 0  # mapped
    result = target.execute(0, struct.pack(">BBQIxx", 0x93, 0x08, 0, 16), bytes(BLOCK))
    assert result.status == ScsiStatus.GOOD
    assert bytes(target.execute(0, rw16(0x88, 0, 16)).data) == bytes(16 * BLOCK)
    status = target.execute(0, cdb(0x9E, 0x12, *[0] * 8, 0, 0, 0, 24)).data
    assert status[20] == 1  # deallocated
    wrong = target.execute(0, struct.pack(">BBQIxx", 0x93, 0, 0, 1), bytes(2 * BLOCK))
    assert sense_of(wrong) == (0x05, 0x24, 0x00)  # Data-Out is one block, no more


def test_unmap_parameter_list(target: ScsiTarget) -> None:
    target.execute(0, rw16(0x8A, 8, 8), b"\x01" * 8 * BLOCK)
    data = struct.pack(">HH4xQI4x", 22, 16, 8, 8)
    assert target.execute(0, cdb(0x42, 0, 0, 0, 0, 0, 0, 0, 24), data).status == 0
    assert bytes(target.execute(0, rw16(0x88, 8, 8)).data) == bytes(8 * BLOCK)
    beyond = struct.pack(">HH4xQI4x", 22, 16, SIZE // BLOCK, 1)
    assert sense_of(target.execute(0, cdb(0x42, 0, 0, 0, 0, 0, 0, 0, 24), beyond))[1] == 0x21


def test_get_lba_status_starts_at_the_lba_asked_for(target: ScsiTarget) -> None:
    """Not from the physical block's start; one block unmapped (less than the file
    system's block) reads as zeros but stays mapped."""
    target.execute(0, rw16(0x8A, 0, 24), b"\x01" * 24 * BLOCK)
    one_block = struct.pack(">HH4xQI4x", 22, 16, 8, 1)
    assert target.execute(0, cdb(0x42, 0, 0, 0, 0, 0, 0, 0, 24), one_block).status == 0
    assert bytes(target.execute(0, rw16(0x88, 8, 1)).data) == bytes(BLOCK)
    status = target.execute(0, cdb(0x9E, 0x12, *[0] * 7, 9, 0, 0, 0, 24)).data
    lba, blocks, provisioning = struct.unpack_from(">QIB", status, 8)
    assert (lba, provisioning) == (9, 0) and blocks >= 15  # mapped from LBA 9 on


def test_compare_and_write_and_verify(target: ScsiTarget) -> None:
    target.execute(0, rw16(0x8A, 4, 1), b"A" * BLOCK)
    caw = struct.pack(">BBQxxxBxx", 0x89, 0, 4, 1)
    assert target.execute(0, caw, b"A" * BLOCK + b"B" * BLOCK).status == ScsiStatus.GOOD
    miscompare = target.execute(0, caw, b"A" * BLOCK + b"C" * BLOCK)
    assert sense_of(miscompare) == (0x0E, 0x1D, 0x00)
    assert miscompare.sense[3:7] == b"\0\0\0\0"  # the offset of the first differing byte
    verify = rw16(0x8F, 4, 1, flags=0x02)  # BYTCHK 01b
    assert target.execute(0, verify, b"B" * BLOCK).status == ScsiStatus.GOOD
    expected = bytearray(b"B" * BLOCK)
    expected[100] = 0
    assert struct.unpack(">I", target.execute(0, verify, expected).sense[3:7])[0] == 100


def test_read_only_unit_refuses_writes(tmp_path: Path) -> None:
    store = MemoryBackstore(SIZE, read_only=True)
    target = ScsiTarget({0: LogicalUnit(store, UnitIdentity(TARGET, 1, 0))})
    assert sense_of(target.execute(0, rw16(0x8A, 0, 1), bytes(BLOCK))) == (0x07, 0x27, 0x00)
    mode = target.execute(0, cdb(0x1A, 0, 0x3F, 0, 255)).data
    assert mode[2] & 0x80  # WP in the device-specific parameter


def test_mode_select_switches_the_write_cache(target: ScsiTarget) -> None:
    caching = bytes(target.execute(0, cdb(0x1A, 0x08, 0x08, 0, 255)).data)
    assert caching[4] == 0x08 and caching[6] & 0x04  # write-back by default
    page = bytearray(caching[4:])
    page[2] &= ~0x04
    parameters = bytes(4) + bytes(page)
    result = target.execute(0, cdb(0x15, 0x10, 0, 0, len(parameters)), parameters)
    assert result.status == ScsiStatus.GOOD
    assert not target.execute(0, cdb(0x1A, 0x08, 0x08, 0, 255)).data[6] & 0x04


def test_reserve_6_and_persistent_reservations_between_nexuses(target: ScsiTarget) -> None:
    assert target.execute(0, cdb(0x16), nexus=A).status == ScsiStatus.GOOD
    assert target.execute(0, rw16(0x88, 0, 1), nexus=B).status == ScsiStatus.RESERVATION_CONFLICT
    assert target.execute(0, cdb(0x12, 0, 0, 0, 36), nexus=B).status == ScsiStatus.GOOD
    inline.nexus_lost(target, A)  # RESERVE (6) ends with the nexus
    assert target.execute(0, rw16(0x88, 0, 1), nexus=B).status == ScsiStatus.GOOD

    def prout(action: int, key: int, new: int, kind: int, nexus: str) -> ScsiResult:
        parameters = struct.pack(">QQ8x", key, new)
        command = cdb(0x5F, action, kind, 0, 0, 0, 0, 0, 24)
        return target.execute(0, command, parameters, nexus)

    assert prout(0, 0, 0xA, 0, A).status == ScsiStatus.GOOD  # REGISTER
    assert prout(0, 0, 0xB, 0, B).status == ScsiStatus.GOOD
    assert prout(1, 0xA, 0, 1, A).status == ScsiStatus.GOOD  # RESERVE, WRITE EXCLUSIVE
    write = rw16(0x8A, 0, 1)
    assert target.execute(0, write, bytes(BLOCK), B).status == ScsiStatus.RESERVATION_CONFLICT
    assert target.execute(0, rw16(0x88, 0, 1), nexus=B).status == ScsiStatus.GOOD
    keys = target.execute(0, cdb(0x5E, 0, 0, 0, 0, 0, 0, 0, 255), nexus=B).data
    assert struct.unpack(">IIQQ", keys)[1:] == (16, 0xA, 0xB)
    assert prout(4, 0xB, 0xA, 1, B).status == ScsiStatus.GOOD  # PREEMPT A
    assert target.execute(0, write, bytes(BLOCK), B).status == ScsiStatus.GOOD
    assert prout(0, 0xA, 0, 0, A).status == ScsiStatus.RESERVATION_CONFLICT  # A is gone


def test_lun_reset_raises_a_unit_attention_for_every_nexus(target: ScsiTarget) -> None:
    """SAM-5 6.3.3: the nexus that sent the reset is told too (libiscsi's
    MultipathIO.Reset, and tgtd, expect it); each hears of it once."""
    target.nexuses |= {A, B}
    inline.reset(target, target.units.values(), by=A)
    for nexus in (A, B):
        assert sense_of(target.execute(0, cdb(0x00), nexus=nexus)) == (0x06, 0x29, 0x00)
        assert target.execute(0, cdb(0x00), nexus=nexus).status == ScsiStatus.GOOD
    inline.reset(target, target.units.values(), by=A)
    inline.reset(target, target.units.values(), by=B)  # a second reset adds no second report
    assert sense_of(target.execute(0, cdb(0x00), nexus=A)) == (0x06, 0x29, 0x00)
    assert target.execute(0, cdb(0x00), nexus=A).status == ScsiStatus.GOOD


def test_report_supported_operation_codes_lists_the_dispatch_table(target: ScsiTarget) -> None:
    data = target.execute(0, cdb(0xA3, 0x0C, 0, 0, 0, 0, 0, 0, 0x10, 0)).data
    opcodes = {data[i] for i in range(4, 4 + struct.unpack_from(">I", data)[0], 8)}
    assert {0x28, 0x2A, 0x35, 0x42, 0x5E, 0x89, 0x93} <= opcodes
    one = target.execute(0, cdb(0xA3, 0x0C, 1, 0x28, 0, 0, 0, 0, 1, 0)).data
    assert one[1] & 0x07 == 3 and one[4] == 0x28


def xcopy_parameters(target: ScsiTarget, segments: list[tuple[int, int, int, int, int]]) -> bytes:
    """One identification CSCD naming LUN 0 by its NAA designator, then the segments."""
    naa = target.units[0].state.identity.naa
    cscd = struct.pack(">BBHBBxB20sI", 0xE4, 0, 0, 0x01, 0x03, 8, naa, BLOCK)
    body = b"".join(struct.pack(">BBHHHxxHQQ", 0x02, 0, 24, *s) for s in segments)
    return struct.pack(">BBHxxxxII", 1, 0, len(cscd), len(body), 0) + cscd + body


def test_extended_copy_within_the_unit(target: ScsiTarget) -> None:
    target.execute(0, rw16(0x8A, 0, 4), b"xcopy!!!" * 256)
    parameters = xcopy_parameters(target, [(0, 0, 4, 0, 100)])
    command = struct.pack(">BB8xIxx", 0x83, 0, len(parameters))
    assert target.execute(0, command, parameters, A).status == ScsiStatus.GOOD
    assert bytes(target.execute(0, rw16(0x88, 100, 4)).data) == b"xcopy!!!" * 256
    status = target.execute(0, struct.pack(">BBB7xIxx", 0x84, 0, 1, 32), nexus=A).data
    assert struct.unpack(">IBHBI", status) == (8, 1, 1, 0xF1, 4)  # completed, 4 blocks
    unreachable = xcopy_parameters(target, [(0, 1, 4, 0, 100)])  # no CSCD number 1
    assert sense_of(target.execute(0, command, unreachable, A)) == (0x0A, 0x08, 0x04)


def test_unknown_service_action_points_at_the_field(target: ScsiTarget) -> None:
    result = target.execute(0, cdb(0xA3, 0x0C, 2, 0x28, 0, 0, 0, 0, 1, 0))
    assert sense_of(result) == (0x05, 0x24, 0x00)
    assert result.sense[15] == 0xC0 and result.sense[16:18] == b"\0\2"  # SKSV, C/D, byte 2


def test_write_through_unit_reports_wce_off(tmp_path: Path) -> None:
    store = FileBackstore(tmp_path / "lun.img", SIZE, False, "lun")
    unit = LogicalUnit(store, UnitIdentity(TARGET, 1, 0), write_cache=False)
    caching = ScsiTarget({0: unit}).execute(0, cdb(0x1A, 0x08, 0x08, 0, 255)).data
    assert not caching[6] & 0x04


def test_nowait_refuses_before_anything_changes(target: ScsiTarget) -> None:
    """A command that might wait for the disk raises WouldBlock before a unit attention
    is taken or a block written, so running it again later is exact. A nowait command
    changes nothing at all: one that would report a unit attention is refused too, and
    the unit's owner reports it."""
    unit = target.units[0]
    unit.unit_attention(AdditionalSense.POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED, ["n"])
    with pytest.raises(WouldBlock):
        target.execute(0, rw16(0x8A, 0, 1), b"\xaa" * BLOCK, nexus="n", nowait=True)
    with pytest.raises(WouldBlock):
        target.execute(0, rw16(0x88, 0, 1), nexus="n", nowait=True)
    assert unit.state.unit_attentions["n"]  # still pending
    assert sense_of(target.execute(0, rw16(0x88, 0, 1), nexus="n"))[0] == 0x06
    assert target.execute(0, rw16(0x88, 0, 1), nexus="n", nowait=True).data == bytes(BLOCK)
