"""Three isns-server replicas over a three-member etcd cluster, all on loopback (issue 15):
a registration on one is seen by the others, one DD name makes one DD however many
replicas are asked at once, `kill -9` of a replica under load loses nothing it
acknowledged, a dead etcd member changes nothing, and expiry, ESI and SCNs go on when the
leader dies."""

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from ipaddress import IPv4Address
from pathlib import Path
from typing import TypedDict

import aiohttp
import pytest
import yaml

from isns_server.client import IsnsClient, IsnsClientError
from isns_server.isnsp.constants import FunctionId, NodeType, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber

from ..conftest import ADMIN
from ..etcd_cluster import EtcdCluster
from ..peers import require
from ..polling import WITHIN, eventually, eventually_sync
from ..processes import THIS_CHECKOUT, OurServer, free_port, wait_for_port
from .test_api import iscsi_ls
from .test_api_tls import self_signed
from .test_notifications import (
    FAST_TIMERS,
    I1,
    I2,
    UdpClientPort,
    expect_scn,
    node,
    portal,
    subscribe,
)
from .test_notifications import register as notify_register

CLIENTS = 8
KILL_AFTER_ACKS = 200
PER_CLIENT_LIMIT = 1000  # bounds the load loop even if the kill never happens
LOCAL_TARGET = "iqn.2026-11.org.example.test:replica-disk"
LEASE_TTL = 2  # seconds: the leader's lease, short so that takeover is quick


@pytest.fixture
def etcd(tmp_path: Path) -> Iterator[EtcdCluster]:
    cluster = EtcdCluster(require("etcd"), tmp_path, size=3)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def replicas(tmp_path: Path, etcd: EtcdCluster, count: int = 3, **isns: object) -> list[OurServer]:
    servers = []
    for i in range(count):
        workdir = tmp_path / f"replica{i}"
        workdir.mkdir(parents=True)
        server = OurServer(workdir, control_nodes=[ADMIN], **isns)
        endpoints = etcd.endpoints[i:] + etcd.endpoints[:i]  # each prefers another member
        server.configure(
            store={"backend": "etcd", "etcd": {"endpoints": endpoints, "lease_ttl": LEASE_TTL}}
        )
        servers.append(server)
    return servers


@pytest.fixture
def three(tmp_path: Path, etcd: EtcdCluster) -> Iterator[list[OurServer]]:
    servers = replicas(tmp_path, etcd, registration_period=600)
    try:
        yield [server.start() for server in servers]
    finally:
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.stop()


class Registration(TypedDict):
    """The keys and operating attributes of a DevAttrReg, as IsnsClient.call takes them."""

    keys: tuple[Attribute, ...]
    operating: tuple[Attribute, ...]


def register(name: str, eid: str, address: IPv4Address, port: int = 3260) -> Registration:
    return {
        "keys": (Attribute(Tag.ENTITY_IDENTIFIER, eid),),
        "operating": (
            Attribute(Tag.PORTAL_IP_ADDRESS, address),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(port)),
            Attribute(Tag.ISCSI_NAME, name),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        ),
    }


async def dev_attr_reg(port: int, name: str, eid: str, address: IPv4Address) -> Message:
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        return await isns.call(
            FunctionId.DEV_ATTR_REG,
            Attribute(Tag.ISCSI_NAME, name),
            **register(name, eid, address),
        )


async def registered(port: int, names: list[str]) -> set[str]:
    """Which of `names` the replica on `port` lists."""
    found = set()
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        for name in names:
            answer = await isns.call(
                FunctionId.DEV_ATTR_QRY,
                Attribute(Tag.ISCSI_NAME, ADMIN),
                keys=(Attribute(Tag.ISCSI_NAME, name),),
                operating=(Attribute(Tag.ISCSI_NAME),),
            )
            if answer.status == Status.SUCCESSFUL and Attribute(Tag.ISCSI_NAME, name) in (
                answer.attributes
            ):
                found.add(name)
    return found


async def eventually_registered(port: int, names: list[str], present: bool = True) -> set[str]:
    """Poll (bounded) until `names` are all listed (or, not `present`, none is)."""
    return await eventually(
        lambda: registered(port, names),
        lambda found: found == (set(names) if present else set()),
        what=f"{len(names)} names {'listed' if present else 'gone'} on 127.0.0.1:{port}",
    )


