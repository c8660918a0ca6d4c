"""`discovery-agent` as an administrator meets it: configuration errors, a server that is
not up yet or restarts, a clean goodbye; and isns-server's SLP default port when it is
not available."""

import asyncio
import socket
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address
from pathlib import Path

import pytest

from discovery_agent.service import DiscoveryAgentService, in_process_endpoints
from discovery_agent.slp.codec import parse_message
from discovery_agent.slp.constants import MULTICAST_ADDRESS
from discovery_agent.slp.messages import DAAdvert, SrvRply, SrvRqst
from discovery_agent.transport import SlpListenError
from isns_server.client import IsnsClient
from isns_server.config import parse_config
from isns_server.isnsp.codec import StreamDecoder, encode_message
from isns_server.isnsp.constants import Flags, FunctionId, NodeType, ScnBitmap, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber

from ..conftest import ADMIN
from ..processes import DiscoveryAgentProcess, OurServer
from ..slp_peer import SlpUserAgent, eventually

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
        reply = ua.unicast(listing)
        assert isinstance(reply, SrvRply)
        return {e.url.rsplit("/", 1)[1] for e in reply.url_entries}

    try:
        await asyncio.sleep(0.3)
        assert "reconnecting" in agent.log()  # no server yet: the SLP side runs regardless
        server.start()
        await register(server.port, 1)
        assert eventually(names, lambda found: len(found) == 1) == {f"{PREFIX}1"}
        server.stop()
        server.start()  # the registry comes back from disk; the agent registers again
        await register(server.port, 2)
        expected = {f"{PREFIX}1", f"{PREFIX}2"}
        assert eventually(names, lambda found: found == expected) == expected
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
        for _ in range(50):
            answer = await isns.call(
                FunctionId.DEV_ATTR_QRY,
                Attribute(Tag.ISCSI_NAME, ADMIN),
                keys=(Attribute(Tag.ENTITY_IDENTIFIER, node),),
                operating=(Attribute(Tag.SCN_PORT),),
            )
            ports = [a.value for a in answer.split()[2] if a.tag == Tag.SCN_PORT]
            if ports and isinstance(ports[0], PortNumber):
                return ports[0].port
            await asyncio.sleep(0.1)
    raise AssertionError(f"{node} registered no SCN port")


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
        await asyncio.sleep(0.2)
        assert "unreadable SCN from iSNS server" in agent.log()
        assert f"{PREFIX}never-registered" in agent.log()  # the SCN, logged at debug
    finally:
        assert agent.stop() == 0
