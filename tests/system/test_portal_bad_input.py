"""Bad input to the iSCSI portal gets RFC 3720's answer, over real sockets, and the portal
keeps serving a session that was open all along."""

import asyncio
import time
from collections.abc import Iterator
from ipaddress import ip_address
from pathlib import Path

import pytest

from isns_server.client import IsnsClient
from isns_server.isnsp.constants import FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, PortNumber
from isns_server.portal.iscsi import digests
from isns_server.portal.iscsi.codec import encode_pdu
from isns_server.portal.iscsi.constants import LoginStage, LoginStatus, RejectReason
from isns_server.portal.iscsi.pdu import (
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    LogoutResponse,
    NopIn,
    NopOut,
    Reject,
    ScsiCommand,
    TextRequest,
    TextResponse,
)
from isns_server.portal.iscsi.text import encode_text

from ..initiator import RawInitiator, texts
from ..processes import OurServer

TARGET = "iqn.2026-11.org.example.test:disk1"
INITIATOR = "iqn.2026-11.org.example.test:host1"
DISCOVERY = (("InitiatorName", INITIATOR), ("SessionType", "Discovery"))
NORMAL = (("InitiatorName", INITIATOR), ("SessionType", "Normal"), ("TargetName", TARGET))
DIGESTS = (("HeaderDigest", "CRC32C"), ("DataDigest", "CRC32C"))
SEND_TARGETS = encode_text([("SendTargets", "All")])


