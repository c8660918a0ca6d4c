"""`discovery-agent` as an administrator meets it: configuration errors, a server that is
not up yet or restarts, a clean goodbye; and isns-server's SLP default port when it is
not available."""

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from discovery_agent.service import DiscoveryAgentService, in_process_endpoints
from discovery_agent.slp.codec import build_message, parse_message
from discovery_agent.slp.constants import MULTICAST_ADDRESS, ErrorCode
from discovery_agent.slp.constants import Flags as SlpFlags
from discovery_agent.slp.messages import (
    DAAdvert,
    SrvAck,
    SrvDeReg,
    SrvReg,
    SrvRply,
    SrvRqst,
    UrlEntry,
)
from discovery_agent.transport import SlpListenError
from isns_server.client import IsnsClient
from isns_server.config import parse_config
from isns_server.isnsp.codec import StreamDecoder, encode_message
from isns_server.isnsp.constants import Flags, FunctionId, NodeType, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber

from ..conftest import ADMIN
from ..polling import eventually, eventually_sync
from ..processes import DiscoveryAgentProcess, OurServer, free_port, slp_settings
from ..slp_peer import SlpUserAgent

AGENT = "iqn.2026-11.org.example.test:standalone-agent"
PREFIX = "iqn.2026-11.org.example.test:standalone-"


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "discovery_agent", *args],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_configuration_errors_exit_2_and_the_shipped_example_is_valid(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("slp:\n  trusted_networks: [everyone]\n")
    done = run_cli("--config", str(bad))
    assert done.returncode == 2
    assert f"{bad} line 2: slp.trusted_networks[0]: expected a network" in done.stderr
    idle = tmp_path / "idle.yaml"
    idle.write_text("slp: {enabled: false}\n")
    done = run_cli("--config", str(idle))
    assert done.returncode == 2 and "nothing to run" in done.stderr
    example = Path(__file__).parents[2] / "deploy" / "isns-server.yaml"
    done = run_cli("--config", str(example), "--check-config")
    assert done.returncode == 0 and "configuration is valid" in done.stdout, done.stderr


@pytest.fixture
def server(tmp_path: Path) -> Iterator[OurServer]:
    """Not started: the agent comes first."""
    server = OurServer(tmp_path / "server", control_nodes=[ADMIN, AGENT])
    (tmp_path / "server").mkdir()
    yield server
    if server.process is not None:
        server.stop()


async def register(port: int, n: int) -> None:
    name = f"{PREFIX}{n}"
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        answer = await isns.call(
            FunctionId.DEV_ATTR_REG,
            Attribute(Tag.ISCSI_NAME, name),
            keys=(Attribute(Tag.ENTITY_IDENTIFIER, f"standalone-{n}"),),
            operating=(
                # A documentation address: data in a URL that nothing connects to.
                Attribute(Tag.PORTAL_IP_ADDRESS, IPv4Address(f"192.0.2.{n}")),
                Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
                Attribute(Tag.ISCSI_NAME, name),
                Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
            ),
        )
    assert answer.status == Status.SUCCESSFUL


def multicast_listener(port: int) -> socket.socket:
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((MULTICAST_ADDRESS, port))
    membership = socket.inet_aton(MULTICAST_ADDRESS) + socket.inet_aton("127.0.0.1")
    listener.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, membership)
    listener.settimeout(5.0)
    return listener


