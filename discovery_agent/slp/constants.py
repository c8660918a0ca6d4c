"""SLPv2 numbers, named as in RFC 2608."""

from enum import IntEnum, IntFlag

SLP_VERSION = 2  # RFC 2608 8
DEFAULT_PORT = 427  # RFC 2608 6.1
MULTICAST_ADDRESS = "239.255.255.253"  # RFC 2608 6.1, IPv4
CONFIG_MTU = 1400  # RFC 2608 6.1: default UDP payload limit
HEADER_LENGTH = 14  # fixed part of the header, before the language tag bytes
MAX_MESSAGE_LENGTH = 0xFFFFFF  # 3-byte length field
NAMING_AUTHORITY_ALL = 0xFFFF  # RFC 2608 10.1: "all naming authorities" length marker


class FunctionId(IntEnum):
    """RFC 2608 8."""

    SRV_RQST = 1
    SRV_RPLY = 2
    SRV_REG = 3
    SRV_DEREG = 4
    SRV_ACK = 5
    ATTR_RQST = 6
    ATTR_RPLY = 7
    DA_ADVERT = 8
    SRV_TYPE_RQST = 9
    SRV_TYPE_RPLY = 10
    SA_ADVERT = 11


# The reply a request is answered with, errors included (RFC 2608 8, 10).
REPLY_FUNCTION: dict[FunctionId, FunctionId] = {
    FunctionId.SRV_RQST: FunctionId.SRV_RPLY,
    FunctionId.SRV_REG: FunctionId.SRV_ACK,
    FunctionId.SRV_DEREG: FunctionId.SRV_ACK,
    FunctionId.ATTR_RQST: FunctionId.ATTR_RPLY,
    FunctionId.SRV_TYPE_RQST: FunctionId.SRV_TYPE_RPLY,
}


class ErrorCode(IntEnum):
    """RFC 2608 7. Zero (no error) is unnamed in the RFC."""

    OK = 0
    LANGUAGE_NOT_SUPPORTED = 1
    PARSE_ERROR = 2
    INVALID_REGISTRATION = 3
    SCOPE_NOT_SUPPORTED = 4
    AUTHENTICATION_UNKNOWN = 5
    AUTHENTICATION_ABSENT = 6
    AUTHENTICATION_FAILED = 7
    VER_NOT_SUPPORTED = 9
    INTERNAL_ERROR = 10
    DA_BUSY_NOW = 11
    OPTION_NOT_UNDERSTOOD = 12
    INVALID_UPDATE = 13
    MSG_NOT_SUPPORTED = 14
    REFRESH_REJECTED = 15


class Flags(IntFlag):
    """RFC 2608 8: the 16-bit flags field; the low 13 bits are reserved and MUST be 0."""

    NONE = 0
    OVERFLOW = 0x8000
    FRESH = 0x4000
    REQUEST_MCAST = 0x2000


class ExtensionId(IntEnum):
    """RFC 2608 9.1, Appendix D."""

    ATTRIBUTE_MISSING = 0x0001


# RFC 2608 9.1: a receiver that does not understand an extension in this range must
# refuse the message (OPTION_NOT_UNDERSTOOD for requests, silent discard for replies).
MANDATORY_EXTENSIONS = range(0x4000, 0x8000)
