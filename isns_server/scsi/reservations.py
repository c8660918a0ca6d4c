"""Persistent reservations (SPC-4 5.7, 6.15, 6.16): registrations by I_T nexus, one
reservation per logical unit, and the access each reservation type leaves to others.

State lives in memory; once a registration sets APTPL, every change is also saved
through a `ReservationStore` before the command answers GOOD, so that it survives a
restart (SPC-4 5.14.5).
"""

import logging
import struct
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import TYPE_CHECKING, Protocol

from .constants import AdditionalSense, Opcode, ScsiStatus, SenseKey, field_value
from .sense import CheckCondition, DataBuffer, ScsiResult, invalid_field, invalid_parameter

if TYPE_CHECKING:  # the unit's state holds ours
    from .unit import Handler, ScsiRequest, UnitState

_PARAMETER_LENGTH = 24  # basic PERSISTENT RESERVE OUT parameter list
_SPEC_I_PT = 0x08
_ALL_TG_PT = 0x04
_APTPL = 0x01
_MAX_KEY = (1 << 64) - 1
_PTPL_C = 0x01  # REPORT CAPABILITIES byte 2: persist through power loss capable
_PTPL_A = 0x01  # byte 3: activated

log = logging.getLogger(__name__)


class ReservationType(IntEnum):
    WRITE_EXCLUSIVE = 1
    EXCLUSIVE_ACCESS = 3
    WRITE_EXCLUSIVE_REGISTRANTS_ONLY = 5
    EXCLUSIVE_ACCESS_REGISTRANTS_ONLY = 6
    WRITE_EXCLUSIVE_ALL_REGISTRANTS = 7
    EXCLUSIVE_ACCESS_ALL_REGISTRANTS = 8


_TYPE_VALUES = frozenset(ReservationType.__members__.values())
_REGISTRANTS_TYPES = frozenset(ReservationType) - {
    ReservationType.WRITE_EXCLUSIVE,
    ReservationType.EXCLUSIVE_ACCESS,
}
_ALL_REGISTRANTS_TYPES = frozenset(
    {
        ReservationType.WRITE_EXCLUSIVE_ALL_REGISTRANTS,
        ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS,
    }
)
_EXCLUSIVE_ACCESS_TYPES = frozenset(
    {
        ReservationType.EXCLUSIVE_ACCESS,
        ReservationType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY,
        ReservationType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS,
    }
)
# Allowed whatever the reservation (SPC-4 table 48, simplified to three classes).
_ALWAYS_ALLOWED = frozenset(
    {
        Opcode.INQUIRY,
        Opcode.REPORT_LUNS,
        Opcode.REQUEST_SENSE,
        Opcode.TEST_UNIT_READY,
        Opcode.READ_CAPACITY_10,
        Opcode.SERVICE_ACTION_IN_16,
        Opcode.MAINTENANCE_IN,
        Opcode.PERSISTENT_RESERVE_IN,
        Opcode.PERSISTENT_RESERVE_OUT,
    }
)
_READS = frozenset(
    {
        Opcode.READ_6,
        Opcode.READ_10,
        Opcode.READ_12,
        Opcode.READ_16,
        Opcode.VERIFY_10,
        Opcode.VERIFY_12,
        Opcode.VERIFY_16,
        Opcode.PRE_FETCH_10,
        Opcode.PRE_FETCH_16,
        Opcode.MODE_SENSE_6,
        Opcode.MODE_SENSE_10,
    }
)


class PrIn(IntEnum):
    READ_KEYS = 0
    READ_RESERVATION = 1
    REPORT_CAPABILITIES = 2
    READ_FULL_STATUS = 3


class PrOut(IntEnum):
    REGISTER = 0
    RESERVE = 1
    RELEASE = 2
    CLEAR = 3
    PREEMPT = 4
    PREEMPT_AND_ABORT = 5
    REGISTER_AND_IGNORE_EXISTING_KEY = 6


