"""Logins replayed from the seed packet walks (../shared/reference/seeds/).

Seed 001 (ESX discovery against an EMC target) has the full bytes of the Login Request
and of the target's answer; seed 000 (Windows initiator and target) lists the keys of
some requests and the frame length of every PDU. Where the seed target's answer was a
choice the RFC leaves open, the test says what we answer instead.
"""

import hashlib

from isns_server.portal.iscsi import LoginRequest, LoginResponse, PduReader, TextRequest
from isns_server.portal.iscsi.chap import ChapCredentials, ChapPolicy, decode_binary
from isns_server.portal.iscsi.codec import encode_pdu
from isns_server.portal.iscsi.constants import LoginStage, LoginStatus
from isns_server.portal.iscsi.keys import SessionType
from isns_server.portal.iscsi.login import LoginMachine, LoginPolicy, LoginState, TargetRecord
from isns_server.portal.iscsi.negotiation import NegotiationPolicy
from isns_server.portal.iscsi.text import decode_text, encode_text

from .test_golden import (
    LOGIN_REQUEST_BHS,
    LOGIN_REQUEST_DATA,
    LOGIN_RESPONSE_BHS,
    LOGIN_RESPONSE_PAIRS,
    SENDTARGETS_ALL,
    TEXT_REQUEST_BHS,
)
from .test_login import FakeDirectory

NOW = 50.0
SECURITY = LoginStage.SECURITY_NEGOTIATION
OPERATIONAL = LoginStage.LOGIN_OPERATIONAL_NEGOTIATION
FULL_FEATURE = LoginStage.FULL_FEATURE_PHASE
# Seed 000 was captured without TCP options: Ethernet 14 + IPv4 20 + TCP 20 bytes.
FRAME_OVERHEAD = 54


def wire(pdu: LoginRequest | LoginResponse) -> bytes:
    return b"".join(encode_pdu(pdu))


def frame_length(pdu: LoginRequest | LoginResponse) -> int:
    return FRAME_OVERHEAD + len(wire(pdu))


def exchange(machine: LoginMachine, pdu: LoginRequest) -> LoginResponse:
    (response,) = machine.receive(pdu, NOW)
    return response


# Seed 001: ESX dynamic discovery ----------------------------------------------------------

# The EMC target of the capture: MaxRecvDataSegmentLength 65536, MaxCmdSN = ExpCmdSN + 30.
EMC_POLICY = LoginPolicy(
    negotiation=NegotiationPolicy(target_max_recv_data_segment_length=65536),
    command_window=31,
)


def esx_discovery_login(directory: FakeDirectory) -> tuple[LoginMachine, LoginResponse]:
    reader = PduReader()
    reader.receive_data(LOGIN_REQUEST_BHS + LOGIN_REQUEST_DATA)  # frames 7 and 8
    request = reader.next_pdu()
    assert isinstance(request, LoginRequest)
    machine = LoginMachine(EMC_POLICY, directory, now=NOW)
    return machine, exchange(machine, request)


def test_esx_discovery_login_answer() -> None:
    machine, response = esx_discovery_login(FakeDirectory(targets={}, free_tsihs=[0x0C]))
    # Frame 11. The EMC target also declared TargetPortalGroupTag=1; RFC 3720 5.3.1
    # requires it only when the initiator names a target, which a discovery login need
    # not do, so we leave it out. Everything else matches byte for byte.
    seed_pairs = [pair for pair in LOGIN_RESPONSE_PAIRS if pair[0] != "TargetPortalGroupTag"]
    assert list(decode_text(response.data)) == seed_pairs
    ours = wire(response)
    assert ours[:5] + ours[8:48] == LOGIN_RESPONSE_BHS[:5] + LOGIN_RESPONSE_BHS[8:48]
    assert ours[48:] == encode_text(seed_pairs) + b"\0" * (-len(encode_text(seed_pairs)) % 4)
    assert machine.state is LoginState.FULL_FEATURE


