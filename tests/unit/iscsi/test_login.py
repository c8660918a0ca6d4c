"""The Login Phase state machine (RFC 3720 5.3, 10.12, 10.13), target side."""

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from isns_server.portal.iscsi.chap import ChapCredentials, ChapPolicy, decode_binary
from isns_server.portal.iscsi.constants import LoginStage, LoginStatus
from isns_server.portal.iscsi.keys import Digest, LoginError, SessionType
from isns_server.portal.iscsi.login import (
    LoginMachine,
    LoginPolicy,
    LoginState,
    TargetRecord,
)
from isns_server.portal.iscsi.negotiation import NegotiationPolicy, SessionParameters
from isns_server.portal.iscsi.pdu import LoginRequest, LoginResponse, NopOut, TextRequest
from isns_server.portal.iscsi.text import decode_text, encode_text

from .strategies import pdus_of

SECURITY = LoginStage.SECURITY_NEGOTIATION
OPERATIONAL = LoginStage.LOGIN_OPERATIONAL_NEGOTIATION
FULL_FEATURE = LoginStage.FULL_FEATURE_PHASE
INITIATOR = "iqn.2026-11.org.example:host1"
TARGET = "iqn.2026-11.org.example:disk1"
ISID = bytes.fromhex("400001370000")
ALICE = ChapCredentials("alice", b"alicesecret12")
TARGET_CHAP = ChapCredentials("disk1", b"targetsecret12")
IDENTIFIER = 7
CHALLENGE = bytes(range(100, 116))
NOW = 1000.0

Pair = tuple[str, str]


@dataclass
class FakeDirectory:
    """An in-memory LoginDirectory."""

    targets: dict[str, TargetRecord] = field(default_factory=lambda: {TARGET: TargetRecord(TARGET)})
    discovery: ChapPolicy | None = None
    denied: set[tuple[str, str]] = field(default_factory=set)
    sessions: dict[tuple[str, bytes, int], SessionParameters] = field(default_factory=dict)
    free_tsihs: list[int] = field(default_factory=lambda: [0x0C, 0x0D])
    refusals: list[tuple[str, str]] = field(default_factory=list)  # what the portal would log

    def find_target(self, name: str) -> TargetRecord | None:
        return self.targets.get(name)

    def discovery_chap(self) -> ChapPolicy | None:
        return self.discovery

    def authorize(
        self, initiator_name: str, target_name: str, peer: IPv4Address | IPv6Address | None
    ) -> bool:
        if (initiator_name, target_name) in self.denied:
            self.refusals.append((initiator_name, target_name))
            return False
        return True

    def find_session(self, initiator_name: str, isid: bytes, tsih: int) -> SessionParameters | None:
        return self.sessions.get((initiator_name, isid, tsih))

    def allocate_tsih(self) -> int | None:
        return self.free_tsihs.pop(0) if self.free_tsihs else None


def fixed_random(*chunks: bytes) -> Callable[[int], bytes]:
    queue = list(chunks)
    return lambda n: queue.pop(0)[:n]


def new_machine(
    directory: FakeDirectory | None = None, policy: LoginPolicy | None = None
) -> LoginMachine:
    return LoginMachine(
        policy or LoginPolicy(),
        directory or FakeDirectory(),
        now=NOW,
        random_bytes=fixed_random(bytes([IDENTIFIER]), CHALLENGE),
    )


def request(*pairs: Pair, **header: Any) -> LoginRequest:
    fields: dict[str, Any] = {
        "csg": OPERATIONAL,
        "transit": True,
        "nsg": FULL_FEATURE,
        "isid": ISID,
        "itt": 1,
        "cid": 1,
        "cmdsn": 5,
        "expstatsn": 100,
        "data": encode_text(pairs),
    }
    fields.update(header)
    if not fields["transit"] and "nsg" not in header:
        fields["nsg"] = 0  # reserved without the T bit
    return LoginRequest(**fields)


def send(machine: LoginMachine, *pairs: Pair, **header: Any) -> LoginResponse:
    (response,) = machine.receive(request(*pairs, **header), NOW)
    return response


def answers(response: LoginResponse) -> list[Pair]:
    return list(decode_text(response.data))


