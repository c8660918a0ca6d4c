"""Command results and sense data (SPC-4 4.5.3, fixed format)."""

from dataclasses import dataclass

from ..iscsi.constants import ScsiStatus
from .constants import AdditionalSense, SenseKey

_FIXED_CURRENT = 0x70  # response code: current error, fixed format
_FIXED_LENGTH = 18


def fixed_sense(key: SenseKey, code: AdditionalSense) -> bytes:
    sense = bytearray(_FIXED_LENGTH)
    sense[0] = _FIXED_CURRENT
    sense[2] = key
    sense[7] = _FIXED_LENGTH - 8  # additional sense length
    sense[12], sense[13] = code >> 8, code & 0xFF
    return bytes(sense)


@dataclass(frozen=True, slots=True)
class ScsiResult:
    """What a command produced: `data` for the Data-In buffer, `sense` with CHECK CONDITION."""

    status: ScsiStatus = ScsiStatus.GOOD
    data: bytes = b""
    sense: bytes = b""


class CheckCondition(Exception):
    """Raised by a command handler: the command ends with CHECK CONDITION and this sense."""

    def __init__(self, key: SenseKey, code: AdditionalSense) -> None:
        super().__init__(f"{key.name}: {code.name}")
        self.key = key
        self.code = code

    def result(self) -> ScsiResult:
        return ScsiResult(ScsiStatus.CHECK_CONDITION, sense=fixed_sense(self.key, self.code))


def invalid_field() -> CheckCondition:
    return CheckCondition(SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_FIELD_IN_CDB)