@dataclass(slots=True)
class PersistentReservations:
    generation: int = 0
    keys: dict[str, int] = field(default_factory=dict)  # I_T nexus -> reservation key
    holder: str | None = None
    type: ReservationType | None = None
    aptpl: bool = False  # activate persist through power loss, as last registered

    def holds(self, nexus: str) -> bool:
        if self.type in _ALL_REGISTRANTS_TYPES:
            return nexus in self.keys
        return self.holder == nexus

    def allows(self, nexus: str, opcode: int) -> bool:
        """Whether `nexus` may run `opcode` under the current reservation."""
        if self.type is None or opcode in _ALWAYS_ALLOWED or self.holds(nexus):
            return True
        if self.type in _REGISTRANTS_TYPES and nexus in self.keys:
            return True
        return opcode in _READS and self.type not in _EXCLUSIVE_ACCESS_TYPES

    def release(self) -> None:
        self.holder = self.type = None

    def unregister(self, nexus: str) -> None:
        del self.keys[nexus]
        # An all-registrants reservation lasts while anyone is registered (SPC-4 5.7.10)
        if self.type in _ALL_REGISTRANTS_TYPES:
            if not self.keys:
                self.release()
        elif self.holder == nexus:
            self.release()

    def record(self) -> dict[str, object]:
        """What persists through power loss: registrations and the reservation. Not the
        generation, which a power on sets to zero (SPC-4 6.16.2)."""
        reservation = None if self.type is None else {"holder": self.holder, "type": self.type}
        return {
            "registrations": [{"nexus": n, "key": k} for n, k in self.keys.items()],
            "reservation": reservation,
        }

    @classmethod
    def from_record(cls, record: object) -> "PersistentReservations":
        """The state `record()` saved, APTPL active. Raises ValueError saying what is wrong."""
        if not isinstance(record, dict) or not isinstance(record.get("registrations"), list):
            raise ValueError("no list of registrations")
        state = cls(aptpl=True)
        for registration in record["registrations"]:
            match registration:
                case {"nexus": str(nexus), "key": int(key)} if 0 < key <= _MAX_KEY:
                    state.keys[nexus] = key
                case _:
                    raise ValueError(f"bad registration {registration!r}")
        match record.get("reservation"):
            case None:
                pass
            case {"holder": str(holder), "type": int(kind)} if kind in _TYPE_VALUES:
                state.holder, state.type = holder, ReservationType(kind)
            case reservation:
                raise ValueError(f"bad reservation {reservation!r}")
        return state


class ReservationStore(Protocol):
    """Where a logical unit's persistent reservations go while APTPL is active."""

    def load(self) -> PersistentReservations:
        """What was saved (APTPL active), or a fresh state if nothing was."""
        ...

    def save(self, state: PersistentReservations) -> None:
        """Durably, before returning; raises OSError."""
        ...

    def clear(self) -> None:
        """APTPL is off: nothing survives a restart. Raises OSError."""
        ...


def _conflict() -> ScsiResult:
    return ScsiResult(ScsiStatus.RESERVATION_CONFLICT)


def persistent_reserve_in(unit: "UnitState", request: "ScsiRequest") -> DataBuffer:
    state, cdb = unit.persistent, request.cdb
    action = cdb[1] & 0x1F
    if action == PrIn.READ_KEYS:
        keys = b"".join(struct.pack(">Q", key) for key in state.keys.values())
        data = struct.pack(">II", state.generation, len(keys)) + keys
    elif action == PrIn.READ_RESERVATION:
        body = b""
        if state.type is not None:
            # an all-registrants reservation has no one key (SPC-4 6.15.3)
            all_registrants = state.type in _ALL_REGISTRANTS_TYPES
            key = 0 if all_registrants else state.keys.get(state.holder or "", 0)
            body = struct.pack(">Q4xxB2x", key, state.type)
        data = struct.pack(">II", state.generation, len(body)) + body
    elif action == PrIn.REPORT_CAPABILITIES:
        # CRH, ATP_C 0, PTPL_C with a store; TMV with all six types; ALLOW COMMANDS 0
        type_mask = 0x80 | 0x40 | 0x20 | 0x08 | 0x02
        capable = _PTPL_C if unit.reservation_store is not None else 0
        active = _PTPL_A if state.aptpl else 0
        data = struct.pack(">HBBBB2x", 8, 0x10 | capable, 0x80 | active, type_mask, 0x01)
    elif action == PrIn.READ_FULL_STATUS:
        descriptors = b""
        for nexus, key in state.keys.items():
            holder = state.type is not None and state.holds(nexus)
            transport_id = _transport_id(nexus)
            descriptors += struct.pack(
                ">Q4xBB4xHI",
                key,
                0x01 if holder else 0,
                state.type if holder and state.type else 0,
                1,  # relative target port identifier
                len(transport_id),
            )
            descriptors += transport_id
        data = struct.pack(">II", state.generation, len(descriptors)) + descriptors
    else:
        raise invalid_field()
    return data[: field_value(cdb, 7, 2)]


def _transport_id(nexus: str) -> bytes:
    """An iSCSI TransportID, format 01b: the initiator port name (SPC-4 7.6.4.6)."""
    name = nexus.encode() + b"\0"
    name += bytes(-len(name) % 4)
    return struct.pack(">BxH", 0x40 | 0x05, len(name)) + name