async def dev_attr_reg_until_accepted(
    port: int, name: str, eid: str, address: IPv4Address, within: float = WITHIN
) -> Message:
    """DevAttrReg again (bounded) until it is Successful: while etcd elects a leader or
    regains its quorum a change may be refused."""
    return await eventually(
        lambda: dev_attr_reg(port, name, eid, address),
        lambda answer: answer.status == Status.SUCCESSFUL,
        what=f"{name} accepted by 127.0.0.1:{port}",
        within=within,
        every=0.2,
    )


async def dd_ids_named(port: int, name: str) -> list[int]:
    """The DD IDs the replica on `port` lists under symbolic name `name`."""
    ids = []
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        key: int = 0
        for _ in range(100):
            answer = await isns.call(
                FunctionId.DEV_GET_NEXT,
                Attribute(Tag.ISCSI_NAME, ADMIN),
                keys=(Attribute(Tag.DD_ID, key),),
                operating=(Attribute(Tag.DD_ID), Attribute(Tag.DD_SYMBOLIC_NAME)),
            )
            if answer.status != Status.SUCCESSFUL:
                break
            values = {a.tag: a.value for a in answer.attributes}
            dd_id = values[Tag.DD_ID]
            assert isinstance(dd_id, int)
            key = dd_id
            if values.get(Tag.DD_SYMBOLIC_NAME) == name:
                ids.append(key)
    return ids


async def test_a_registration_on_one_replica_is_listed_by_the_others(
    three: list[OurServer],
) -> None:
    name = "iqn.2026-11.org.example.test:shared-target"
    answer = await dev_attr_reg(three[0].port, name, "shared", IPv4Address("127.0.0.2"))
    assert answer.status == Status.SUCCESSFUL
    assert await registered(three[0].port, [name]) == {name}  # its own write, at once
    for other in three[1:]:
        assert await eventually_registered(other.port, [name]) == {name}
    async with await IsnsClient.connect("127.0.0.1", three[2].port) as isns:
        answer = await isns.call(
            FunctionId.DEV_DEREG,
            Attribute(Tag.ISCSI_NAME, ADMIN),
            operating=(Attribute(Tag.ENTITY_IDENTIFIER, "shared"),),
        )
    assert answer.status == Status.SUCCESSFUL
    assert await eventually_registered(three[0].port, [name], present=False) == set()
    # Registered again where it was first: its key is gone from etcd, and that is fine.
    answer = await dev_attr_reg(three[0].port, name, "shared", IPv4Address("127.0.0.2"))
    assert answer.status == Status.SUCCESSFUL
    assert await eventually_registered(three[1].port, [name]) == {name}


async def dd_reg(port: int, name: str, member: str, dd_id: int | None = None) -> Message:
    """A new DD `name` with one member, with the ID the client chose (None: the server's)."""
    chosen = () if dd_id is None else (Attribute(Tag.DD_ID, dd_id),)
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        return await isns.call(
            FunctionId.DD_REG,
            Attribute(Tag.ISCSI_NAME, ADMIN),
            operating=(
                *chosen,
                Attribute(Tag.DD_SYMBOLIC_NAME, name),
                Attribute(Tag.DD_MEMBER_ISCSI_NAME, member),
            ),
        )


@pytest.mark.parametrize("chosen", [False, True], ids=["allocated-ids", "client-chosen-ids"])
async def test_one_dd_name_registered_on_two_replicas_at_once_makes_one_dd(
    three: list[OurServer], chosen: bool
) -> None:
    # Allocated IDs may meet in the counters record or the DD's own key; IDs the clients
    # chose (different ones) meet only in the name's key.
    names = [f"contested-{round_}" for round_ in range(5)]  # several tries at a real race
    for round_, name in enumerate(names):
        ids = (100 + 2 * round_, 101 + 2 * round_) if chosen else (None, None)
        answers = await asyncio.gather(
            dd_reg(three[0].port, name, f"iqn.2026-11.org.example.test:{name}-a", ids[0]),
            dd_reg(three[1].port, name, f"iqn.2026-11.org.example.test:{name}-b", ids[1]),
        )
        # The loser runs again on the winner's state and is told the name is taken, as
        # one server tells the second of two DDRegs naming one new DD.
        statuses = sorted(a.status or 0 for a in answers)
        assert statuses == [Status.SUCCESSFUL, Status.INVALID_REGISTRATION], statuses
    for server in three:
        for name in names:
            await eventually(
                partial(dd_ids_named, server.port, name),
                lambda ids: len(ids) == 1,
                what=f"one DD named {name} on 127.0.0.1:{server.port}",
            )


