"""SCSI numbers the logical units use, named as in SPC-4 and SBC-3."""

from enum import IntEnum

BLOCK_SIZE = 512  # bytes per logical block


class Opcode(IntEnum):
    """Operation codes (SPC-4 annex D). Anything else is INVALID COMMAND OPERATION CODE."""

    TEST_UNIT_READY = 0x00
    REQUEST_SENSE = 0x03
    INQUIRY = 0x12
    READ_CAPACITY_10 = 0x25
    SERVICE_ACTION_IN_16 = 0x9E  # READ CAPACITY (16) is its service action 0x10
    REPORT_LUNS = 0xA0


READ_CAPACITY_16 = 0x10  # SERVICE ACTION IN (16) service action (SBC-3 5.16)


class SenseKey(IntEnum):
    """SPC-4 4.5.6."""

    NO_SENSE = 0x0
    ILLEGAL_REQUEST = 0x5


class AdditionalSense(IntEnum):
    """ASC (high byte) and ASCQ (low byte), SPC-4 annex D.2."""

    NO_ADDITIONAL_SENSE = 0x0000
    INVALID_COMMAND_OPERATION_CODE = 0x2000
    INVALID_FIELD_IN_CDB = 0x2400
    LOGICAL_UNIT_NOT_SUPPORTED = 0x2500


class VpdPage(IntEnum):
    """Vital product data pages (SPC-4 7.8) the logical units report."""

    SUPPORTED_PAGES = 0x00
    UNIT_SERIAL_NUMBER = 0x80
    DEVICE_IDENTIFICATION = 0x83


class PeripheralDevice(IntEnum):
    """Byte 0 of INQUIRY data: peripheral qualifier (bits 7-5) and device type (4-0)."""

    DIRECT_ACCESS_BLOCK = 0x00
    NOT_CONNECTED = 0x7F  # qualifier 011b, type 1Fh: no logical unit at this LUN
