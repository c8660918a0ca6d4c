"""libiscsi logs in to a configured target and reads what the SCSI layer reports:
REPORT LUNS, READ CAPACITY, standard INQUIRY and the VPD pages."""

import re
import subprocess
from pathlib import Path

import pytest

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
