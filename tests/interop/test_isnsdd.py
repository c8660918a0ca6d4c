"""open-isns `isnsdd` (discovery daemon) against our server: it registers with ESI and SCN
ports, answers our ESIs, receives our SCNs, and is expired once killed.

Timers are a second (ESI interval) and two retries, so each test takes a few seconds.
"""

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from isns_server.client import IsnsClient
from isns_server.isnsp.constants import FunctionId, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber

from ..conftest import ADMIN
from ..isnsdd import DiscoveryDaemon
from ..peers import require
from ..polling import eventually
from ..processes import OurServer, isnsadm

pytestmark = pytest.mark.interop

INITIATOR = "iqn.2026-11.org.example.test:isnsdd-initiator"
TARGET = "iqn.2026-11.org.example.test:disk1"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OurServer]:
    server = OurServer(
        tmp_path,
        control_nodes=[ADMIN],
        registration_period=60,
        esi_min_interval=1,
        esi_max_interval=2,
        esi_retries=2,
    ).start()
    yield server
    server.stop()


@pytest.fixture
def isnsdd(server: OurServer, tmp_path: Path) -> Iterator[DiscoveryDaemon]:
    daemon = DiscoveryDaemon(require("isnsdd"), tmp_path / "isnsdd", server.port, INITIATOR)
    yield daemon
    daemon.stop()


async def query(port: int, keys: tuple[Attribute, ...], *wanted: int) -> Message:
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        operating = tuple(Attribute(tag) for tag in wanted)
        return await isns.call(
            FunctionId.DEV_ATTR_QRY, Attribute(Tag.ISCSI_NAME, ADMIN), keys, operating
        )


async def wait_registered(port: int, timeout: float = 10) -> Message:
    """isnsdd's node with its portal's ESI and SCN attributes, once registered for SCNs."""
    key = (Attribute(Tag.ISCSI_NAME, INITIATOR),)
    wanted = (Tag.ISCSI_SCN_BITMAP, Tag.ESI_INTERVAL, Tag.ESI_PORT, Tag.SCN_PORT)
    return await eventually(
        lambda: query(port, key, *wanted),
        lambda answer: any(a.tag == Tag.ISCSI_SCN_BITMAP for a in answer.attributes),
        what="isnsdd to register its node for SCNs",
        within=timeout,
    )


def values(message: Message) -> dict[int, object]:
    return {attr.tag: attr.value for attr in message.attributes}


async def test_isnsdd_registers_answers_esi_and_hears_a_target_zoned_in(
    server: OurServer, isnsdd: DiscoveryDaemon, tmp_path: Path
) -> None:
    registration = values(await wait_registered(server.port))
    assert registration[Tag.ESI_INTERVAL] == 1
    esi_port, scn_port = registration[Tag.ESI_PORT], registration[Tag.SCN_PORT]
    assert isinstance(esi_port, PortNumber) and esi_port.udp and esi_port == scn_port

    program = require("isnsadm")

    def admin(source: str, *args: str) -> str:
        code, out = isnsadm(program, server.port, source, *args, workdir=tmp_path)
        assert code == 0, out
        return out

    admin(ADMIN, "--dd-register", "dd-name=dd-a", f"dd-member-name={INITIATOR}")
    admin(TARGET, "--register", "entity=stor1", "portal=127.0.1.1:3260", f"target={TARGET}")
    # Not zoned in yet: the initiator is in dd-a, the target in the default DD.
    await asyncio.sleep(1)  # the point: time for a wrong callout to show
    assert not [line for line in isnsdd.callout_lines() if TARGET in line]
    admin(ADMIN, "--dd-register", "dd-id=1", f"dd-member-name={TARGET}")
    assert isnsdd.wait_for_callout(TARGET).startswith("add ")

    # Three ESI intervals later it is still there: isnsdd answered every ESI.
    await asyncio.sleep(3)  # the point: the intervals pass
    answer = await query(server.port, (Attribute(Tag.ISCSI_NAME, INITIATOR),))
    assert answer.status == Status.SUCCESSFUL
    assert "ESI" not in server.log().split("isns-server ready")[-1]


async def test_a_killed_isnsdd_is_expired_after_its_esi_failures(
    server: OurServer, isnsdd: DiscoveryDaemon
) -> None:
    await wait_registered(server.port)
    await asyncio.sleep(3)  # the point: it runs a while, answering ESI, silent otherwise
    isnsdd.kill()
    key = (Attribute(Tag.ENTITY_IDENTIFIER, isnsdd.entity),)
    await eventually(
        lambda: query(server.port, key),
        lambda answer: answer.status != Status.SUCCESSFUL,
        what=f"the killed isnsdd's entity {isnsdd.entity} to expire",
        within=8,
    )
    log = server.log()
    assert f"of entity {isnsdd.entity} removed: 2 ESI messages to 127.0.0.1:" in log
    assert f"entity {isnsdd.entity} (nodes {INITIATOR}) removed" in log
