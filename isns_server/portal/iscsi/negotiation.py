"""Text-mode negotiation of the Login Phase, target side (RFC 3720 5.2, 5.3, chapter 12).

`Negotiation` answers the keys of each logical text data segment (LTDS) of a login,
driven by the key table of `keys`: declarations are recorded, proposals answered with
the result function applied to the initiator's value and the target's own
(`NegotiationPolicy`), and everything else with the constants of 5.2 (NotUnderstood,
Irrelevant, Reject) or a `LoginError` for a protocol error. Values take effect only
when the login succeeds: `result()` builds the `SessionParameters`.
"""

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .codec import PduReader
from .constants import DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH, LoginStage, LoginStatus
from .keys import (
    IRRELEVANT,
    KEYS,
    NOT_UNDERSTOOD,
    REJECT,
    RESERVED_ANSWERS,
    Digest,
    KeyDefinition,
    KeyType,
    LoginError,
    Rule,
    Sender,
    SessionType,
    Use,
    Value,
    parse_numerical,
)
from .text import KeyValuePairs

Pair = tuple[str, str]


@dataclass(frozen=True, slots=True)
class NegotiationPolicy:
    """The values the target would choose on its own, one per configurable key.

    For a list key, the values the target accepts (the initiator's order decides).
    Keys not listed here (MaxConnections, ErrorRecoveryLevel, the markers) are only
    supported at their default.
    """

    header_digest: tuple[Digest, ...] = (Digest.NONE, Digest.CRC32C)
    data_digest: tuple[Digest, ...] = (Digest.NONE, Digest.CRC32C)
    # Declared to the initiator: the longest data segment the PduReader will accept.
    target_max_recv_data_segment_length: int = 262144
    initial_r2t: bool = False  # unsolicited Data-Out welcome: a round trip less per write
    immediate_data: bool = True
    max_burst_length: int = 262144
    first_burst_length: int = 65536
    default_time2wait: int = 2
    default_time2retain: int = 20
    max_outstanding_r2t: int = 8
    data_pdu_in_order: bool = True
    data_sequence_in_order: bool = True

    def __post_init__(self) -> None:
        mrdsl = KEYS["MaxRecvDataSegmentLength"]
        checks = [(mrdsl, self.target_max_recv_data_segment_length)]
        checks += [(key, self.setting(key)) for key in KEYS.values() if key.configurable]
        for key, value in checks:
            if key.value_type is KeyType.NUMERICAL and not key.low <= int(value) <= key.high:
                raise ValueError(f"{key.name}={value} is outside {key.low}..{key.high}")
            if key.value_type is KeyType.LIST and not value:
                raise ValueError(f"{key.name}: no value accepted")
            if key.at_most and int(value) > int(self.setting(KEYS[key.at_most])):
                raise ValueError(f"{key.name} must not exceed {key.at_most}")

    def setting(self, key: KeyDefinition) -> Any:
        """The target's value for `key`: configured, or the RFC default."""
        return getattr(self, key.field) if key.configurable and key.field else key.default


@dataclass(frozen=True, slots=True)
class SessionParameters:
    """What a successful login agreed on (names as in RFC 3720 chapter 12)."""

    session_type: SessionType
    initiator_name: str
    target_name: str | None  # None in a discovery session that named no target
    initiator_alias: str | None
    target_portal_group_tag: int
    header_digest: Digest
    data_digest: Digest
    # MaxRecvDataSegmentLength is declared by each side for what it receives:
    initiator_max_recv_data_segment_length: int  # the limit on PDUs the target sends
    target_max_recv_data_segment_length: int  # the limit on PDUs the initiator sends
    max_connections: int
    initial_r2t: bool
    immediate_data: bool
    max_burst_length: int
    first_burst_length: int
    default_time2wait: int
    default_time2retain: int
    max_outstanding_r2t: int
    data_pdu_in_order: bool
    data_sequence_in_order: bool
    error_recovery_level: int

    def apply_to(self, reader: PduReader) -> None:
        """Switch the connection's reader to the negotiated settings.

        Call it once the final Login Response is sent: digests and the negotiated
        MaxRecvDataSegmentLength start with the first Full Feature Phase PDU (5.3, 12.1).
        """
        reader.header_digest = self.header_digest is Digest.CRC32C
        reader.data_digest = self.data_digest is Digest.CRC32C
        reader.max_recv_data_segment_length = self.target_max_recv_data_segment_length


@dataclass(frozen=True, slots=True)
class NegotiationStep:
    """The target's answers to one LTDS."""

    answers: tuple[Pair, ...]
    authentication: Mapping[str, str]  # AuthMethod and CHAP_* keys, for the login layer


_RESULT_FUNCTIONS: dict[Rule, Callable[[int, int], int]] = {
    Rule.MINIMUM: min,
    Rule.MAXIMUM: max,
    Rule.AND: operator.and_,
    Rule.OR: operator.or_,
}
_BOOLEANS = {"Yes": True, "No": False}


def _parse_text(key: KeyDefinition, text: str) -> Value:
    if key.vocabulary is None:
        return text or None
    try:
        return key.vocabulary(text)
    except ValueError:
        return None


def _parse_numerical(key: KeyDefinition, text: str) -> Value:
    number = parse_numerical(text)
    return number if number is not None and key.low <= number <= key.high else None


# NUMERIC_RANGE has no parser: the only such keys (the marker intervals) are always
# Irrelevant, because the target never agrees to markers.
_PARSERS: dict[KeyType, Callable[[KeyDefinition, str], Value]] = {
    KeyType.NUMERICAL: _parse_numerical,
    KeyType.BOOLEAN: lambda _, text: _BOOLEANS.get(text),
    KeyType.TEXT: _parse_text,
}


