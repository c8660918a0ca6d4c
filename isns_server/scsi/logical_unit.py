"""One logical unit: requests dispatched through the SBC and SPC command tables, pure.

Before a command runs, the unit reports a pending unit attention to the I_T nexus it is
for (SAM-5 5.14) and refuses commands from other nexuses while RESERVE (6) holds it.

The unit's state is changed by its owner only (`check_owner`): a `nowait` request, which
may come from another thread, changes nothing, and one that would report a unit
attention raises WouldBlock so that the owner reports it.
"""

import struct
from collections.abc import Iterable

from .backstore import Backstore, WouldBlock
from .constants import BLOCK_SIZE, AdditionalSense, Opcode, ScsiStatus, SenseKey, ServiceAction
from .inquiry import UnitIdentity
from .reservations import COMMANDS as RESERVATION_COMMANDS
from .reservations import ReservationStore
from .sbc import COMMANDS as BLOCK_COMMANDS
from .sense import CheckCondition, ScsiResult, invalid_field
from .spc import COMMANDS as PRIMARY_COMMANDS
from .unit import Handler, ScsiRequest, UnitState, check_owner, field_value
from .xcopy import COMMANDS as COPY_COMMANDS

# Commands that may pass a reservation or a unit attention (SPC-2 5.5.1, SAM-5 5.14).
_ALWAYS_ALLOWED = frozenset({Opcode.INQUIRY, Opcode.REPORT_LUNS, Opcode.REQUEST_SENSE})
_PASS_RESERVATION = _ALWAYS_ALLOWED | {Opcode.RELEASE_6}
# What may run with ScsiRequest.nowait: commands that never touch the medium, and reads,
# which pass `nowait` on to the backstore. Checked before anything changes (a unit
# attention is reported once), so a refused command runs again unharmed.
_NOWAIT = _ALWAYS_ALLOWED | {
    Opcode.TEST_UNIT_READY,
    Opcode.MODE_SENSE_6,
    Opcode.MODE_SENSE_10,
    Opcode.READ_CAPACITY_10,
    Opcode.MAINTENANCE_IN,
    Opcode.PERSISTENT_RESERVE_IN,
    Opcode.RECEIVE_COPY_RESULTS,
    Opcode.READ_6,
    Opcode.READ_10,
    Opcode.READ_12,
    Opcode.READ_16,
}
# Answered NOT READY, MEDIUM NOT PRESENT while the medium is ejected: the block commands,
# and TEST UNIT READY, with which initiators poll for a medium
_NEEDS_MEDIUM = frozenset(BLOCK_COMMANDS) | {(Opcode.TEST_UNIT_READY, None)}
_SERVICE_ACTION = 0x1F
_CTDP = 0x02  # command timeouts descriptor present
_SERVACTV = 0x01
_TIMEOUTS = struct.pack(">HxxII", 10, 0, 0)  # no nominal or recommended timeout


def may_run_now(opcode: int) -> bool:
    """Whether a command with this opcode can run with ScsiRequest.nowait: it changes
    neither the medium nor the unit's state beyond a unit attention it reports."""
    return opcode in _NOWAIT


def cdb_length(opcode: int) -> int:
    """By the CDB's group (SPC-4 4.2.5.1)."""
    return {0: 6, 1: 10, 2: 10, 4: 16, 5: 12}.get(opcode >> 5, 16)


