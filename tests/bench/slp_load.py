"""SLP load: SrvRqst/s against our directory agent (isns-server with SLP on loopback).

    python -m tests.bench.slp_load [--targets 200] [--clients 1,8,32] [--ops 5000]

Registers --targets iSCSI targets over SLP (TCP, from the trusted 127.0.0.1), then, for
each client count, N UDP clients each send a SrvRqst and wait for its SrvRply before
sending the next, as UAs do. Three questions: one target by `(iscsi-name=...)` (a
one-entry answer), every target (an MTU-bounded answer with OVERFLOW), and the same
by-name question over one TCP connection per client. The per-address rate limit is
raised for the run so the agent, not the limiter, is measured; a last line shows the
limiter at its defaults. Loopback only; every loop is bounded by a count and a time.
"""

import argparse
import asyncio
import random
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from discovery_agent.slp.codec import build_message, message_length, parse_message
from discovery_agent.slp.constants import Flags
from discovery_agent.slp.messages import Message, SrvAck, SrvReg, SrvRqst, UrlEntry

from ..processes import OurServer, free_port, slp_settings

TIME_LIMIT = 15.0  # seconds per measurement, whatever the op count
REPLY_TIMEOUT = 1.0
HOST = "127.0.0.1"


def target(n: int) -> str:
    return f"iqn.2026-11.org.example.bench:slp-{n:05}"


def registration(n: int) -> bytes:
    url = f"service:iscsi:target://{IPv4Address('198.18.0.0') + n}:3260/{target(n)}"
    return build_message(
        SrvReg(
            xid=n & 0xFFFF,
            flags=Flags.FRESH,
            url_entry=UrlEntry(url, 3600),
            service_type="service:iscsi:target",
            scopes=("DEFAULT",),
            attr_list=f"(iscsi-name={target(n)}),(portal-group=1),(transports=tcp)",
        )
    )


def by_name(n: int) -> SrvRqst:
    return SrvRqst(
        service_type="service:iscsi:target",
        scopes=("DEFAULT",),
        predicate=f"(iscsi-name={target(n)})",
    )


EVERYTHING = SrvRqst(service_type="service:iscsi:target", scopes=("DEFAULT",))
# (agent port, question for op i, ops, deadline) -> (answered, lost, bytes received)
Client = Callable[[int, Callable[[int], Message], int, float], Awaitable[tuple[int, int, int]]]


async def tcp_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes
) -> bytes:
    writer.write(data)
    head = await reader.readexactly(5)
    length = message_length(head)
    assert length is not None
    return head + await reader.readexactly(length - 5)


async def register(port: int, count: int) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        for n in range(count):
            ack = parse_message(await tcp_exchange(reader, writer, registration(n)))
            assert isinstance(ack, SrvAck) and not ack.error_code, ack
    finally:
        writer.close()


class _Client(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: asyncio.Future[bytes] | None = None

    def datagram_received(self, data: bytes, addr: object) -> None:
        if self.waiting is not None and not self.waiting.done():
            self.waiting.set_result(data)


async def udp_client(
    port: int, questions: Callable[[int], Message], ops: int, deadline: float
) -> tuple[int, int, int]:
    """(answered, lost, bytes received) for up to `ops` closed-loop exchanges."""
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        _Client, local_addr=(HOST, 0), remote_addr=(HOST, port)
    )
    answered = lost = received = 0
    try:
        for i in range(ops):
            if time.monotonic() > deadline:
                break
            client.waiting = loop.create_future()
            transport.sendto(build_message(replace(questions(i), xid=i & 0xFFFF)))
            try:
                reply = await asyncio.wait_for(client.waiting, REPLY_TIMEOUT)
            except TimeoutError:
                lost += 1
                continue
            answered += 1
            received += len(reply)
    finally:
        transport.close()
    return answered, lost, received


async def tcp_client(
    port: int, questions: Callable[[int], Message], ops: int, deadline: float
) -> tuple[int, int, int]:
    reader, writer = await asyncio.open_connection(HOST, port)
    answered = received = 0
    try:
        for i in range(ops):
            if time.monotonic() > deadline:
                break
            reply = await tcp_exchange(reader, writer, build_message(questions(i)))
            answered += 1
            received += len(reply)
    finally:
        writer.close()
    return answered, 0, received


async def measure(
    port: int,
    clients: int,
    ops: int,
    questions: Callable[[int], Message],
    client: Client,
) -> str:
    deadline = time.monotonic() + TIME_LIMIT
    started = time.perf_counter()
    results = await asyncio.gather(
        *(client(port, questions, ops // clients, deadline) for _ in range(clients))
    )
    elapsed = time.perf_counter() - started
    answered = sum(r[0] for r in results)
    lost = sum(r[1] for r in results)
    size = sum(r[2] for r in results) / max(answered, 1)
    return f"{answered / elapsed:8.0f}/s  ({answered} answered, {lost} lost, {size:.0f} B each)"


async def run(port: int, targets: int, client_counts: list[int], ops: int) -> None:
    started = time.perf_counter()
    await register(port, targets)
    print(f"{targets} SLP registrations over TCP in {time.perf_counter() - started:.2f} s")
    sample = random.Random(1)
    one = lambda i: by_name(sample.randrange(targets))  # noqa: E731 - a question per op
    for clients in client_counts:
        for label, questions, client in (
            ("UDP by name    ", one, udp_client),
            ("UDP everything ", lambda i: EVERYTHING, udp_client),
            ("TCP by name    ", one, tcp_client),
        ):
            result = await measure(port, clients, ops, questions, client)
            print(f"{clients:3} clients  {label} {result}")


async def limited(port: int, targets: int) -> None:
    await register(port, targets)
    reply = await measure(port, 1, 200, lambda i: EVERYTHING, udp_client)
    print(f"  1 client   UDP everything, default rate limit (20/s, burst 50): {reply}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--targets", type=int, default=200, help="SLP registrations")
    parser.add_argument("--clients", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--ops", type=int, default=5000, help="requests per measurement")
    args = parser.parse_args()
    counts = [int(c) for c in args.clients.split(",")]
    runs: list[tuple[int | None, Callable[[int], Coroutine[Any, Any, None]]]] = [
        (10**6, lambda port: run(port, args.targets, counts, args.ops)),
        (None, lambda port: limited(port, args.targets)),
    ]
    with tempfile.TemporaryDirectory() as workdir:
        for rate, body in runs:
            server = OurServer(Path(workdir) / str(rate), control_nodes=[])
            server.workdir.mkdir()
            port = free_port()
            limits = {} if rate is None else {"rate_limit": rate, "rate_burst": rate}
            server.configure(
                slp=slp_settings(port, trusted_networks=["127.0.0.1/32"], **limits),
                store={"durable": False},
            )
            server.start()
            try:
                asyncio.run(body(port))
            finally:
                server.stop()


if __name__ == "__main__":
    main()