@pytest.fixture
def portal(our_server: OurServer, tmp_path: Path) -> Iterator[int]:
    port = our_server.enable_portal(login_timeout=1)
    lun = {"lun": 0, "path": str(tmp_path / "disk1.img"), "size": "1MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    yield port


def send_targets(initiator: RawInitiator, itt: int) -> list[tuple[str, str]]:
    initiator.send(TextRequest(immediate=True, itt=itt, data=SEND_TARGETS))
    response = initiator.receive()
    assert isinstance(response, TextResponse) and response.final, response
    return texts(response)


def rejected(initiator: RawInitiator) -> int:
    response = initiator.receive()
    assert isinstance(response, Reject), response
    return response.reason


def test_login_phase_bad_input(portal: int) -> None:
    with RawInitiator(portal) as bystander:
        bystander.enter_full_feature(*DISCOVERY)

        # Garbage before any login: closed without a word (3.2.3).
        with RawInitiator(portal) as http:
            http.send_bytes(b"GET / HTTP/1.1\r\nHost: portal\r\n\r\n".ljust(48, b"\0"))
            assert http.closed()

        # A non-login PDU once the Login Phase began: Login reject 0x020b.
        with RawInitiator(portal) as initiator:
            security = initiator.login(
                *NORMAL,
                ("AuthMethod", "None"),
                transit=False,
                csg=LoginStage.SECURITY_NEGOTIATION,
                nsg=0,
            )
            assert security.status == LoginStatus.SUCCESS
            initiator.send(NopOut(immediate=True, itt=2))
            response = initiator.receive()
            assert isinstance(response, LoginResponse)
            assert response.status == LoginStatus.INVALID_DURING_LOGIN
            assert initiator.closed()

        # A Login Request longer than the 8192 bytes allowed during login: 0x0200.
        with RawInitiator(portal) as initiator:
            oversize = LoginRequest(transit=True, csg=1, nsg=3, itt=1, data=b"X" * 9000)
            initiator.send(oversize)
            response = initiator.receive()
            assert isinstance(response, LoginResponse)
            assert response.status == LoginStatus.INITIATOR_ERROR
            assert initiator.closed()

        # Unknown keys are answered NotUnderstood and the login goes on.
        with RawInitiator(portal) as initiator:
            response = initiator.login(*NORMAL, ("X-org.example.colour", "blue"))
            assert response.status == LoginStatus.SUCCESS and response.transit
            assert ("X-org.example.colour", "NotUnderstood") in texts(response)

        # A key given twice: initiator error.
        with RawInitiator(portal) as initiator:
            twice = (("MaxBurstLength", "65536"), ("MaxBurstLength", "8192"))
            assert initiator.login(*NORMAL, *twice).status == LoginStatus.INITIATOR_ERROR
            assert initiator.closed()

        # Silence: the login times out (login_timeout 1 s) and the connection closes.
        with RawInitiator(portal) as initiator:
            started = time.monotonic()
            assert initiator.closed()
            assert 0.5 < time.monotonic() - started < 4

        assert (("TargetName", TARGET)) in send_targets(bystander, itt=9)


def test_full_feature_bad_input(portal: int, our_server: OurServer) -> None:
    with RawInitiator(portal) as bystander:
        bystander.enter_full_feature(*DISCOVERY)
        with RawInitiator(portal) as initiator:
            initiator.enter_full_feature(*DISCOVERY, *DIGESTS)
            assert initiator.digests == (True, True)

            # Data digest error: Reject, the PDU is discarded, the session goes on (6.7).
            header, data, trailer = encode_pdu(
                TextRequest(immediate=True, itt=2, data=SEND_TARGETS), True, True
            )
            initiator.send_bytes(bytes(header) + bytes(data) + bytes(trailer[:-4]) + b"\0" * 4)
            assert rejected(initiator) == RejectReason.DATA_DIGEST_ERROR
            assert ("TargetName", TARGET) in send_targets(initiator, itt=3)

            # Any key but SendTargets in a discovery session: Reject (3.3), which the
            # initiator sees at once; a key twice: protocol error (5.2).
            initiator.send(TextRequest(immediate=True, itt=4, data=encode_text([("Y", "1")])))
            assert rejected(initiator) == RejectReason.PROTOCOL_ERROR
            twice = encode_text([("SendTargets", "All"), ("SendTargets", "All")])
            initiator.send(TextRequest(immediate=True, itt=5, data=twice))
            assert rejected(initiator) == RejectReason.PROTOCOL_ERROR

            # An opcode iSCSI does not define: command not supported.
            raw = bytearray(encode_pdu(NopOut(immediate=True, itt=6))[0])
            raw[0] = 0x40 | 0x1C  # immediate, a vendor-specific opcode
            initiator.send_bytes(bytes(raw) + digests.header_digest(raw))
            assert rejected(initiator) == RejectReason.COMMAND_NOT_SUPPORTED

            # A discovery session takes only SendTargets and Logout to close it (3.3).
            inquiry = bytes([0x12, 0, 0, 0, 36, 0])
            initiator.send(ScsiCommand(read=True, itt=7, cmdsn=1, cdb=inquiry))
            assert rejected(initiator) == RejectReason.PROTOCOL_ERROR
            initiator.send(NopOut(itt=8, cmdsn=2))
            assert rejected(initiator) == RejectReason.PROTOCOL_ERROR
            initiator.send(LogoutRequest(immediate=True, reason_code=1, itt=9, cmdsn=3))
            assert rejected(initiator) == RejectReason.PROTOCOL_ERROR

            # A header digest error: the lengths cannot be trusted, the connection closes.
            raw = bytearray(encode_pdu(NopOut(immediate=True), True)[0])
            raw[-1] ^= 0xFF
            initiator.send_bytes(bytes(raw))
            assert initiator.closed()

        # A data segment over our MaxRecvDataSegmentLength: Reject, then close.
        with RawInitiator(portal) as initiator:
            initiator.enter_full_feature(*DISCOVERY)
            initiator.send(NopOut(immediate=True, itt=2, data=b"x" * (262144 + 4)))
            assert rejected(initiator) == RejectReason.PROTOCOL_ERROR
            assert initiator.closed()

        # Logout closing the session: answered, then the connection closes.
        assert ("TargetName", TARGET) in send_targets(bystander, itt=2)
        bystander.send(LogoutRequest(immediate=True, reason_code=0, itt=3, cmdsn=1))
        response = bystander.receive()
        assert isinstance(response, LogoutResponse) and response.response == 0
        assert bystander.closed()
    assert "data digest error in TextRequest" in our_server.log()


def test_send_targets_longer_than_max_recv_data_segment_length_continues(
    portal: int, our_server: OurServer
) -> None:
    # 30 targets of another host, all visible through the default DD.
    names = [f"iqn.2026-11.org.example.test:remote-{n:02d}" for n in range(30)]
    asyncio.run(_register_remote(our_server.port, names))
    with RawInitiator(portal) as initiator:
        initiator.enter_full_feature(*DISCOVERY, ("MaxRecvDataSegmentLength", "512"))
        initiator.send(TextRequest(immediate=True, itt=1, data=SEND_TARGETS))
        text = b""
        while True:
            response = initiator.receive()
            assert isinstance(response, TextResponse) and len(response.data) <= 512
            text += bytes(response.data)
            if response.final:
                assert response.ttt == 0xFFFFFFFF
                break
            assert response.ttt != 0xFFFFFFFF  # 10.11.1: F=0 carries a tag to continue
            initiator.send(TextRequest(immediate=True, itt=1, ttt=response.ttt))
    pairs = [pair.split("=", 1) for pair in text.decode().split("\0") if pair]
    listed = [value for key, value in pairs if key == "TargetName"]
    assert sorted(listed) == sorted([*names, TARGET])


async def _register_remote(port: int, names: list[str]) -> None:
    """One entity of another host (10.9.9.9 is plain data: nothing connects to it)."""
    operating = [
        Attribute(Tag.ENTITY_IDENTIFIER, "remote-array"),
        Attribute(Tag.PORTAL_IP_ADDRESS, ip_address("10.9.9.9")),
        Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
    ]
    for name in names:
        operating += [
            Attribute(Tag.ISCSI_NAME, name),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        ]
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        answer = await isns.call(
            FunctionId.DEV_ATTR_REG, Attribute(Tag.ISCSI_NAME, names[0]), (), tuple(operating)
        )
    assert answer.status == Status.SUCCESSFUL, answer


def test_keepalive_pings_a_silent_initiator_and_drops_one_that_does_not_answer(
    our_server: OurServer, tmp_path: Path
) -> None:
    port = our_server.enable_portal(nop_in_interval=1, nop_in_timeout=1)
    lun = {"lun": 0, "path": str(tmp_path / "disk1.img"), "size": "1MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    with RawInitiator(port) as initiator:
        initiator.enter_full_feature(*NORMAL)
        ping = initiator.receive()  # after 1 s of silence
        assert isinstance(ping, NopIn) and ping.itt == 0xFFFFFFFF and ping.ttt != 0xFFFFFFFF
        initiator.send(NopOut(immediate=True, itt=0xFFFFFFFF, ttt=ping.ttt, lun=ping.lun))
        second = initiator.receive()  # answered: the session lives on, pinged again later
        assert isinstance(second, NopIn) and second.ttt != ping.ttt
        started = time.monotonic()
        assert initiator.closed()  # this one goes unanswered
        assert time.monotonic() - started < 4
    assert "no answer to a NOP-In ping in 1 s" in our_server.log()
