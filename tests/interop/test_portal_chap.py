"""CHAP on the portal with libiscsi: one-way and mutual, for discovery and for a target;
a wrong secret fails with login status 0x0201 (and a wrong target secret on the
initiator's side of mutual CHAP)."""

import subprocess
from pathlib import Path

import pytest

from ..peers import require
from ..processes import OurServer

pytestmark = pytest.mark.interop

TARGET = "iqn.2026-11.org.example.test:disk1"
INITIATOR = "iqn.2026-11.org.example.test:host1"


def run(*args: str) -> str:
    """Exit code and output of a libiscsi tool, as one string for the asserts."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    return f"exit {done.returncode}\n{done.stdout}{done.stderr}"


def test_discovery_and_target_chap_one_way_and_mutual(
    our_server: OurServer, tmp_path: Path
) -> None:
    port = our_server.enable_portal(
        discovery_chap={"user": "disco", "secret": "discosecret123"},
        discovery_mutual_chap={"user": "portal", "secret": "portalsecret123"},
    )
    # Failed logins from one address are one WARNING a minute; DEBUG has each of them.
    our_server.configure(
        log_level="debug",
        targets=[
            {
                "name": TARGET,
                "luns": [{"lun": 0, "path": str(tmp_path / "disk1.img"), "size": "1MiB"}],
                "chap": {"user": "alice", "secret": "alicesecret12"},
                "mutual_chap": {"user": "tgt", "secret": "targetsecret12"},
            }
        ],
    )
    our_server.start()
    ls, inq = require("iscsi-ls"), require("iscsi-inq")

    def discover(credentials: str, args: str = "") -> str:
        return run(ls, "-i", INITIATOR, f"iscsi://{credentials}127.0.0.1:{port}{args}")

    def inquire(credentials: str, args: str = "") -> str:
        url = f"iscsi://{credentials}127.0.0.1:{port}/{TARGET}/0{args}"
        return run(inq, "-i", INITIATOR, url)

    listed = f"Target:{TARGET} Portal:127.0.0.1:{port},1"
    assert "Authentication failure" in discover("")  # CHAP required: 0x0201
    assert listed in discover("disco%discosecret123@")
    assert "Authentication failure" in discover("disco%discosecret99@")
    mutual = "?target_user=portal&target_password=portalsecret123"
    assert listed in discover("disco%discosecret123@", mutual)
    forged = "?target_user=portal&target_password=notthesecret1"
    assert "Invalid CHAP_R response from the target" in discover("disco%discosecret123@", forged)

    assert "Authentication failure" in inquire("")
    assert "Peripheral Device Type:DIRECT_ACCESS" in inquire("alice%alicesecret12@")
    mutual = "?target_user=tgt&target_password=targetsecret12"
    assert "Peripheral Device Type:DIRECT_ACCESS" in inquire("alice%alicesecret12@", mutual)
    assert "Authentication failure" in inquire("alice%alicesecret99@", mutual)
    assert "wrong CHAP_R for 'alice' (login status 0x0201)" in our_server.log()