def normal(*pairs: Pair) -> tuple[Pair, ...]:
    return (("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", TARGET), *pairs)


def discovery(*pairs: Pair) -> tuple[Pair, ...]:
    return (("InitiatorName", INITIATOR), ("SessionType", "Discovery"), *pairs)


def chap_response(identifier: int, secret: bytes, challenge: bytes) -> str:
    return "0x" + hashlib.md5(bytes([identifier]) + secret + challenge).hexdigest()


def chap_target(mutual: ChapCredentials | None = None) -> FakeDirectory:
    return FakeDirectory(targets={TARGET: TargetRecord(TARGET, chap=ChapPolicy(ALICE, mutual))})


def assert_reject(response: LoginResponse, status: LoginStatus) -> None:
    assert response.status == status
    assert (response.transit, response.continue_, response.csg, response.nsg) == (
        False,
        False,
        0,
        0,
    )
    assert response.data == b""
    assert (response.version_max, response.version_active) == (0, 0)


# Successful logins -------------------------------------------------------------------------


def test_normal_login_straight_to_operational_stage() -> None:
    machine = new_machine()
    response = send(
        machine,
        *normal(("HeaderDigest", "CRC32C,None"), ("MaxRecvDataSegmentLength", "65536")),
    )
    assert response.status == LoginStatus.SUCCESS
    assert (response.transit, response.csg, response.nsg) == (True, OPERATIONAL, FULL_FEATURE)
    assert answers(response) == [
        ("HeaderDigest", "CRC32C"),
        ("TargetPortalGroupTag", "1"),
        ("MaxRecvDataSegmentLength", "262144"),
    ]
    # 10.13: ISID and ITT echoed; TSIH new; StatSN from ExpStatSN; ExpCmdSN = CmdSN
    assert (response.isid, response.itt, response.tsih) == (ISID, 1, 0x0C)
    assert (response.statsn, response.expcmdsn, response.maxcmdsn) == (100, 5, 5 + 31)
    assert machine.state is LoginState.FULL_FEATURE
    result = machine.result
    assert result is not None
    assert (result.session_type, result.initiator_name, result.target_name) == (
        SessionType.NORMAL,
        INITIATOR,
        TARGET,
    )
    assert (result.isid, result.tsih, result.cid, result.leading) == (ISID, 0x0C, 1, True)
    assert (result.cmdsn, result.statsn, result.chap_user) == (5, 101, None)
    assert result.parameters.header_digest is Digest.CRC32C
    assert result.parameters.initiator_max_recv_data_segment_length == 65536
    assert result.parameters.target_max_recv_data_segment_length == 262144


def test_security_stage_without_authentication() -> None:
    machine = new_machine()
    first = send(
        machine,
        *normal(("InitiatorAlias", "host one"), ("AuthMethod", "None")),
        csg=SECURITY,
        nsg=OPERATIONAL,
    )
    assert (first.transit, first.csg, first.nsg, first.tsih) == (True, SECURITY, OPERATIONAL, 0)
    assert answers(first) == [("AuthMethod", "None"), ("TargetPortalGroupTag", "1")]
    final = send(machine, ("MaxBurstLength", "65536"))
    assert answers(final) == [("MaxBurstLength", "65536"), ("MaxRecvDataSegmentLength", "262144")]
    assert (final.statsn, final.tsih) == (101, 0x0C)
    assert machine.result is not None
    assert machine.result.initiator_alias == "host one"
    assert machine.result.parameters.max_burst_length == 65536


def test_security_stage_skipped_with_only_names() -> None:
    # 5.3.1: "the Login Response only contains the TargetPortalGroupTag key"
    machine = new_machine(FakeDirectory({TARGET: TargetRecord(TARGET, alias="Disk One")}))
    first = send(machine, *normal(), csg=SECURITY, nsg=OPERATIONAL)
    assert answers(first) == [("TargetPortalGroupTag", "1"), ("TargetAlias", "Disk One")]
    assert first.transit
    send(machine, csg=OPERATIONAL)
    assert machine.state is LoginState.FULL_FEATURE