def persistent_reserve_out(unit: "UnitState", request: "ScsiRequest") -> ScsiResult:
    """Applied in memory, then saved if it changed while APTPL is (or was until now)
    active; a state that cannot be saved is undone and the command fails."""
    before = replace(unit.persistent, keys=dict(unit.persistent.keys))
    result = _apply_out(unit, request)
    store, after = unit.reservation_store, unit.persistent
    if (
        result.status != ScsiStatus.GOOD
        or store is None
        or after == before
        or not (before.aptpl or after.aptpl)
    ):
        return result
    try:
        if after.aptpl:
            store.save(after)
        else:
            store.clear()
    except OSError as exc:
        log.error(
            "target %s LUN %d: persistent reservations not saved, the command fails: %s",
            unit.identity.target_name,
            unit.identity.lun,
            exc,
        )
        unit.persistent = before
        raise CheckCondition(
            SenseKey.HARDWARE_ERROR, AdditionalSense.INTERNAL_TARGET_FAILURE
        ) from None
    return result


def _apply_out(unit: "UnitState", request: "ScsiRequest") -> ScsiResult:
    state, cdb, data = unit.persistent, request.cdb, request.data_out
    action = cdb[1] & 0x1F
    scope_type = cdb[2]
    length = field_value(cdb, 5, 4)
    if action not in PrOut.__members__.values():
        raise invalid_field()
    if length != _PARAMETER_LENGTH:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, AdditionalSense.PARAMETER_LIST_LENGTH_ERROR)
    if len(data) < length:
        return ScsiResult(data_out_length=length)
    key, new_key = struct.unpack_from(">QQ", data)
    flags = data[20]
    registering = action in (PrOut.REGISTER, PrOut.REGISTER_AND_IGNORE_EXISTING_KEY)
    aptpl = bool(flags & _APTPL)  # only registrations carry it (SPC-4 6.16.3)
    if flags & (_SPEC_I_PT | _ALL_TG_PT):
        raise invalid_parameter()
    if registering and aptpl and unit.reservation_store is None:
        raise invalid_parameter()  # not capable: REPORT CAPABILITIES says PTPL_C 0
    nexus = request.nexus
    registered = state.keys.get(nexus)
    if registering:
        if action == PrOut.REGISTER and key != (registered or 0):
            return _conflict()
        if new_key:
            state.keys[nexus] = new_key
        elif registered is not None:
            state.unregister(nexus)
        state.aptpl = aptpl
        state.generation += 1
        return ScsiResult(data_out_length=length)
    if registered is None or registered != key:
        return _conflict()
    if action == PrOut.CLEAR:
        state.keys.clear()
        state.release()
        state.generation += 1
        return ScsiResult(data_out_length=length)
    kind = _reservation_type(scope_type) if action != PrOut.RELEASE or state.type else None
    if action == PrOut.RESERVE:
        assert kind is not None
        if state.type is not None and not state.holds(nexus):
            return _conflict()
        if state.type is not None and state.type != kind:
            return _conflict()
        state.holder, state.type = nexus, kind
    elif action == PrOut.RELEASE:
        if state.type is None or not state.holds(nexus):
            return ScsiResult(data_out_length=length)
        if kind != state.type:
            raise CheckCondition(
                SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_RELEASE_OF_PERSISTENT_RESERVATION
            )
        state.release()
    else:  # PREEMPT, PREEMPT AND ABORT (no task is long-running enough to abort)
        assert kind is not None
        _preempt(state, nexus, new_key, kind)
    return ScsiResult(data_out_length=length)


def _preempt(state: PersistentReservations, nexus: str, victim: int, kind: ReservationType) -> None:
    all_registrants = state.type in _ALL_REGISTRANTS_TYPES
    if state.type is not None and all_registrants and victim == 0:
        for other in [n for n in state.keys if n != nexus]:
            del state.keys[other]
        state.holder, state.type = nexus, kind
    elif (
        state.type is not None
        and not all_registrants
        and (state.keys.get(state.holder or "") == victim)
    ):
        for other in [n for n, k in state.keys.items() if k == victim and n != nexus]:
            del state.keys[other]
        state.holder, state.type = nexus, kind
    else:
        if victim == 0:
            raise invalid_parameter()
        for other in [n for n, k in state.keys.items() if k == victim and n != nexus]:
            del state.keys[other]
    state.generation += 1


def _reservation_type(scope_type: int) -> ReservationType:
    if scope_type >> 4:  # only LU_SCOPE
        raise invalid_field()
    try:
        return ReservationType(scope_type & 0x0F)
    except ValueError:
        raise invalid_field() from None


COMMANDS: "dict[tuple[int, int | None], Handler]" = {
    **{(Opcode.PERSISTENT_RESERVE_IN, action): persistent_reserve_in for action in PrIn},
    **{(Opcode.PERSISTENT_RESERVE_OUT, action): persistent_reserve_out for action in PrOut},
}
