"""One logical unit: a CDB in, a ScsiResult out (SPC-4 and SBC-3 commands), pure."""

import struct
from collections.abc import Callable

from .backstore import Backstore
from .constants import (
    BLOCK_SIZE,
    READ_CAPACITY_16,
    AdditionalSense,
    Opcode,
    PeripheralDevice,
    SenseKey,
)
from .inquiry import UnitIdentity, standard_inquiry, vpd_page
from .sense import CheckCondition, ScsiResult, fixed_sense, invalid_field

_EVPD = 0x01
_DESC = 0x01  # REQUEST SENSE: descriptor format asked for
_SERVICE_ACTION = 0x1F
_LAST_LBA_10 = 0xFFFFFFFF  # READ CAPACITY (10): "too big, ask READ CAPACITY (16)"


def allocation_length(cdb: bytes, offset: int, size: int) -> int:
    return int.from_bytes(cdb[offset : offset + size], "big")


def inquiry_data(cdb: bytes, identity: UnitIdentity | None) -> bytes:
    """INQUIRY for a unit, or (`identity` None) for a LUN with no unit behind it."""
    evpd, page = cdb[1] & _EVPD, cdb[2]
    if not evpd:
        if page:
            raise invalid_field()  # a page code without EVPD (SPC-4 6.6.1)
        device = (
            PeripheralDevice.DIRECT_ACCESS_BLOCK if identity else PeripheralDevice.NOT_CONNECTED
        )
        data = standard_inquiry(device)
    elif identity is None:
        raise CheckCondition(SenseKey.ILLEGAL_REQUEST, AdditionalSense.LOGICAL_UNIT_NOT_SUPPORTED)
    elif (found := vpd_page(page, identity)) is None:
        raise invalid_field()
    else:
        data = found
    return data[: allocation_length(cdb, 3, 2)]


def request_sense_data(cdb: bytes, sense: bytes) -> bytes:
    """REQUEST SENSE returns `sense` in fixed format; we keep no deferred errors to report."""
    if cdb[1] & _DESC:
        raise invalid_field()  # descriptor format is not supported (SPC-4 6.39)
    return sense[: allocation_length(cdb, 4, 1)]


class LogicalUnit:
    """A direct-access block device over a backstore."""

    def __init__(self, backstore: Backstore, identity: UnitIdentity) -> None:
        self.backstore = backstore
        self.identity = identity
        self.block_count = backstore.size // BLOCK_SIZE
        self._commands: dict[int, Callable[[bytes], bytes]] = {
            Opcode.TEST_UNIT_READY: lambda cdb: b"",
            Opcode.REQUEST_SENSE: lambda cdb: request_sense_data(cdb, _NO_SENSE),
            Opcode.INQUIRY: lambda cdb: inquiry_data(cdb, self.identity),
            Opcode.READ_CAPACITY_10: self._read_capacity_10,
            Opcode.SERVICE_ACTION_IN_16: self._service_action_in,
        }

    def execute(self, cdb: bytes) -> ScsiResult:
        command = self._commands.get(cdb[0])
        try:
            if command is None:
                raise CheckCondition(
                    SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_COMMAND_OPERATION_CODE
                )
            return ScsiResult(data=command(cdb))
        except CheckCondition as condition:
            return condition.result()

    def _read_capacity_10(self, cdb: bytes) -> bytes:
        return struct.pack(">II", min(self.block_count - 1, _LAST_LBA_10), BLOCK_SIZE)

    def _service_action_in(self, cdb: bytes) -> bytes:
        if cdb[1] & _SERVICE_ACTION != READ_CAPACITY_16:
            raise invalid_field()
        # Last LBA and block length; protection, provisioning and alignment fields all 0.
        data = struct.pack(">QI20x", self.block_count - 1, BLOCK_SIZE)
        return data[: allocation_length(cdb, 10, 4)]


_NO_SENSE = fixed_sense(SenseKey.NO_SENSE, AdditionalSense.NO_ADDITIONAL_SENSE)