async def test_the_agent_waits_for_its_server_follows_it_through_a_restart_and_says_goodbye(
    server: OurServer, tmp_path: Path
) -> None:
    agent = DiscoveryAgentProcess(tmp_path, server.port, AGENT)
    ua = SlpUserAgent(agent.port)
    listing = SrvRqst(service_type="service:iscsi:target", scopes=("DEFAULT",))

    def names() -> set[str]:
        reply = ua.unicast(listing)  # None until the agent has read the registry
        assert reply is None or isinstance(reply, SrvRply)
        return {e.url.rsplit("/", 1)[1] for e in reply.url_entries} if reply else set()

    try:
        # No server yet: SLP is silent until it has read it.
        await eventually(agent.log, lambda log: "reconnecting" in log, what="a reconnection")
        server.start()
        await register(server.port, 1)
        assert eventually_sync(names, lambda found: len(found) == 1, what="one target listed") == {
            f"{PREFIX}1"
        }
        server.stop()
        server.start()  # the registry comes back from disk; the agent registers again
        await register(server.port, 2)
        expected = {f"{PREFIX}1", f"{PREFIX}2"}
        eventually_sync(names, lambda found: found == expected, what=f"{expected} listed")
        listener = multicast_listener(agent.port)
        try:
            assert agent.stop() == 0
            goodbye = parse_message(listener.recv(2048))
        finally:
            listener.close()
        assert isinstance(goodbye, DAAdvert) and goodbye.boot_timestamp == 0  # RFC 2608 12.1
        async with await IsnsClient.connect("127.0.0.1", server.port) as isns:
            answer = await isns.call(
                FunctionId.DEV_ATTR_QRY,
                Attribute(Tag.ISCSI_NAME, ADMIN),
                keys=(Attribute(Tag.ISCSI_NAME, AGENT),),
                operating=(Attribute(Tag.ISCSI_NODE_TYPE),),
            )
        assert answer.status == Status.NO_SUCH_ENTRY  # it deregistered on the way out
    except AssertionError:
        print(agent.log())
        raise
    finally:
        ua.close()
        agent.stop()


async def test_slp_on_its_default_port_is_optional_for_isns_server() -> None:
    with socket.socket() as squatter:  # the SLP TCP port is taken
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        config = parse_config(f"slp: {{listen: ['127.0.0.1:{port}']}}\nmdns: {{enabled: false}}\n")
        optional = DiscoveryAgentService(config, in_process_endpoints(config), slp_optional=True)
        await optional.start()  # a warning, and no SLP
        assert optional.transport is None and optional.bridge is None
        await optional.stop()
        required = DiscoveryAgentService(config, in_process_endpoints(config), slp_optional=False)
        with pytest.raises(SlpListenError, match=f"cannot use TCP 127.0.0.1:{port}: another"):
            await required.start()


async def scn_port_of(isns_port: int, node: str) -> int:
    """The SCN Port `node` registered, as the iSNS server would look it up."""
    async with await IsnsClient.connect("127.0.0.1", isns_port) as isns:

        async def scn_ports() -> list[object]:
            answer = await isns.call(
                FunctionId.DEV_ATTR_QRY,
                Attribute(Tag.ISCSI_NAME, ADMIN),
                keys=(Attribute(Tag.ENTITY_IDENTIFIER, node),),
                operating=(Attribute(Tag.SCN_PORT),),
            )
            return [a.value for a in answer.split()[2] if a.tag == Tag.SCN_PORT]

        ports = await eventually(
            scn_ports,
            lambda found: bool(found) and isinstance(found[0], PortNumber),
            what=f"{node} to register an SCN port",
            within=5,
        )
    assert isinstance(ports[0], PortNumber)
    return ports[0].port


async def test_hand_built_scns_are_answered_on_the_scn_port(
    server: OurServer, tmp_path: Path
) -> None:
    server.start()
    agent = DiscoveryAgentProcess(tmp_path, server.port, AGENT)
    try:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", await scn_port_of(server.port, AGENT)
        )
        stamp = Attribute(Tag.TIMESTAMP, 1_795_000_000)
        event = (
            Attribute(
                Tag.ISCSI_SCN_BITMAP,
                int(ScnBitmap.MANAGEMENT_REGISTRATION | ScnBitmap.OBJECT_ADDED),
            ),
            Attribute(Tag.ISCSI_NAME, f"{PREFIX}never-registered"),
        )
        scns = [
            (Attribute(Tag.ISCSI_NAME, AGENT), stamp, *event),  # RFC 4171 5.6.5.8
            (Attribute(Tag.ISCSI_NAME, "iqn.2026-11.org.example.test:isnsd"),
             Attribute(Tag.ISCSI_NAME, AGENT), stamp, *event),  # open-isns: Source first
            (Attribute(Tag.ISCSI_NAME, AGENT), *event),  # no Timestamp
        ]  # fmt: skip
        decoder = StreamDecoder()
        for xid, attributes in enumerate(scns, start=40):
            writer.writelines(
                encode_message(Message(FunctionId.SCN, xid, Flags.SERVER, attributes))
            )
            while (reply := decoder.next_message()) is None:
                decoder.receive_data(await asyncio.wait_for(reader.read(4096), 5.0))
            assert (reply.function, reply.xid) == (FunctionId.SCN_RSP, xid)
            if xid < 42:
                assert reply.status == Status.SUCCESSFUL
                assert reply.attributes == (Attribute(Tag.ISCSI_NAME, AGENT),)  # 5.7.5.8
            else:
                assert reply.status == Status.MESSAGE_FORMAT_ERROR
        writer.close()
        log = await eventually(
            agent.log,
            lambda log: "unreadable SCN from iSNS server" in log,
            what="the unreadable SCN logged",
        )
        assert f"{PREFIX}never-registered" in log  # the SCN, logged at debug
    finally:
        assert agent.stop() == 0


