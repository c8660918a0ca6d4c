"""iSNS load: our server against open-isns `isnsd`, side by side in one run.

    python -m tests.bench.isns_load [--clients 1,8,32] [--ops 3000] [--scale 100000]

Measures, for each server: registrations/s (DevAttrReg of a new entity with a portal and
a target) and queries/s (DevAttrQry of one target's attributes, as an initiator asks
before login) with N concurrent clients, each waiting for its answer before sending the
next request, as real clients do; then the latency of that query with `--scale` nodes
registered. Our server runs durable (fsync per group commit) unless --no-durable.
Everything is on 127.0.0.1; every loop is bounded by a count and a time limit.
Quote the ratios: absolute numbers depend on the machine and its neighbours.
"""

import argparse
import asyncio
import struct
import tempfile
import time
from collections.abc import Callable, Sequence
from ipaddress import IPv4Address
from pathlib import Path

from isns_server.isnsp.codec import encode_message
from isns_server.isnsp.constants import FunctionId, NodeType, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber, request

from ..peers import require
from ..processes import OpenIsnsServer, OurServer

INITIATOR = "iqn.2026-11.org.example.bench:initiator"
TIME_LIMIT = 20.0  # seconds per throughput measurement, whatever the op count
FILL_TIME_LIMIT = 600.0  # seconds to register the --scale nodes
HEADER = struct.Struct("!HHHHHH")
LAST_PDU = 0x0800


def target(n: int) -> str:
    return f"iqn.2026-11.org.example.bench:target-{n}"


def registration(n: int) -> Message:
    """Target `n` in entity `n`, with portal `n`: a fresh registration for each n."""
    name = target(n)
    return request(
        FunctionId.DEV_ATTR_REG,
        0,
        Attribute(Tag.ISCSI_NAME, name),
        keys=(Attribute(Tag.ENTITY_IDENTIFIER, f"entity-{n}"),),
        operating=(
            # A portal belongs to one entity: give each its own loopback address.
            Attribute(Tag.PORTAL_IP_ADDRESS, IPv4Address(0x7F000001 + n)),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
            Attribute(Tag.ISCSI_NAME, name),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        ),
    )


def initiator_registration() -> Message:
    return request(
        FunctionId.DEV_ATTR_REG,
        0,
        Attribute(Tag.ISCSI_NAME, INITIATOR),
        keys=(Attribute(Tag.ENTITY_IDENTIFIER, "bench-initiator"),),
        operating=(
            Attribute(Tag.ISCSI_NAME, INITIATOR),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.INITIATOR)),
        ),
    )


def query(n: int) -> Message:
    return request(
        FunctionId.DEV_ATTR_QRY,
        0,
        Attribute(Tag.ISCSI_NAME, INITIATOR),
        keys=(Attribute(Tag.ISCSI_NAME, target(n)),),
        operating=(
            Attribute(Tag.ISCSI_NAME),
            Attribute(Tag.ISCSI_NODE_TYPE),
            Attribute(Tag.ISCSI_ALIAS),
            Attribute(Tag.PORTAL_IP_ADDRESS),
            Attribute(Tag.PORTAL_TCP_UDP_PORT),
            Attribute(Tag.PG_TAG),
        ),
    )


def registrations_from(first: int) -> Callable[[int], Message]:
    """Request n registers target first + n."""
    return lambda n: registration(first + n)


def queries_for(targets: Sequence[int]) -> Callable[[int], Message]:
    """Request n queries target targets[n]."""
    return lambda n: query(targets[n])


def wire(message: Message, xid: int) -> bytes:
    """The request as bytes, with its own transaction ID (1..65535)."""
    pdus = encode_message(Message(message.function, xid, message.flags, message.attributes))
    return b"".join(pdus)


class LoadClient(asyncio.Protocol):
    """One client connection: sends a request, waits for the whole answer, sends the next.

    A Protocol rather than streams, so the load generator costs less CPU per request than
    the servers it measures (both share this machine's two cores).
    """

    def __init__(self, requests: Sequence[bytes], deadline: float, latencies: list[float]):
        self.requests = iter(requests)
        self.deadline = deadline
        self.latencies = latencies
        self.buffer = bytearray()
        self.answered = 0
        self.sent_at = 0.0
        self.done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP connection's
        self.transport = transport
        self.send_next()

    def send_next(self) -> None:
        data = next(self.requests, None)
        if data is None or time.monotonic() > self.deadline:
            self.finish()
            return
        self.sent_at = time.perf_counter()
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 12:
            _, _, length, flags, _, _ = HEADER.unpack_from(self.buffer)
            if len(self.buffer) < 12 + length:
                return
            status = int.from_bytes(self.buffer[12:16], "big")
            del self.buffer[: 12 + length]
            if not flags & LAST_PDU:
                continue
            if status != 0:
                self.finish(RuntimeError(f"server answered status {status}"))
                return
            self.latencies.append(time.perf_counter() - self.sent_at)
            self.answered += 1
            self.send_next()

    def connection_lost(self, exc: Exception | None) -> None:
        self.finish(exc or ConnectionError("server closed the connection"))

    def finish(self, error: Exception | None = None) -> None:
        if not self.done.done():
            if error is None:
                self.done.set_result(self.answered)
            else:
                self.done.set_exception(error)
        if self.transport is not None:
            self.transport.close()


async def client(
    port: int, requests: Sequence[bytes], deadline: float, latencies: list[float]
) -> int:
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(
        lambda: LoadClient(requests, deadline, latencies), "127.0.0.1", port
    )
    return await protocol.done


