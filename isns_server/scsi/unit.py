"""What a command handler works on: the unit's state and one request (SAM-5 4.6)."""

__all__ = ["Handler", "ScsiRequest", "UnitState", "field_value"]

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
    copy_targets: dict[tuple[int, bytes], "UnitState"] = field(default_factory=dict)

    @property
    def block_count(self) -> int:
        return self.backstore.size // BLOCK_SIZE


Handler = Callable[[UnitState, ScsiRequest], ScsiResult | DataBuffer]