# Interop with third-party user and service agents (issue 11)

DD_MEMBER = "iqn.2026-11.org.example.test:dd-member"


def slp_registration(n: int, scopes: tuple[str, ...] = ("DEFAULT",), port: int = 3260) -> SrvReg:
    url = f"service:iscsi:target://127.0.0.1:{port}/{PREFIX}slp-{n}"
    return SrvReg(
        url_entry=UrlEntry(url, 300),
        service_type="service:iscsi:target",
        scopes=scopes,
        attr_list="(portal-group=1)",
        flags=SlpFlags.FRESH,
    )


def test_the_first_advert_and_the_first_answer_come_with_every_dd_scope(
    our_server: OurServer,
) -> None:
    port = free_port()
    our_server.configure(
        slp=slp_settings(port, trusted_networks=["127.0.0.1/32"]),
        discovery_domains=[{"name": "dd-prod", "members": [DD_MEMBER]}],
    )
    listener = multicast_listener(port)
    sa = SlpUserAgent(port, timeout=0.05)
    try:
        our_server.start()
        # An SA registers in the DD's scope from the moment the port opens.
        request = build_message(sa.stamp(slp_registration(1, ("dd-prod",))))
        deadline = time.monotonic() + 10
        while not (replies := sa.exchange_udp(request)) and time.monotonic() < deadline:
            pass
        (first,) = [parse_message(reply) for reply in replies]
        assert isinstance(first, SrvAck) and first.error_code == ErrorCode.OK
        advert = parse_message(listener.recv(2048))  # the first unsolicited one
        assert isinstance(advert, DAAdvert) and advert.boot_timestamp
        assert advert.scopes == ("DEFAULT", "dd-prod")  # RFC 2608 12.2.2
    except AssertionError:
        print(our_server.log())
        raise
    finally:
        listener.close()
        sa.close()


def test_multicast_replies_leave_from_the_interface_address(our_server: OurServer) -> None:
    """listen 127.0.0.2 and multicast via 127.0.0.2: replies come from 127.0.0.2, and
    the user agent's retransmissions and TCP retry go where they should."""
    port, agent = free_port(), "127.0.0.2"
    our_server.configure(
        slp={
            "listen": [f"{agent}:{port}"],
            "interfaces": [agent],
            "trusted_networks": ["127.0.0.1/32"],
            "mtu": 512,
        }
    )
    our_server.start()
    ua = SlpUserAgent(port, agent=agent)
    ua.wait_for_agent()
    listing = SrvRqst(service_type="service:iscsi:target", scopes=("DEFAULT",))
    try:
        for n in range(12):
            ack = ua.tcp(slp_registration(n))
            assert isinstance(ack, SrvAck) and ack.error_code == ErrorCode.OK
        replies = ua.multicast_from(listing, wait=2.0)
        assert len(replies) == 1, replies
        ((reply, source),) = replies
        assert source == (agent, port)  # not 127.0.0.1
        assert isinstance(reply, SrvRply) and reply.flags & SlpFlags.OVERFLOW
        full = ua.tcp(listing, agent=source[0])  # RFC 2608 6.1: the retry over TCP
        assert isinstance(full, SrvRply) and len(full.url_entries) == 12
        for responders in [(agent,), ("127.0.0.1",), ("192.0.2.1", "127.0.0.1")]:
            retransmission = replace(listing, pr_list=responders)
            assert ua.multicast_from(retransmission, wait=0.3) == []  # RFC 2608 8.1
        assert len(ua.multicast_from(replace(listing, pr_list=("192.0.2.1",)), 2.0)) == 1
    except AssertionError:
        print(our_server.log())
        raise
    finally:
        ua.close()