async def measure(
    port: int,
    build: Callable[[int], Message],
    clients: int,
    ops: int,
    time_limit: float = TIME_LIMIT,
) -> tuple[int, float, list[float]]:
    """(requests answered, per second, latencies) for up to `ops` requests over `clients`."""
    per_client = max(1, ops // clients)
    batches = [
        [wire(build(c * per_client + i), i % 65535 + 1) for i in range(per_client)]
        for c in range(clients)
    ]
    latencies: list[float] = []
    started = time.perf_counter()
    deadline = time.monotonic() + time_limit
    counts = await asyncio.gather(*(client(port, b, deadline, latencies) for b in batches))
    elapsed = time.perf_counter() - started
    return sum(counts), sum(counts) / elapsed, latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def bench_server(
    port: int, clients: Sequence[int], ops: int, scales: Sequence[int]
) -> dict[str, float]:
    results: dict[str, float] = {}
    await measure(port, lambda n: initiator_registration(), 1, 1)
    registered = 0
    for count in clients:
        base = registered
        # Client c registers targets base + c * per_client + i; a time limit may cut each short,
        # so queries ask only for the first `done // count` of every client's range.
        per_client = max(1, ops // count)
        done, rate, _ = await measure(port, registrations_from(base), count, ops)
        results[f"registrations/s, {count} clients"] = rate
        registered += count * per_client
        answered = max(1, done // count)

        def asked(n: int, b: int = base, p: int = per_client, a: int = answered) -> Message:
            return query(b + (n // p) * p + (n % p) % a)

        _, rate, _ = await measure(port, asked, count, ops)
        results[f"queries/s, {count} clients"] = rate
    filled = registered
    for scale in scales:
        fill = 16 * ((scale - filled) // 16)
        done, _, _ = await measure(port, registrations_from(filled), 16, fill, FILL_TIME_LIMIT)
        if done < fill:
            raise RuntimeError(f"only {done} of {fill} registrations in {FILL_TIME_LIMIT} s")
        first_new = filled
        filled += fill
        sample = 2000
        probe = [first_new + (n * 7919) % fill for n in range(sample)]
        _, _, latencies = await measure(port, queries_for(probe), 1, sample)
        results[f"query latency p50 at {scale:,} nodes, ms"] = percentile(latencies, 0.5) * 1e3
        results[f"query latency p99 at {scale:,} nodes, ms"] = percentile(latencies, 0.99) * 1e3
    return results


def run_isnsd(
    workdir: Path, clients: Sequence[int], ops: int, scales: Sequence[int]
) -> dict[str, float]:
    server = OpenIsnsServer(workdir, require("isnsd"))
    try:
        return asyncio.run(bench_server(server.port, clients, ops, scales))
    finally:
        server.stop()


def run_ours(
    workdir: Path, durable: bool, clients: Sequence[int], ops: int, scales: Sequence[int]
) -> dict[str, float]:
    workdir.mkdir(parents=True)
    server = OurServer(workdir, registration_period=3600)
    server.configure(store={"backend": "sqlite", "durable": durable})
    server.start()
    try:
        return asyncio.run(bench_server(server.port, clients, ops, scales))
    finally:
        server.stop()


def table(title: str, theirs: dict[str, float], ours: dict[str, float]) -> None:
    print(f"\n| {title} | isnsd | isns-server | ratio |")
    print("|---|---:|---:|---:|")
    for key, our_value in ours.items():
        their_value = theirs.get(key)
        if their_value is None:
            print(f"| {key} | not measured | {our_value:,.2f} | |")
            continue
        ratio = their_value / our_value if "latency" in key else our_value / their_value
        print(f"| {key} | {their_value:,.2f} | {our_value:,.2f} | {ratio:.1f}x |")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--ops", type=int, default=3000, help="requests per measurement")
    parser.add_argument(
        "--scale", type=int, default=100_000, help="nodes for our server's latency test"
    )
    parser.add_argument(
        "--compare-scale",
        type=int,
        default=10_000,
        help="nodes for the latency test on both servers (isnsd slows to ~30 registrations/s "
        "past 20,000 nodes, so it cannot be filled to --scale in reasonable time)",
    )
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    # Durable pair: isnsd's file database on disk (it syncs each object) against our
    # SQLite with fsync per group commit. Memory pair: isnsd's database on tmpfs (no disk
    # cost at all) against our SQLite without fsync. The latency at scale runs on this
    # pair, where filling is fastest; isnsd only to --compare-scale (see its help).
    with tempfile.TemporaryDirectory() as disk, tempfile.TemporaryDirectory(dir="/dev/shm") as shm:
        durable_theirs = run_isnsd(Path(disk) / "isnsd", clients, args.ops, ())
        durable_ours = run_ours(Path(disk) / "ours", True, clients, args.ops, ())
        scales = (args.compare_scale, args.scale)
        fast_theirs = run_isnsd(Path(shm) / "isnsd", clients, args.ops, scales[:1])
        fast_ours = run_ours(Path(disk) / "ours-fast", False, clients, args.ops, scales)
    table("durable: isnsd DB on disk vs isns-server fsync per batch", durable_theirs, durable_ours)
    table("no fsync: isnsd DB on tmpfs vs isns-server durable: false", fast_theirs, fast_ours)
    print("\nratio > 1: isns-server is better (more per second, or less time).")


if __name__ == "__main__":
    main()