class LogicalUnit:
    """A direct-access block device over a backstore."""

    def __init__(
        self,
        backstore: Backstore,
        identity: UnitIdentity,
        write_cache: bool = True,
        reservation_store: ReservationStore | None = None,
        removable: bool = False,
        physical_block_size: int = BLOCK_SIZE,
    ) -> None:
        """`write_cache` is WCE at startup: write-back; False: every write is durable.
        `reservation_store` keeps persistent reservations across restarts (APTPL); what
        it holds is loaded now. A `removable` medium can be ejected and loaded again.
        `physical_block_size` is a power-of-two multiple of the 512-byte logical block."""
        exponent = (physical_block_size // BLOCK_SIZE).bit_length() - 1
        if not 0 <= exponent <= 15 or physical_block_size != BLOCK_SIZE << exponent:
            raise ValueError(f"physical block size {physical_block_size} is not 512 << 0..15")
        self.state = UnitState(backstore, identity, write_cache, removable, exponent)
        if reservation_store is not None:
            self.state.reservation_store = reservation_store
            self.state.persistent = reservation_store.load()
        self._commands: dict[tuple[int, int | None], Handler] = {
            **BLOCK_COMMANDS,
            **PRIMARY_COMMANDS,
            **RESERVATION_COMMANDS,
            **COPY_COMMANDS,
            (Opcode.MAINTENANCE_IN, ServiceAction.REPORT_SUPPORTED_OPERATION_CODES): (
                lambda unit, request: self._supported_operation_codes(request.cdb)
            ),
        }
        self._service_actions = {op for op, action in self._commands if action is not None}

    @property
    def backstore(self) -> Backstore:
        return self.state.backstore

    @property
    def block_count(self) -> int:
        return self.state.block_count

    def execute(self, request: ScsiRequest) -> ScsiResult:
        """Raises WouldBlock for a `nowait` request that may have to wait for the disk."""
        cdb = request.cdb
        state = self.state
        if not request.nowait:
            check_owner(state)
        elif not may_run_now(cdb[0]):
            raise WouldBlock
        try:
            key = self._key(cdb)
            handler = self._commands.get(key)
            if handler is None and cdb[0] in self._service_actions:
                raise invalid_field()  # a known opcode, an unknown service action
            if handler is None:
                raise CheckCondition(
                    SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_COMMAND_OPERATION_CODE
                )
            if cdb[0] not in _ALWAYS_ALLOWED:
                pending = state.unit_attentions.get(request.nexus)
                if pending:
                    if request.nowait:
                        raise WouldBlock  # reporting it changes the unit: its owner does
                    raise CheckCondition(SenseKey.UNIT_ATTENTION, AdditionalSense(pending.pop(0)))
            if (
                state.reservation not in (None, request.nexus) and cdb[0] not in _PASS_RESERVATION
            ) or not state.persistent.allows(request.nexus, cdb[0]):
                return ScsiResult(ScsiStatus.RESERVATION_CONFLICT)
            if cdb[cdb_length(cdb[0]) - 1] & 0xFC:  # CONTROL: no NACA, no vendor bits
                raise invalid_field()
            if not state.medium_loaded and key in _NEEDS_MEDIUM:
                raise CheckCondition(SenseKey.NOT_READY, AdditionalSense.MEDIUM_NOT_PRESENT)
            outcome = handler(state, request)
        except CheckCondition as condition:
            return condition.result()
        return outcome if isinstance(outcome, ScsiResult) else ScsiResult(data=outcome)

    def unit_attention(self, code: AdditionalSense, nexuses: Iterable[str]) -> None:
        """Queue `code` for each nexus: its next command reports it (SAM-5 5.14)."""
        check_owner(self.state)
        for nexus in nexuses:
            pending = self.state.unit_attentions.setdefault(nexus, [])
            if code not in pending:
                pending.append(code)

    def reset(self, nexuses: Iterable[str]) -> None:
        """LOGICAL UNIT RESET (SAM-5 5.7.7): reservations and medium removal prevention
        (SPC-4 6.13) end, every nexus is told."""
        check_owner(self.state)
        self.state.reservation = None
        self.state.removal_prevented.clear()
        self.unit_attention(AdditionalSense.POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED, nexuses)

    def nexus_lost(self, nexus: str) -> None:
        """The I_T nexus ended: its RESERVE (6) ends with it (SPC-2 5.5.1), its prevention
        of medium removal (SPC-4 6.13), and what was held for it."""
        state = self.state
        check_owner(state)
        if state.reservation == nexus:
            state.reservation = None
        state.removal_prevented.discard(nexus)
        state.unit_attentions.pop(nexus, None)
        for key in [k for k in state.copy_results if k[0] == nexus]:
            del state.copy_results[key]

    def rescan(self, nexuses: Iterable[str]) -> tuple[int, int] | None:
        """Re-read the backstore's size; if it changed, each nexus gets CAPACITY DATA HAS
        CHANGED with its next command (SAM-5 5.14). (old, new) bytes, or None."""
        check_owner(self.state)
        old = self.state.backstore.size
        new = self.state.backstore.refresh_size()
        if new == old:
            return None
        self.unit_attention(AdditionalSense.CAPACITY_DATA_HAS_CHANGED, nexuses)
        return old, new

    def _key(self, cdb: bytes) -> tuple[int, int | None]:
        opcode = cdb[0]
        return (opcode, cdb[1] & _SERVICE_ACTION if opcode in self._service_actions else None)

    def _supported_operation_codes(self, cdb: bytes) -> bytes:
        """REPORT SUPPORTED OPERATION CODES (SPC-4 6.35): all commands, or one."""
        options, timeouts = cdb[2] & 0x07, bool(cdb[2] & 0x80)
        opcode, action = cdb[3], field_value(cdb, 4, 2)
        extra = _TIMEOUTS if timeouts else b""
        flags = _CTDP if timeouts else 0
        if options == 0:
            descriptors = b"".join(
                struct.pack(
                    ">BxHxBH",
                    op,
                    sa or 0,
                    flags | (_SERVACTV if sa is not None else 0),
                    cdb_length(op),
                )
                + extra
                for op, sa in sorted(self._commands, key=lambda k: (k[0], k[1] or 0))
            )
            data = struct.pack(">I", len(descriptors)) + descriptors
        elif options in (1, 2):
            has_actions = opcode in self._service_actions
            if (options == 1) == has_actions:
                raise invalid_field(2)  # 1 is for opcodes without service actions, 2 with
            key = (opcode, action if has_actions else None)
            supported = key in self._commands
            length = cdb_length(opcode)
            usage = bytes([opcode]) + b"\xff" * (length - 2) + b"\x03" if supported else b""
            if supported and has_actions:
                usage = bytes([opcode, action & 0x1F]) + usage[2:]
            support = 0x03 if supported else 0x01
            ctdp = 0x80 if timeouts else 0
            data = struct.pack(">xBH", ctdp | support, len(usage)) + usage + extra
        else:
            raise invalid_field(2)
        return data[: field_value(cdb, 6, 4)]
