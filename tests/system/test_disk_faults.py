"""Disk faults against the real server: a full disk (queries answered from memory, refused
registrations leave no trace, one log line naming the file and ENOSPC, service back by
itself once space returns), a disk filling and emptying under load (after kill -9 every
answer is still true), and a read-only data directory at start (exit 2, no "ready").

The small disk is a tmpfs mounted over the server's data directory, which needs root
(CI runs as root); elsewhere these tests skip and say so.
"""

import asyncio
import errno
import os
import subprocess
import sys
from collections.abc import Iterator
from ipaddress import IPv4Address
from itertools import count
from pathlib import Path

import pytest
import yaml

from isns_server.client import IsnsClient
from isns_server.isnsp.constants import FunctionId, NodeType, Status, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber

from ..conftest import ADMIN
from ..polling import eventually
from ..processes import THIS_CHECKOUT, OurServer

DISK_SIZE = "2m"
LOADED_DISK_SIZE = "16m"  # room for the write-ahead log of the load before it is filled
RECOVERY = 15.0  # seconds for writes to succeed again once space is back
BURST_CLIENTS = 8  # concurrent registrations while the disk is full, each
BURST_LENGTH = 25
LOAD_CLIENTS = 8  # registering while the disk fills and empties again
LOAD_LIMIT = 400  # registrations per load client at most
_addresses = count()  # a portal belongs to one entity: each gets its own (plain data)


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True, capture_output=True)


