"""Command results and sense data (SPC-4 4.5.3, fixed format)."""

from dataclasses import dataclass

from .constants import AdditionalSense, ScsiStatus, SenseKey

_FIXED_CURRENT = 0x70  # response code: current error, fixed format
_VALID = 0x80  # the INFORMATION field is valid
_FIXED_LENGTH = 18
_SKSV = 0x80
_COMMAND_DATA = 0x40  # C/D: the field pointer points into the CDB

DataBuffer = bytes | bytearray | memoryview


def fixed_sense(
    key: SenseKey,
    code: AdditionalSense,
    information: int | None = None,
    field_pointer: int | None = None,
) -> bytes:
    """`field_pointer`: the CDB byte in error (sense-key specific, SPC-4 4.5.2.4.2)."""
    sense = bytearray(_FIXED_LENGTH)
    if field_pointer is not None:
        sense[15] = _SKSV | _COMMAND_DATA
        sense[16:18] = field_pointer.to_bytes(2, "big")
    sense[0] = _FIXED_CURRENT
    if information is not None:
        sense[0] |= _VALID
        sense[3:7] = (information & 0xFFFFFFFF).to_bytes(4, "big")
    sense[2] = key
    sense[7] = _FIXED_LENGTH - 8  # additional sense length
    sense[12], sense[13] = code >> 8, code & 0xFF
    return bytes(sense)


@dataclass(frozen=True, slots=True)
class ScsiResult:
    """What a command produced: `data` for the Data-In buffer, `sense` with CHECK CONDITION.

    `data_out_length` is the Data-Out length the CDB asked for, when it asked for any:
    the transport compares it with what the initiator announced (residuals).
    """

    status: ScsiStatus = ScsiStatus.GOOD
    data: DataBuffer = b""
    sense: bytes = b""
    data_out_length: int | None = None


class CheckCondition(Exception):
    """Raised by a command handler: the command ends with CHECK CONDITION and this sense."""

    def __init__(
        self,
        key: SenseKey,
        code: AdditionalSense,
        information: int | None = None,
        field_pointer: int | None = None,
    ):
        super().__init__(f"{key.name}: {code.name}")
        self.key = key
        self.code = code
        self.information = information
        self.field_pointer = field_pointer

    def result(self) -> ScsiResult:
        sense = fixed_sense(self.key, self.code, self.information, self.field_pointer)
        return ScsiResult(ScsiStatus.CHECK_CONDITION, sense=sense)


def invalid_field(field_pointer: int | None = None) -> CheckCondition:
    return CheckCondition(
        SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_FIELD_IN_CDB, field_pointer=field_pointer
    )


def invalid_parameter() -> CheckCondition:
    return CheckCondition(SenseKey.ILLEGAL_REQUEST, AdditionalSense.INVALID_FIELD_IN_PARAMETER_LIST)


def lba_out_of_range() -> CheckCondition:
    return CheckCondition(SenseKey.ILLEGAL_REQUEST, AdditionalSense.LBA_OUT_OF_RANGE)


def write_protected() -> CheckCondition:
    return CheckCondition(SenseKey.DATA_PROTECT, AdditionalSense.WRITE_PROTECTED)