async def register_until_killed(port: int, client: int, acked: list[str]) -> None:
    try:
        async with await IsnsClient.connect("127.0.0.1", port) as isns:
            for n in range(PER_CLIENT_LIMIT):
                name = f"iqn.2026-11.org.example.test:c{client}-t{n}"
                address = IPv4Address(0x7F000001 + client * PER_CLIENT_LIMIT + n)
                answer = await isns.call(
                    FunctionId.DEV_ATTR_REG,
                    Attribute(Tag.ISCSI_NAME, name),
                    **register(name, f"ent-{client}-{n}", address),
                )
                if answer.status == Status.SUCCESSFUL:
                    acked.append(name)
    except (IsnsClientError, ConnectionError):
        pass  # the replica was killed under us: expected


async def test_kill_9_of_a_replica_under_load_loses_nothing_it_acknowledged(
    three: list[OurServer],
) -> None:
    acked: list[str] = []

    async def kill_when_loaded() -> None:
        try:
            await eventually(
                lambda: len(acked),
                lambda count: count >= KILL_AFTER_ACKS,
                what=f"{KILL_AFTER_ACKS} acknowledged registrations",
                within=30,
                every=0.01,
            )
        finally:
            three[0].kill()

    await asyncio.gather(
        kill_when_loaded(),
        *(register_until_killed(three[0].port, c, acked) for c in range(CLIENTS)),
    )
    assert len(acked) >= KILL_AFTER_ACKS
    for other in three[1:]:
        missing = set(acked) - await eventually_registered(other.port, acked)
        assert not missing, f"{len(missing)} acknowledged registrations missing"


async def test_registrations_go_on_after_an_etcd_member_dies(
    three: list[OurServer], etcd: EtcdCluster
) -> None:
    etcd.members[0].kill()  # the member replica 0 prefers
    names = [f"iqn.2026-11.org.example.test:after-kill-{i}" for i in range(3)]
    for i, (server, name) in enumerate(zip(three, names, strict=True)):
        address = IPv4Address(0x7F000100 + i)
        await dev_attr_reg_until_accepted(server.port, name, f"after-{i}", address)
    for server in three:
        assert await eventually_registered(server.port, names) == set(names)


def leader(servers: list[OurServer]) -> OurServer:
    """The one replica whose log says it leads now (polled, bounded)."""

    def leading() -> list[OurServer]:
        return [s for s in servers if s.log().count("now leads") > s.log().count("stopped leading")]

    (found,) = eventually_sync(leading, lambda found: len(found) == 1, what="one leader")
    return found


async def test_when_the_leader_dies_another_expires_entities_and_sends_the_scns(
    tmp_path: Path, etcd: EtcdCluster
) -> None:
    servers = replicas(tmp_path, etcd, **FAST_TIMERS)
    try:
        for server in servers:
            server.start()
        first = leader(servers)
        first.kill()
        survivors = [s for s in servers if s is not first]
        watcher = await UdpClientPort.open("127.0.0.2")
        esi_port = await UdpClientPort.open()
        esi_port.alive = False  # nobody answers ESI there: the entity must expire
        try:
            await subscribe(survivors[0].port, I2, PortNumber(watcher.port, udp=True), "127.0.0.2")
            esi = (
                Attribute(Tag.ESI_INTERVAL, 1),
                Attribute(Tag.ESI_PORT, PortNumber(esi_port.port, udp=True)),
            )
            await notify_register(
                survivors[1].port,
                I1,
                "host1",
                *portal("127.0.0.1", *esi),
                *node(I1, NodeType.INITIATOR),
            )
            await expect_scn(watcher.received.get, I2, [(ScnBitmap.OBJECT_ADDED, I1)])
            # The new leader (within two lease periods) probes, gets no answer, removes.
            await esi_port.next(FunctionId.ESI, timeout=2 * LEASE_TTL + 5)
            for server in survivors:
                assert await eventually_registered(server.port, [I1], present=False) == set()
            await expect_scn(watcher.received.get, I2, [(ScnBitmap.OBJECT_REMOVED, I1)])
            assert leader(survivors) in survivors
            # Once, from the replica that removed it: no second copy follows.
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1.0):
                    await expect_scn(watcher.received.get, I2, [(ScnBitmap.OBJECT_REMOVED, I1)])
        finally:
            for port in (watcher, esi_port):
                assert port.transport is not None
                port.transport.close()
    finally:
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.stop()