def mounted_disk(tmp_path: Path, size: str) -> Iterator[Path]:
    """A tmpfs of `size` mounted where OurServer(tmp_path) keeps its data."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs as the data directory needs root (CI runs as root)")
    data = tmp_path / "data"
    data.mkdir()
    mount("-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(data))
    yield data
    subprocess.run(["umount", "-l", str(data)], check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mounted_disk(tmp_path, DISK_SIZE)


@pytest.fixture
def loaded_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mounted_disk(tmp_path, LOADED_DISK_SIZE)


def fill(disk: Path) -> Path:
    """Write a file until the disk refuses another byte."""
    filler = disk / "filler"
    chunk = b"\0" * 65536
    with open(filler, "wb", buffering=0) as out:
        for _ in range(1024):  # far more than the disk holds
            try:
                out.write(chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                break
        else:
            raise AssertionError(f"{disk} never filled up")
    # What is left is under one block: a last small write takes it.
    with open(filler, "ab", buffering=0) as out:
        for _ in range(4096):
            try:
                out.write(b"\0")
            except OSError:
                break
    return filler


def target(n: str) -> str:
    return f"iqn.2026-11.org.example.test:disk-{n}"


async def register(isns: IsnsClient, name: str) -> Message:
    return await isns.call(
        FunctionId.DEV_ATTR_REG,
        Attribute(Tag.ISCSI_NAME, name),
        keys=(Attribute(Tag.ENTITY_IDENTIFIER, f"ent-{name}"),),
        operating=(
            Attribute(Tag.PORTAL_IP_ADDRESS, IPv4Address(0xC6120000 + next(_addresses))),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
            Attribute(Tag.ISCSI_NAME, name),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        ),
    )


async def registered(isns: IsnsClient, name: str) -> bool:
    answer = await isns.call(
        FunctionId.DEV_ATTR_QRY,
        Attribute(Tag.ISCSI_NAME, ADMIN),
        keys=(Attribute(Tag.ISCSI_NAME, name),),
        operating=(Attribute(Tag.ISCSI_NAME),),
    )
    assert answer.status in (Status.SUCCESSFUL, Status.NO_SUCH_ENTRY), answer
    return Attribute(Tag.ISCSI_NAME, name) in answer.attributes


async def refused_burst(port: int, client: int) -> list[str]:
    """Registrations from one client while the disk is full; the names, all refused."""
    names = [target(f"burst-{client}-{n}") for n in range(BURST_LENGTH)]
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        for name in names:
            assert (await register(isns, name)).status == Status.INTERNAL_ERROR
    return names


async def test_full_disk_refuses_changes_serves_queries_and_recovers_by_itself(
    our_server: OurServer, small_disk: Path
) -> None:
    our_server.start()
    database = small_disk / "registry.sqlite3"
    async with await IsnsClient.connect("127.0.0.1", our_server.port) as isns:
        assert (await register(isns, target("before"))).status == Status.SUCCESSFUL
        filler = fill(small_disk)

        refused = [target(f"refused-{n}") for n in range(5)]
        for name in refused:
            assert (await register(isns, name)).status == Status.INTERNAL_ERROR
        bursts = [refused_burst(our_server.port, c) for c in range(BURST_CLIENTS)]
        refused += [name for names in await asyncio.gather(*bursts) for name in names]
        async with await IsnsClient.connect("127.0.0.1", our_server.port) as other:
            assert await registered(other, target("before"))  # answered from memory
            for name in refused:
                assert not await registered(other, name)  # refused: not applied

        log = our_server.log()
        failures = [line for line in log.splitlines() if "cannot write" in line]
        assert len(failures) == 1, failures  # once per interval, not once per request
        assert str(database) in failures[0] and "ENOSPC" in failures[0]
        assert "rollback" not in log and "Traceback" not in log

        filler.unlink()

        async def register_after() -> Status:
            answer = await register(isns, target("after"))
            assert answer.status in (Status.SUCCESSFUL, Status.INTERNAL_ERROR), answer
            return Status(answer.status or 0)

        await eventually(
            register_after,
            lambda status: status == Status.SUCCESSFUL,
            what="a registration to succeed once space is back",
            within=RECOVERY,
        )
    assert "succeed again" in our_server.log()

    our_server.kill()
    our_server.start()
    async with await IsnsClient.connect("127.0.0.1", our_server.port) as isns:
        assert await registered(isns, target("before"))
        assert await registered(isns, target("after"))
        for name in refused:
            assert not await registered(isns, name)  # the answer and the state agree


async def register_until_stopped(
    port: int, client: int, stop: asyncio.Event, answers: dict[str, Status]
) -> None:
    async with await IsnsClient.connect("127.0.0.1", port) as isns:
        for n in range(LOAD_LIMIT):
            if stop.is_set():
                return
            name = target(f"load-{client}-{n}")
            answers[name] = Status((await register(isns, name)).status or 0)
            if answers[name] != Status.SUCCESSFUL:
                await asyncio.sleep(0.05)  # as a client would before trying again


async def test_a_disk_filling_under_load_leaves_every_answer_true_after_kill_9(
    our_server: OurServer, loaded_disk: Path
) -> None:
    our_server.start()
    answers: dict[str, Status] = {}
    stop = asyncio.Event()

    def count_of(status: Status) -> int:
        return sum(1 for answer in answers.values() if answer == status)

    async def at_least(status: Status, wanted: int) -> None:
        await eventually(
            lambda: count_of(status),
            lambda seen: seen >= wanted,
            what=f"{wanted} answers {status.name}",
            within=RECOVERY,
        )

    async def fill_and_free() -> None:
        try:
            await at_least(Status.SUCCESSFUL, 200)
            filler = fill(loaded_disk)
            await at_least(Status.INTERNAL_ERROR, 50)
            saved = count_of(Status.SUCCESSFUL)
            filler.unlink()
            await at_least(Status.SUCCESSFUL, saved + 50)  # recovery
        finally:
            stop.set()

    clients = [
        register_until_stopped(our_server.port, c, stop, answers) for c in range(LOAD_CLIENTS)
    ]
    await asyncio.gather(fill_and_free(), *clients)
    assert set(answers.values()) == {Status.SUCCESSFUL, Status.INTERNAL_ERROR}

    our_server.kill()
    our_server.start()
    async with await IsnsClient.connect("127.0.0.1", our_server.port) as isns:
        disagree = [
            name
            for name, answer in answers.items()
            if await registered(isns, name) != (answer == Status.SUCCESSFUL)
        ]
    assert disagree == []


def run_server(server: OurServer) -> subprocess.CompletedProcess[str]:
    config = server.workdir / "isns-server.yaml"
    config.write_text(yaml.safe_dump(server.settings))
    return subprocess.run(
        [sys.executable, "-m", "isns_server", "--config", str(config)],
        env=THIS_CHECKOUT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_read_only_data_dir_exits_2_naming_the_path(
    our_server: OurServer, small_disk: Path
) -> None:
    our_server.start()
    our_server.stop()
    mount("-o", "remount,ro", str(small_disk))
    result = run_server(our_server)
    assert result.returncode == 2, result
    assert str(small_disk) in result.stderr and "EROFS" in result.stderr
    assert "read-write" in result.stderr and "data_dir" in result.stderr
    assert "ready" not in result.stdout + result.stderr