def test_security_stage_straight_to_full_feature() -> None:
    machine = new_machine()
    response = send(machine, *normal(("AuthMethod", "None")), csg=SECURITY, nsg=FULL_FEATURE)
    assert (response.transit, response.csg, response.nsg, response.tsih) == (
        True,
        SECURITY,
        FULL_FEATURE,
        0x0C,
    )
    assert machine.result is not None  # no operational stage: both sides keep 8192
    assert machine.result.parameters.target_max_recv_data_segment_length == 8192


def test_operational_negotiation_over_several_requests() -> None:
    machine = new_machine()
    first = send(machine, *normal(("MaxBurstLength", "65536")), transit=False)
    assert (first.transit, first.csg) == (False, OPERATIONAL)
    assert answers(first) == [
        ("MaxBurstLength", "65536"),
        ("TargetPortalGroupTag", "1"),
        ("MaxRecvDataSegmentLength", "262144"),
    ]
    second = send(machine, ("FirstBurstLength", "262144"), transit=False)
    assert answers(second) == [("FirstBurstLength", "65536")]
    final = send(machine)  # 5.3.3: an empty request with T=1 asks for the transition
    assert final.transit and answers(final) == []
    assert [first.statsn, second.statsn, final.statsn] == [100, 101, 102]
    assert machine.result is not None
    assert machine.result.statsn == 103


def test_text_continued_over_requests() -> None:
    machine = new_machine()
    text = encode_text(normal(("InitiatorAlias", "x" * 200)))
    part = send(machine, transit=False, continue_=True, data=text[:50])
    # 5.2: a continued request is answered without data, and no stage change
    assert (part.transit, part.continue_, part.data, part.status) == (False, False, b"", 0)
    send(machine, transit=False, continue_=True, data=text[50:120])
    final = send(machine, data=text[120:])
    assert final.transit and ("TargetPortalGroupTag", "1") in answers(final)
    assert machine.result is not None
    assert machine.result.initiator_alias == "x" * 200
    assert machine.result.statsn == 103


def test_long_response_is_continued() -> None:
    # Every unknown key gets an answer: 400 of them overflow the 8192 bytes of one PDU.
    unknown = [(f"X-com.example.key{i:03}", "1") for i in range(400)]
    machine = new_machine()
    text = encode_text(normal(*unknown))
    first = send(machine, transit=False, continue_=True, data=text[:8000])
    assert first.data == b""
    chunks = [send(machine, data=text[8000:])]
    while chunks[-1].continue_:
        assert not chunks[-1].transit  # 10.13.7
        assert len(chunks[-1].data) <= 8192
        chunks.append(send(machine, data=b""))
    assert len(chunks) == 2
    assert chunks[-1].transit and chunks[-1].tsih == 0x0C
    pairs = decode_text(b"".join(chunk.data for chunk in chunks))
    assert pairs.pairs[:400] == tuple((key, "NotUnderstood") for key, _ in unknown)
    assert machine.state is LoginState.FULL_FEATURE


def test_text_while_a_response_is_continued_is_refused() -> None:
    unknown = [(f"X-com.example.key{i:03}", "1") for i in range(400)]
    machine = new_machine()
    assert send(machine, *normal(*unknown)).continue_
    assert_reject(send(machine, ("MaxBurstLength", "512")), LoginStatus.INITIATOR_ERROR)


def test_discovery_session() -> None:
    machine = new_machine(FakeDirectory(targets={}))
    response = send(machine, *discovery(("MaxBurstLength", "4096"), ("HeaderDigest", "None")))
    # no TargetName: no TargetPortalGroupTag (5.3.1)
    assert answers(response) == [
        ("MaxBurstLength", "Irrelevant"),
        ("HeaderDigest", "None"),
        ("MaxRecvDataSegmentLength", "262144"),
    ]
    assert machine.result is not None
    assert machine.result.session_type is SessionType.DISCOVERY
    assert machine.result.target_name is None


def test_discovery_session_naming_a_target_gets_portal_group_tag() -> None:
    machine = new_machine(FakeDirectory(targets={}), LoginPolicy(portal_group_tag=7))
    response = send(machine, *discovery(("TargetName", "iqn.unknown")))
    assert answers(response)[0] == ("TargetPortalGroupTag", "7")
    assert machine.state is LoginState.FULL_FEATURE