def test_esx_discovery_session_continues_with_sendtargets() -> None:
    machine, _ = esx_discovery_login(FakeDirectory(targets={}, free_tsihs=[0x0C]))
    result = machine.result
    assert result is not None
    assert result.session_type is SessionType.DISCOVERY
    assert result.initiator_name == "iqn.1998-01.com.vmware:wdc-tse-h171-3c00d9ce"
    assert (result.tsih, result.isid, result.cid) == (0x0C, bytes.fromhex("00023d000000"), 0)
    parameters = result.parameters
    assert parameters.initiator_max_recv_data_segment_length == 32768
    assert (parameters.default_time2wait, parameters.default_time2retain) == (2, 0)
    # Frames 12/13: the first Full Feature Phase PDU, read with the negotiated settings.
    reader = PduReader()
    parameters.apply_to(reader)
    assert reader.max_recv_data_segment_length == 65536
    assert not (reader.header_digest or reader.data_digest)
    reader.receive_data(TEXT_REQUEST_BHS + SENDTARGETS_ALL)
    text_request = reader.next_pdu()
    assert isinstance(text_request, TextRequest)
    # The initiator's counters continue where the login left them.
    assert (text_request.cmdsn, text_request.expstatsn) == (result.cmdsn, result.statsn)


def test_esx_second_discovery_gets_next_tsih() -> None:
    # Frames 27-31: the same login on a new connection; the target answered TSIH 0x000d.
    directory = FakeDirectory(targets={}, free_tsihs=[0x0C, 0x0D])
    esx_discovery_login(directory)
    _, response = esx_discovery_login(directory)
    assert response.tsih == 0x0D


# Seed 000: Windows initiator, discovery (frames 2077-2084) ---------------------------------

WINDOWS_DISCOVERY_ISID = bytes.fromhex("400001370000")


def test_windows_discovery_login() -> None:
    machine = LoginMachine(LoginPolicy(), FakeDirectory(targets={}), now=NOW)
    pairs = [
        ("InitiatorName", "iqn.1991-05.com.microsoft:win-3r2qopvjgue"),
        ("SessionType", "Discovery"),
        ("AuthMethod", "None"),
    ]
    first = LoginRequest(
        transit=True,
        csg=SECURITY,
        nsg=OPERATIONAL,
        isid=WINDOWS_DISCOVERY_ISID,
        itt=1,
        cid=1,
        cmdsn=1,
        expstatsn=1,
        data=encode_text(pairs),
    )
    assert len(first.data) == 94  # the seed's DataSegmentLength
    assert frame_length(first) == 198
    response = exchange(machine, first)
    # Frame 2078, 118 bytes: the Windows target answered AuthMethod=None and nothing else.
    assert response.data == b"AuthMethod=None\0"
    assert frame_length(response) == 118
    assert (response.transit, response.csg, response.nsg, response.statsn) == (
        True,
        SECURITY,
        OPERATIONAL,
        1,
    )
    # Frames 2079/2080: the seed gives only their sizes; any operational keys will do.
    final = exchange(
        machine,
        LoginRequest(
            transit=True,
            csg=OPERATIONAL,
            nsg=FULL_FEATURE,
            isid=WINDOWS_DISCOVERY_ISID,
            itt=1,
            cid=1,
            cmdsn=1,
            expstatsn=2,
            data=encode_text([("HeaderDigest", "None"), ("MaxRecvDataSegmentLength", "65536")]),
        ),
    )
    assert (final.status, final.transit, final.statsn) == (LoginStatus.SUCCESS, True, 2)
    # Frame 2082, the Text Response to the SendTargets of CmdSN 1: StatSN 3, ExpCmdSN 2.
    result = machine.result
    assert result is not None
    assert (result.statsn, result.cmdsn + 1) == (3, 2)


