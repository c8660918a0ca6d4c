"""Golden vectors from the seed packet walks (../shared/reference/seeds/).

Where a seed only has tshark's field listing, the expected header is assembled from
it here byte by byte; the TCP segment lengths of the capture confirm the framing.
"""

from isns_server.portal.iscsi import (
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    Pdu,
    PduReader,
    TextRequest,
    TextResponse,
    decode_text,
    encode_pdu,
    encode_text,
)
from isns_server.portal.iscsi.constants import LoginStage, LoginStatus

ISID = bytes.fromhex("00023d000000")


def _hex(dump: str) -> bytes:
    return bytes.fromhex(dump.replace("\n", " "))


def _read_all(*segments: bytes) -> list[Pdu]:
    """Parse the PDUs of TCP segments delivered one receive_data() at a time."""
    reader = PduReader(max_recv_data_segment_length=65536)
    pdus: list[Pdu] = []
    for segment in segments:
        reader.receive_data(segment)
        while (pdu := reader.next_pdu()) is not None:
            pdus.append(pdu)
    return pdus


def _encode(pdu: Pdu) -> bytes:
    return b"".join(encode_pdu(pdu))


# Seed 004: "Sample Reply Hex Dump (Discovery)", a SendTargets Text Response. The seed
# masks one address with XX; any address of the same length keeps the framing.
SENDTARGETS_RESPONSE_DUMP = """
24 80 00 00 00 00 00 85 00 00 00 00 00 00 00 00
00 00 00 01 ff ff ff ff b3 01 63 8e 00 00 00 02
00 00 00 02 00 00 00 00 00 00 00 00 00 00 00 00
54 61 72 67 65 74 4e 61 6d 65 3d 69 71 6e 2e 32
30 30 34 2d 30 34 2e 63 6f 6d 2e 71 6e 61 70 3a
74 73 2d 34 33 31 75 3a 69 73 63 73 69 2e 76 6d
77 61 72 65 2e 66 61 38 61 39 39 00 54 61 72 67
65 74 41 64 64 72 65 73 73 3d XX XX XX 2e XX XX
2e XX XX XX 2e XX XX XX 3a 33 32 36 30 2c 31 00
54 61 72 67 65 74 41 64 64 72 65 73 73 3d 31 39
32 2e 31 36 38 2e 31 30 30 2e 32 35 30 3a 33 32
36 30 2c 31 00 00 00 00
"""
MASKED_ADDRESS = "172.16.100.251"  # fills XXX.XX.XXX.XXX


def _unmask(dump: str, address: str) -> bytes:
    digits = iter(address.replace(".", ""))
    while "XX" in dump:
        dump = dump.replace("XX", f"{ord(next(digits)):02x}", 1)
    return _hex(dump)


def test_seed_sendtargets_text_response() -> None:
    wire = _unmask(SENDTARGETS_RESPONSE_DUMP, MASKED_ADDRESS)
    assert len(wire) == 0xB8
    (pdu,) = _read_all(wire)
    assert pdu == TextResponse(
        final=True,
        continue_=False,
        lun=0,
        itt=1,
        ttt=0xFFFFFFFF,
        statsn=3003212686,
        expcmdsn=2,
        maxcmdsn=2,
        data=wire[48 : 48 + 0x85],
    )
    text = decode_text(pdu.data)
    assert list(text) == [
        ("TargetName", "iqn.2004-04.com.qnap:ts-431u:iscsi.vmware.fa8a99"),
        ("TargetAddress", f"{MASKED_ADDRESS}:3260,1"),
        ("TargetAddress", "192.168.100.250:3260,1"),
    ]
    assert text.repeated == ("TargetAddress",)
    assert encode_text(text) == pdu.data
    assert _encode(pdu) == wire


# Seed 001, frames 7 and 8 (and 27/28): ESX discovery Login Request, 48 + 232 bytes.
# Byte 0 has the I bit, which 10.12 fixes to 1 and tshark does not list.
LOGIN_REQUEST_BHS = _hex("""
43 87 00 00 00 00 00 e7 00 02 3d 00 00 00 00 00
00 00 00 00 00 00 00 00 00 00 00 01 00 00 00 00
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
""")
LOGIN_REQUEST_DATA = _hex("""
49 6e 69 74 69 61 74 6f 72 4e 61 6d 65 3d 69 71
6e 2e 31 39 39 38 2d 30 31 2e 63 6f 6d 2e 76 6d
77 61 72 65 3a 77 64 63 2d 74 73 65 2d 68 31 37
31 2d 33 63 30 30 64 39 63 65 00 53 65 73 73 69
6f 6e 54 79 70 65 3d 44 69 73 63 6f 76 65 72 79
00 48 65 61 64 65 72 44 69 67 65 73 74 3d 4e 6f
6e 65 00 44 61 74 61 44 69 67 65 73 74 3d 4e 6f
6e 65 00 44 65 66 61 75 6c 74 54 69 6d 65 32 57
61 69 74 3d 30 00 44 65 66 61 75 6c 74 54 69 6d
65 32 52 65 74 61 69 6e 3d 30 00 49 46 4d 61 72
6b 65 72 3d 4e 6f 00 4f 46 4d 61 72 6b 65 72 3d
4e 6f 00 45 72 72 6f 72 52 65 63 6f 76 65 72 79
4c 65 76 65 6c 3d 30 00 4d 61 78 52 65 63 76 44
61 74 61 53 65 67 6d 65 6e 74 4c 65 6e 67 74 68
3d 33 32 37 36 38 00 00
""")