def test_connection_joining_a_session() -> None:
    directory = FakeDirectory()
    leading = new_machine(directory)
    send(leading, *normal(("MaxBurstLength", "8192"), ("FirstBurstLength", "8192")))
    assert leading.result is not None
    directory.sessions[(INITIATOR, ISID, 0x0C)] = leading.result.parameters
    machine = new_machine(directory)
    response = send(machine, *normal(("MaxBurstLength", "65536")), tsih=0x0C, cid=2)
    assert answers(response)[0] == ("MaxBurstLength", "Irrelevant")
    assert response.tsih == 0x0C
    assert machine.result is not None
    assert (machine.result.tsih, machine.result.cid, machine.result.leading) == (0x0C, 2, False)
    assert machine.result.parameters.max_burst_length == 8192
    assert directory.free_tsihs == [0x0D]  # the session's TSIH, no new one


# CHAP --------------------------------------------------------------------------------------


def chap_login(machine: LoginMachine, third: Iterable[Pair]) -> list[LoginResponse]:
    """libiscsi's sequence: AuthMethod with T=1, CHAP_A with T=0, CHAP_N/R with T=1."""
    first = send(machine, *normal(("AuthMethod", "CHAP,None")), csg=SECURITY, nsg=OPERATIONAL)
    second = send(machine, ("CHAP_A", "5"), csg=SECURITY, transit=False)
    return [first, second, send(machine, *third, csg=SECURITY, nsg=OPERATIONAL)]


def test_one_way_chap() -> None:
    machine = new_machine(chap_target())
    response = chap_response(IDENTIFIER, ALICE.secret, CHALLENGE)
    first, second, third = chap_login(machine, [("CHAP_N", "alice"), ("CHAP_R", response)])
    # AuthMethod=CHAP needs the initiator's CHAP_A: no transition yet (10.13.6)
    assert (first.transit, first.csg) == (False, SECURITY)
    assert answers(first) == [("AuthMethod", "CHAP"), ("TargetPortalGroupTag", "1")]
    assert not second.transit
    assert answers(second) == [
        ("CHAP_A", "5"),
        ("CHAP_I", str(IDENTIFIER)),
        ("CHAP_C", "0x" + CHALLENGE.hex()),
    ]
    assert (third.transit, third.csg, third.nsg, third.data) == (True, SECURITY, OPERATIONAL, b"")
    send(machine, ("HeaderDigest", "None"))
    assert machine.result is not None
    assert machine.result.chap_user == "alice"


def test_mutual_chap() -> None:
    machine = new_machine(chap_target(TARGET_CHAP))
    initiator_challenge = b"\x99" * 20
    _, _, third = chap_login(
        machine,
        [
            ("CHAP_N", "alice"),
            ("CHAP_R", chap_response(IDENTIFIER, ALICE.secret, CHALLENGE)),
            ("CHAP_I", "200"),
            ("CHAP_C", "0x" + initiator_challenge.hex()),
        ],
    )
    assert third.transit  # CHAP_N and CHAP_R need no answer
    assert answers(third) == [
        ("CHAP_N", "disk1"),
        ("CHAP_R", chap_response(200, TARGET_CHAP.secret, initiator_challenge)),
    ]


def test_chap_with_method_and_algorithm_together() -> None:
    machine = new_machine(chap_target())
    first = send(
        machine, *normal(("AuthMethod", "CHAP"), ("CHAP_A", "7,5")), csg=SECURITY, transit=False
    )
    assert [key for key, _ in answers(first)] == [
        "AuthMethod",
        "CHAP_A",
        "CHAP_I",
        "CHAP_C",
        "TargetPortalGroupTag",
    ]
    assert dict(answers(first))["CHAP_A"] == "5"
    challenge = decode_binary(dict(answers(first))["CHAP_C"])
    response = chap_response(IDENTIFIER, ALICE.secret, challenge)
    third = send(machine, ("CHAP_N", "alice"), ("CHAP_R", response), csg=SECURITY, nsg=FULL_FEATURE)
    assert third.transit and third.tsih == 0x0C
    assert machine.state is LoginState.FULL_FEATURE


