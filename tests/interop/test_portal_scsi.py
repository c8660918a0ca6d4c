"""libiscsi logs in to a configured target and reads what the SCSI layer reports:
REPORT LUNS, READ CAPACITY, standard INQUIRY and the VPD pages; SendTargets answers,
long and bad, as libiscsi and a raw initiator see them; a write shorter than its CDB."""

import asyncio
import re
import socket
import struct
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from isns_server.client import IsnsClient
from isns_server.isnsp.constants import FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, PortNumber
from isns_server.portal.iscsi.pdu import (
    DataIn,
    ScsiCommand,
    ScsiResponse,
    TextRequest,
    TextResponse,
)
from isns_server.portal.iscsi.text import decode_text, encode_text

from ..initiator import RawInitiator
from ..peers import require
from ..processes import OurServer

pytestmark = pytest.mark.interop

TARGET = "iqn.2026-11.org.example.test:disk1"
INITIATOR = "iqn.2026-11.org.example.test:host1"


def run(*args: str) -> str:
    # errors="replace": iscsi-inq prints binary designators (NAA) as raw bytes
    done = subprocess.run(args, capture_output=True, text=True, errors="replace", timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_iscsi_ls_and_iscsi_inq_see_the_logical_units(
    our_server: OurServer, tmp_path: Path
) -> None:
    port = our_server.enable_portal()
    luns = [
        {"lun": 0, "path": str(tmp_path / "lun0.img"), "size": "64MiB"},
        {"lun": 3, "path": str(tmp_path / "lun3.img"), "size": "2GiB"},
    ]
    our_server.configure(targets=[{"name": TARGET, "luns": luns}])
    our_server.start()
    listing = run(require("iscsi-ls"), "-s", "-i", INITIATOR, f"iscsi://127.0.0.1:{port}")
    # iscsi-ls multiplies the block size by the last LBA: one block short of the size.
    assert re.findall(r"Lun:(\d+)\s+Type:(\S+) \(Size:(\S+)\)", listing) == [
        ("0", "DIRECT_ACCESS", "63M"),
        ("3", "DIRECT_ACCESS", "1G"),
    ]

    inq = require("iscsi-inq")
    url = f"iscsi://127.0.0.1:{port}/{TARGET}/3"
    standard = run(inq, "-i", INITIATOR, url)
    assert "Peripheral Device Type:DIRECT_ACCESS" in standard
    assert "Vendor:ISNSSRV" in standard and "Version Descriptor:0960 iSCSI" in standard
    pages = run(inq, "-i", INITIATOR, "-e", "1", "-c", "0", url)
    assert re.findall(r"Page:(0x..)", pages) == [
        "0x00",
        "0x80",
        "0x83",
        "0x8f",
        "0xb0",
        "0xb1",
        "0xb2",
    ]
    serial = re.search(
        r"Unit Serial Number:\[(\w+)\]", run(inq, "-i", INITIATOR, "-e", "1", "-c", "128", url)
    )
    assert serial is not None
    designators = run(inq, "-i", INITIATOR, "-e", "1", "-c", "131", url)
    assert f"Designator:[{TARGET},t,0x0001]" in designators
    assert f"Designator:[ISNSSRV {serial.group(1)}]" in designators


REMOTE_TARGETS = 2000  # ~170 KiB of SendTargets text
SEND_TARGETS = ("SendTargets", "All")
REMOTE_PER_ENTITY = 100


async def register_remote_targets(isns_port: int, count: int) -> list[str]:
    """`count` targets registered by other hosts, REMOTE_PER_ENTITY to an entity, each
    entity on a portal of its own in 127.0.1.0/24 (data in a URL: nothing connects)."""
    names = [f"iqn.2026-11.org.example.remote:many.{n:05}" for n in range(count)]
    async with await IsnsClient.connect("127.0.0.1", isns_port) as isns:
        for first in range(0, count, REMOTE_PER_ENTITY):
            batch = names[first : first + REMOTE_PER_ENTITY]
            nodes = tuple(
                attribute
                for name in batch
                for attribute in (
                    Attribute(Tag.ISCSI_NAME, name),
                    Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
                )
            )
            answer = await isns.call(
                FunctionId.DEV_ATTR_REG,
                Attribute(Tag.ISCSI_NAME, batch[0]),
                keys=(Attribute(Tag.ENTITY_IDENTIFIER, f"remote-{first}"),),
                operating=(
                    Attribute(
                        Tag.PORTAL_IP_ADDRESS, IPv4Address(f"127.0.1.{first // REMOTE_PER_ENTITY}")
                    ),
                    Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
                    *nodes,
                ),
            )
            assert answer.status == Status.SUCCESSFUL, answer
    return names


def test_send_targets_of_2000_registered_targets_lists_them_all(
    our_server: OurServer, tmp_path: Path
) -> None:
    """iscsi-ls lists every target; an initiator with a small MaxRecvDataSegmentLength gets
    the answer over many Text Responses, each but the last with C=1 (RFC 3720 10.11.2),
    also those that end on a pair boundary (they carried F=0, C=0)."""
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(tmp_path / "lun0.img"), "size": "1MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    every = {TARGET, *asyncio.run(register_remote_targets(our_server.port, REMOTE_TARGETS))}
    # libiscsi 1.19 reads only a one-PDU answer (F=1, C=0): it declares a
    # MaxRecvDataSegmentLength of 256 KiB, and 2,000 targets fit in it.
    listing = run(require("iscsi-ls"), "-i", INITIATOR, f"iscsi://127.0.0.1:{port}")
    listed = re.findall(r"Target:(\S+) Portal:", listing)
    assert len(listed) == len(every) and set(listed) == every

    responses: list[TextResponse] = []
    with RawInitiator(port) as initiator:
        discovery = [("InitiatorName", INITIATOR), ("SessionType", "Discovery")]
        initiator.enter_full_feature(*discovery, ("MaxRecvDataSegmentLength", "4096"))
        initiator.send(TextRequest(immediate=True, itt=1, data=encode_text([SEND_TARGETS])))
        while not responses or not responses[-1].final:
            if responses:  # 10.10.4: an empty request with the tag asks for the rest
                initiator.send(TextRequest(immediate=True, itt=1, ttt=responses[-1].ttt))
            response = initiator.receive()
            assert isinstance(response, TextResponse) and len(response.data) <= 4096
            responses.append(response)
            assert len(responses) < 200, "the answer does not end"
    *continued, last = responses
    assert len(continued) > 10 and all(r.continue_ and not r.final for r in continued)
    assert any(bytes(r.data).endswith(b"\0") for r in continued)  # cut on a boundary
    assert not last.continue_
    text = decode_text(b"".join(bytes(r.data) for r in responses))
    names = [value for key, value in text if key == "TargetName"]
    assert len(names) == len(every) and set(names) == every


@contextmanager
def rewriting_relay(port: int, old: bytes, new: bytes) -> Iterator[int]:
    """A loopback relay to `port` that replaces `old` with `new` (as long: no length field
    changes) in what the initiator sends, so libiscsi sends what it never would. Yields
    the relay's port, for one connection."""
    assert len(old) == len(new)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)

    def pump(source: socket.socket, sink: socket.socket, rewrite: bool) -> None:
        with suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data.replace(old, new) if rewrite else data)
        with suppress(OSError):
            sink.shutdown(socket.SHUT_WR)

    def relay() -> None:
        try:
            initiator, _ = listener.accept()
        except OSError:  # no connection came
            return
        with initiator, socket.create_connection(("127.0.0.1", port)) as target:
            pumps = [
                threading.Thread(target=pump, args=(initiator, target, True)),
                threading.Thread(target=pump, args=(target, initiator, False)),
            ]
            for thread in pumps:
                thread.start()
            for thread in pumps:
                thread.join(30)

    thread = threading.Thread(target=relay, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
        thread.join(30)


@pytest.mark.parametrize(
    "sent",
    [
        b"SendTargets=Alx\0",  # a value neither All, empty nor a name
        b"SendTargets=A\0\0\0",  # an empty pair after it is tolerated
        b"SendTargetz=All\0",  # a key not understood
        b"sendTargets=All\0",  # no key at all (5.1)
    ],
)
def test_libiscsi_sees_a_bad_send_targets_fail_at_once(
    our_server: OurServer, tmp_path: Path, sent: bytes
) -> None:
    """RFC 3720 3.3 and appendix D: a Reject, which libiscsi reports as the failure of
    that request (a text answer of other keys it cannot parse, and "SendTargets=Alle"
    used to list nothing, successfully); the portal serves on."""
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(tmp_path / "lun0.img"), "size": "1MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    ls = require("iscsi-ls")
    with rewriting_relay(port, b"SendTargets=All\0", sent) as relay:
        done = subprocess.run(
            [ls, "-i", INITIATOR, f"iscsi://127.0.0.1:{relay}"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert done.returncode != 0 and "Target:" not in done.stdout
    assert "rejected with reason: 0x04 (Protocol Error)" in done.stdout + done.stderr
    assert f"Target:{TARGET} " in run(ls, "-i", INITIATOR, f"iscsi://127.0.0.1:{port}")


def test_send_targets_all_in_a_normal_session_names_only_its_own_target(
    our_server: OurServer, tmp_path: Path
) -> None:
    """Appendix D: a normal session never lists other targets, for All neither."""
    port = our_server.enable_portal()
    lun = {"lun": 0, "path": str(tmp_path / "lun0.img"), "size": "1MiB"}
    our_server.configure(targets=[{"name": TARGET, "luns": [lun]}])
    our_server.start()
    asyncio.run(register_remote_targets(our_server.port, 3))
    with RawInitiator(port) as initiator:
        initiator.enter_full_feature(("InitiatorName", INITIATOR), ("TargetName", TARGET))
        for itt, value in enumerate(("All", "", TARGET.upper())):
            request = TextRequest(
                immediate=True, itt=itt, data=encode_text([("SendTargets", value)])
            )
            initiator.send(request)
            response = initiator.receive()
            assert isinstance(response, TextResponse) and response.final
            assert list(decode_text(response.data)) == [
                ("TargetName", TARGET),
                ("TargetAddress", f"127.0.0.1:{port},1"),
            ]


def test_a_write_with_less_data_than_its_cdb_writes_what_was_sent(
    our_server: OurServer, tmp_path: Path
) -> None:
    """WRITE (10) of one block with an Expected Data Transfer Length of 200 (libiscsi's
    Write10Residuals): GOOD with 312 bytes of residual overflow, and the 200 bytes are
    on the disk (they were dropped); with none sent nothing changes."""
    port = our_server.enable_portal()
    image = tmp_path / "lun0.img"
    our_server.configure(
        targets=[{"name": TARGET, "luns": [{"lun": 0, "path": str(image), "size": "1MiB"}]}]
    )
    our_server.start()
    write_10 = struct.pack(">BBIBHB6x", 0x2A, 0, 0, 0, 1, 0)
    with RawInitiator(port) as initiator:
        initiator.enter_full_feature(("InitiatorName", INITIATOR), ("TargetName", TARGET))
        for cmdsn, data in enumerate((b"a" * 512, b"b" * 200, b""), start=1):
            initiator.send(
                ScsiCommand(
                    write=True,
                    final=True,
                    itt=cmdsn,
                    cmdsn=cmdsn,
                    cdb=write_10,
                    expected_data_transfer_length=len(data),
                    data=data,
                )
            )
            response = initiator.receive()
            assert isinstance(response, ScsiResponse) and response.status == 0, response
            assert response.residual_overflow == (len(data) < 512)
            assert response.residual_count == 512 - len(data)
        initiator.send(
            ScsiCommand(
                read=True,
                final=True,
                itt=9,
                cmdsn=4,
                cdb=struct.pack(">BBIBHB6x", 0x28, 0, 0, 0, 1, 0),
                expected_data_transfer_length=512,
            )
        )
        data_in = initiator.receive()
        assert isinstance(data_in, DataIn) and data_in.status_present
    assert bytes(data_in.data) == b"b" * 200 + b"a" * 312
