"""Persistent reservations that persist through power loss (APTPL, SPC-4 5.14.5): saved
while active, cleared when a registration turns APTPL off, reported by REPORT
CAPABILITIES, and loaded again when the logical unit is rebuilt."""

import json
import struct
from pathlib import Path

import pytest

from isns_server.config.schema import Lun, Target
from isns_server.portal.local_targets import close_local_targets, open_local_targets
from isns_server.scsi import (
    BackstoreError,
    LogicalUnit,
    MemoryBackstore,
    ScsiResult,
    ScsiTarget,
    UnitIdentity,
)
from isns_server.scsi.constants import ScsiStatus
from isns_server.scsi.reservation_file import ReservationFile
from isns_server.scsi.reservations import PersistentReservations, ReservationType

TARGET = "iqn.2026-11.org.example.test:disk1"
A = "iqn.2026-11.org.example.test:a,i,0x400000000001"
B = "iqn.2026-11.org.example.test:b,i,0x400000000002"
REGISTER, RESERVE = 0, 1
WRITE_EXCLUSIVE = 1
APTPL = 0x01


class MemoryReservations:
    """A ReservationStore that keeps what it is given: what a restart would load."""

    def __init__(self) -> None:
        self.saved: dict[str, object] | None = None
        self.failing = False

    def load(self) -> PersistentReservations:
        if self.saved is None:
            return PersistentReservations()
        return PersistentReservations.from_record(self.saved)

    def save(self, state: PersistentReservations) -> None:
        if self.failing:
            raise OSError(28, "No space left on device")
        self.saved = state.record()

    def clear(self) -> None:
        self.saved = None


def cdb(*values: int) -> bytes:
    return bytes(values).ljust(16, b"\0")


def prout(
    target: ScsiTarget, action: int, key: int, new: int, nexus: str, kind: int = 0, flags: int = 0
) -> ScsiResult:
    parameters = struct.pack(">QQ4xB3x", key, new, flags)
    return target.execute(0, cdb(0x5F, action, kind, 0, 0, 0, 0, 0, 24), parameters, nexus)


def capabilities(target: ScsiTarget) -> tuple[bool, bool]:
    """(PTPL_C, PTPL_A) of REPORT CAPABILITIES."""
    data = target.execute(0, cdb(0x5E, 2, 0, 0, 0, 0, 0, 0, 8)).data
    return bool(data[2] & 0x01), bool(data[3] & 0x01)


def read_keys(target: ScsiTarget) -> list[int]:
    data = target.execute(0, cdb(0x5E, 0, 0, 0, 0, 0, 0, 0, 255)).data
    (length,) = struct.unpack_from(">I", data, 4)
    return [key for (key,) in struct.iter_unpack(">Q", data[8 : 8 + length])]


def sense_of(result: ScsiResult) -> tuple[int, int, int]:
    assert result.status == ScsiStatus.CHECK_CONDITION
    return result.sense[2], result.sense[12], result.sense[13]


def unit_target(store: MemoryReservations | None) -> ScsiTarget:
    unit = LogicalUnit(MemoryBackstore(1 << 20), UnitIdentity(TARGET, 1, 0), True, store)
    return ScsiTarget({0: unit})


def test_without_a_store_aptpl_is_refused_and_not_reported() -> None:
    target = unit_target(None)
    assert capabilities(target) == (False, False)
    result = prout(target, REGISTER, 0, 0xA, A, flags=APTPL)
    assert sense_of(result) == (0x05, 0x26, 0x00)  # INVALID FIELD IN PARAMETER LIST
    assert read_keys(target) == []