def test_discovery_chap() -> None:
    directory = FakeDirectory(targets={}, discovery=ChapPolicy(ALICE))
    machine = new_machine(directory)
    response = chap_response(IDENTIFIER, ALICE.secret, CHALLENGE)
    first = send(machine, *discovery(("AuthMethod", "CHAP")), csg=SECURITY, nsg=OPERATIONAL)
    assert answers(first) == [("AuthMethod", "CHAP")]
    send(machine, ("CHAP_A", "5"), csg=SECURITY, transit=False)
    send(machine, ("CHAP_N", "alice"), ("CHAP_R", response), csg=SECURITY, nsg=OPERATIONAL)
    send(machine)
    assert machine.state is LoginState.FULL_FEATURE


# Refusals ----------------------------------------------------------------------------------

AUTH_FAILURE = LoginStatus.AUTHENTICATION_FAILURE
INITIATOR_ERROR = LoginStatus.INITIATOR_ERROR
MISSING = LoginStatus.MISSING_PARAMETER
UNSUPPORTED_TYPE = LoginStatus.SESSION_TYPE_NOT_SUPPORTED


@pytest.mark.parametrize(
    ("requests", "status"),
    [
        # repeated key in one request
        ([normal(("MaxBurstLength", "512"), ("MaxBurstLength", "512"))], INITIATOR_ERROR),
        # names
        ([(("SessionType", "Normal"), ("TargetName", TARGET))], MISSING),
        ([(("InitiatorName", ""), ("TargetName", TARGET))], MISSING),
        ([(("InitiatorName", INITIATOR), ("TargetName", ""))], MISSING),
        ([(("InitiatorName", INITIATOR),)], MISSING),  # Normal is the default SessionType
        ([(*normal()[:2], ("TargetName", "iqn.nope"))], LoginStatus.NOT_FOUND),
        ([(*discovery(), ("SessionType", "Normal"))], INITIATOR_ERROR),
        ([(("InitiatorName", INITIATOR), ("SessionType", "Boot"))], UNSUPPORTED_TYPE),
        # renegotiation in a later request (5.3)
        ([normal(("MaxBurstLength", "512")), (("MaxBurstLength", "512"),)], INITIATOR_ERROR),
        ([normal(), (("TargetName", TARGET),)], INITIATOR_ERROR),
        # FirstBurstLength left at 65536 above a MaxBurstLength of 4096 (12.14)
        ([normal(("MaxBurstLength", "4096"))], INITIATOR_ERROR),
    ],
)
def test_refused_text(requests: list[tuple[Pair, ...]], status: LoginStatus) -> None:
    machine = new_machine()
    *partial, last = requests
    for pairs in partial:
        assert send(machine, *pairs, transit=False).status == LoginStatus.SUCCESS
    response = send(machine, *last)
    assert_reject(response, status)
    assert machine.state is LoginState.FAILED
    assert machine.failure is not None and machine.failure.status is status


def test_refused_login_reject_echoes_the_request() -> None:
    response = send(new_machine(), ("InitiatorName", INITIATOR), itt=0x1234, isid=ISID)
    assert (response.itt, response.isid, response.tsih, response.statsn) == (0x1234, ISID, 0, 100)


def test_removed_target() -> None:
    directory = FakeDirectory({TARGET: TargetRecord(TARGET, removed=True)})
    assert_reject(send(new_machine(directory), *normal()), LoginStatus.TARGET_REMOVED)


def test_unauthorized_initiator_is_refused_and_logged() -> None:
    directory = FakeDirectory(denied={(INITIATOR, TARGET)})
    assert_reject(send(new_machine(directory), *normal()), LoginStatus.AUTHORIZATION_FAILURE)
    assert directory.refusals == [(INITIATOR, TARGET)]


def test_session_type_not_offered_by_the_portal() -> None:
    policy = LoginPolicy(session_types=frozenset({SessionType.DISCOVERY}))
    response = send(new_machine(policy=policy), *normal())
    assert_reject(response, LoginStatus.SESSION_TYPE_NOT_SUPPORTED)


