"""iSCSI numbers, named as in RFC 3720 (RFC 7143 keeps them unchanged)."""

from enum import IntEnum

BHS_LENGTH = 48  # 10.2.1
DIGEST_LENGTH = 4  # CRC32C, 10.2.3
RESERVED_TAG = 0xFFFFFFFF  # "no task" / "no transfer" value of ITT and TTT fields
MAX_DATA_SEGMENT_LENGTH = 0xFFFFFF  # DataSegmentLength is a 24-bit field
DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH = 8192  # 12.12, also the limit during login


class Opcode(IntEnum):
    """10.2.1.2. Vendor-specific (0x1c-0x1e, 0x3c-0x3e) and other values are not modelled."""

    # initiator opcodes
    NOP_OUT = 0x00
    SCSI_COMMAND = 0x01
    TASK_MANAGEMENT_REQUEST = 0x02
    LOGIN_REQUEST = 0x03
    TEXT_REQUEST = 0x04
    DATA_OUT = 0x05
    LOGOUT_REQUEST = 0x06
    SNACK_REQUEST = 0x10
    # target opcodes
    NOP_IN = 0x20
    SCSI_RESPONSE = 0x21
    TASK_MANAGEMENT_RESPONSE = 0x22
    LOGIN_RESPONSE = 0x23
    TEXT_RESPONSE = 0x24
    DATA_IN = 0x25
    LOGOUT_RESPONSE = 0x26
    R2T = 0x31
    ASYNC_MESSAGE = 0x32
    REJECT = 0x3F


class AhsType(IntEnum):
    """10.2.2.1."""

    EXTENDED_CDB = 1
    BIDI_READ_DATA_LENGTH = 2  # Expected Bidirectional Read Data Length


class TaskAttribute(IntEnum):
    """SCSI Command ATTR field, 10.3.1."""

    UNTAGGED = 0
    SIMPLE = 1
    ORDERED = 2
    HEAD_OF_QUEUE = 3
    ACA = 4


class ServiceResponse(IntEnum):
    """SCSI Response "Response" field, 10.4.3."""

    COMMAND_COMPLETED = 0x00
    TARGET_FAILURE = 0x01


class TaskManagementFunction(IntEnum):
    """10.5.1."""

    ABORT_TASK = 1
    ABORT_TASK_SET = 2
    CLEAR_ACA = 3
    CLEAR_TASK_SET = 4
    LOGICAL_UNIT_RESET = 5
    TARGET_WARM_RESET = 6
    TARGET_COLD_RESET = 7
    TASK_REASSIGN = 8


class TaskManagementResponseCode(IntEnum):
    """10.6.1."""

    FUNCTION_COMPLETE = 0
    TASK_DOES_NOT_EXIST = 1
    LUN_DOES_NOT_EXIST = 2
    TASK_STILL_ALLEGIANT = 3
    TASK_ALLEGIANCE_REASSIGNMENT_NOT_SUPPORTED = 4
    FUNCTION_NOT_SUPPORTED = 5
    FUNCTION_AUTHORIZATION_FAILED = 6
    FUNCTION_REJECTED = 255


class AsyncEvent(IntEnum):
    """10.9.1."""

    SCSI_ASYNC_EVENT = 0
    LOGOUT_REQUESTED = 1
    CONNECTION_DROP = 2
    SESSION_DROP = 3
    NEGOTIATION_REQUESTED = 4
    VENDOR_SPECIFIC = 255


class LoginStage(IntEnum):
    """CSG/NSG codes, 10.12.3."""

    SECURITY_NEGOTIATION = 0
    LOGIN_OPERATIONAL_NEGOTIATION = 1
    FULL_FEATURE_PHASE = 3


class LoginStatusClass(IntEnum):
    """10.13.5."""

    SUCCESS = 0
    REDIRECTION = 1
    INITIATOR_ERROR = 2
    TARGET_ERROR = 3


class LoginStatus(IntEnum):
    """10.13.5 table: Status-Class in the high byte, Status-Detail in the low byte."""

    SUCCESS = 0x0000
    TARGET_MOVED_TEMPORARILY = 0x0101
    TARGET_MOVED_PERMANENTLY = 0x0102
    INITIATOR_ERROR = 0x0200
    AUTHENTICATION_FAILURE = 0x0201
    AUTHORIZATION_FAILURE = 0x0202
    NOT_FOUND = 0x0203
    TARGET_REMOVED = 0x0204
    UNSUPPORTED_VERSION = 0x0205
    TOO_MANY_CONNECTIONS = 0x0206
    MISSING_PARAMETER = 0x0207
    CANT_INCLUDE_IN_SESSION = 0x0208
    SESSION_TYPE_NOT_SUPPORTED = 0x0209
    SESSION_DOES_NOT_EXIST = 0x020A
    INVALID_DURING_LOGIN = 0x020B
    TARGET_ERROR = 0x0300
    SERVICE_UNAVAILABLE = 0x0301
    OUT_OF_RESOURCES = 0x0302

    @property
    def status_class(self) -> LoginStatusClass:
        return LoginStatusClass(self.value >> 8)

    @property
    def status_detail(self) -> int:
        return self.value & 0xFF


class LogoutReasonCode(IntEnum):
    """10.14.1."""

    CLOSE_SESSION = 0
    CLOSE_CONNECTION = 1
    REMOVE_CONNECTION_FOR_RECOVERY = 2


class LogoutResponseCode(IntEnum):
    """10.15.1."""

    SUCCESS = 0
    CID_NOT_FOUND = 1
    CONNECTION_RECOVERY_NOT_SUPPORTED = 2
    CLEANUP_FAILED = 3


class SnackType(IntEnum):
    """10.16.1."""

    DATA_R2T = 0
    STATUS = 1
    DATA_ACK = 2
    R_DATA = 3


class RejectReason(IntEnum):
    """10.17.1."""

    DATA_DIGEST_ERROR = 0x02
    SNACK_REJECT = 0x03
    PROTOCOL_ERROR = 0x04
    COMMAND_NOT_SUPPORTED = 0x05
    IMMEDIATE_COMMAND_REJECT = 0x06
    TASK_IN_PROGRESS = 0x07
    INVALID_DATA_ACK = 0x08
    INVALID_PDU_FIELD = 0x09
    LONG_OPERATION_REJECT = 0x0A
    NEGOTIATION_RESET = 0x0B
    WAITING_FOR_LOGOUT = 0x0C