async def entity_period(isns: IsnsClient, entity: str) -> object:
    answer = await isns.call(
        FunctionId.DEV_ATTR_QRY,
        Attribute(Tag.ISCSI_NAME, ADMIN),
        keys=(Attribute(Tag.ENTITY_IDENTIFIER, entity),),
        operating=(Attribute(Tag.REGISTRATION_PERIOD),),
    )
    if answer.status == Status.NO_SUCH_ENTRY:
        return None
    return next(a.value for a in answer.split()[2] if a.tag == Tag.REGISTRATION_PERIOD)


async def node_entity(isns: IsnsClient, name: str) -> object:
    answer = await isns.call(
        FunctionId.DEV_ATTR_QRY,
        Attribute(Tag.ISCSI_NAME, ADMIN),
        keys=(Attribute(Tag.ISCSI_NAME, name),),
        operating=(Attribute(Tag.ENTITY_IDENTIFIER),),
    )
    if answer.status == Status.NO_SUCH_ENTRY:
        return None
    return next(a.value for a in answer.split()[2] if a.tag == Tag.ENTITY_IDENTIFIER)


async def portal_entity(isns: IsnsClient, port: int) -> object:
    answer = await isns.call(
        FunctionId.DEV_ATTR_QRY,
        Attribute(Tag.ISCSI_NAME, ADMIN),
        keys=(
            Attribute(Tag.PORTAL_IP_ADDRESS, IPv4Address("127.0.0.1")),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(port)),
        ),
        operating=(Attribute(Tag.ENTITY_IDENTIFIER),),
    )
    if answer.status == Status.NO_SUCH_ENTRY:
        return None
    return next(a.value for a in answer.split()[2] if a.tag == Tag.ENTITY_IDENTIFIER)