@pytest.mark.parametrize(("version_max", "version_min"), [(2, 1), (0, 1), (1, 1)])
def test_unsupported_version(version_max: int, version_min: int) -> None:
    response = send(new_machine(), *normal(), version_max=version_max, version_min=version_min)
    assert_reject(response, LoginStatus.UNSUPPORTED_VERSION)  # Version-active 0: our lowest


def test_version_range_including_zero_is_accepted() -> None:
    response = send(new_machine(), *normal(), version_max=5, version_min=0)
    assert response.status == LoginStatus.SUCCESS
    assert (response.version_max, response.version_active) == (0, 0)


def test_unknown_session_for_non_zero_tsih() -> None:
    response = send(new_machine(), *normal(), tsih=0x77)
    assert_reject(response, LoginStatus.SESSION_DOES_NOT_EXIST)
    assert response.tsih == 0x77


def test_session_joined_with_another_target() -> None:
    directory = FakeDirectory()
    directory.targets["iqn.other"] = TargetRecord("iqn.other")
    leading = new_machine(directory)
    send(leading, *normal())
    assert leading.result is not None
    directory.sessions[(INITIATOR, ISID, 0x0C)] = leading.result.parameters
    response = send(new_machine(directory), *normal()[:2], ("TargetName", "iqn.other"), tsih=0x0C)
    assert_reject(response, LoginStatus.SESSION_DOES_NOT_EXIST)


def test_no_tsih_left() -> None:
    response = send(new_machine(FakeDirectory(free_tsihs=[])), *normal())
    assert_reject(response, LoginStatus.OUT_OF_RESOURCES)


def test_invalid_tsih_from_directory_is_target_error() -> None:
    response = send(new_machine(FakeDirectory(free_tsihs=[0])), *normal())
    assert_reject(response, LoginStatus.TARGET_ERROR)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ({}, {"tsih": 3}),  # 10.12.6: the same TSIH throughout
        ({}, {"isid": bytes(6)}),
        ({}, {"cid": 9}),
        ({}, {"itt": 2}),
        ({}, {"version_max": 1}),
        ({}, {"csg": SECURITY, "transit": False}),  # CSG must stay the current stage
        ({"transit": False}, {"transit": True, "continue_": True}),  # 10.12.2
        ({"transit": False}, {"nsg": OPERATIONAL}),  # no way back (5.3 table)
        ({"transit": False}, {"nsg": 2}),
    ],
)
def test_header_rules(first: dict[str, Any], second: dict[str, Any]) -> None:
    machine = new_machine()
    assert send(machine, *normal(), **(first | {"transit": False})).status == 0
    response = send(machine, **second)
    assert_reject(response, INITIATOR_ERROR)


@pytest.mark.parametrize(
    "header",
    [
        {"csg": FULL_FEATURE},
        {"csg": 2},
        {"isid": bytes.fromhex("c00000000000")},  # 10.12.5: type 11b is reserved
        {"csg": SECURITY, "nsg": SECURITY},
        {"transit": True, "continue_": True},
    ],
)
def test_first_request_header_rules(header: dict[str, Any]) -> None:
    assert_reject(send(new_machine(), *normal(), **header), INITIATOR_ERROR)


def test_malformed_text_is_initiator_error() -> None:
    response = send(new_machine(), data=b"InitiatorName=iqn.x")  # no NUL
    assert_reject(response, INITIATOR_ERROR)


# Refused authentication --------------------------------------------------------------------


def test_auth_method_none_when_chap_required() -> None:
    machine = new_machine(chap_target())
    response = send(machine, *normal(("AuthMethod", "None")), csg=SECURITY, nsg=OPERATIONAL)
    assert_reject(response, AUTH_FAILURE)


def test_chap_offered_to_target_without_credentials() -> None:
    response = send(new_machine(), *normal(("AuthMethod", "CHAP")), csg=SECURITY, nsg=OPERATIONAL)
    assert_reject(response, AUTH_FAILURE)


def test_security_stage_skipped_when_chap_required() -> None:
    assert_reject(send(new_machine(chap_target()), *normal()), AUTH_FAILURE)


