"""Replicas over etcd against the single SQLite server, in one run (issue 15):

    python -m tests.bench.replicas [--clients 8] [--ops 2000] [--samples 200] [--memory N]

Registrations/s and queries/s (the requests of tests/bench/isns_load.py, each client
waiting for its answer before the next) for: one server on SQLite (durable); one replica
on a 3-member etcd cluster; three replicas on that cluster with the clients spread over
them; the same three with every registration sent to one of them (queries still spread).
Then the cross-replica visibility latency: a registration acknowledged by replica 1,
until replica 2 answers a query with it (polled back to back), p50 and p99.
With --memory N: the resident memory (VmRSS) of a replica holding N registered entities
(one portal and one node each), once they are registered through it and again after a
restart, when it has read them all from etcd; and of the SQLite server the same way.
A registration whose transaction lost to another replica's is run again by the server
(up to 50 times); one that keeps losing is answered Internal Error, counted as refused.
Everything is on 127.0.0.1; every loop is bounded by a count and a time limit. Quote
ratios: the absolute numbers depend on the machine and its neighbours.
"""

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from isns_server.client import IsnsClient
from isns_server.isnsp.constants import FunctionId, Status, Tag
from isns_server.isnsp.messages import Attribute, Message

from ..etcd_cluster import EtcdCluster
from ..peers import require
from ..processes import OurServer
from .isns_load import (
    LoadClient,
    initiator_registration,
    percentile,
    query,
    registration,
    target,
    wire,
)

TIME_LIMIT = 20.0  # seconds per throughput measurement, whatever the op count
VISIBILITY_LIMIT = 5.0  # seconds one registration may take to reach the other replica


class CountingClient(LoadClient):
    """A load client that counts refusals and goes on, rather than stopping at one."""

    refused = 0

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 12:
            length = int.from_bytes(self.buffer[4:6], "big")
            flags = int.from_bytes(self.buffer[6:8], "big")
            if len(self.buffer) < 12 + length:
                return
            status = int.from_bytes(self.buffer[12:16], "big")
            del self.buffer[: 12 + length]
            if not flags & 0x0800:
                continue
            if status == 0:
                self.answered += 1
            else:
                CountingClient.refused += 1
            self.send_next()