async def test_without_quorum_queries_are_answered_and_changes_refused(
    tmp_path: Path, etcd: EtcdCluster
) -> None:
    (server,) = replicas(tmp_path, etcd, count=1)
    api_port = free_port()
    server.configure(api={"listen": f"127.0.0.1:{api_port}"})
    server.start()
    assert server.process is not None
    wait_for_port(api_port, server.process)
    try:
        names = [f"iqn.2026-11.org.example.test:quorum-{i}" for i in range(3)]
        answer = await dev_attr_reg(server.port, names[0], "q0", IPv4Address("127.0.1.1"))
        assert answer.status == Status.SUCCESSFUL
        for member in etcd.members[1:]:
            member.kill()
        # Refused, with the reason in the log; what memory holds is still answered.
        answer = await dev_attr_reg(server.port, names[1], "q1", IPv4Address("127.0.1.2"))
        assert answer.status == Status.INTERNAL_ERROR
        assert "changes are refused until etcd answers with a quorum again" in server.log()
        answer = await dev_attr_reg(server.port, names[2], "q2", IPv4Address("127.0.1.3"))
        assert answer.status == Status.INTERNAL_ERROR  # refused at once now
        assert await registered(server.port, names) == {names[0]}
        async with aiohttp.ClientSession() as http:
            ready = await http.get(f"http://127.0.0.1:{api_port}/readyz")
            assert ready.status == 503
            assert (await ready.json())["checks"]["store"].startswith("stale:")
        # Quorum back: changes are taken again (bounded poll). The first refused change
        # had reached the member left, which may commit it now: an error means "not
        # known to be done", as with any store that can lose its answer.
        for member in etcd.members[1:]:
            etcd.restart(member)
        await dev_attr_reg_until_accepted(
            server.port, names[2], "q2", IPv4Address("127.0.1.3"), within=3 * WITHIN
        )
        assert await registered(server.port, names) >= {names[0], names[2]}
    finally:
        server.stop()


