"""`isns-server` as an administrator meets it: config errors, shutdown, listen problems."""

import asyncio
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from isns_server.client import IsnsClient
from isns_server.isnsp.constants import FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute

from ..processes import OurServer, free_port

NAME = "iqn.2026-11.org.example.test:cli-check"


def run_cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "isns_server", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_a_bad_configuration_exits_2_naming_key_and_line_without_touching_data(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    config = tmp_path / "bad.yaml"
    config.write_text(f"data_dir: {data_dir}\nisns:\n  registration_period: soon\n")
    done = run_cli("--config", str(config))
    assert done.returncode == 2
    assert f"{config} line 3: isns.registration_period: expected a whole number" in done.stderr
    assert not data_dir.exists()


def test_check_config_accepts_the_shipped_example() -> None:
    example = Path(__file__).parents[2] / "deploy" / "isns-server.yaml"
    done = run_cli("--config", str(example), "--check-config")
    assert done.returncode == 0, done.stderr
    assert "configuration is valid" in done.stdout


def test_sigterm_and_sigint_stop_the_server_cleanly(tmp_path: Path) -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        server = OurServer(tmp_path)
        server.start()
        assert server.process is not None
        server.process.send_signal(signum)
        assert server.process.wait(timeout=15) == 0
        log = server.log()
        assert f"iSNS server listening on 127.0.0.1:{server.port} (TCP and UDP)" in log
        assert "stopped" in log


def test_a_port_in_use_is_explained_and_exits_1(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        config = tmp_path / "busy.yaml"
        config.write_text(f"data_dir: {tmp_path}\nisns:\n  listen: ['127.0.0.1:{port}']\n")
        done = run_cli("--config", str(config))
    assert done.returncode == 1
    assert f"cannot listen on TCP 127.0.0.1:{port}: another program already uses it" in (
        done.stderr
    )


def ipv6_loopback_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not ipv6_loopback_available(), reason="no IPv6 loopback on this machine")
async def test_ipv6_listener_serves_registrations(tmp_path: Path) -> None:
    server = OurServer(tmp_path)
    ipv6_port = free_port()
    server.settings["isns"] = {"listen": [f"127.0.0.1:{server.port}", f"[::1]:{ipv6_port}"]}
    server.start()
    try:
        async with await IsnsClient.connect("::1", ipv6_port) as isns:
            answer = await isns.call(
                FunctionId.DEV_ATTR_REG,
                Attribute(Tag.ISCSI_NAME, NAME),
                keys=(Attribute(Tag.ENTITY_IDENTIFIER, "ipv6-check"),),
                operating=(
                    Attribute(Tag.ISCSI_NAME, NAME),
                    Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.INITIATOR)),
                ),
            )
        assert answer.status == Status.SUCCESSFUL
        assert f"iSNS server listening on [::1]:{ipv6_port}" in server.log()
    finally:
        assert server.stop() == 0


async def test_a_response_larger_than_one_pdu_arrives_whole(our_server: OurServer) -> None:
    """800 nodes' names, types and indexes exceed one 65,532-byte PDU."""
    our_server.start()
    async with await IsnsClient.connect("127.0.0.1", our_server.port) as isns:
        names = [
            f"iqn.2026-11.org.example.test:a-rather-long-target-name-{n:04}" for n in range(800)
        ]
        answers = await asyncio.gather(
            *(
                isns.call(
                    FunctionId.DEV_ATTR_REG,
                    Attribute(Tag.ISCSI_NAME, name),
                    keys=(Attribute(Tag.ENTITY_IDENTIFIER, f"big-{n}"),),
                    operating=(
                        Attribute(Tag.ISCSI_NAME, name),
                        Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
                        Attribute(Tag.ISCSI_ALIAS, "x" * 40),
                    ),
                )
                for n, name in enumerate(names)
            )
        )
        assert {a.status for a in answers} == {Status.SUCCESSFUL}
        answer = await isns.call(
            FunctionId.DEV_ATTR_QRY,
            Attribute(Tag.ISCSI_NAME, names[0]),
            keys=(Attribute(Tag.ISCSI_NODE_TYPE),),
            operating=(
                Attribute(Tag.ISCSI_NAME),
                Attribute(Tag.ISCSI_ALIAS),
                Attribute(Tag.ISCSI_NODE_TYPE),
            ),
        )
    assert answer.status == Status.SUCCESSFUL
    listed = {a.value for a in answer.attributes if a.tag == Tag.ISCSI_NAME}
    assert listed == set(names)
