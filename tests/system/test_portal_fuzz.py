"""A bounded mutation fuzzer for the iSCSI portal (issue 12 item 10): a fixed seed, a
fixed number of mutated Login, Text and SCSI PDUs against the running server, each on a
connection of its own that the client then half-closes. Whatever the bytes, the server
answers or closes, logs no traceback, and serves a fresh client afterwards."""

import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from isns_server.portal.iscsi.codec import encode_pdu
from isns_server.portal.iscsi.constants import RESERVED_TAG, LoginStage
from isns_server.portal.iscsi.pdu import (
    DataOut,
    LoginRequest,
    NopOut,
    Pdu,
    ScsiCommand,
    TaskManagementRequest,
    TextRequest,
    TextResponse,
)
from isns_server.portal.iscsi.text import encode_text
from isns_server.scsi.constants import ScsiStatus

from ..initiator import RawInitiator, texts
from ..processes import OurServer
from .test_datapath_bad_input import BLOCK, INITIATOR, NORMAL, TARGET, Session, read16, write16

SEED = 20261202
CASES = 400  # of each kind: login, text, SCSI
DISCOVERY = (("InitiatorName", INITIATOR), ("SessionType", "Discovery"))
# Commands whose effect outlives the connection and would lock the fresh client out:
# reservations, FORMAT UNIT, SANITIZE, START STOP UNIT.
LASTING = {0x04, 0x16, 0x17, 0x1B, 0x48, 0x56, 0x57, 0x5E, 0x5F}
SCSI_COMMAND = 0x01  # opcode
INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF)


@pytest.fixture
def portal(our_server: OurServer, tmp_path: Path) -> Iterator[int]:
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(tmp_path / "disk1.img"), "size": "4MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    yield port


def pdu_bytes(pdu: Pdu) -> bytes:
    return b"".join(bytes(piece) for piece in encode_pdu(pdu))


def login_seeds(isid: bytes) -> list[bytes]:
    operational = LoginRequest(
        transit=True,
        csg=LoginStage.LOGIN_OPERATIONAL_NEGOTIATION,
        nsg=LoginStage.FULL_FEATURE_PHASE,
        isid=isid,
        itt=1,
        cmdsn=1,
        data=encode_text(NORMAL),
    )
    security = LoginRequest(
        transit=True,
        csg=LoginStage.SECURITY_NEGOTIATION,
        nsg=LoginStage.LOGIN_OPERATIONAL_NEGOTIATION,
        isid=isid,
        itt=1,
        cmdsn=1,
        data=encode_text([*DISCOVERY, ("AuthMethod", "CHAP,None")]),
    )
    return [pdu_bytes(operational), pdu_bytes(security)]


def text_seeds() -> list[bytes]:
    ask = TextRequest(final=True, itt=2, cmdsn=1, data=encode_text([("SendTargets", "All")]))
    many = TextRequest(
        final=False, itt=3, cmdsn=1, data=encode_text([("SendTargets", TARGET), ("X-a", "b")])
    )
    return [pdu_bytes(ask), pdu_bytes(many)]


def scsi_seeds() -> list[bytes]:
    data = b"\x5a" * BLOCK
    write = ScsiCommand(
        write=True, itt=2, cmdsn=1, cdb=write16(8, 2), expected_data_transfer_length=2 * BLOCK
    )
    return [
        pdu_bytes(
            ScsiCommand(
                read=True, itt=2, cmdsn=1, cdb=read16(0, 2), expected_data_transfer_length=2 * BLOCK
            )
        ),
        pdu_bytes(
            ScsiCommand(
                write=True,
                itt=2,
                cmdsn=1,
                cdb=write16(8, 1),
                expected_data_transfer_length=BLOCK,
                data=data,
            )
        ),
        pdu_bytes(write) + pdu_bytes(DataOut(final=True, itt=2, ttt=1, data=data * 2)),
        pdu_bytes(
            ScsiCommand(
                read=True,
                itt=2,
                cmdsn=1,
                cdb=bytes([0x12, 0, 0, 0, 96]).ljust(16, b"\0"),
                expected_data_transfer_length=96,
            )
        ),
        pdu_bytes(NopOut(immediate=True, itt=2, cmdsn=1, ttt=RESERVED_TAG, data=b"ping")),
        pdu_bytes(
            TaskManagementRequest(immediate=True, function=1, itt=2, cmdsn=1, referenced_task_tag=2)
        ),
    ]


