"""Acknowledged registrations survive `kill -9` of the server during concurrent load."""

import asyncio
from ipaddress import IPv4Address

from isns_server.client import IsnsClient, IsnsClientError
from isns_server.isnsp.constants import FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, PortNumber

from ..conftest import ADMIN
from ..polling import eventually
from ..processes import OurServer

CLIENTS = 8
KILL_AFTER_ACKS = 400  # enough that batches are being written when the kill lands
PER_CLIENT_LIMIT = 2000  # bounds the load loop even if the kill never happens


def target_name(client: int, n: int) -> str:
    return f"iqn.2026-11.org.example.test:c{client}-t{n}"


async def register_until_killed(port: int, client: int, acked: list[str]) -> None:
    try:
        async with await IsnsClient.connect("127.0.0.1", port) as isns:
            for n in range(PER_CLIENT_LIMIT):
                name = target_name(client, n)
                answer = await isns.call(
                    FunctionId.DEV_ATTR_REG,
                    Attribute(Tag.ISCSI_NAME, name),
                    keys=(Attribute(Tag.ENTITY_IDENTIFIER, f"ent-{client}-{n}"),),
                    operating=(
                        # A portal belongs to one entity: each gets its own address.
                        Attribute(Tag.PORTAL_IP_ADDRESS, IPv4Address(0x7F000001 + n)),
                        Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260 + client)),
                        Attribute(Tag.ISCSI_NAME, name),
                        Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
                    ),
                )
                assert answer.status == Status.SUCCESSFUL, answer
                acked.append(name)
    except (IsnsClientError, ConnectionError):
        pass  # the server was killed under us: expected


async def kill_when_loaded(server: OurServer, acked: list[str]) -> None:
    try:
        await eventually(
            lambda: len(acked),
            lambda count: count >= KILL_AFTER_ACKS,
            what=f"{KILL_AFTER_ACKS} acknowledged registrations",
            within=30,
            every=0.01,
        )
    finally:
        server.kill()


async def missing_after_restart(port: int, names: list[str]) -> list[str]:
    missing = []
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        for name in names:
            answer = await isns.call(
                FunctionId.DEV_ATTR_QRY,
                Attribute(Tag.ISCSI_NAME, ADMIN),
                keys=(Attribute(Tag.ISCSI_NAME, name),),
                operating=(Attribute(Tag.ISCSI_NAME), Attribute(Tag.ENTITY_IDENTIFIER)),
            )
            if answer.status != Status.SUCCESSFUL or Attribute(Tag.ISCSI_NAME, name) not in (
                answer.attributes
            ):
                missing.append(name)
    return missing


async def test_kill_9_under_concurrent_registrations_loses_nothing_acknowledged(
    our_server: OurServer,
) -> None:
    our_server.start()
    acked: list[str] = []
    await asyncio.gather(
        kill_when_loaded(our_server, acked),
        *(register_until_killed(our_server.port, c, acked) for c in range(CLIENTS)),
    )
    assert len(acked) >= KILL_AFTER_ACKS
    our_server.start()
    assert await missing_after_restart(our_server.port, acked) == []
