"""tgt's built-in iSNS client against our server: tgtd registers its target with its own
portal; an initiator zoned with that target finds it through our SendTargets portal and
logs in to tgtd at the address listed; deleting the target in tgtd deregisters it.

After registering, tgtd sends nothing until its first refresh 30 s later (see
docs/isns.md), so a shorter Registration Period loses it: the second test shows it.
tgtd also listens for SCNs on a wildcard ephemeral port of its own choosing; it registers
it with its 127.0.0.1 portal, so anything we send there stays on loopback.
"""

import re
import subprocess
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from isns_server.client import IsnsClient
from isns_server.isnsp.constants import FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, PortNumber

from ..conftest import ADMIN
from ..peers import require
from ..polling import eventually
from ..processes import OurServer
from ..tgtd import Tgtd

pytestmark = pytest.mark.interop

PREFIX = "iqn.2026-11.org.example.test:"
TARGET = PREFIX + "tgtd-disk"
ZONED, OUTSIDER = PREFIX + "zoned-initiator", PREFIX + "outsider"
TID = 1
NODE = Attribute(Tag.ISCSI_NAME, TARGET)


async def registration(port: int, key: Attribute = NODE) -> dict[int, object] | None:
    """What the registry holds for `key`, as a control node sees it; None if nothing."""
    wanted = (
        Tag.ENTITY_IDENTIFIER,
        Tag.PORTAL_IP_ADDRESS,
        Tag.PORTAL_TCP_UDP_PORT,
        Tag.ISCSI_NODE_TYPE,
    )
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        answer = await isns.call(
            FunctionId.DEV_ATTR_QRY,
            Attribute(Tag.ISCSI_NAME, ADMIN),
            (key,),
            tuple(Attribute(tag) for tag in wanted),
        )
    if answer.status == Status.NO_SUCH_ENTRY:
        return None
    assert answer.status == Status.SUCCESSFUL, answer
    return {attr.tag: attr.value for attr in answer.attributes}


async def registered_by_tgtd(port: int, within: float) -> dict[int, object]:
    found = await eventually(
        lambda: registration(port), what=f"tgtd to register {TARGET}", within=within
    )
    assert found is not None
    return found


async def gone(port: int, within: float) -> None:
    await eventually(
        lambda: registration(port),
        lambda found: found is None,
        what=f"{TARGET} to be gone",
        within=within,
    )


def send_targets(portal: int, initiator: str) -> set[tuple[str, str]]:
    done = subprocess.run(
        [require("iscsi-ls"), "-i", initiator, f"iscsi://127.0.0.1:{portal}"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return set(re.findall(r"Target:(\S+) Portal:(\S+)", done.stdout))


def serve_with_isns(tgtd: Tgtd, isns_port: int, workdir: Path) -> None:
    """TARGET in tgtd, with a 1 MiB LUN, registered by tgtd's iSNS client."""
    tgtd.use_isns(isns_port)
    lun = workdir / "tgtd.img"
    lun.write_bytes(bytes(1 << 20))
    tgtd.add_target(TID, TARGET, lun)


@pytest.fixture
def tgtd(tmp_path: Path) -> Iterator[Tgtd]:
    (tmp_path / "tgtd").mkdir()
    daemon = Tgtd(tmp_path / "tgtd")
    yield daemon
    daemon.stop()


async def test_tgtd_registers_is_found_through_our_portal_and_deregisters(
    our_server: OurServer, tgtd: Tgtd, tmp_path: Path
) -> None:
    portal = our_server.enable_portal()
    our_server.configure(discovery_domains=[{"name": "dd-tgtd", "members": [TARGET, ZONED]}])
    our_server.start()
    serve_with_isns(tgtd, our_server.port, tmp_path)

    registered = await registered_by_tgtd(our_server.port, within=15)
    assert registered[Tag.ISCSI_NODE_TYPE] == NodeType.TARGET
    assert registered[Tag.PORTAL_IP_ADDRESS] == IPv4Address("127.0.0.1")
    assert registered[Tag.PORTAL_TCP_UDP_PORT] == PortNumber(tgtd.port)
    assert registered[Tag.ENTITY_IDENTIFIER] == "127.0.0.1"  # tgtd names it by its address

    # Listed with tgtd's own portal, and only to the initiator it is zoned with.
    tgtd_portal = f"127.0.0.1:{tgtd.port}"
    assert send_targets(portal, ZONED) == {(TARGET, f"{tgtd_portal},1")}
    assert send_targets(portal, OUTSIDER) == set()

    # The address listed is tgtd's: its INQUIRY data (vendor IET) comes back.
    inquiry = subprocess.run(
        [require("iscsi-inq"), "-i", ZONED, f"iscsi://{tgtd_portal}/{TARGET}/1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert inquiry.returncode == 0, inquiry.stdout + inquiry.stderr
    assert "Vendor:IET" in inquiry.stdout, inquiry.stdout

    tgtd.delete_target(TID)
    await gone(our_server.port, within=15)
    assert (
        await registration(our_server.port, Attribute(Tag.ENTITY_IDENTIFIER, "127.0.0.1")) is None
    )
    assert send_targets(portal, ZONED) == set()


async def test_a_registration_period_under_30_s_loses_tgtd(tgtd: Tgtd, tmp_path: Path) -> None:
    server = OurServer(tmp_path, registration_period=25, control_nodes=[ADMIN]).start()
    try:
        serve_with_isns(tgtd, server.port, tmp_path)
        await registered_by_tgtd(server.port, within=15)
        await gone(server.port, within=90)
        # Expired, not deregistered: tgtd still serves the target.
        assert TARGET in tgtd.admin("--mode", "target", "--op", "show")
    finally:
        server.stop()
