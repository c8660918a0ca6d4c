"""Text-mode negotiation (RFC 3720 5.2, chapter 12) and the key table it runs on."""

import contextlib
import dataclasses
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from isns_server.portal.iscsi.codec import PduReader
from isns_server.portal.iscsi.constants import LoginStage, LoginStatus
from isns_server.portal.iscsi.keys import (
    KEYS,
    Digest,
    KeyType,
    LoginError,
    Rule,
    SessionType,
    parse_numerical,
)
from isns_server.portal.iscsi.negotiation import (
    Negotiation,
    NegotiationPolicy,
    SessionParameters,
)
from isns_server.portal.iscsi.text import KeyValuePairs

SECURITY = LoginStage.SECURITY_NEGOTIATION
OPERATIONAL = LoginStage.LOGIN_OPERATIONAL_NEGOTIATION
NAMES = (("InitiatorName", "iqn.2026-11.org.example:host"), ("TargetName", "iqn.t:disk"))


def text(*pairs: tuple[str, str]) -> KeyValuePairs:
    return KeyValuePairs(tuple(pairs))


def answer(
    *pairs: tuple[str, str],
    policy: NegotiationPolicy | None = None,
    discovery: bool = False,
) -> dict[str, str]:
    """The answers to one first operational-stage LTDS of a normal (or discovery) session."""
    negotiation = Negotiation(policy or NegotiationPolicy())
    if all(name != "SessionType" for name, _ in pairs):
        pairs = (("SessionType", "Discovery" if discovery else "Normal"), *pairs)
    step = negotiation.receive(text(*NAMES, *pairs), OPERATIONAL, initial=True)
    return dict(step.answers)


def status_of(error: pytest.ExceptionInfo[LoginError]) -> LoginStatus:
    return error.value.status


# The table ---------------------------------------------------------------------------------


def test_table_fields_exist() -> None:
    parameters = {f.name for f in dataclasses.fields(SessionParameters)}
    policy = {f.name for f in dataclasses.fields(NegotiationPolicy)}
    for key in KEYS.values():
        assert key.field is None or key.field in parameters, key.name
        assert not key.configurable or key.field in policy, key.name
        if key.value_type is KeyType.NUMERICAL and isinstance(key.default, int):
            assert key.low <= key.default <= key.high, key.name
        if key.at_most:
            assert KEYS[key.at_most].rule is key.rule, key.name
    # every negotiated field of SessionParameters comes from exactly one key
    fields = [key.field for key in KEYS.values() if key.field]
    assert len(fields) == len(set(fields))
    target_only = {"target_portal_group_tag", "target_max_recv_data_segment_length"}
    assert set(fields) | target_only == parameters


def test_rfc_defaults_give_rfc_default_parameters() -> None:
    negotiation = Negotiation(NegotiationPolicy())
    negotiation.receive(text(("InitiatorName", "iqn.i")), SECURITY, initial=True)
    parameters = negotiation.result(target_portal_group_tag=1)
    assert parameters == SessionParameters(
        session_type=SessionType.NORMAL,
        initiator_name="iqn.i",
        target_name=None,
        initiator_alias=None,
        target_portal_group_tag=1,
        header_digest=Digest.NONE,
        data_digest=Digest.NONE,
        initiator_max_recv_data_segment_length=8192,
        target_max_recv_data_segment_length=8192,
        max_connections=1,
        initial_r2t=True,
        immediate_data=True,
        max_burst_length=262144,
        first_burst_length=65536,
        default_time2wait=2,
        default_time2retain=20,
        max_outstanding_r2t=1,
        data_pdu_in_order=True,
        data_sequence_in_order=True,
        error_recovery_level=0,
    )


@pytest.mark.parametrize(
    ("text_value", "number"),
    [("0", 0), ("8192", 8192), ("0x2000", 8192), ("0X1f", 31), ("007", 7)],
)
def test_parse_numerical(text_value: str, number: int) -> None:
    assert parse_numerical(text_value) == number


