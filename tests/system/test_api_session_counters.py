"""/api/v1/sessions counts each live session's SCSI commands and bytes read and written
(issue 13 item 1), seen moving after a real write and read over the portal."""

from pathlib import Path
from typing import Any

import aiohttp
import pytest

from isns_server.portal.iscsi.pdu import DataIn, ScsiCommand, ScsiResponse

from ..initiator import RawInitiator
from ..processes import OurServer
from .test_api import LOCAL, PREFIX, start_with_api

pytestmark = pytest.mark.interop

HOST = PREFIX + "counted"
WRITE_1_BLOCK = bytes([0x2A, 0, 0, 0, 0, 8, 0, 0, 1, 0]).ljust(16, b"\0")  # LBA 8
READ_1_BLOCK = bytes([0x28, 0, 0, 0, 0, 8, 0, 0, 1, 0]).ljust(16, b"\0")


async def test_sessions_count_commands_and_bytes(our_server: OurServer, tmp_path: Path) -> None:
    port = our_server.enable_portal()
    disk = {"lun": 0, "path": str(tmp_path / "disk.img"), "size": "1MiB"}
    our_server.configure(targets=[{"name": LOCAL, "luns": [disk]}])
    url, headers = start_with_api(our_server)

    async with aiohttp.ClientSession(url, headers=headers) as http:

        async def counters() -> tuple[Any, ...]:
            (session,) = (await (await http.get("/api/v1/sessions")).json())["items"]
            assert session["initiator"] == HOST, session
            return session["commands"], session["bytes_read"], session["bytes_written"]

        with RawInitiator(port) as initiator:
            initiator.enter_full_feature(
                ("InitiatorName", HOST), ("SessionType", "Normal"), ("TargetName", LOCAL)
            )
            assert await counters() == (0, 0, 0)
            initiator.send(
                ScsiCommand(
                    write=True,
                    itt=1,
                    cmdsn=1,
                    cdb=WRITE_1_BLOCK,
                    expected_data_transfer_length=512,
                    data=b"w" * 512,  # immediate data: the whole block
                )
            )
            written = initiator.receive()
            assert isinstance(written, ScsiResponse) and written.status == 0, written
            assert await counters() == (1, 0, 512)
            initiator.send(
                ScsiCommand(
                    read=True, itt=2, cmdsn=2, cdb=READ_1_BLOCK, expected_data_transfer_length=512
                )
            )
            read = initiator.receive()
            assert isinstance(read, DataIn) and bytes(read.data) == b"w" * 512, read
            assert await counters() == (2, 512, 512)
