"""SendTargets zoned by discovery domains, seen through libiscsi's iscsi-ls and iscsi-inq.

Two local targets (declared in the configuration) and one target another host registered
with isnsadm (its portal 127.0.0.2 is plain data: nothing connects to it). Each initiator
discovers exactly the targets of its DDs, and zoning is enforced at login too.
"""

import re
import subprocess
from pathlib import Path

import pytest

from ..conftest import ADMIN
from ..peers import require
from ..processes import OurServer, isnsadm

pytestmark = pytest.mark.interop

PREFIX = "iqn.2026-11.org.example.test:"
T1, T2, REMOTE = (PREFIX + name for name in ("t1", "t2", "remote"))
I1, I2, I3 = (PREFIX + name for name in ("i1", "i2", "i3"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def discover(port: int, initiator: str) -> set[tuple[str, str]]:
    done = run(require("iscsi-ls"), "-i", initiator, f"iscsi://127.0.0.1:{port}")
    assert done.returncode == 0, done.stdout + done.stderr
    return set(re.findall(r"Target:(\S+) Portal:(\S+)", done.stdout))


def inquiry(port: int, initiator: str, target: str) -> subprocess.CompletedProcess[str]:
    return run(require("iscsi-inq"), "-i", initiator, f"iscsi://127.0.0.1:{port}/{target}/0")


def test_each_initiator_discovers_and_reaches_only_its_discovery_domains(
    our_server: OurServer, tmp_path: Path
) -> None:
    port = our_server.enable_portal()
    our_server.configure(
        targets=[
            {"name": T1, "luns": [{"lun": 0, "path": str(tmp_path / "t1.img"), "size": "1MiB"}]},
            {
                "name": T2,
                "luns": [{"lun": 0, "path": str(tmp_path / "t2.img"), "size": "1MiB"}],
                "allowed_initiators": [I3],
            },
        ]
    )
    our_server.start()
    program = require("isnsadm")

    def admin(source: str, *args: str) -> None:
        code, out = isnsadm(program, our_server.port, source, *args, workdir=tmp_path)
        assert code == 0, f"isnsadm {' '.join(args)} failed:\n{out}"

    admin(REMOTE, "--register", "entity=stor-remote", "portal=127.0.0.2:3260", f"target={REMOTE}")
    admin(
        ADMIN, "--dd-register", "dd-name=dd-a", *(f"dd-member-name={n}" for n in (T1, REMOTE, I1))
    )
    admin(ADMIN, "--dd-register", "dd-name=dd-b", f"dd-member-name={T2}", f"dd-member-name={I2}")

    local = f"127.0.0.1:{port},1"
    assert discover(port, I1) == {(T1, local), (REMOTE, "127.0.0.2:3260,1")}
    assert discover(port, I2) == {(T2, local)}
    assert discover(port, I3) == set()  # in no DD; every target is in one

    assert inquiry(port, I1, T1).returncode == 0
    refused = inquiry(port, I2, T1)
    assert refused.returncode != 0
    assert "Authorization failure" in refused.stdout + refused.stderr  # login status 0x0202
    assert re.search(f"{re.escape(I2)}.*{re.escape(T1)}.*0x0202", our_server.log())
    # On T2's access list: may log in although zoning hides T2 from its SendTargets.
    assert inquiry(port, I3, T2).returncode == 0
    found = inquiry(port, I1, REMOTE)  # registered, but not a target of this portal
    assert "Target not found" in found.stdout + found.stderr  # 0x0203

    # The portal's targets leave the registry at shutdown (the isnsadm one stays).
    our_server.stop()
    our_server.configure(targets=[])
    our_server.start()
    _, out = isnsadm(program, our_server.port, ADMIN, "--list", "nodes", workdir=tmp_path)
    assert REMOTE in out and T1 not in out and T2 not in out, out