def test_seed_login_request() -> None:
    assert len(LOGIN_REQUEST_DATA) == 232  # 0xe7 bytes of text + 1 byte of padding
    (pdu,) = _read_all(LOGIN_REQUEST_BHS, LOGIN_REQUEST_DATA)
    assert pdu == LoginRequest(
        transit=True,
        continue_=False,
        csg=LoginStage.LOGIN_OPERATIONAL_NEGOTIATION,
        nsg=LoginStage.FULL_FEATURE_PHASE,
        isid=ISID,
        tsih=0,
        itt=0,
        cid=0,
        cmdsn=1,
        expstatsn=0,
        data=LOGIN_REQUEST_DATA[:0xE7],
    )
    assert list(decode_text(pdu.data)) == [
        ("InitiatorName", "iqn.1998-01.com.vmware:wdc-tse-h171-3c00d9ce"),
        ("SessionType", "Discovery"),
        ("HeaderDigest", "None"),
        ("DataDigest", "None"),
        ("DefaultTime2Wait", "0"),
        ("DefaultTime2Retain", "0"),
        ("IFMarker", "No"),
        ("OFMarker", "No"),
        ("ErrorRecoveryLevel", "0"),
        ("MaxRecvDataSegmentLength", "32768"),
    ]
    assert _encode(pdu) == LOGIN_REQUEST_BHS + LOGIN_REQUEST_DATA


# Seed 001, frame 11: the target's final Login Response, TCP Len 224.
LOGIN_RESPONSE_PAIRS = [
    ("HeaderDigest", "None"),
    ("DataDigest", "None"),
    ("DefaultTime2Wait", "2"),
    ("DefaultTime2Retain", "0"),
    ("IFMarker", "No"),
    ("OFMarker", "No"),
    ("ErrorRecoveryLevel", "0"),
    ("TargetPortalGroupTag", "1"),
    ("MaxRecvDataSegmentLength", "65536"),
]
LOGIN_RESPONSE_BHS = _hex("""
23 87 00 00 00 00 00 ad 00 02 3d 00 00 00 00 0c
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 01
00 00 00 1f 00 00 00 00 00 00 00 00 00 00 00 00
""")


def test_seed_login_response() -> None:
    text = encode_text(LOGIN_RESPONSE_PAIRS)
    assert len(text) == 0xAD
    response = LoginResponse(
        transit=True,
        csg=LoginStage.LOGIN_OPERATIONAL_NEGOTIATION,
        nsg=LoginStage.FULL_FEATURE_PHASE,
        isid=ISID,
        tsih=0x000C,
        itt=0,
        statsn=0,
        expcmdsn=1,
        maxcmdsn=0x1F,
        status=LoginStatus.SUCCESS,
        data=text,
    )
    wire = _encode(response)
    assert len(wire) == 224
    assert wire == LOGIN_RESPONSE_BHS + text + b"\0\0\0"
    assert _read_all(wire) == [response]


# Seed 001, frames 12/13 (Text Request, 48 + 16 bytes), 35 (Text Response, 136 bytes),
# 36/37 (Logout Request and Response, 48 bytes each).
TEXT_REQUEST_BHS = _hex("""
04 80 00 00 00 00 00 10 00 00 00 00 00 00 00 00
00 00 00 01 ff ff ff ff 00 00 00 01 00 00 00 01
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
""")
SENDTARGETS_ALL = _hex("53 65 6e 64 54 61 72 67 65 74 73 3d 41 6c 6c 00")  # frame 13 payload
TEXT_RESPONSE_BHS = _hex("""
24 80 00 00 00 00 00 56 00 00 00 00 00 00 00 00
00 00 00 01 ff ff ff ff 00 00 00 01 00 00 00 02
00 00 00 20 00 00 00 00 00 00 00 00 00 00 00 00
""")
LOGOUT_REQUEST = _hex("""
46 80 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 02 00 00 00 00 00 00 00 02 00 00 00 02
00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00
""")
LOGOUT_RESPONSE = _hex("""
26 80 00 00 00 00 00 00 00 00 00 00 00 00 00 00
00 00 00 02 00 00 00 00 00 00 00 02 00 00 00 02
00 00 00 20 00 00 00 00 00 02 00 00 00 00 00 00
""")


def test_seed_discovery_session_after_login() -> None:
    request, logout = _read_all(TEXT_REQUEST_BHS, SENDTARGETS_ALL, LOGOUT_REQUEST)
    assert request == TextRequest(
        immediate=False, final=True, itt=1, cmdsn=1, expstatsn=1, data=SENDTARGETS_ALL
    )
    assert list(decode_text(request.data)) == [("SendTargets", "All")]
    assert logout == LogoutRequest(
        immediate=True, reason_code=0, itt=2, cid=0, cmdsn=2, expstatsn=2
    )
    assert _encode(request) == TEXT_REQUEST_BHS + SENDTARGETS_ALL
    assert _encode(logout) == LOGOUT_REQUEST

    targets = encode_text(
        [
            ("TargetName", "iqn.1992-05.com.emc:bb0050568c51390000-2"),
            ("TargetAddress", "10.131.13.10:3260,1"),
        ]
    )
    response = TextResponse(itt=1, statsn=1, expcmdsn=2, maxcmdsn=0x20, data=targets)
    assert _encode(response) == TEXT_RESPONSE_BHS + targets + b"\0\0"  # TCP Len 136
    logout_response = LogoutResponse(
        response=0, itt=2, statsn=2, expcmdsn=2, maxcmdsn=0x20, time2wait=2, time2retain=0
    )
    assert _encode(logout_response) == LOGOUT_RESPONSE
    assert _read_all(_encode(response) + LOGOUT_RESPONSE) == [response, logout_response]
