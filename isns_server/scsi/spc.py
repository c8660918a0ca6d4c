"""Primary commands (SPC-4) of a block unit: identification, mode parameters, unit state
and RESERVE/RELEASE (6). REPORT LUNS and REPORT SUPPORTED OPERATION CODES are answered by
the target and the unit's dispatcher, which know the units and the commands."""

import struct

from .constants import (
    AdditionalSense,
    Opcode,
    PeripheralDevice,
    ScsiStatus,
    SenseKey,
)
from .inquiry import standard_inquiry, vpd_page
from .mode_pages import PageControl, block_descriptor, mode_pages, select_pages
from .sbc import block_limits, provisioning
from .sense import (
    CheckCondition,
    DataBuffer,
    ScsiResult,
    fixed_sense,
    invalid_field,
)
from .unit import Handler, ScsiRequest, UnitState, field_value
from .xcopy import third_party_copy_page

_EVPD = 0x01
_DESC = 0x01  # REQUEST SENSE: descriptor format asked for
_DBD = 0x08  # MODE SENSE: no block descriptors
_LLBAA = 0x10
_WP = 0x80  # device-specific parameter: write protected
_DPOFUA = 0x10
_PF = 0x10
_SP = 0x01
_LOEJ = 0x02  # START STOP UNIT: load or eject the medium, as START says
_START = 0x01
_PREVENT = 0x03  # PREVENT ALLOW MEDIUM REMOVAL: 1 prevents, 0 allows
NO_SENSE = fixed_sense(SenseKey.NO_SENSE, AdditionalSense.NO_ADDITIONAL_SENSE)


def inquiry_data(cdb: bytes, unit: UnitState | None) -> bytes:
    """INQUIRY for a unit, or (`unit` None) for a LUN with no unit behind it."""
    evpd, page = cdb[1] & _EVPD, cdb[2]
    if cdb[1] & ~_EVPD & 0x03:  # CMDDT (obsolete) set
        raise invalid_field()
    if not evpd:
        if page:
            raise invalid_field()  # a page code without EVPD (SPC-4 6.6.1)
        device = PeripheralDevice.DIRECT_ACCESS_BLOCK if unit else PeripheralDevice.NOT_CONNECTED
        data = standard_inquiry(device, unit is not None and unit.removable)
    elif unit is None:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, AdditionalSense.LOGICAL_UNIT_NOT_SUPPORTED)
    else:
        found = vpd_page(
            page, unit.identity, block_limits(unit), provisioning(unit), third_party_copy_page()
        )
        if found is None:
            raise invalid_field()
        data = found
    return data[: field_value(cdb, 3, 2)]


def request_sense_data(cdb: bytes, sense: bytes) -> bytes:
    """REQUEST SENSE returns `sense` in fixed format; we keep no deferred errors to report."""
    if cdb[1] & _DESC:
        raise invalid_field()  # descriptor format is not supported (SPC-4 6.39)
    return sense[: cdb[4]]


def _inquiry(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    return inquiry_data(request.cdb, unit)


def _request_sense(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    return request_sense_data(request.cdb, NO_SENSE)


def _nothing(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    return b""


def _mode_sense(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    cdb = request.cdb
    six = cdb[0] == Opcode.MODE_SENSE_6
    control = PageControl(cdb[2] >> 6)
    if control is PageControl.SAVED:
        raise CheckCondition(
            SenseKey.ILLEGAL_REQUEST, AdditionalSense.SAVING_PARAMETERS_NOT_SUPPORTED
        )
    pages = mode_pages(unit, cdb[2] & 0x3F, cdb[3], control)
    long_lba = not six and bool(cdb[1] & _LLBAA)
    descriptor = b"" if cdb[1] & _DBD else block_descriptor(unit, long_lba)
    specific = _DPOFUA | (_WP if unit.backstore.read_only else 0)
    if six:
        header = struct.pack(
            ">BBBB", 3 + len(descriptor) + len(pages), 0, specific, len(descriptor)
        )
        length = cdb[4]
    else:
        total = 6 + len(descriptor) + len(pages)
        header = struct.pack(">HBBBxH", total, 0, specific, int(long_lba), len(descriptor))
        length = field_value(cdb, 7, 2)
    return (header + descriptor + pages)[:length]


def _mode_select(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    cdb, data = request.cdb, request.data_out
    six = cdb[0] == Opcode.MODE_SELECT_6
    length = cdb[4] if six else field_value(cdb, 7, 2)
    if cdb[1] & _SP or not cdb[1] & _PF:
        raise invalid_field()  # nothing is saved; only page format is understood
    if length == 0:
        return ScsiResult(data_out_length=0)
    header = 4 if six else 8
    if len(data) < min(length, header):
        return ScsiResult(data_out_length=length)
    descriptors = data[3] if six else field_value(data, 6, 2)
    select_pages(unit, data[header + descriptors : length])
    return ScsiResult(data_out_length=length)


def _start_stop_unit(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    flags = request.cdb[4]
    if not unit.removable:
        # The medium is a file: always there and spinning; POWER CONDITION must be 0 or 1h.
        if flags >> 4 not in (0, 1):
            raise invalid_field()
        return b""
    # A POWER CONDITION leaves START and LOEJ unprocessed (SBC-3 5.25) and a file has no
    # power states: done, as tgt answers it. START alone: a file is always spinning.
    if flags >> 4 or not flags & _LOEJ:
        return b""
    if unit.removal_prevented:  # loading too, as libiscsi's PreventAllow.Eject expects
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, AdditionalSense.MEDIUM_REMOVAL_PREVENTED)
    unit.medium_loaded = bool(flags & _START)
    return b""


def _prevent_allow(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    prevent = request.cdb[4] & _PREVENT
    if prevent > 1:  # only medium removal, no changer
        raise invalid_field()
    if not unit.removable:
        return b""  # a fixed disk: nothing to hold in
    if prevent:
        unit.removal_prevented.add(request.nexus)
    else:
        unit.removal_prevented.discard(request.nexus)
    return b""


def _reserve(unit: UnitState, request: ScsiRequest) -> ScsiResult:
    if unit.reservation not in (None, request.nexus):
        return ScsiResult(ScsiStatus.RESERVATION_CONFLICT)
    unit.reservation = request.nexus
    return ScsiResult()


def _release(unit: UnitState, request: ScsiRequest) -> DataBuffer:
    if unit.reservation == request.nexus:  # another nexus' release is a no-op (SPC-2 7.17)
        unit.reservation = None
    return b""


COMMANDS: dict[tuple[int, int | None], Handler] = {
    (Opcode.TEST_UNIT_READY, None): _nothing,
    (Opcode.REQUEST_SENSE, None): _request_sense,
    (Opcode.INQUIRY, None): _inquiry,
    (Opcode.MODE_SENSE_6, None): _mode_sense,
    (Opcode.MODE_SENSE_10, None): _mode_sense,
    (Opcode.MODE_SELECT_6, None): _mode_select,
    (Opcode.MODE_SELECT_10, None): _mode_select,
    (Opcode.START_STOP_UNIT, None): _start_stop_unit,
    (Opcode.PREVENT_ALLOW_MEDIUM_REMOVAL, None): _prevent_allow,
    (Opcode.RESERVE_6, None): _reserve,
    (Opcode.RELEASE_6, None): _release,
}
