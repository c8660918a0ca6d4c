"""The Login and Text keys of RFC 3720 (chapters 11 and 12, appendix A.3), one row each.

Negotiation reads everything it needs to know about a key from its row: how the value
is written, the result function the acceptor applies (5.2.2), when the key is
Irrelevant, in which login stage and by whom it may be sent, and where the result goes
in `SessionParameters`. The rows are in dependency order: a key whose relevance or
bound depends on other keys comes after them, so one pass in table order sees their
results.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Enum, StrEnum

from .constants import LoginStage, LoginStatus

# A key's current value: int (bool for booleans), str (the StrEnums below for keys with
# a fixed vocabulary), or None for a name nobody declared.
Value = int | str | None
Values = Mapping[str, Value]

VERSION = 0x00  # 10.12.4: the only iSCSI version there is
# 5.2: constants that are answers, never proposals
REJECT = "Reject"
IRRELEVANT = "Irrelevant"
NOT_UNDERSTOOD = "NotUnderstood"
RESERVED_ANSWERS = frozenset({REJECT, IRRELEVANT, NOT_UNDERSTOOD})


class LoginError(Exception):
    """A login that ends with a Login reject carrying `status` (10.13.5)."""

    def __init__(self, status: LoginStatus, reason: str) -> None:
        super().__init__(f"{reason} (login status 0x{status:04x})")
        self.status = status
        self.reason = reason


class SessionType(StrEnum):
    """12.21."""

    DISCOVERY = "Discovery"
    NORMAL = "Normal"


class Digest(StrEnum):
    """12.1."""

    NONE = "None"
    CRC32C = "CRC32C"


class KeyType(Enum):
    NUMERICAL = "numerical-value"
    NUMERIC_RANGE = "numeric-range"  # low~high; only the marker intervals, never negotiated here
    BOOLEAN = "boolean-value"
    LIST = "list-of-values"
    TEXT = "text"  # names, aliases, addresses, SessionType, CHAP's binary values


class Rule(Enum):
    """How the acceptor computes the result: chapter 12's "result function", or none."""

    MINIMUM = "Minimum"
    MAXIMUM = "Maximum"
    AND = "AND"
    OR = "OR"
    FIRST_SUPPORTED = "list"  # 5.2.1: the first offered value the acceptor supports
    DECLARATIVE = "declarative"  # no answer
    AUTHENTICATION = "authentication"  # a step of the exchange of chapter 11


class Use(Enum):
    """Chapter 12 "Use"."""

    LO = "leading only"
    IO = "initialize only"
    ALL = "login and full feature phase"
    FFPO = "full feature phase only"


class Sender(Enum):
    INITIATOR = "initiator"
    TARGET = "target"
    BOTH = "initiator and target"


SECURITY = frozenset({LoginStage.SECURITY_NEGOTIATION})  # chapter 11 keys
ANY_STAGE = frozenset({LoginStage.SECURITY_NEGOTIATION, LoginStage.LOGIN_OPERATIONAL_NEGOTIATION})
OPERATIONAL = frozenset({LoginStage.LOGIN_OPERATIONAL_NEGOTIATION})
NO_LOGIN_STAGE: frozenset[LoginStage] = frozenset()  # FFPO keys


@dataclass(frozen=True, slots=True)
class KeyDefinition:
    name: str
    value_type: KeyType
    rule: Rule
    use: Use
    sender: Sender
    stages: frozenset[LoginStage]  # login stages in which the key may appear
    default: Value = None
    low: int = 0  # NUMERICAL bounds
    high: int = 0
    vocabulary: type[StrEnum] | None = None  # TEXT keys with a fixed set of values
    irrelevant_when: Callable[[Values], bool] | None = None
    at_most: str | None = None  # integrity rule: never above this key's value
    field: str | None = None  # the SessionParameters attribute holding the result
    configurable: bool = False  # NegotiationPolicy has `field`; otherwise only the default
    initial_only: bool = False  # 5.3: only in the first Login Request of a connection
    invalid_status: LoginStatus = LoginStatus.INITIATOR_ERROR  # a bad declared value


