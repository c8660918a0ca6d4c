"""After kill -9 and a restart, an SCN to a subscriber that died with the old process is
reported for what it is (a registration from before the restart, at INFO), not as a
live fault; once the subscriber speaks again, a failure is a WARNING."""

import time

from isns_server.isnsp.constants import FunctionId, NodeType, Tag
from isns_server.isnsp.messages import Attribute, PortNumber

from ..conftest import ADMIN
from ..polling import eventually
from ..processes import OurServer, free_port
from .test_notifications import call, node, portal, register, subscribe

SUBSCRIBER = "iqn.2026-11.org.example.test:gone-with-the-old-process"


async def log_line(server: OurServer, text: str) -> str:
    found = await eventually(
        lambda: [line for line in server.log().splitlines() if text in line],
        what=f"a log line with {text!r}",
        within=15,
    )
    return found[-1]


async def add_target(port: int, name: str, address: str) -> None:
    target = f"iqn.2026-11.org.example.test:{name}"
    await register(port, target, name, *portal(address), *node(target, NodeType.TARGET))


async def test_an_scn_to_a_subscriber_from_before_a_kill_9_is_not_a_live_fault(
    our_server: OurServer,
) -> None:
    our_server.settings["isns"]["scn_retries"] = 1
    our_server.start()
    closed = free_port()  # nothing listens: the subscriber is gone
    await subscribe(our_server.port, SUBSCRIBER, PortNumber(closed, udp=False))
    # Registration Timestamps are whole seconds: restart in a later second than it.
    registered = int(time.time())
    await eventually(lambda: int(time.time()) > registered, what="the next second", within=2)
    our_server.kill()
    our_server.start()

    await add_target(our_server.port, "after-restart", "192.0.2.20")
    line = await log_line(our_server, f"SCN for {SUBSCRIBER} not delivered")
    assert " INFO " in line and "registered before this server started" in line
    assert f"127.0.0.1:{closed}" in line and "registration stays" in line

    # The subscriber speaks: from now on a silent SCN port is a live problem.
    await call(
        our_server.port,
        SUBSCRIBER,
        FunctionId.DEV_ATTR_QRY,
        (Attribute(Tag.ISCSI_NAME, SUBSCRIBER),),
        (Attribute(Tag.ISCSI_NAME),),
    )
    await add_target(our_server.port, "after-it-spoke", "192.0.2.21")
    line = await log_line(our_server, f"SCN for {SUBSCRIBER} not delivered: no answer")
    assert " WARNING " in line
    assert ADMIN not in our_server.log()  # no SCN problem blamed on anyone else
