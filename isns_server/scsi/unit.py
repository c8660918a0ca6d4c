"""What a command handler works on: the unit's state and one request (SAM-5 4.6)."""

__all__ = ["CopyPeer", "Handler", "ScsiRequest", "UnitState", "check_owner", "field_value"]

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from .backstore import Backstore
from .constants import BLOCK_SIZE, field_value
from .inquiry import UnitIdentity
from .reservations import PersistentReservations, ReservationStore
from .sense import DataBuffer, ScsiResult

_NO_DATA = memoryview(b"")


@dataclass(frozen=True, slots=True)
class ScsiRequest:
    """A CDB, the Data-Out buffer the initiator sent with it, and who sent it: the I_T
    nexus, as the initiator port name (initiator name and ISID). With `nowait` the caller
    cannot wait for the disk: a command that would raises WouldBlock, having changed
    nothing, and is then run again without it."""

    cdb: bytes
    data_out: memoryview = _NO_DATA
    nexus: str = ""
    nowait: bool = False


@dataclass(slots=True)
class UnitState:
    backstore: Backstore
    identity: UnitIdentity
    write_cache: bool = True  # WCE of the caching mode page: write-back until SYNCHRONIZE CACHE
    removable: bool = False  # RMB: START STOP UNIT may eject and load the medium
    # READ CAPACITY (16): 2**n logical blocks per physical block, what initiators align to
    physical_block_exponent: int = 0
    medium_loaded: bool = True  # False once ejected: medium access is NOT READY
    # The I_T nexuses whose PREVENT ALLOW MEDIUM REMOVAL holds the medium in (SPC-4 6.13)
    removal_prevented: set[str] = field(default_factory=set)
    reservation: str | None = None  # the I_T nexus holding RESERVE (6)
    unit_attentions: dict[str, list[int]] = field(default_factory=dict)  # nexus -> ASC/ASCQs
    persistent: PersistentReservations = field(default_factory=PersistentReservations)
    reservation_store: ReservationStore | None = None  # None: APTPL is refused
    # EXTENDED COPY results held for RECEIVE COPY RESULTS: (nexus, list id) -> (segments,
    # blocks copied)
    copy_results: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    # The units EXTENDED COPY can reach, by designator (type, value): every unit of the
    # same target, this one included; set by ScsiTarget, shared by its units
    copy_targets: dict[tuple[int, bytes], "CopyPeer"] = field(default_factory=dict)
    owner: int | None = None  # the thread that changes this state (check_owner)

    @property
    def block_count(self) -> int:
        return self.backstore.size // BLOCK_SIZE


class CopyPeer:
    """What EXTENDED COPY, run by one unit's owner, may use of a unit of the same target
    (itself included): the one access across units. Its blocks go through the backstore
    (pread/pwrite, safe from any thread); its state is only read, as it stands, while
    its own owner may be changing it (a copy racing a write or a PERSISTENT RESERVE OUT
    there is like two initiators racing); nothing here changes it."""

    __slots__ = ("_state",)

    def __init__(self, state: UnitState) -> None:
        self._state = state

    @property
    def backstore(self) -> Backstore:
        return self._state.backstore

    @property
    def block_count(self) -> int:
        return self._state.block_count

    @property
    def medium_loaded(self) -> bool:
        return self._state.medium_loaded

    @property
    def write_cache(self) -> bool:
        return self._state.write_cache

    def conflicts(self, nexus: str, opcode: int) -> bool:
        """Whether the unit's reservations refuse `opcode` from `nexus`."""
        state = self._state
        return state.reservation not in (None, nexus) or not state.persistent.allows(nexus, opcode)


Handler = Callable[[UnitState, ScsiRequest], ScsiResult | DataBuffer]

# Set by the tests (tests/processes.py, tests/conftest.py): a unit's state has no locks
CHECK_OWNER = os.environ.get("ISNS_SERVER_CHECK_UNIT_OWNER") == "1"


def check_owner(state: UnitState) -> None:
    """A unit's state is changed by one thread only (in the portal, the unit's worker),
    so it needs no locks. With CHECK_OWNER, the first thread that changes it owns it and
    any other thread that tries fails here."""
    if not CHECK_OWNER:
        return
    me = threading.get_ident()
    if state.owner is None:
        state.owner = me
    elif state.owner != me:
        raise AssertionError(
            f"LUN {state.identity.lun} of {state.identity.target_name}: unit state changed"
            f" by thread {threading.current_thread().name!r}, not by its owner"
        )