def _discovery(values: Values) -> bool:
    return values["SessionType"] is SessionType.DISCOVERY


def _no_unsolicited_data(values: Values) -> bool:
    # 12.14: FirstBurstLength is Irrelevant when InitialR2T=Yes and ImmediateData=No
    return _discovery(values) or (bool(values["InitialR2T"]) and not values["ImmediateData"])


def _marker_off(marker: str) -> Callable[[Values], bool]:
    return lambda values: not values[marker]


_SEGMENT_MAX = 2**24 - 1  # 12.12-12.14: numerical-value-512-to-(2**24-1)

_TABLE = (
    # Names and session type first: the relevance of most keys depends on SessionType.
    KeyDefinition(
        "SessionType", KeyType.TEXT, Rule.DECLARATIVE, Use.LO, Sender.INITIATOR, ANY_STAGE,
        default=SessionType.NORMAL, vocabulary=SessionType, field="session_type",
        initial_only=True, invalid_status=LoginStatus.SESSION_TYPE_NOT_SUPPORTED,
    ),
    KeyDefinition(
        "InitiatorName", KeyType.TEXT, Rule.DECLARATIVE, Use.IO, Sender.INITIATOR, ANY_STAGE,
        field="initiator_name", initial_only=True,
        invalid_status=LoginStatus.MISSING_PARAMETER,  # the only invalid name is an empty one
    ),
    KeyDefinition(
        "TargetName", KeyType.TEXT, Rule.DECLARATIVE, Use.IO, Sender.INITIATOR, ANY_STAGE,
        field="target_name", initial_only=True, invalid_status=LoginStatus.MISSING_PARAMETER,
    ),
    KeyDefinition(
        "InitiatorAlias", KeyType.TEXT, Rule.DECLARATIVE, Use.ALL, Sender.INITIATOR, ANY_STAGE,
        field="initiator_alias",
    ),
    KeyDefinition(
        "TargetAlias", KeyType.TEXT, Rule.DECLARATIVE, Use.ALL, Sender.TARGET, ANY_STAGE
    ),
    KeyDefinition(
        "TargetAddress", KeyType.TEXT, Rule.DECLARATIVE, Use.ALL, Sender.TARGET, ANY_STAGE
    ),
    KeyDefinition(
        "TargetPortalGroupTag", KeyType.NUMERICAL, Rule.DECLARATIVE, Use.IO, Sender.TARGET,
        ANY_STAGE, high=0xFFFF,
    ),
    KeyDefinition(
        "SendTargets", KeyType.TEXT, Rule.DECLARATIVE, Use.FFPO, Sender.INITIATOR,
        NO_LOGIN_STAGE,
    ),
    # Security keys (chapter 11); CHAP is the only method we implement.
    KeyDefinition(
        "AuthMethod", KeyType.LIST, Rule.AUTHENTICATION, Use.IO, Sender.BOTH, SECURITY
    ),
    *(
        KeyDefinition(name, key_type, Rule.AUTHENTICATION, Use.IO, Sender.BOTH, SECURITY)
        for name, key_type in (
            ("CHAP_A", KeyType.LIST),
            ("CHAP_I", KeyType.NUMERICAL),
            ("CHAP_C", KeyType.TEXT),
            ("CHAP_N", KeyType.TEXT),
            ("CHAP_R", KeyType.TEXT),
        )
    ),
    # Operational keys (chapter 12).
    *(
        KeyDefinition(
            name, KeyType.LIST, Rule.FIRST_SUPPORTED, Use.IO, Sender.BOTH, OPERATIONAL,
            default=Digest.NONE, field=field, configurable=True,
        )
        for name, field in (("HeaderDigest", "header_digest"), ("DataDigest", "data_digest"))
    ),
    KeyDefinition(
        "MaxRecvDataSegmentLength", KeyType.NUMERICAL, Rule.DECLARATIVE, Use.ALL, Sender.BOTH,
        OPERATIONAL, default=8192, low=512, high=_SEGMENT_MAX,
        field="initiator_max_recv_data_segment_length",
    ),
    KeyDefinition(
        "MaxConnections", KeyType.NUMERICAL, Rule.MINIMUM, Use.LO, Sender.BOTH, OPERATIONAL,
        default=1, low=1, high=0xFFFF, irrelevant_when=_discovery, field="max_connections",
    ),
    KeyDefinition(
        "InitialR2T", KeyType.BOOLEAN, Rule.OR, Use.LO, Sender.BOTH, OPERATIONAL,
        default=True, irrelevant_when=_discovery, field="initial_r2t", configurable=True,
    ),
    KeyDefinition(
        "ImmediateData", KeyType.BOOLEAN, Rule.AND, Use.LO, Sender.BOTH, OPERATIONAL,
        default=True, irrelevant_when=_discovery, field="immediate_data", configurable=True,
    ),
    KeyDefinition(
        "MaxBurstLength", KeyType.NUMERICAL, Rule.MINIMUM, Use.LO, Sender.BOTH, OPERATIONAL,
        default=262144, low=512, high=_SEGMENT_MAX, irrelevant_when=_discovery,
        field="max_burst_length", configurable=True,
    ),
    KeyDefinition(
        "FirstBurstLength", KeyType.NUMERICAL, Rule.MINIMUM, Use.LO, Sender.BOTH, OPERATIONAL,
        default=65536, low=512, high=_SEGMENT_MAX, irrelevant_when=_no_unsolicited_data,
        at_most="MaxBurstLength", field="first_burst_length", configurable=True,
    ),
    KeyDefinition(
        "DefaultTime2Wait", KeyType.NUMERICAL, Rule.MAXIMUM, Use.LO, Sender.BOTH, OPERATIONAL,
        default=2, high=3600, field="default_time2wait", configurable=True,
    ),
    KeyDefinition(
        "DefaultTime2Retain", KeyType.NUMERICAL, Rule.MINIMUM, Use.LO, Sender.BOTH,
        OPERATIONAL, default=20, high=3600, field="default_time2retain", configurable=True,
    ),
    KeyDefinition(
        "MaxOutstandingR2T", KeyType.NUMERICAL, Rule.MINIMUM, Use.LO, Sender.BOTH, OPERATIONAL,
        default=1, low=1, high=0xFFFF, irrelevant_when=_discovery,
        field="max_outstanding_r2t", configurable=True,
    ),
    *(
        KeyDefinition(
            name, KeyType.BOOLEAN, Rule.OR, Use.LO, Sender.BOTH, OPERATIONAL, default=True,
            irrelevant_when=_discovery, field=field, configurable=True,
        )
        for name, field in (
            ("DataPDUInOrder", "data_pdu_in_order"),
            ("DataSequenceInOrder", "data_sequence_in_order"),
        )
    ),
    # Error recovery beyond level 0 is not implemented: the target's value is the default.
    KeyDefinition(
        "ErrorRecoveryLevel", KeyType.NUMERICAL, Rule.MINIMUM, Use.LO, Sender.BOTH,
        OPERATIONAL, default=0, high=2, field="error_recovery_level",
    ),
    # Markers (A.3) are not implemented: the target always answers No, which makes the
    # intervals Irrelevant (A.3.2).
    *(
        KeyDefinition(name, KeyType.BOOLEAN, Rule.AND, Use.IO, Sender.BOTH, OPERATIONAL,
                      default=False)
        for name in ("OFMarker", "IFMarker")
    ),
    *(
        KeyDefinition(
            f"{marker[:2]}MarkInt", KeyType.NUMERIC_RANGE, Rule.MINIMUM, Use.IO, Sender.BOTH,
            OPERATIONAL, default=2048, low=1, high=0xFFFF, irrelevant_when=_marker_off(marker),
        )
        for marker in ("OFMarker", "IFMarker")
    ),
)  # fmt: skip

KEYS: Mapping[str, KeyDefinition] = {key.name: key for key in _TABLE}

_NUMBER = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]+")


def parse_numerical(text: str) -> int | None:
    """A numerical-value (5.1): decimal-constant or hex-constant; None if it is not one."""
    if not _NUMBER.fullmatch(text):
        return None
    return int(text[2:], 16) if text[1:2] in ("x", "X") else int(text)