@pytest.mark.parametrize("text_value", ["", "0x", "-1", "1.5", "1_000", "١٢", " 1", "0b1", "x1"])
def test_parse_numerical_refuses(text_value: str) -> None:
    assert parse_numerical(text_value) is None


@pytest.mark.parametrize(
    "changes",
    [
        {"max_burst_length": 511},
        {"first_burst_length": 2**24},
        {"default_time2wait": 3601},
        {"max_outstanding_r2t": 0},
        {"target_max_recv_data_segment_length": 256},
        {"first_burst_length": 65536, "max_burst_length": 8192},
        {"header_digest": ()},
    ],
)
def test_policy_refuses_values_outside_the_rfc(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        NegotiationPolicy(**changes)


# Result functions --------------------------------------------------------------------------

LOW_BURST = NegotiationPolicy(max_burst_length=65536, first_burst_length=16384)
CRC_ONLY = NegotiationPolicy(header_digest=(Digest.CRC32C,))


@pytest.mark.parametrize(
    ("key", "offered", "policy", "expected"),
    [
        # Minimum
        ("MaxBurstLength", "1048576", None, "262144"),
        ("MaxBurstLength", "4096", None, "4096"),
        ("MaxBurstLength", "0x1000", None, "4096"),
        ("MaxBurstLength", "1048576", LOW_BURST, "65536"),
        ("FirstBurstLength", "262144", LOW_BURST, "16384"),
        ("DefaultTime2Retain", "0", None, "0"),
        ("MaxOutstandingR2T", "16", None, "8"),
        ("MaxOutstandingR2T", "2", None, "2"),
        ("MaxConnections", "8", None, "1"),
        ("ErrorRecoveryLevel", "2", None, "0"),
        # Maximum
        ("DefaultTime2Wait", "0", None, "2"),
        ("DefaultTime2Wait", "10", None, "10"),
        # OR
        ("InitialR2T", "No", None, "No"),
        ("InitialR2T", "No", NegotiationPolicy(initial_r2t=True), "Yes"),
        ("InitialR2T", "Yes", None, "Yes"),
        ("DataPDUInOrder", "No", None, "Yes"),
        ("DataSequenceInOrder", "No", NegotiationPolicy(data_sequence_in_order=False), "No"),
        # AND
        ("ImmediateData", "Yes", None, "Yes"),
        ("ImmediateData", "Yes", NegotiationPolicy(immediate_data=False), "No"),
        ("IFMarker", "Yes", None, "No"),
        ("OFMarker", "No", None, "No"),
        # lists: the initiator's first choice among what we accept
        ("HeaderDigest", "CRC32C,None", None, "CRC32C"),
        ("HeaderDigest", "None,CRC32C", None, "None"),
        ("DataDigest", "Y-com.example.crc64,CRC32C", None, "CRC32C"),
        ("HeaderDigest", "None,CRC32C", CRC_ONLY, "CRC32C"),
        ("HeaderDigest", "None", CRC_ONLY, "Reject"),
        # 5.2.2: values outside the key's range are answered with Reject
        ("MaxBurstLength", "511", None, "Reject"),
        ("MaxBurstLength", str(2**24), None, "Reject"),
        ("MaxRecvDataSegmentLength", "65536", None, None),  # declarative: no answer
        ("ErrorRecoveryLevel", "3", None, "Reject"),
        ("MaxConnections", "0", None, "Reject"),
        ("DefaultTime2Wait", "two", None, "Reject"),
        ("InitialR2T", "yes", None, "Reject"),
        # A.3.2: intervals are Irrelevant because markers are always off
        ("OFMarkInt", "2048~8192", None, "Irrelevant"),
        ("IFMarkInt", "1", None, "Irrelevant"),
    ],
)
def test_result_functions(
    key: str, offered: str, policy: NegotiationPolicy | None, expected: str | None
) -> None:
    assert answer((key, offered), policy=policy).get(key) == expected


def test_rejected_value_keeps_the_default() -> None:
    negotiation = Negotiation(NegotiationPolicy())
    pairs = text(NAMES[0], ("MaxBurstLength", "100"), ("HeaderDigest", "Y-x"))
    step = negotiation.receive(pairs, OPERATIONAL, initial=True)
    assert step.answers == (("MaxBurstLength", "Reject"), ("HeaderDigest", "Reject"))
    parameters = negotiation.result(1)
    assert parameters.max_burst_length == 262144
    assert parameters.header_digest is Digest.NONE


def test_results_become_parameters() -> None:
    negotiation = Negotiation(NegotiationPolicy(initial_r2t=False))
    negotiation.receive(
        text(
            *NAMES,
            ("InitiatorAlias", "host 1"),
            ("HeaderDigest", "CRC32C"),
            ("DataDigest", "CRC32C,None"),
            ("MaxRecvDataSegmentLength", "0x10000"),
            ("InitialR2T", "No"),
            ("MaxBurstLength", "131072"),
        ),
        OPERATIONAL,
        initial=True,
    )
    assert negotiation.declarations(OPERATIONAL) == [("MaxRecvDataSegmentLength", "262144")]
    parameters = negotiation.result(7)
    assert parameters.initiator_alias == "host 1"
    assert parameters.target_name == "iqn.t:disk"
    assert parameters.header_digest is Digest.CRC32C
    assert parameters.data_digest is Digest.CRC32C
    assert parameters.initiator_max_recv_data_segment_length == 65536
    assert parameters.target_max_recv_data_segment_length == 262144
    assert parameters.initial_r2t is False
    assert parameters.max_burst_length == 131072
    assert parameters.target_portal_group_tag == 7


def test_apply_to_reader() -> None:
    reader = PduReader()
    parameters = dataclasses.replace(
        Negotiation(NegotiationPolicy()).result(1),
        header_digest=Digest.CRC32C,
        target_max_recv_data_segment_length=65536,
    )
    parameters.apply_to(reader)
    assert (reader.header_digest, reader.data_digest) == (True, False)
    assert reader.max_recv_data_segment_length == 65536


# Declarations ------------------------------------------------------------------------------


def test_max_recv_data_segment_length_declared_once_in_operational_stage() -> None:
    negotiation = Negotiation(NegotiationPolicy(target_max_recv_data_segment_length=65536))
    assert negotiation.declarations(SECURITY) == []
    assert negotiation.declarations(OPERATIONAL) == [("MaxRecvDataSegmentLength", "65536")]
    assert negotiation.declarations(OPERATIONAL) == []
    assert negotiation.result(1).target_max_recv_data_segment_length == 65536


def test_undeclared_max_recv_data_segment_length_stays_8192() -> None:
    # a login going from security straight to full feature never declares it
    negotiation = Negotiation(NegotiationPolicy(target_max_recv_data_segment_length=65536))
    assert negotiation.result(1).target_max_recv_data_segment_length == 8192


@pytest.mark.parametrize(
    ("key", "value", "status"),
    [
        ("MaxRecvDataSegmentLength", "511", LoginStatus.INITIATOR_ERROR),
        ("MaxRecvDataSegmentLength", "big", LoginStatus.INITIATOR_ERROR),
        ("SessionType", "Boot", LoginStatus.SESSION_TYPE_NOT_SUPPORTED),
        ("InitiatorAlias", "", LoginStatus.INITIATOR_ERROR),
    ],
)
def test_invalid_declaration_fails_login(key: str, value: str, status: LoginStatus) -> None:
    with pytest.raises(LoginError) as error:
        answer((key, value))
    assert status_of(error) is status


# Irrelevant and NotUnderstood --------------------------------------------------------------

DISCOVERY_IRRELEVANT = [
    "MaxConnections",
    "InitialR2T",
    "ImmediateData",
    "MaxBurstLength",
    "FirstBurstLength",
    "MaxOutstandingR2T",
    "DataPDUInOrder",
    "DataSequenceInOrder",
]


@pytest.mark.parametrize("key", DISCOVERY_IRRELEVANT)
def test_session_keys_are_irrelevant_in_discovery(key: str) -> None:
    value = "Yes" if KEYS[key].value_type is KeyType.BOOLEAN else "1024"
    assert answer((key, value), discovery=True) == {key: "Irrelevant"}


def test_discovery_still_negotiates_connection_keys() -> None:
    answers = answer(
        ("HeaderDigest", "None"),
        ("DefaultTime2Wait", "0"),
        ("ErrorRecoveryLevel", "0"),
        ("MaxRecvDataSegmentLength", "32768"),
        discovery=True,
    )
    assert answers == {"HeaderDigest": "None", "DefaultTime2Wait": "2", "ErrorRecoveryLevel": "0"}


def test_session_type_decides_relevance_wherever_it_comes() -> None:
    negotiation = Negotiation(NegotiationPolicy())
    pairs = text(NAMES[0], ("MaxBurstLength", "4096"), ("SessionType", "Discovery"))
    step = negotiation.receive(pairs, OPERATIONAL, initial=True)
    assert list(step.answers) == [("MaxBurstLength", "Irrelevant")]


def test_first_burst_irrelevant_without_unsolicited_data() -> None:
    # 12.14: InitialR2T=Yes and ImmediateData=No leave no unsolicited data to bound
    answers = answer(("FirstBurstLength", "4096"), ("ImmediateData", "No"), ("InitialR2T", "Yes"))
    assert answers == {"FirstBurstLength": "Irrelevant", "ImmediateData": "No", "InitialR2T": "Yes"}


def test_first_burst_never_exceeds_max_burst_of_the_same_text() -> None:
    negotiation = Negotiation(NegotiationPolicy())
    pairs = text(NAMES[0], ("FirstBurstLength", "65536"), ("MaxBurstLength", "8192"))
    step = negotiation.receive(pairs, OPERATIONAL, initial=True)
    assert list(step.answers) == [("FirstBurstLength", "8192"), ("MaxBurstLength", "8192")]


def test_first_burst_above_max_burst_fails_integrity_check() -> None:
    negotiation = Negotiation(NegotiationPolicy())
    negotiation.receive(text(NAMES[0], ("MaxBurstLength", "4096")), OPERATIONAL, initial=True)
    with pytest.raises(LoginError) as error:
        negotiation.result(1)  # FirstBurstLength stayed at its default, 65536
    assert status_of(error) is LoginStatus.INITIATOR_ERROR


def test_unknown_keys_are_not_understood_in_order() -> None:
    negotiation = Negotiation(NegotiationPolicy())
    pairs = text(
        ("X-com.example.foo", "1"),
        NAMES[0],
        ("HeaderDigest", "None"),
        ("X#Registered", "Yes"),
        ("iSCSIProtocolLevel", "1"),
        ("TaskReporting", "RFC3720"),
    )
    step = negotiation.receive(pairs, OPERATIONAL, initial=True)
    assert list(step.answers) == [
        ("X-com.example.foo", "NotUnderstood"),
        ("HeaderDigest", "None"),
        ("X#Registered", "NotUnderstood"),
        ("iSCSIProtocolLevel", "NotUnderstood"),
        ("TaskReporting", "NotUnderstood"),
    ]


# Protocol errors (5.3: Login reject, initiator error) --------------------------------------


@pytest.mark.parametrize(
    ("pairs", "stage"),
    [
        ([("MaxBurstLength", "4096"), ("MaxBurstLength", "4096")], OPERATIONAL),  # repeated
        ([("MaxBurstLength", "4096")], SECURITY),  # operational key, security stage
        ([("AuthMethod", "None")], OPERATIONAL),  # security key, operational stage
        ([("TargetAlias", "disk")], OPERATIONAL),  # target-only keys
        ([("TargetPortalGroupTag", "1")], SECURITY),
        ([("TargetAddress", "10.0.0.1")], OPERATIONAL),
        ([("SendTargets", "All")], OPERATIONAL),  # full feature phase only
        ([("HeaderDigest", "Reject")], OPERATIONAL),  # reserved constants as proposals
        ([("MaxBurstLength", "Irrelevant")], OPERATIONAL),
        ([("InitialR2T", "NotUnderstood")], OPERATIONAL),
    ],
)
def test_protocol_errors(pairs: list[tuple[str, str]], stage: LoginStage) -> None:
    negotiation = Negotiation(NegotiationPolicy())
    with pytest.raises(LoginError) as error:
        negotiation.receive(text(NAMES[0], *pairs), stage, initial=True)
    assert status_of(error) is LoginStatus.INITIATOR_ERROR


def test_repeated_key_is_named() -> None:
    with pytest.raises(LoginError, match="HeaderDigest given more than once"):
        answer(("HeaderDigest", "None"), ("HeaderDigest", "CRC32C"))


@pytest.mark.parametrize(
    ("stage", "later"),
    [
        (OPERATIONAL, ("MaxBurstLength", "4096")),  # renegotiation, even of an answered key
        (SECURITY, ("AuthMethod", "None")),
        (SECURITY, ("InitiatorName", "iqn.2026-11.org.example:host")),  # first request only
        (SECURITY, ("SessionType", "Normal")),
        (SECURITY, ("TargetName", "iqn.t:other")),
    ],
)
def test_keys_are_not_sent_twice_in_a_login(stage: LoginStage, later: tuple[str, str]) -> None:
    negotiation = Negotiation(NegotiationPolicy())
    first = ("MaxBurstLength", "4096") if stage is OPERATIONAL else ("AuthMethod", "None")
    negotiation.receive(text(NAMES[0], first), stage, initial=True)
    with pytest.raises(LoginError) as error:
        negotiation.receive(text(later), stage, initial=False)
    assert status_of(error) is LoginStatus.INITIATOR_ERROR


def test_authentication_keys_are_handed_over_in_security_stage() -> None:
    negotiation = Negotiation(NegotiationPolicy())
    pairs = text(NAMES[0], ("AuthMethod", "CHAP,None"), ("CHAP_A", "5"), ("X-foo", "1"))
    step = negotiation.receive(pairs, SECURITY, initial=True)
    assert step.authentication == {"AuthMethod": "CHAP,None", "CHAP_A": "5"}
    assert list(step.answers) == [("X-foo", "NotUnderstood")]


# Connections joining a session -------------------------------------------------------------


def test_non_leading_login_keeps_session_values() -> None:
    session = dataclasses.replace(
        Negotiation(NegotiationPolicy()).result(1),
        initiator_name="iqn.i",
        max_burst_length=8192,
        immediate_data=False,
        header_digest=Digest.CRC32C,
    )
    negotiation = Negotiation(NegotiationPolicy(), session)
    pairs = text(
        ("InitiatorName", "iqn.i"),
        ("SessionType", "Discovery"),  # leading only: ignored
        ("MaxBurstLength", "65536"),
        ("HeaderDigest", "None"),
    )
    step = negotiation.receive(pairs, OPERATIONAL, initial=True)
    assert list(step.answers) == [("MaxBurstLength", "Irrelevant"), ("HeaderDigest", "None")]
    parameters = negotiation.result(1)
    assert parameters.session_type is SessionType.NORMAL
    assert parameters.max_burst_length == 8192
    assert parameters.immediate_data is False
    assert parameters.header_digest is Digest.NONE  # connection-only: negotiated afresh


# Whatever the initiator sends, the answer is text or a LoginError --------------------------

key_names = st.sampled_from([*KEYS, "X-com.example.k", "Unknown"])
values = st.one_of(
    st.sampled_from(["Yes", "No", "None", "CRC32C", "0", "512", "0x200", "Reject", "1~2", ""]),
    st.text(max_size=20),
)


@given(
    st.lists(st.tuples(key_names, values), max_size=12),
    st.sampled_from([SECURITY, OPERATIONAL]),
)
def test_any_text_gets_answers_or_login_error(
    pairs: list[tuple[str, str]], stage: LoginStage
) -> None:
    negotiation = Negotiation(NegotiationPolicy())
    with contextlib.suppress(LoginError):
        step = negotiation.receive(text(*pairs), stage, initial=True)
        answered = [name for name, _ in step.answers]
        assert answered == [name for name, _ in pairs if name in answered]  # request order
        for name, value in step.answers:
            assert name not in KEYS or KEYS[name].rule is not Rule.DECLARATIVE
            assert value
        negotiation.result(1)