def test_transition_without_authentication_method() -> None:
    machine = new_machine(chap_target())
    assert_reject(send(machine, *normal(), csg=SECURITY, nsg=OPERATIONAL), AUTH_FAILURE)


def test_transition_without_chap_algorithm() -> None:
    machine = new_machine(chap_target())
    send(machine, *normal(("AuthMethod", "CHAP")), csg=SECURITY, nsg=OPERATIONAL)
    assert_reject(send(machine, csg=SECURITY, nsg=OPERATIONAL), MISSING)


def test_transition_without_chap_response() -> None:
    # 8.2: a missing CHAP_R is "missing parameter", the reflection attack's tell
    machine = new_machine(chap_target())
    send(machine, *normal(("AuthMethod", "CHAP")), csg=SECURITY, transit=False)
    send(machine, ("CHAP_A", "5"), csg=SECURITY, transit=False)
    assert_reject(send(machine, csg=SECURITY, nsg=OPERATIONAL), MISSING)


@pytest.mark.parametrize(
    ("third", "status"),
    [
        ([("CHAP_N", "alice"), ("CHAP_R", "0x" + "00" * 16)], AUTH_FAILURE),
        ([("CHAP_N", "mallory"), ("CHAP_R", "0x" + "00" * 16)], AUTH_FAILURE),
        ([("CHAP_N", "alice")], MISSING),
        (
            [  # reflection: our own challenge handed back for mutual CHAP
                ("CHAP_N", "alice"),
                ("CHAP_R", chap_response(IDENTIFIER, ALICE.secret, CHALLENGE)),
                ("CHAP_I", "1"),
                ("CHAP_C", "0x" + CHALLENGE.hex()),
            ],
            AUTH_FAILURE,
        ),
        ([("CHAP_A", "5")], INITIATOR_ERROR),  # renegotiation
        ([("HeaderDigest", "None")], INITIATOR_ERROR),  # operational key in security stage
    ],
)
def test_refused_chap_response(third: list[Pair], status: LoginStatus) -> None:
    machine = new_machine(chap_target(TARGET_CHAP))
    *_, response = chap_login(machine, third)
    assert_reject(response, status)


def test_chap_algorithm_without_md5() -> None:
    machine = new_machine(chap_target())
    send(machine, *normal(("AuthMethod", "CHAP")), csg=SECURITY, transit=False)
    assert_reject(send(machine, ("CHAP_A", "7"), csg=SECURITY, transit=False), AUTH_FAILURE)


def test_chap_keys_out_of_step() -> None:
    machine = new_machine(chap_target())
    send(machine, *normal(("AuthMethod", "CHAP")), csg=SECURITY, transit=False)
    response = send(machine, ("CHAP_A", "5"), ("CHAP_N", "alice"), csg=SECURITY, transit=False)
    assert_reject(response, INITIATOR_ERROR)


def test_chap_keys_without_chap() -> None:
    machine = new_machine()
    response = send(machine, *normal(("CHAP_A", "5")), csg=SECURITY, transit=False)
    assert_reject(response, INITIATOR_ERROR)


# Other PDUs and time -----------------------------------------------------------------------


def test_other_pdu_during_login_gets_login_reject() -> None:
    machine = new_machine()
    send(machine, *normal(), transit=False)
    (response,) = machine.receive(TextRequest(itt=9, data=b"SendTargets=All\0"), NOW)
    assert_reject(response, LoginStatus.INVALID_DURING_LOGIN)
    assert response.itt == 1  # the login's task
    assert machine.state is LoginState.FAILED


def test_other_pdu_before_login_closes_silently() -> None:
    machine = new_machine()
    assert machine.receive(NopOut(itt=1), NOW) == []
    assert machine.state is LoginState.FAILED
    assert machine.failure is not None
    assert machine.failure.status is LoginStatus.INVALID_DURING_LOGIN


def test_unreadable_first_request_is_answered_from_its_header() -> None:
    machine = new_machine()
    error = LoginError(LoginStatus.INITIATOR_ERROR, "data segment too long")
    (response,) = machine.refuse(error, request(itt=42, expstatsn=7))
    assert_reject(response, LoginStatus.INITIATOR_ERROR)
    assert (response.itt, response.statsn) == (42, 7)
    assert machine.state is LoginState.FAILED
    with pytest.raises(RuntimeError):
        machine.refuse(error)