async def test_slp_registrations_and_the_registry_agree(our_server: OurServer) -> None:
    """Issue 11 items 3-5: DD scopes list the DD's members; a URL iSNS holds shows once;
    SLP neither takes over another client's entity nor leaves its own behind."""
    port = free_port()
    our_server.configure(
        slp=slp_settings(port, trusted_networks=["127.0.0.1/32"]),
        discovery_domains=[{"name": "dd-prod", "members": [DD_MEMBER]}],
    )
    our_server.start()
    sa = SlpUserAgent(port)
    sa.wait_for_agent()
    isns = await IsnsClient.connect("127.0.0.1", our_server.port)
    both = ("DEFAULT", "dd-prod")

    def listed(scope: str) -> dict[str, int]:
        reply = sa.tcp(SrvRqst(service_type="service:iscsi:target", scopes=(scope,)))
        assert isinstance(reply, SrvRply)
        return {e.url: e.lifetime for e in reply.url_entries}

    def acked(message: SrvReg | SrvDeReg) -> None:
        ack = sa.tcp(message)
        assert isinstance(ack, SrvAck) and ack.error_code == ErrorCode.OK

    try:
        # A target in no DD, registered in dd-prod too: never listed there.
        loner = slp_registration(1, both, port=3261)
        acked(loner)
        sa_entity = "slp-sa:127.0.0.1"  # one entity for the SA's targets, as for a host
        found = await eventually(
            lambda: node_entity(isns, f"{PREFIX}slp-1"), what="the SLP target in iSNS"
        )
        assert found == sa_entity
        member_url = f"service:iscsi:target://127.0.0.1:3260/{DD_MEMBER}"
        acked(replace(loner, url_entry=UrlEntry(member_url, 300)))
        assert eventually_sync(lambda: listed("dd-prod"), what="dd-prod listing") == {
            member_url: 600
        }
        # One entity for the SA's targets, each at the portal it registered, no other.
        assert set(listed("DEFAULT")) == {loner.url_entry.url, member_url}

        # Another client's target, registered again through SLP: one entry, its period.
        their = f"{PREFIX}tgt"
        answer = await isns.call(
            FunctionId.DEV_ATTR_REG,
            Attribute(Tag.ISCSI_NAME, their),
            operating=(
                Attribute(Tag.ENTITY_IDENTIFIER, "tgt-host"),
                Attribute(Tag.REGISTRATION_PERIOD, 900),
                Attribute(Tag.PORTAL_IP_ADDRESS, IPv4Address("127.0.0.1")),
                Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3262)),
                Attribute(Tag.ISCSI_NAME, their),
                Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
            ),
        )
        assert answer.status == Status.SUCCESSFUL
        their_url = f"service:iscsi:target://127.0.0.1:3262/{their}"
        eventually_sync(lambda: listed("DEFAULT"), lambda u: their_url in u, what=their_url)
        again = SrvReg(
            url_entry=UrlEntry(their_url, 0xFFFF),
            service_type="service:iscsi:target",
            scopes=("DEFAULT",),
            flags=SlpFlags.FRESH,
        )
        acked(again)
        full = sa.tcp(SrvRqst(service_type="service:iscsi:target", scopes=both))
        assert isinstance(full, SrvRply)
        assert [e.lifetime for e in full.url_entries if e.url == their_url] == [600]
        acked(SrvDeReg(scopes=("DEFAULT",), url_entry=UrlEntry(their_url, 0)))
        await asyncio.sleep(0.5)  # the point: what the bridge would have done by now
        assert await entity_period(isns, "tgt-host") == 900
        assert await node_entity(isns, their) == "tgt-host"
        assert their_url in listed("DEFAULT")

        # The SrvDeReg of a target's only URL takes what SLP registered, all of it.
        acked(SrvDeReg(scopes=both, url_entry=UrlEntry(loner.url_entry.url, 0)))
        await eventually(
            lambda: node_entity(isns, f"{PREFIX}slp-1"),
            lambda entity: entity is None,
            what="the SLP target gone from iSNS",
        )
        assert await portal_entity(isns, 3261) is None  # with its portal groups
        assert await entity_period(isns, sa_entity) == 300  # the DD member is still there
        eventually_sync(
            lambda: listed("DEFAULT"),
            lambda u: loner.url_entry.url not in u,
            what=f"{loner.url_entry.url} unlisted",
        )
        acked(SrvDeReg(scopes=both, url_entry=UrlEntry(member_url, 0)))
        await eventually(
            lambda: entity_period(isns, sa_entity),
            lambda period: period is None,
            what=f"entity {sa_entity} gone",
        )
        assert (
            await node_entity(isns, DD_MEMBER) is None and await portal_entity(isns, 3260) is None
        )

        # A URL this DA never held: acknowledged, and nothing for iSNS to refuse.
        acked(SrvDeReg(scopes=("DEFAULT",), url_entry=UrlEntry(their_url, 0)))
        never = f"service:iscsi:target://127.0.0.1:3263/{PREFIX}never"
        acked(SrvDeReg(scopes=both, url_entry=UrlEntry(never, 0)))
        await asyncio.sleep(0.5)  # the point: time for a refusal to be logged
        assert "refused the SLP" not in our_server.log()
        assert "WARNING discovery_agent" not in our_server.log()
    except AssertionError:
        print(our_server.log())
        raise
    finally:
        sa.close()
        await isns.close()


BURST_TARGETS, BURST_CONNECTIONS = 3000, 8


def burst_target(n: int) -> tuple[str, Attribute, tuple[Attribute, ...]]:
    """Target n's name, entity and registration: one entity and loopback portal each."""
    name = f"{PREFIX}burst-{n:04}"
    portal = IPv4Address("127.1.0.0") + n
    return (
        name,
        Attribute(Tag.ENTITY_IDENTIFIER, f"burst-{n:04}"),
        (
            Attribute(Tag.ENTITY_IDENTIFIER, f"burst-{n:04}"),
            Attribute(Tag.PORTAL_IP_ADDRESS, portal),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
            Attribute(Tag.ISCSI_NAME, name),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        ),
    )


