"""The logical units of one iSCSI target, addressed by LUN (SAM-5 4.7), pure.

Commands for the target as a whole (REPORT LUNS) and for LUNs with no unit behind them
(INQUIRY answers "not connected", REQUEST SENSE reports it, the rest fail with LOGICAL
UNIT NOT SUPPORTED) are answered here; everything else goes to the unit.

Two owners: the target's own state (the open nexuses, the attention listeners) belongs to
whoever runs the sessions (the portal's event loop); each unit's state to the one thread
that runs that unit's commands (its worker). Resets, the end of a nexus and rescans
therefore come in two halves: the unit's part (`LogicalUnit.reset`, `nexus_lost`,
`rescan`), run by the unit's owner, and the target's part here (`everyone`,
`forget_nexus`, `announce_*`). `reset`, `nexus_lost` and `rescan` below do both at once,
for a caller that owns everything (one thread).
"""

import struct
from collections.abc import Callable, Iterable, Mapping

from .constants import AdditionalSense, Opcode, SenseKey
from .inquiry import unit_designators
from .logical_unit import LogicalUnit
from .sense import CheckCondition, DataBuffer, ScsiResult, fixed_sense, invalid_field
from .spc import inquiry_data, request_sense_data
from .unit import CopyPeer, ScsiRequest, field_value

_PERIPHERAL = 0b00  # address methods (SAM-5 4.7.6): LUN 0-255 in byte 1
_FLAT_SPACE = 0b01  # LUN 0-16383 in the low 14 bits of bytes 0-1
_SELECT_REPORTS = (0x00, 0x01, 0x02)  # all three list every logical unit we have
_NOT_SUPPORTED = fixed_sense(SenseKey.ILLEGAL_REQUEST, AdditionalSense.LOGICAL_UNIT_NOT_SUPPORTED)


def decode_lun(lun: int) -> int | None:
    """The LUN a single-level 8-byte LUN field addresses, or None if it is not one."""
    if lun & 0xFFFF_FFFF_FFFF:  # second to fourth levels: we have one level only
        return None
    first = lun >> 48
    method, value = first >> 14, first & 0x3FFF
    if method == _FLAT_SPACE:
        return value
    if method == _PERIPHERAL and value < 0x100:  # bus identifier 0
        return value
    return None


def encode_lun(lun: int) -> bytes:
    method = _PERIPHERAL if lun < 0x100 else _FLAT_SPACE
    return struct.pack(">H6x", method << 14 | lun)


AttentionListener = Callable[[int, bytes], None]  # told (LUN, sense) of a new unit attention


class ScsiTarget:
    def __init__(self, units: Mapping[int, LogicalUnit]) -> None:
        self.units = dict(units)
        self.nexuses: set[str] = set()  # the I_T nexuses with a session open
        # By nexus: who reports a unit attention as soon as it arises (RFC 3720 10.9.1)
        self.attention_listeners: dict[str, AttentionListener] = {}
        peers = {unit: CopyPeer(unit.state) for unit in self.units.values()}
        copy_targets = {
            designator: peers[unit]
            for unit in self.units.values()
            for designator in unit_designators(unit.state.identity)
        }
        for unit in self.units.values():
            unit.state.copy_targets = copy_targets

    def everyone(self, by: str) -> frozenset[str]:
        """The nexuses a reset by `by` reaches: every open one, `by` included."""
        return frozenset(self.nexuses | {by})

    def forget_nexus(self, nexus: str) -> list[LogicalUnit]:
        """The nexus ended: the target's part; each unit returned must still be told
        (`LogicalUnit.nexus_lost`) by its owner."""
        self.nexuses.discard(nexus)
        return list(self.units.values())

    def announce_reset(self, unit: LogicalUnit, everyone: Iterable[str]) -> None:
        """Tell the listeners of `everyone` that `unit` was reset (after `unit.reset`)."""
        code = AdditionalSense.POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED
        self._announce(unit, code, everyone)

    def announce_capacity(self, unit: LogicalUnit) -> None:
        """Tell the open nexuses' listeners that `unit` changed size (after its rescan)."""
        self._announce(unit, AdditionalSense.CAPACITY_DATA_HAS_CHANGED, self.nexuses)

    def _announce(self, unit: LogicalUnit, code: AdditionalSense, nexuses: Iterable[str]) -> None:
        sense = fixed_sense(SenseKey.UNIT_ATTENTION, code)
        lun = unit.state.identity.lun
        for nexus in nexuses:
            if (listener := self.attention_listeners.get(nexus)) is not None:
                listener(lun, sense)

    def unit(self, lun: int) -> LogicalUnit | None:
        """The unit the 8-byte LUN field `lun` addresses."""
        number = decode_lun(lun)
        return None if number is None else self.units.get(number)

    def execute(
        self,
        lun: int,
        cdb: bytes,
        data_out: DataBuffer = b"",
        nexus: str = "",
        nowait: bool = False,
    ) -> ScsiResult:
        """Run `cdb` for the 8-byte LUN field `lun`, from the I_T nexus `nexus`; with
        `nowait`, raise WouldBlock rather than wait for the disk (ScsiRequest)."""
        cdb = cdb.ljust(16, b"\0")  # fields past a short CDB read as zero
        unit = self.unit(lun)
        try:
            if cdb[0] == Opcode.REPORT_LUNS:
                return ScsiResult(data=self._report_luns(cdb))
            if unit is not None:
                return unit.execute(ScsiRequest(cdb, memoryview(data_out), nexus, nowait))
            if cdb[0] == Opcode.INQUIRY:
                return ScsiResult(data=inquiry_data(cdb, None))
            if cdb[0] == Opcode.REQUEST_SENSE:
                return ScsiResult(data=request_sense_data(cdb, _NOT_SUPPORTED))
            raise CheckCondition(
                SenseKey.ILLEGAL_REQUEST, AdditionalSense.LOGICAL_UNIT_NOT_SUPPORTED
            )
        except CheckCondition as condition:
            return condition.result()

    def _report_luns(self, cdb: bytes) -> bytes:
        length = field_value(cdb, 6, 4)
        if cdb[2] not in _SELECT_REPORTS or length < 16:  # SPC-4 6.33: at least 16 bytes
            raise invalid_field()
        luns = b"".join(encode_lun(lun) for lun in sorted(self.units))
        data = struct.pack(">I4x", len(luns)) + luns
        return data[:length]