def mutate(rng: random.Random, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(rng.randint(1, 3)):
        choice = rng.randrange(6)
        if choice == 0:  # bit flips
            for _ in range(rng.randint(1, 8)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif choice == 1:  # a byte of the header set to a boundary value
            data[rng.randrange(min(48, len(data)))] = rng.choice(INTERESTING)
        elif choice == 2:  # TotalAHSLength and DataSegmentLength
            data[4:8] = rng.choice([bytes(4), b"\xff" * 4, rng.randbytes(4), b"\x01\x00\x00\x01"])
        elif choice == 3:  # cut short
            del data[rng.randrange(1, len(data)) :]
        elif choice == 4:  # trailing garbage
            data += rng.randbytes(rng.randint(1, 96))
        else:  # sent twice
            data += bytes(data)
    if len(data) > 32 and data[0] & 0x3F == SCSI_COMMAND and data[32] in LASTING:
        data[32] = 0x00  # TEST UNIT READY
    return bytes(data)


def exchange(port: int, login: tuple[tuple[str, str], ...] | None, payload: bytes) -> None:
    """Log in (or not), send `payload`, half-close, read until the server closes."""
    with RawInitiator(port, timeout=10.0) as initiator:
        if login is not None:
            response = initiator.login(*login)
            assert response.status == 0 and response.transit, response
        try:
            initiator.send_bytes(payload)
            initiator.sock.shutdown(socket.SHUT_WR)
            while initiator.sock.recv(65536):
                pass
        except ConnectionResetError:
            pass  # closed with our bytes unread: also an answer


def fresh_client_is_served(port: int) -> None:
    with RawInitiator(port) as initiator:
        initiator.enter_full_feature(*DISCOVERY)
        ask = TextRequest(final=True, itt=2, cmdsn=1, data=encode_text([("SendTargets", "All")]))
        initiator.send(ask)
        answer = initiator.receive()
        assert isinstance(answer, TextResponse) and ("TargetName", TARGET) in texts(answer)
    session = Session(port)
    try:
        for _ in range(5):  # a reset the fuzzer sent may leave a unit attention to clear
            test_unit_ready = session.command(bytes(16))
            session.initiator.send(test_unit_ready)
            if session.response().status == ScsiStatus.GOOD:
                break
        assert session.write(64, b"\xc3" * BLOCK).status == ScsiStatus.GOOD
        assert session.read(64, 1) == b"\xc3" * BLOCK
    finally:
        session.close()


def test_mutated_login_text_and_scsi_pdus(
    portal: int, our_server: OurServer, record_property: Callable[[str, object], None]
) -> None:
    rng = random.Random(SEED)
    started = time.monotonic()
    for case in range(CASES):
        isid = bytes.fromhex("40000139") + case.to_bytes(2, "big")
        exchange(portal, None, mutate(rng, rng.choice(login_seeds(isid))))
        exchange(portal, DISCOVERY, mutate(rng, rng.choice(text_seeds())))
        exchange(portal, NORMAL, mutate(rng, rng.choice(scsi_seeds())))
    record_property("portal_fuzz_cases", f"{3 * CASES} in {time.monotonic() - started:.1f} s")
    assert our_server.process is not None and our_server.process.poll() is None
    fresh_client_is_served(portal)
    log = our_server.log()
    assert "Traceback" not in log and "internal error" not in log