async def in_bursts(port: int, numbers: range, deregister: bool = False) -> None:
    """Register (or deregister) targets `numbers` over BURST_CONNECTIONS connections at
    once, each keeping 16 requests in flight."""

    async def one_connection(mine: range) -> None:
        async with await IsnsClient.connect("127.0.0.1", port) as isns:
            for start in range(0, len(mine), 16):
                calls = []
                for n in mine[start : start + 16]:
                    name, entity, registration = burst_target(n)
                    source = Attribute(Tag.ISCSI_NAME, name)
                    if deregister:
                        calls.append(isns.call(FunctionId.DEV_DEREG, source, operating=(entity,)))
                    else:
                        calls.append(isns.call(FunctionId.DEV_ATTR_REG, source, (), registration))
                answers = await asyncio.gather(*calls)
                assert all(a.status == Status.SUCCESSFUL for a in answers)

    await asyncio.gather(
        *(one_connection(numbers[i::BURST_CONNECTIONS]) for i in range(BURST_CONNECTIONS))
    )


async def test_the_mirror_converges_after_a_burst_of_3000_registrations(
    our_server: OurServer,
) -> None:
    """Issue 12 item 7: SCNs that piled up were dropped and the agent never caught up
    (1,102 of 3,000 listed, unchanged ten seconds later)."""
    port = free_port()
    our_server.configure(slp=slp_settings(port))
    our_server.start()
    sa = SlpUserAgent(port, timeout=10.0)
    sa.wait_for_agent()

    def listed() -> int:
        reply = sa.tcp(SrvRqst(service_type="service:iscsi:target", scopes=("DEFAULT",)))
        assert isinstance(reply, SrvRply)
        return sum(f"{PREFIX}burst-" in entry.url for entry in reply.url_entries)

    try:
        loop = asyncio.get_running_loop()
        for numbers, deregister, expected in [
            (range(BURST_TARGETS), False, BURST_TARGETS),
            (range(0, BURST_TARGETS, 3), True, BURST_TARGETS - len(range(0, BURST_TARGETS, 3))),
        ]:
            started = time.monotonic()
            await in_bursts(our_server.port, numbers, deregister)
            sent = time.monotonic()

            def converged(n: int = expected) -> int:
                return eventually_sync(
                    listed, lambda f: f == n, what=f"{n} burst targets listed", within=60.0
                )

            found = await loop.run_in_executor(None, converged)
            assert found == expected
            print(f"{len(numbers)} {'de' if deregister else ''}registrations in "
                  f"{sent - started:.1f} s; SLP lists {found} targets "
                  f"{time.monotonic() - sent:.1f} s later")  # fmt: skip
    except AssertionError:
        print(our_server.log()[-20000:])
        raise
    finally:
        sa.close()


def test_static_registrations_with_fresh_clear_are_taken(our_server: OurServer) -> None:
    """Issue 11 item 7: OpenSLP's slpd sends its static registrations with FRESH clear,
    for URLs the DA has never seen; RFC 2608 9.3 would refuse them, and slpd says nothing."""
    port = free_port()
    our_server.configure(slp=slp_settings(port, trusted_networks=["127.0.0.1/32"]))
    our_server.start()
    sa = SlpUserAgent(port)
    sa.wait_for_agent()
    try:
        for n in (1, 2):
            static = replace(slp_registration(n, port=3270 + n), flags=SlpFlags.NONE)
            ack = sa.tcp(static)
            assert isinstance(ack, SrvAck) and ack.error_code == ErrorCode.OK
        listing = SrvRqst(service_type="service:iscsi:target", scopes=("DEFAULT",))
        reply = sa.tcp(listing)
        assert isinstance(reply, SrvRply) and len(reply.url_entries) == 2
        said = [line for line in our_server.log().splitlines() if "FRESH clear" in line]
        assert len(said) == 1 and " INFO " in said[0] and "127.0.0.1" in said[0]  # once per SA
    except AssertionError:
        print(our_server.log())
        raise
    finally:
        sa.close()
