"""LUNs with `removable: true`: RMB, PREVENT ALLOW MEDIUM REMOVAL per I_T nexus (SPC-4
6.13), eject and load with START STOP UNIT (SBC-3 5.25), and what an ejected medium
answers. Non-removable LUNs keep answering as a fixed disk."""

import struct
from pathlib import Path

import pytest

from isns_server.config.schema import Lun, Target
from isns_server.portal.local_targets import close_local_targets, open_local_targets
from isns_server.scsi import (
    LogicalUnit,
    MemoryBackstore,
    ScsiResult,
    ScsiTarget,
    UnitIdentity,
)
from isns_server.scsi.constants import ScsiStatus

from ..scsi import inline

TARGET = "iqn.2026-11.org.example.test:cdrom"
BLOCK = 512
A = "iqn.2026-11.org.example.test:a,i,0x000000000001"
B = "iqn.2026-11.org.example.test:b,i,0x000000000002"
MEDIUM_NOT_PRESENT = (0x02, 0x3A, 0x00)
REMOVAL_PREVENTED = (0x05, 0x53, 0x02)
INVALID_FIELD = (0x05, 0x24, 0x00)


def cdb(*values: int) -> bytes:
    return bytes(values).ljust(16, b"\0")


def make_target(removable: bool) -> ScsiTarget:
    unit = LogicalUnit(MemoryBackstore(64 * BLOCK), UnitIdentity(TARGET, 1, 0), removable=removable)
    return ScsiTarget({0: unit})


@pytest.fixture
def target() -> ScsiTarget:
    return make_target(removable=True)


def sense_of(result: ScsiResult) -> tuple[int, int, int]:
    assert result.status == ScsiStatus.CHECK_CONDITION
    return result.sense[2], result.sense[12], result.sense[13]


def prevent(target: ScsiTarget, nexus: str, on: bool = True) -> None:
    assert target.execute(0, cdb(0x1E, 0, 0, 0, int(on)), nexus=nexus) == ScsiResult()


def eject(target: ScsiTarget, nexus: str = A) -> ScsiResult:
    return target.execute(0, cdb(0x1B, 0, 0, 0, 0x02), nexus=nexus)  # LOEJ=1, START=0


def load(target: ScsiTarget, nexus: str = A) -> ScsiResult:
    return target.execute(0, cdb(0x1B, 0, 0, 0, 0x03), nexus=nexus)  # LOEJ=1, START=1


def unit_ready(target: ScsiTarget, nexus: str = A) -> ScsiResult:
    return target.execute(0, cdb(0x00), nexus=nexus)


def test_inquiry_sets_rmb_only_for_a_removable_lun(target: ScsiTarget) -> None:
    assert target.execute(0, cdb(0x12, 0, 0, 0, 36)).data[1] == 0x80
    assert make_target(removable=False).execute(0, cdb(0x12, 0, 0, 0, 36)).data[1] == 0


def test_the_configuration_declares_which_luns_are_removable(tmp_path: Path) -> None:
    luns = (
        Lun(0, tmp_path / "disk.img", 1 << 20),
        Lun(1, tmp_path / "cd.iso", 1 << 20, removable=True),
    )
    targets = open_local_targets([Target(TARGET, luns=luns)], 1)
    units = targets[TARGET].scsi.units
    assert not units[0].state.removable and units[1].state.removable
    close_local_targets(targets)


def test_a_fixed_lun_ignores_eject_and_prevention_as_before() -> None:
    target = make_target(removable=False)
    prevent(target, A)
    assert eject(target) == ScsiResult()
    assert unit_ready(target) == ScsiResult()
    assert sense_of(target.execute(0, cdb(0x1B, 0, 0, 0, 0x20))) == INVALID_FIELD  # IDLE


def test_eject_is_refused_while_prevented_then_done_once_allowed(target: ScsiTarget) -> None:
    prevent(target, A)
    assert sense_of(eject(target)) == REMOVAL_PREVENTED
    assert unit_ready(target) == ScsiResult()
    prevent(target, A, on=False)
    assert eject(target) == ScsiResult()
    assert sense_of(unit_ready(target)) == MEDIUM_NOT_PRESENT
    assert eject(target) == ScsiResult()  # already out


def test_prevention_holds_while_any_nexus_keeps_it(target: ScsiTarget) -> None:
    prevent(target, A)
    prevent(target, B)
    prevent(target, A, on=False)
    assert sense_of(eject(target, A)) == REMOVAL_PREVENTED  # B still prevents
    prevent(target, B, on=False)
    assert eject(target, A) == ScsiResult()