async def throughput(
    ports: list[int],
    build: Callable[[int], Message],
    clients: int,
    ops: int,
    limit: float = TIME_LIMIT,
) -> tuple[float, int]:
    """(answered Successful per second, refused) with `clients` spread over `ports`."""
    loop = asyncio.get_running_loop()
    per_client = max(1, ops // clients)
    deadline = time.monotonic() + limit
    CountingClient.refused = 0
    latencies: list[float] = []
    protocols = []
    started = time.perf_counter()
    for c in range(clients):
        requests = [wire(build(c * per_client + i), i % 65535 + 1) for i in range(per_client)]
        _, protocol = await loop.create_connection(
            partial(CountingClient, requests, deadline, latencies),
            "127.0.0.1",
            ports[c % len(ports)],
        )
        protocols.append(protocol)
    counts = await asyncio.gather(*(p.done for p in protocols))
    return sum(counts) / (time.perf_counter() - started), CountingClient.refused


async def bench(
    ports: list[int], clients: int, ops: int, base: int, writers: int = 0
) -> dict[str, float]:
    """Registrations over the first `writers` of `ports` (0: all), queries over all."""
    for port in ports:
        async with await IsnsClient.connect("127.0.0.1", port) as isns:
            message = initiator_registration()
            source, keys, operating = message.split()
            assert source is not None
            await isns.call(FunctionId(message.function), source, keys, operating)
    writing = ports[: writers or len(ports)]
    registered, refused = await throughput(writing, lambda n: registration(base + n), clients, ops)
    per_client = max(1, ops // clients)
    queried, _ = await throughput(
        ports, lambda n: query(base + (n // per_client) * per_client), clients, ops
    )
    return {"registrations/s": registered, "refused registrations": refused, "queries/s": queried}


async def visible(writer: int, reader: int, samples: int, base: int) -> list[float]:
    """Seconds from replica `writer` acknowledging a registration to `reader` listing it."""
    delays = []
    async with (
        await IsnsClient.connect("127.0.0.1", writer) as write,
        await IsnsClient.connect("127.0.0.1", reader) as read,
    ):
        for n in range(base, base + samples):
            message = registration(n)
            source, keys, operating = message.split()
            assert source is not None
            answer = await write.call(FunctionId(message.function), source, keys, operating)
            assert answer.status == Status.SUCCESSFUL, answer
            acknowledged = time.perf_counter()
            deadline = time.monotonic() + VISIBILITY_LIMIT
            while time.monotonic() < deadline:
                found = await read.call(
                    FunctionId.DEV_ATTR_QRY,
                    Attribute(Tag.ISCSI_NAME, target(n)),
                    keys=(Attribute(Tag.ISCSI_NAME, target(n)),),
                    operating=(Attribute(Tag.ISCSI_NAME),),
                )
                if found.status == Status.SUCCESSFUL and found.attributes:
                    delays.append(time.perf_counter() - acknowledged)
                    break
            else:
                raise RuntimeError(f"{target(n)} not visible on the other replica in 5 s")
    return delays


def rss(server: OurServer) -> int:
    """The server process's resident memory, bytes."""
    assert server.process is not None
    for line in Path(f"/proc/{server.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/PID/status")


def memory(server: OurServer, clients: int, entities: int) -> dict[str, float]:
    """MiB resident with `entities` registered: after registering, and after a restart."""
    empty = rss(server)
    _, refused = asyncio.run(
        throughput([server.port], registration, clients, entities, limit=10 * TIME_LIMIT)
    )
    if refused:
        raise RuntimeError(f"{refused} registrations refused while filling the registry")
    filled = rss(server)
    server.stop()
    server.start()
    return {
        "MiB empty": empty / 2**20,
        f"MiB with {entities:,} entities": filled / 2**20,
        "MiB after a restart": rss(server) / 2**20,
    }


def start_servers(workdir: Path, count: int, store: dict[str, object]) -> list[OurServer]:
    servers = []
    for i in range(count):
        where = workdir / f"server{i}"
        where.mkdir(parents=True)
        server = OurServer(where, registration_period=3600)
        server.configure(store=store)
        servers.append(server.start())
    return servers


def run(clients: int, ops: int, samples: int, entities: int) -> None:
    results: dict[str, dict[str, float]] = {}
    memories: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="isns-replicas-bench-") as tmp:
        workdir = Path(tmp)
        (single,) = start_servers(workdir / "sqlite", 1, {"backend": "sqlite"})
        try:
            results["SQLite, 1 server"] = asyncio.run(bench([single.port], clients, ops, 0))
        finally:
            single.stop()
        if entities:
            (single,) = start_servers(workdir / "sqlite-memory", 1, {"backend": "sqlite"})
            try:
                memories["SQLite, 1 server"] = memory(single, clients, entities)
            finally:
                single.stop()
        etcd = EtcdCluster(require("etcd"), workdir, size=3).start()
        try:

            def store(prefix: str) -> dict[str, object]:
                return {"backend": "etcd", "etcd": {"endpoints": etcd.endpoints, "prefix": prefix}}

            (one,) = start_servers(workdir / "one", 1, store("/bench-one/"))
            try:
                results["etcd, 1 replica"] = asyncio.run(bench([one.port], clients, ops, 0))
            finally:
                one.stop()
            three = start_servers(workdir / "three", 3, store("/bench-three/"))
            try:
                ports = [s.port for s in three]
                results["etcd, 3 replicas"] = asyncio.run(bench(ports, clients, ops, 0))
                results["etcd, 3 replicas, writes to one"] = asyncio.run(
                    bench(ports, clients, ops, 2 * ops, writers=1)
                )
                delays = asyncio.run(visible(ports[0], ports[1], samples, 10 * ops))
            finally:
                for server in three:
                    server.stop()
            if entities:
                (one,) = start_servers(workdir / "memory", 1, store("/bench-memory/"))
                try:
                    memories["etcd, 1 replica"] = memory(one, clients, entities)
                finally:
                    one.stop()
        finally:
            etcd.stop()
    print(f"\n{clients} clients, {ops} requests each measurement (3 replicas: clients spread)")
    table(results, "{:,.0f}")
    if memories:
        print("\nresident memory (VmRSS)")
        table(memories, "{:,.1f}")
    print(
        f"\ncross-replica visibility ({len(delays)} registrations on replica 1, read on "
        f"replica 2): p50 {percentile(delays, 0.5) * 1e3:.1f} ms, "
        f"p99 {percentile(delays, 0.99) * 1e3:.1f} ms"
    )


def table(results: dict[str, dict[str, float]], number: str) -> None:
    columns = list(results)
    print("| | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for key in results[columns[0]]:
        print(f"| {key} | " + " | ".join(number.format(results[c][key]) for c in columns) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--memory", type=int, default=0, metavar="N", help="entities")
    args = parser.parse_args()
    run(args.clients, args.ops, args.samples, args.memory)


if __name__ == "__main__":
    main()