async def test_migrate_copies_a_single_servers_registry_into_etcd(
    tmp_path: Path, etcd: EtcdCluster
) -> None:
    single = OurServer(tmp_path, control_nodes=[ADMIN], registration_period=600).start()
    names = [f"iqn.2026-11.org.example.test:migrated-{i}" for i in range(3)]
    for i, name in enumerate(names):
        answer = await dev_attr_reg(single.port, name, f"m{i}", IPv4Address(0x7F000200 + i))
        assert answer.status == Status.SUCCESSFUL
    single.stop()
    config = tmp_path / "migrate.yaml"
    config.write_text(
        yaml.safe_dump({"store": {"backend": "etcd", "etcd": {"endpoints": etcd.endpoints}}})
    )
    command = [sys.executable, "-m", "isns_server", "migrate", "--from-sqlite"]
    command += [str(tmp_path / "data"), "--config", str(config)]
    done = subprocess.run(command, env=THIS_CHECKOUT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "copied" in done.stdout
    (replica,) = replicas(tmp_path, etcd, count=1)
    replica.start()
    try:
        assert await registered(replica.port, names) == set(names)
    finally:
        replica.stop()
    # A second run copies nothing: the prefix is taken.
    again = subprocess.run(command, env=THIS_CHECKOUT, capture_output=True, text=True, timeout=60)
    assert again.returncode == 1
    assert "already holds a registry" in again.stderr


async def test_replicas_starting_together_make_each_configured_domain_once(
    tmp_path: Path, etcd: EtcdCluster
) -> None:
    servers = replicas(tmp_path, etcd)
    members = [f"iqn.2026-11.org.example.test:lab-{i}" for i in range(3)]
    for server in servers:
        server.configure(discovery_domains=[{"name": "lab", "members": members}])
    try:
        with ThreadPoolExecutor(len(servers)) as pool:  # at once: they may race for it
            list(pool.map(OurServer.start, servers))
        for server in servers:
            assert len(await dd_ids_named(server.port, "lab")) == 1
    finally:
        for server in servers:
            if server.process is not None and server.process.poll() is None:
                server.stop()


async def test_a_replica_over_https_with_a_client_certificate(tmp_path: Path) -> None:
    tls = self_signed(tmp_path)  # for 127.0.0.1: etcd's certificate, CA and ours
    cluster = EtcdCluster(require("etcd"), tmp_path, size=1, tls=(tls.cert, tls.key))
    cluster.start()
    try:
        (replica,) = replicas(tmp_path, cluster, count=1)
        etcd = {"endpoints": cluster.endpoints, "ca_file": str(tls.cert)}
        replica.configure(
            store={
                "backend": "etcd",
                "etcd": {**etcd, "cert_file": str(tls.cert), "key_file": str(tls.key)},
            }
        )
        replica.start()
        try:
            name = "iqn.2026-11.org.example.test:over-tls"
            answer = await dev_attr_reg(replica.port, name, "tls", IPv4Address("127.0.3.1"))
            assert answer.status == Status.SUCCESSFUL
        finally:
            replica.stop()
        # Without the client certificate etcd refuses, and the replica says so and stops.
        (refused,) = replicas(tmp_path / "refused", cluster, count=1)
        refused.configure(store={"backend": "etcd", "etcd": etcd})
        with pytest.raises(RuntimeError):
            refused.start()
        assert "cannot read the registry from etcd" in refused.log()
    finally:
        cluster.stop()


def etcd_call(endpoint: str, path: str, body: dict[str, object]) -> object:
    """One request to etcd's JSON gateway, for what the test sets up in etcd itself."""
    request = urllib.request.Request(f"{endpoint}{path}", json.dumps(body).encode())
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


async def test_a_replica_with_etcd_user_authentication(tmp_path: Path) -> None:
    cluster = EtcdCluster(require("etcd"), tmp_path, size=1).start()
    try:
        endpoint = cluster.endpoints[0]
        # etcd's own steps: a root user with the root role, then authentication on.
        etcd_call(endpoint, "/v3/auth/user/add", {"name": "root", "password": "isns-secret"})
        etcd_call(endpoint, "/v3/auth/role/add", {"name": "root"})
        etcd_call(endpoint, "/v3/auth/user/grant", {"user": "root", "role": "root"})
        etcd_call(endpoint, "/v3/auth/enable", {})
        (replica,) = replicas(tmp_path, cluster, count=1)
        etcd = {"endpoints": cluster.endpoints, "user": "root", "password": "isns-secret"}
        replica.configure(store={"backend": "etcd", "etcd": etcd})
        replica.start()
        try:
            name = "iqn.2026-11.org.example.test:authenticated"
            answer = await dev_attr_reg(replica.port, name, "auth", IPv4Address("127.0.4.1"))
            assert answer.status == Status.SUCCESSFUL
        finally:
            replica.stop()
        (refused,) = replicas(tmp_path / "refused", cluster, count=1)
        refused.configure(
            store={"backend": "etcd", "etcd": {**etcd, "password": "not-the-password"}}
        )
        with pytest.raises(RuntimeError):
            refused.start()
        assert "cannot read the registry from etcd" in refused.log()
    finally:
        cluster.stop()


@pytest.mark.interop  # libiscsi's iscsi-ls does the discovery
async def test_a_replicas_own_target_is_discovered_through_another_replicas_portal(
    tmp_path: Path, etcd: EtcdCluster
) -> None:
    serving, other = replicas(tmp_path, etcd, count=2)
    target_portal = serving.enable_portal()
    disk = {"lun": 0, "path": str(tmp_path / "disk.img"), "size": "1MiB"}
    serving.configure(targets=[{"name": LOCAL_TARGET, "luns": [disk]}])
    other_portal = other.enable_portal()
    try:
        serving.start()
        other.start()
        initiator = "iqn.2026-11.org.example.test:discovering-host"
        # SendTargets answered from the other replica's memory: the target, at the portal
        # of the replica that serves it (its LUN data and sessions stay there).
        found = await eventually(
            lambda: iscsi_ls(other_portal, initiator),
            lambda found: bool(found),
            what="the serving replica's target in the other's SendTargets",
        )
        assert found == {(LOCAL_TARGET, f"127.0.0.1:{target_portal},1")}  # PG tag 1
    finally:
        for server in (serving, other):
            if server.process is not None and server.process.poll() is None:
                server.stop()
