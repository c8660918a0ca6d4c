"""A minimal SCSI target (pure): CDB in, status, sense and data out, over a backstore."""

from .backstore import Backstore, BackstoreError, FileBackstore, MemoryBackstore, WouldBlock
from .inquiry import UnitIdentity
from .logical_unit import LogicalUnit, may_run_now
from .sense import ScsiResult
from .target import ScsiTarget, decode_lun, encode_lun
from .unit import ScsiRequest

__all__ = [
    "Backstore",
    "BackstoreError",
    "FileBackstore",
    "LogicalUnit",
    "MemoryBackstore",
    "ScsiRequest",
    "ScsiResult",
    "ScsiTarget",
    "UnitIdentity",
    "WouldBlock",
    "decode_lun",
    "encode_lun",
    "may_run_now",
]
