"""iSNSP numbers, named as in RFC 4171."""

from enum import IntEnum, IntFlag

ISNSP_VERSION = 1  # RFC 4171 5.1.1
HEADER_LENGTH = 12
DEFAULT_PORT = 3205


class FunctionId(IntEnum):
    """RFC 4171 5.1.2. Responses are the request's value with bit 0x8000 set."""

    DEV_ATTR_REG = 0x0001
    DEV_ATTR_QRY = 0x0002
    DEV_GET_NEXT = 0x0003
    DEV_DEREG = 0x0004
    SCN_REG = 0x0005
    SCN_DEREG = 0x0006
    SCN_EVENT = 0x0007
    SCN = 0x0008
    DD_REG = 0x0009
    DD_DEREG = 0x000A
    DDS_REG = 0x000B
    DDS_DEREG = 0x000C
    ESI = 0x000D
    HEARTBEAT = 0x000E
    RQST_DOM_ID = 0x0011
    RLSE_DOM_ID = 0x0012
    GET_DOM_ID = 0x0013

    DEV_ATTR_REG_RSP = 0x8001
    DEV_ATTR_QRY_RSP = 0x8002
    DEV_GET_NEXT_RSP = 0x8003
    DEV_DEREG_RSP = 0x8004
    SCN_REG_RSP = 0x8005
    SCN_DEREG_RSP = 0x8006
    SCN_EVENT_RSP = 0x8007
    SCN_RSP = 0x8008
    DD_REG_RSP = 0x8009
    DD_DEREG_RSP = 0x800A
    DDS_REG_RSP = 0x800B
    DDS_DEREG_RSP = 0x800C
    ESI_RSP = 0x800D
    RQST_DOM_ID_RSP = 0x8011
    RLSE_DOM_ID_RSP = 0x8012
    GET_DOM_ID_RSP = 0x8013

    @property
    def is_response(self) -> bool:
        return bool(self.value & RESPONSE_BIT)


RESPONSE_BIT = 0x8000
FC_FUNCTIONS = frozenset({FunctionId.RQST_DOM_ID, FunctionId.RLSE_DOM_ID, FunctionId.GET_DOM_ID})


def response_function(request: int) -> int:
    """The function ID a response to `request` carries (Heartbeat has none; callers check)."""
    return request | RESPONSE_BIT


class Flags(IntFlag):
    """RFC 4171 5.1.4: header bits 16..21 of the 32-bit word, i.e. the high bits of FLAGS."""

    NONE = 0
    CLIENT = 0x8000
    SERVER = 0x4000
    AUTH = 0x2000
    REPLACE = 0x1000
    LAST_PDU = 0x0800
    FIRST_PDU = 0x0400


class Status(IntEnum):
    """RFC 4171 5.4."""

    SUCCESSFUL = 0
    UNKNOWN_ERROR = 1
    MESSAGE_FORMAT_ERROR = 2
    INVALID_REGISTRATION = 3
    INVALID_QUERY = 5
    SOURCE_UNKNOWN = 6
    SOURCE_ABSENT = 7
    SOURCE_UNAUTHORIZED = 8
    NO_SUCH_ENTRY = 9
    VERSION_NOT_SUPPORTED = 10
    INTERNAL_ERROR = 11
    BUSY = 12
    OPTION_NOT_UNDERSTOOD = 13
    INVALID_UPDATE = 14
    MESSAGE_NOT_SUPPORTED = 15
    SCN_EVENT_REJECTED = 16
    SCN_REGISTRATION_REJECTED = 17
    ATTRIBUTE_NOT_IMPLEMENTED = 18
    FC_DOMAIN_ID_NOT_AVAILABLE = 19
    FC_DOMAIN_ID_NOT_ALLOCATED = 20
    ESI_NOT_AVAILABLE = 21
    INVALID_DEREGISTRATION = 22
    REGISTRATION_FEATURE_NOT_SUPPORTED = 23


def status_text(status: int | None) -> str:
    """A status code for logs: `SCN_EVENT_REJECTED (16)`, an unknown one as its number."""
    if status is None:
        return "none"
    try:
        return f"{Status(status).name} ({status:d})"
    except ValueError:
        return str(status)