def format_value(value: Value) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return str(value)


class Negotiation:
    """The key negotiation of one login, fed one LTDS at a time.

    `session` is the existing session a non-leading login adds a connection to: its
    leading-only values stand, and the initiator's leading-only keys are Irrelevant.
    """

    def __init__(self, policy: NegotiationPolicy, session: SessionParameters | None = None):
        self._policy = policy
        self._leading = session is None
        self._values: dict[str, Value] = {key.name: key.default for key in KEYS.values()}
        if session is not None:
            for key in KEYS.values():
                if key.use is Use.LO and key.field:
                    self._values[key.name] = getattr(session, key.field)
        self._offered: set[str] = set()  # every key the initiator sent during this login
        self._declared = False  # our MaxRecvDataSegmentLength

    def value(self, name: str) -> Value:
        return self._values[name]

    def receive(self, pairs: KeyValuePairs, stage: LoginStage, *, initial: bool) -> NegotiationStep:
        """Answer one LTDS sent in `stage`; `initial` for the first of the connection.

        Raises LoginError for what 5.3 makes a protocol error: a key given twice, sent
        again later in the login, in the wrong stage, by the wrong side, or proposing
        one of the reserved answer constants.
        """
        if pairs.repeated:
            raise LoginError(
                LoginStatus.INITIATOR_ERROR, f"{', '.join(pairs.repeated)} given more than once"
            )
        offered = dict(pairs.pairs)
        known = {name: KEYS[name] for name in offered if name in KEYS}
        for key in known.values():
            self._check(key, offered[key.name], stage, initial)
        self._offered.update(offered)
        answers = {name: NOT_UNDERSTOOD for name in offered if name not in known}
        authentication = {}
        for key in KEYS.values():  # table order: a key's dependencies are decided first
            if key.name not in known:
                continue
            if key.rule is Rule.AUTHENTICATION:
                authentication[key.name] = offered[key.name]
            elif (answer := self._answer(key, offered[key.name])) is not None:
                answers[key.name] = answer
        return NegotiationStep(
            tuple((name, answers[name]) for name in offered if name in answers), authentication
        )

    def declarations(self, stage: LoginStage) -> list[Pair]:
        """The target's declarations for its next response in `stage`.

        MaxRecvDataSegmentLength is declared once, in the operational stage (it is not
        an Any-Stage key); without it the initiator would have to assume 8192.
        """
        if stage is not LoginStage.LOGIN_OPERATIONAL_NEGOTIATION or self._declared:
            return []
        self._declared = True
        value = self._policy.target_max_recv_data_segment_length
        return [("MaxRecvDataSegmentLength", str(value))]

    def result(self, target_portal_group_tag: int) -> SessionParameters:
        """The agreed parameters; raises LoginError if they break an integrity rule (5.2)."""
        for key in KEYS.values():
            if key.at_most and not self._irrelevant(key):
                value, bound = self._number(key.name), self._number(key.at_most)
                if value > bound:
                    raise LoginError(
                        LoginStatus.INITIATOR_ERROR,
                        f"{key.name}={value} exceeds {key.at_most}={bound}",
                    )
        negotiated: dict[str, Any] = {
            key.field: self._values[key.name] for key in KEYS.values() if key.field
        }
        declared = self._policy.target_max_recv_data_segment_length
        return SessionParameters(
            **negotiated,
            target_portal_group_tag=target_portal_group_tag,
            target_max_recv_data_segment_length=(
                declared if self._declared else DEFAULT_MAX_RECV_DATA_SEGMENT_LENGTH
            ),
        )

    def _check(self, key: KeyDefinition, text: str, stage: LoginStage, initial: bool) -> None:
        if key.sender is Sender.TARGET:
            problem = "is sent by targets only"
        elif stage not in key.stages:
            problem = f"is not allowed in stage {stage.name}"
        elif key.initial_only and not initial:
            problem = "belongs in the first Login Request"
        elif key.name in self._offered:
            problem = "was already negotiated in this login"  # 5.3: renegotiation
        elif text in RESERVED_ANSWERS:
            problem = f"proposes the reserved value {text}"
        else:
            return
        raise LoginError(LoginStatus.INITIATOR_ERROR, f"{key.name} {problem}")

    def _irrelevant(self, key: KeyDefinition) -> bool:
        if key.use is Use.LO and not self._leading:
            return True
        return key.irrelevant_when is not None and key.irrelevant_when(self._values)

    def _answer(self, key: KeyDefinition, text: str) -> str | None:
        """The answer to one key (None for a declaration), recording the result."""
        if key.rule is Rule.DECLARATIVE:
            if self._irrelevant(key):
                return None
            value = _PARSERS[key.value_type](key, text)
            if value is None:
                raise LoginError(key.invalid_status, f"{key.name}={text} is invalid")
            self._values[key.name] = value
            return None
        if self._irrelevant(key):
            return IRRELEVANT
        ours = self._policy.setting(key)
        result: Value
        if key.value_type is KeyType.LIST:
            # 5.2.1: of the values we accept, the one the initiator listed first
            offered = text.split(",")
            accepted = (item for item in ours if item in offered)
            result = min(accepted, key=offered.index, default=None)
        else:
            value = _PARSERS[key.value_type](key, text)
            if not isinstance(value, int):
                return REJECT  # 5.2.2: not admissible
            result = _RESULT_FUNCTIONS[key.rule](value, ours)
            if key.at_most is not None:
                result = min(result, self._number(key.at_most))
        if result is None:
            return REJECT  # the value stays as it was (5.2)
        self._values[key.name] = result
        return format_value(result)

    def _number(self, name: str) -> int:
        value = self._values[name]
        assert isinstance(value, int), name
        return value