def test_names_for_logs() -> None:
    machine = new_machine()
    before_login = machine.names  # not asserted directly: mypy would keep it narrowed past send
    assert before_login == (None, None)
    send(machine, *normal(), transit=False)
    assert machine.names == (INITIATOR, TARGET)


def test_timeout() -> None:
    machine = new_machine(policy=LoginPolicy(login_timeout=10))
    assert machine.deadline == NOW + 10
    assert not machine.handle_timer(NOW + 9.9)
    send(machine, *normal(), transit=False)
    assert machine.handle_timer(NOW + 10)
    assert machine.state is LoginState.FAILED
    assert not machine.handle_timer(NOW + 20)


def test_request_after_deadline_closes() -> None:
    machine = new_machine(policy=LoginPolicy(login_timeout=10))
    assert machine.receive(request(*normal()), NOW + 11) == []
    assert machine.state is LoginState.FAILED


def test_no_requests_once_login_is_over() -> None:
    machine = new_machine()
    send(machine, *normal())
    with pytest.raises(RuntimeError, match="over"):
        machine.receive(request(), NOW)


@pytest.mark.parametrize(
    "changes", [{"portal_group_tag": 0x10000}, {"command_window": 0}, {"login_timeout": 0}]
)
def test_policy_validation(changes: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LoginPolicy(**changes)


@pytest.mark.parametrize("alias", ["a" * 256, "nul\0"])
def test_unsendable_alias_is_refused(alias: str) -> None:
    with pytest.raises(ValueError, match="alias"):
        TargetRecord(TARGET, alias=alias)


def test_policy_negotiation_values_are_used() -> None:
    policy = LoginPolicy(
        negotiation=NegotiationPolicy(header_digest=(Digest.CRC32C,), max_burst_length=65536),
        command_window=1,
    )
    response = send(new_machine(policy=policy), *normal(("HeaderDigest", "None,CRC32C")))
    assert ("HeaderDigest", "CRC32C") in answers(response)
    assert response.maxcmdsn == response.expcmdsn


def test_serial_numbers_wrap() -> None:
    response = send(new_machine(), *normal(), cmdsn=0xFFFFFFFF, expstatsn=0xFFFFFFFF)
    assert (response.statsn, response.expcmdsn, response.maxcmdsn) == (0xFFFFFFFF, 0xFFFFFFFF, 30)


# Whatever arrives, the machine answers with Login Responses or closes ----------------------

FUZZ_KEYS = (
    "InitiatorName TargetName SessionType AuthMethod CHAP_A CHAP_N CHAP_R MaxBurstLength X-a"
)
FUZZ_VALUES = [INITIATOR, TARGET, "Normal", "Discovery", "CHAP", "None", "5", "1"]
login_requests = pdus_of(LoginRequest, max_data=0) | st.builds(
    lambda pairs, header: request(*pairs, **header),
    st.lists(
        st.tuples(st.sampled_from(FUZZ_KEYS.split()), st.sampled_from(FUZZ_VALUES)), max_size=5
    ),
    st.fixed_dictionaries(
        {},
        optional={
            "csg": st.sampled_from([0, 1, 3]),
            "nsg": st.sampled_from([0, 1, 3]),
            "transit": st.booleans(),
            "continue_": st.booleans(),
            "tsih": st.sampled_from([0, 0x0C]),
        },
    ),
)


@settings(max_examples=200)
@given(st.lists(login_requests, min_size=1, max_size=6))
def test_any_request_sequence(requests: list[LoginRequest]) -> None:
    machine = new_machine(chap_target())
    for pdu in requests:
        responses = machine.receive(pdu, NOW)
        assert len(responses) == 1
        (response,) = responses
        assert isinstance(response, LoginResponse)
        assert not (response.transit and response.continue_)
        assert (response.status == 0) == (machine.failure is None)
        if response.transit and response.nsg == FULL_FEATURE:
            assert machine.result is not None
            assert response.tsih == machine.result.tsih != 0
        if machine.result is not None or machine.failure is not None:
            break