class Tag(IntEnum):
    """Attribute tags, RFC 4171 6.1."""

    DELIMITER = 0
    # Network Entity (6.2)
    ENTITY_IDENTIFIER = 1
    ENTITY_PROTOCOL = 2
    MGMT_IP_ADDRESS = 3
    TIMESTAMP = 4
    PROTOCOL_VERSION_RANGE = 5
    REGISTRATION_PERIOD = 6
    ENTITY_INDEX = 7
    ENTITY_NEXT_INDEX = 8
    ENTITY_ISAKMP_PHASE_1 = 11
    ENTITY_CERTIFICATE = 12
    # Portal (6.3)
    PORTAL_IP_ADDRESS = 16
    PORTAL_TCP_UDP_PORT = 17
    PORTAL_SYMBOLIC_NAME = 18
    ESI_INTERVAL = 19
    ESI_PORT = 20
    PORTAL_INDEX = 22
    SCN_PORT = 23
    PORTAL_NEXT_INDEX = 24
    PORTAL_SECURITY_BITMAP = 27
    PORTAL_ISAKMP_PHASE_1 = 28
    PORTAL_ISAKMP_PHASE_2 = 29
    PORTAL_CERTIFICATE = 31
    # iSCSI Storage Node (6.4)
    ISCSI_NAME = 32
    ISCSI_NODE_TYPE = 33
    ISCSI_ALIAS = 34
    ISCSI_SCN_BITMAP = 35
    ISCSI_NODE_INDEX = 36
    WWNN_TOKEN = 37
    ISCSI_NODE_NEXT_INDEX = 38
    ISCSI_AUTH_METHOD = 42
    # Portal Group (6.5)
    PG_ISCSI_NAME = 48
    PG_PORTAL_IP_ADDR = 49
    PG_PORTAL_TCP_UDP_PORT = 50
    PG_TAG = 51
    PG_INDEX = 52
    PG_NEXT_INDEX = 53
    # FC Port / FC Node / Switch (6.6-6.8): recognised, not implemented
    FC_PORT_NAME_WWPN = 64
    PORT_ID = 65
    FC_PORT_TYPE = 66
    SYMBOLIC_PORT_NAME = 67
    FABRIC_PORT_NAME = 68
    HARD_ADDRESS = 69
    PORT_IP_ADDRESS = 70
    CLASS_OF_SERVICE = 71
    FC4_TYPES = 72
    FC4_DESCRIPTOR = 73
    FC4_FEATURES = 74
    IFCP_SCN_BITMAP = 75
    PORT_ROLE = 76
    PERMANENT_PORT_NAME = 77
    FC4_TYPE_CODE = 95
    FC_NODE_NAME_WWNN = 96
    SYMBOLIC_NODE_NAME = 97
    NODE_IP_ADDRESS = 98
    NODE_IPA = 99
    PROXY_ISCSI_NAME = 101
    SWITCH_NAME = 128
    PREFERRED_ID = 129
    ASSIGNED_ID = 130
    VIRTUAL_FABRIC_ID = 131
    # Server (6.9)
    ISNS_SERVER_VENDOR_OUI = 256
    # Discovery Domain Set (6.11.1)
    DD_SET_ID = 2049
    DD_SET_SYMBOLIC_NAME = 2050
    DD_SET_STATUS = 2051
    DD_SET_NEXT_ID = 2052
    # Discovery Domain (6.11.2)
    DD_ID = 2065
    DD_SYMBOLIC_NAME = 2066
    DD_MEMBER_ISCSI_INDEX = 2067
    DD_MEMBER_ISCSI_NAME = 2068
    DD_MEMBER_FC_PORT_NAME = 2069
    DD_MEMBER_PORTAL_INDEX = 2070
    DD_MEMBER_PORTAL_IP_ADDR = 2071
    DD_MEMBER_PORTAL_TCP_UDP_PORT = 2072
    DD_FEATURES = 2078
    DD_ID_NEXT_ID = 2079


# Vendor-specific tag ranges (RFC 4171 6.10); values are carried as opaque bytes.
VENDOR_SPECIFIC_RANGES = (range(257, 385), range(385, 1537), range(1537, 2049))
# Tags whose objects this server does not implement (iFCP / Fibre Channel, RFC 4171 6.6-6.8).
FC_TAG_RANGE = range(64, 256)


class EntityProtocol(IntEnum):
    """RFC 4171 6.2.2."""

    NO_PROTOCOL = 1
    ISCSI = 2
    IFCP = 3


class NodeType(IntFlag):
    """iSCSI Node Type, RFC 4171 6.4.2 (bit 31 is the least significant)."""

    NONE = 0
    TARGET = 0x1
    INITIATOR = 0x2
    CONTROL = 0x4


class ScnBitmap(IntFlag):
    """iSCSI SCN Bitmap, RFC 4171 6.4.4 (bit 31 is the least significant)."""

    NONE = 0
    DD_MEMBER_ADDED = 0x01
    DD_MEMBER_REMOVED = 0x02
    OBJECT_UPDATED = 0x04
    OBJECT_ADDED = 0x08
    OBJECT_REMOVED = 0x10
    MANAGEMENT_REGISTRATION = 0x20
    TARGET_AND_SELF_ONLY = 0x40
    INITIATOR_AND_SELF_ONLY = 0x80


class DDSetStatus(IntFlag):
    """DD Set Status, RFC 4171 6.11.1.3."""

    DISABLED = 0
    ENABLED = 0x1


class DDFeatures(IntFlag):
    """DD Features, RFC 4171 6.11.2.9."""

    NONE = 0
    BOOT_LIST = 0x1


PORT_UDP_BIT = 0x10000  # Portal TCP/UDP Port, RFC 4171 6.3.2: bit 15 set means UDP