# Seed 000: Windows initiator, normal login with CHAP (frames 118348-118355) ---------------

WINDOWS_ISID = bytes.fromhex("400001370001")
WINDOWS_TARGET = "iqn.1991-05.com.microsoft:win-he2ksesoj66-iscsitarget1-target"
WINDOWS_CHAP = ChapCredentials("win-host01", b"windows-chap-secret")  # CHAP_N of 10 characters


def windows_request(
    pairs: list[tuple[str, str]],
    *,
    csg: int = SECURITY,
    transit: bool = False,
    nsg: int = 0,
    expstatsn: int = 1,
) -> LoginRequest:
    return LoginRequest(
        transit=transit,
        csg=csg,
        nsg=nsg,
        isid=WINDOWS_ISID,
        itt=1,
        cid=1,
        cmdsn=1,
        expstatsn=expstatsn,
        data=encode_text(pairs),
    )


def test_windows_normal_login_with_chap() -> None:
    directory = FakeDirectory(
        targets={WINDOWS_TARGET: TargetRecord(WINDOWS_TARGET, chap=ChapPolicy(WINDOWS_CHAP))}
    )
    machine = LoginMachine(LoginPolicy(), directory, now=NOW)
    # Frame 118348: "T: Stay in current login stage", CSG security, these four keys.
    first = windows_request(
        [
            ("InitiatorName", "iqn.1991-05.com.microsoft:win-vr7o9ifrgn8"),
            ("SessionType", "Normal"),
            ("TargetName", WINDOWS_TARGET),
            ("AuthMethod", "CHAP"),
        ]
    )
    assert len(first.data) == 164 and frame_length(first) == 266
    response = exchange(machine, first)
    assert (response.status, response.transit, response.csg) == (0, False, SECURITY)
    assert list(decode_text(response.data)) == [
        ("AuthMethod", "CHAP"),
        ("TargetPortalGroupTag", "1"),
    ]
    # Frame 118350 (114 bytes): CHAP_A=5 alone.
    algorithm = windows_request([("CHAP_A", "5")], expstatsn=2)
    assert frame_length(algorithm) == 114
    challenge_response = exchange(machine, algorithm)
    keys = dict(decode_text(challenge_response.data))
    assert keys["CHAP_A"] == "5" and not challenge_response.transit
    # Frame 118352 (162 bytes): CHAP_N and CHAP_R, asking to move on.
    digest = hashlib.md5(
        bytes([int(keys["CHAP_I"])]) + WINDOWS_CHAP.secret + decode_binary(keys["CHAP_C"])
    ).hexdigest()
    answer = windows_request(
        [("CHAP_N", WINDOWS_CHAP.user), ("CHAP_R", "0x" + digest)],
        transit=True,
        nsg=OPERATIONAL,
        expstatsn=3,
    )
    assert frame_length(answer) == 162
    accepted = exchange(machine, answer)
    # Frame 118353 (102 bytes): no data, on to the operational stage.
    assert frame_length(accepted) == 102
    assert (accepted.status, accepted.transit, accepted.csg, accepted.nsg) == (
        0,
        True,
        SECURITY,
        OPERATIONAL,
    )
    # Frames 118354/118355: the operational stage (the seed gives only sizes).
    final = exchange(
        machine,
        windows_request(
            [("HeaderDigest", "None"), ("MaxRecvDataSegmentLength", "262144")],
            csg=OPERATIONAL,
            transit=True,
            nsg=FULL_FEATURE,
            expstatsn=4,
        ),
    )
    assert (final.status, final.transit, final.nsg, final.tsih) == (0, True, FULL_FEATURE, 0x0C)
    assert [response.statsn, challenge_response.statsn, accepted.statsn, final.statsn] == [
        1,
        2,
        3,
        4,
    ]
    assert machine.result is not None
    assert machine.result.chap_user == "win-host01"
    assert machine.result.target_name == WINDOWS_TARGET