def test_loading_is_refused_while_prevented_and_gives_the_medium_back(
    target: ScsiTarget,
) -> None:
    data = b"iso image block " * 32
    write = struct.pack(">BBQIxx", 0x8A, 0, 3, 1)
    assert target.execute(0, write, data, A).status == ScsiStatus.GOOD
    assert eject(target) == ScsiResult()
    prevent(target, A)  # allowed without a medium
    assert sense_of(load(target)) == REMOVAL_PREVENTED
    prevent(target, A, on=False)
    assert load(target) == ScsiResult()
    assert unit_ready(target) == ScsiResult()
    read = struct.pack(">BBQIxx", 0x88, 0, 3, 1)
    assert bytes(target.execute(0, read, nexus=A).data) == data


@pytest.mark.parametrize(
    ("command", "data_out"),
    [
        (cdb(0x00), b""),  # TEST UNIT READY
        (cdb(0x28, 0, 0, 0, 0, 0, 0, 0, 1), b""),  # READ (10)
        (cdb(0x2A, 0, 0, 0, 0, 0, 0, 0, 1), bytes(BLOCK)),  # WRITE (10)
        (cdb(0x25), b""),  # READ CAPACITY (10)
        (cdb(0x9E, 0x10, *[0] * 8, 0, 0, 0, 32), b""),  # READ CAPACITY (16)
        (cdb(0x2F, 0, 0, 0, 0, 0, 0, 0, 1), b""),  # VERIFY (10)
        (cdb(0x35), b""),  # SYNCHRONIZE CACHE (10)
        (cdb(0x34, 0, 0, 0, 0, 0, 0, 0, 1), b""),  # PRE-FETCH (10)
        (cdb(0x42, 0, 0, 0, 0, 0, 0, 0, 24), struct.pack(">HH4xQI4x", 22, 16, 0, 1)),  # UNMAP
        (cdb(0x41, 0, 0, 0, 0, 0, 0, 0, 1), bytes(BLOCK)),  # WRITE SAME (10)
        (cdb(0x9E, 0x12, *[0] * 8, 0, 0, 0, 24), b""),  # GET LBA STATUS
        (cdb(0x89, 0, *[0] * 11, 1), bytes(2 * BLOCK)),  # COMPARE AND WRITE
    ],
)
def test_an_ejected_medium_answers_medium_not_present(
    target: ScsiTarget, command: bytes, data_out: bytes
) -> None:
    assert eject(target) == ScsiResult()
    assert sense_of(target.execute(0, command, data_out, A)) == MEDIUM_NOT_PRESENT


@pytest.mark.parametrize(
    "command",
    [
        cdb(0x12, 0, 0, 0, 36),  # INQUIRY
        cdb(0xA0, 0, 0, 0, 0, 0, 0, 0, 0, 16),  # REPORT LUNS
        cdb(0x03, 0, 0, 0, 18),  # REQUEST SENSE
        cdb(0x1A, 0, 0x3F, 0, 255),  # MODE SENSE (6)
        cdb(0x1E),  # PREVENT ALLOW MEDIUM REMOVAL (allow)
        cdb(0x1B),  # START STOP UNIT without LOEJ
    ],
)
def test_an_ejected_medium_still_answers_what_needs_no_medium(
    target: ScsiTarget, command: bytes
) -> None:
    assert eject(target) == ScsiResult()
    assert target.execute(0, command, nexus=A).status == ScsiStatus.GOOD


def test_start_without_loej_or_with_a_power_condition_keeps_the_medium(
    target: ScsiTarget,
) -> None:
    for flags in (0x00, 0x01, 0x12, 0x22, 0xF2):  # START only; power conditions with LOEJ
        assert target.execute(0, cdb(0x1B, 0, 0, 0, flags), nexus=A) == ScsiResult()
        assert unit_ready(target) == ScsiResult()


def test_a_lost_nexus_and_a_reset_end_prevention(target: ScsiTarget) -> None:
    target.nexuses |= {A, B}
    prevent(target, A)
    inline.nexus_lost(target, A)
    assert eject(target, B) == ScsiResult()
    assert load(target, B) == ScsiResult()
    prevent(target, A)
    prevent(target, B)
    inline.reset(target, target.units.values(), by=A)  # every nexus's prevention ends
    assert sense_of(unit_ready(target, A))[0] == 0x06  # A is told of its own reset
    assert eject(target, A) == ScsiResult()
    assert sense_of(unit_ready(target, B))[0] == 0x06  # B first hears of the reset
    assert sense_of(unit_ready(target, B)) == MEDIUM_NOT_PRESENT
