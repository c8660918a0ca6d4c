"""The management API against the real server and real peers: a target registered with
isnsadm, a DD created through the API, seen by `isnsadm --list dds`, by `iscsi-ls`
through the portal's SendTargets, and announced by SCN to a subscribed client."""

import re
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from isns_server.isnsp.constants import ScnBitmap
from isns_server.isnsp.messages import PortNumber

from ..conftest import ADMIN
from ..initiator import RawInitiator
from ..peers import require
from ..processes import OurServer, free_port, isnsadm, wait_for_port
from .test_notifications import UdpClientPort, expect_scn, subscribe

pytestmark = pytest.mark.interop

PREFIX = "iqn.2026-11.org.example.test:"
REMOTE, LOCAL, I1, I2 = (PREFIX + name for name in ("remote", "local", "i1", "i2"))


def start_with_api(server: OurServer, **api: object) -> tuple[str, dict[str, str]]:
    """Start `server` with the API on a free loopback port: (base URL, admin headers)."""
    port = free_port()
    server.configure(api={"listen": f"127.0.0.1:{port}", **api})
    server.start()
    assert server.process is not None
    wait_for_port(port, server.process)
    token = (server.workdir / "data" / "api-admin.token").read_text().strip()
    return f"http://127.0.0.1:{port}", {"Authorization": f"Bearer {token}"}


def iscsi_ls(port: int, initiator: str) -> set[tuple[str, str]]:
    done = subprocess.run(
        [require("iscsi-ls"), "-i", initiator, f"iscsi://127.0.0.1:{port}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return set(re.findall(r"Target:(\S+) Portal:(\S+)", done.stdout))


async def test_a_dd_made_through_the_api_zones_isns_sendtargets_and_scn(
    our_server: OurServer, tmp_path: Path
) -> None:
    client_port = await UdpClientPort.open()
    try:
        await zone_through_the_api(our_server, tmp_path, client_port)
    finally:
        assert client_port.transport is not None
        client_port.transport.close()


async def zone_through_the_api(
    our_server: OurServer, tmp_path: Path, client_port: UdpClientPort
) -> None:
    portal_port = our_server.enable_portal()
    disk = {"lun": 0, "path": str(tmp_path / "disk.img"), "size": "1MiB"}
    our_server.configure(targets=[{"name": LOCAL, "luns": [disk]}])
    our_server.settings["isns"]["default_dd"] = False
    url, headers = start_with_api(our_server)
    program = require("isnsadm")
    code, out = isnsadm(
        program,
        our_server.port,
        REMOTE,
        "--register",
        "entity=stor-remote",
        "portal=127.0.0.2:3260",
        f"target={REMOTE}",
        workdir=tmp_path,
    )
    assert code == 0, out
    await subscribe(our_server.port, I1, PortNumber(client_port.port, udp=True))
    assert iscsi_ls(portal_port, I1) == set()

    async with aiohttp.ClientSession(url) as http:
        unauthorized = await http.post("/api/v1/dds", json={"name": "prod", "members": [I1]})
        assert unauthorized.status == 401
        created = await http.post(
            "/api/v1/dds", json={"name": "prod", "members": [REMOTE, I1]}, headers=headers
        )
        assert created.status == 201, await created.text()
        dd: dict[str, Any] = await created.json()
        # I1 gained REMOTE: the SCN any subscriber gets for a DD change over iSNS.
        await expect_scn(client_port.received.get, I1, [(ScnBitmap.OBJECT_ADDED, REMOTE)])

        code, out = isnsadm(program, our_server.port, ADMIN, "--list", "dds", workdir=tmp_path)
        assert code == 0 and "prod" in out and REMOTE in out, out
        assert iscsi_ls(portal_port, I1) == {(REMOTE, "127.0.0.2:3260,1")}
        assert iscsi_ls(portal_port, I2) == set()

        explain = await http.get(
            "/api/v1/zoning/explain", params={"initiator": I1, "target": REMOTE}, headers=headers
        )
        assert (await explain.json())["reasons"][0]["dd_id"] == dd["id"]
        audit = await (await http.get("/api/v1/audit", headers=headers)).json()
        assert audit["items"][0]["after"]["name"] == "prod"
        ready = await http.get("/readyz")
        assert ready.status == 200
        with RawInitiator(portal_port) as initiator:
            initiator.enter_full_feature(("InitiatorName", I1), ("SessionType", "Discovery"))
            sessions = await (await http.get("/api/v1/sessions", headers=headers)).json()
        local = await (await http.get("/api/v1/targets", headers=headers)).json()
        assert [(t["name"], t["luns"][0]["size"]) for t in local["items"]] == [(LOCAL, 1 << 20)]
        (session,) = sessions["items"]
        assert (session["initiator"], session["type"], session["target"]) == (I1, "discovery", None)
        assert session["peer"].startswith("127.0.0.1:") and session["header_digest"] == "None"

    # Durable with the registry: both survive a restart.
    our_server.stop()
    our_server.start()
    assert our_server.process is not None
    wait_for_port(int(url.rsplit(":", 1)[1]), our_server.process)
    async with aiohttp.ClientSession(url, headers=headers) as http:
        again = await (await http.get(f"/api/v1/dds/{dd['id']}")).json()
        assert again["members"] == [REMOTE, I1]
        audit = await (await http.get("/api/v1/audit")).json()
        assert [r["result"] for r in audit["items"]] == ["ok"]


async def test_control_nodes_outside_control_networks_are_refused(
    our_server: OurServer, tmp_path: Path
) -> None:
    """isnsadm connects from 127.0.0.1; with only 127.0.0.2 trusted, its DDReg as a Control
    Node is refused, logged, and changes nothing, while the API still zones."""
    our_server.settings["isns"]["control_networks"] = ["127.0.0.2/32"]
    url, headers = start_with_api(our_server)
    program = require("isnsadm")
    code, out = isnsadm(
        program, our_server.port, ADMIN, "--dd-register", "dd-name=sneaky", workdir=tmp_path
    )
    assert code != 0, out
    assert re.search(r"refused DD_REG from 127\.0\.0\.1:\d+ naming Control Node", our_server.log())
    async with aiohttp.ClientSession(url, headers=headers) as http:
        assert (await (await http.get("/api/v1/dds")).json())["items"] == []
        created = await http.post("/api/v1/dds", json={"name": "managed"})
        assert created.status == 201