def test_aptpl_saves_every_change_until_a_registration_clears_it() -> None:
    store = MemoryReservations()
    target = unit_target(store)
    assert capabilities(target) == (True, False)
    assert prout(target, REGISTER, 0, 0xA, A).status == ScsiStatus.GOOD
    assert store.saved is None  # APTPL off: nothing to keep
    assert prout(target, REGISTER, 0, 0xB, B, flags=APTPL).status == ScsiStatus.GOOD
    assert capabilities(target) == (True, True)
    assert prout(target, RESERVE, 0xA, 0, A, kind=WRITE_EXCLUSIVE).status == ScsiStatus.GOOD
    assert store.saved == {
        "registrations": [{"nexus": A, "key": 0xA}, {"nexus": B, "key": 0xB}],
        "reservation": {"holder": A, "type": ReservationType.WRITE_EXCLUSIVE},
    }
    restarted = store.load()
    assert (restarted.keys, restarted.holder, restarted.type) == (
        {A: 0xA, B: 0xB},
        A,
        ReservationType.WRITE_EXCLUSIVE,
    )
    assert restarted.generation == 0 and restarted.aptpl  # a power on zeroes PRgeneration
    assert prout(target, REGISTER, 0xA, 0xC, A).status == ScsiStatus.GOOD  # APTPL=0
    assert store.saved is None and capabilities(target) == (True, False)


def test_a_state_that_cannot_be_saved_is_undone() -> None:
    store = MemoryReservations()
    target = unit_target(store)
    assert prout(target, REGISTER, 0, 0xA, A, flags=APTPL).status == ScsiStatus.GOOD
    store.failing = True
    result = prout(target, REGISTER, 0, 0xB, B, flags=APTPL)
    assert sense_of(result) == (0x04, 0x44, 0x00)  # HARDWARE ERROR, INTERNAL TARGET FAILURE
    assert read_keys(target) == [0xA]
    store.failing = False
    assert prout(target, REGISTER, 0, 0xB, B, flags=APTPL).status == ScsiStatus.GOOD
    assert read_keys(target) == [0xA, 0xB]


def test_reservation_file_save_load_clear(tmp_path: Path) -> None:
    path = tmp_path / "reservations" / TARGET / "lun0.json"
    file = ReservationFile(path)
    assert file.load() == PersistentReservations()
    state = PersistentReservations(
        7, {A: 0xA, B: 2**64 - 1}, A, ReservationType.EXCLUSIVE_ACCESS, aptpl=True
    )
    file.save(state)
    assert not path.with_name("lun0.json.tmp").exists()
    assert file.load() == PersistentReservations(
        0, state.keys, A, ReservationType.EXCLUSIVE_ACCESS, aptpl=True
    )
    file.clear()
    assert not path.exists() and file.load() == PersistentReservations()
    file.clear()  # already gone


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        json.dumps({"registrations": [{"nexus": A, "key": 0}], "reservation": None}).encode(),
        json.dumps(
            {"registrations": [], "reservation": {"holder": A, "type": 2}}  # no such type
        ).encode(),
    ],
)
def test_an_unreadable_reservation_file_is_refused_naming_it(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "lun0.json"
    path.write_bytes(content)
    with pytest.raises(BackstoreError, match="delete the file to start without them") as error:
        ReservationFile(path).load()
    assert str(error.value).startswith(f"{path}: cannot read the saved persistent reservations")


def test_an_aptpl_registration_survives_rebuilding_the_unit(tmp_path: Path) -> None:
    config = [Target(TARGET, luns=(Lun(0, tmp_path / "disk.img", 1 << 20),))]
    reservations = tmp_path / "data" / "reservations"
    targets = open_local_targets(config, 1, reservations)
    scsi = targets[TARGET].scsi
    assert prout(scsi, REGISTER, 0, 0xA, A, flags=APTPL).status == ScsiStatus.GOOD
    assert prout(scsi, RESERVE, 0xA, 0, A, kind=WRITE_EXCLUSIVE).status == ScsiStatus.GOOD
    close_local_targets(targets)
    assert (reservations / TARGET / "lun0.json").exists()

    targets = open_local_targets(config, 1, reservations)
    scsi = targets[TARGET].scsi
    assert read_keys(scsi) == [0xA] and capabilities(scsi) == (True, True)
    write = struct.pack(">BBQIxx", 0x8A, 0, 0, 1)
    assert scsi.execute(0, write, bytes(512), B).status == ScsiStatus.RESERVATION_CONFLICT
    assert prout(scsi, RESERVE, 0xA, 0, A, kind=WRITE_EXCLUSIVE).status == ScsiStatus.GOOD
    close_local_targets(targets)

    (reservations / TARGET / "lun0.json").write_text("{")
    with pytest.raises(BackstoreError, match=r"lun0\.json: cannot read"):
        open_local_targets(config, 1, reservations)
