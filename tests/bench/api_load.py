"""The management API under load, in one run against our server:

    python -m tests.bench.api_load [--scale 100000] [--clients 8] [--ops 20000] [--rounds 5]
                                   [--poll-rate 4]

1. registers --scale targets over iSNS, PER_ENTITY targets per DevAttrReg (one entity
   and portal each; RFC 4171 lets one registration carry many nodes), so 100,000 nodes
   take a thousand requests rather than a hundred thousand;
2. iSNS queries/s with --clients clients in --rounds alternating rounds: the API idle,
   the API polled by another process walking /api/v1/nodes page by page (limit 1000) at
   --poll-rate pages a second (an operator's page, a dashboard), and as fast as it is
   answered (a worst case: the API takes the event loop whenever it can); the medians;
3. the API's latency for a 1,000-node page (p50, p99) over two full walks of the
   registry with iSNS idle, and while iSNS was loaded (from the polled rounds);
4. how long a /metrics scrape takes at that size (median of SCRAPES).

Everything is on 127.0.0.1; every loop is bounded by a count and a time limit. The
poller runs in its own process, so it competes with the server for CPU, not with the
load generator for the GIL. Quote ratios: absolute numbers depend on the machine.
"""

import argparse
import asyncio
import http.client
import json
import multiprocessing
import statistics
import tempfile
import time
import urllib.parse
from ipaddress import IPv4Address
from multiprocessing.synchronize import Event
from pathlib import Path

from isns_server.isnsp.constants import FunctionId, NodeType, Tag
from isns_server.isnsp.messages import Attribute, Message, PortNumber, request

from ..processes import OurServer, free_port, wait_for_port
from .isns_load import FILL_TIME_LIMIT, initiator_registration, measure, percentile, query, target

PAGE = 1000
PER_ENTITY = 100  # targets per DevAttrReg while filling the registry
WALK_TIME_LIMIT = 120.0  # seconds for one walk of the whole registry
SCRAPES = 5


def bulk_registration(n: int) -> Message:
    """Entity `n` with one portal and targets n*PER_ENTITY .. (n+1)*PER_ENTITY-1."""
    first = n * PER_ENTITY
    nodes = [
        attr
        for t in range(first, first + PER_ENTITY)
        for attr in (
            Attribute(Tag.ISCSI_NAME, target(t)),
            Attribute(Tag.ISCSI_NODE_TYPE, int(NodeType.TARGET)),
        )
    ]
    return request(
        FunctionId.DEV_ATTR_REG,
        0,
        Attribute(Tag.ISCSI_NAME, target(first)),
        keys=(Attribute(Tag.ENTITY_IDENTIFIER, f"bulk-{n}"),),
        operating=(
            Attribute(Tag.PORTAL_IP_ADDRESS, IPv4Address(0x7F000001 + n)),
            Attribute(Tag.PORTAL_TCP_UDP_PORT, PortNumber(3260)),
            *nodes,
        ),
    )


def page(connection: http.client.HTTPConnection, token: str, cursor: str | None) -> str | None:
    """One page of /api/v1/nodes; the next cursor."""
    query_string = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
    connection.request(
        "GET",
        "/api/v1/nodes?" + urllib.parse.urlencode(query_string),
        headers={"Authorization": f"Bearer {token}"},
    )
    answer = connection.getresponse()
    body = json.loads(answer.read())
    if answer.status != 200:
        raise RuntimeError(f"API answered {answer.status}: {body}")
    next_cursor: str | None = body["next_cursor"]
    return next_cursor


def walk(
    port: int, token: str, deadline: float, stop: Event | None = None, pause: float = 0.0
) -> list[float]:
    """Page latencies of one walk of every node (cut short by `deadline` or `stop`),
    `pause` seconds between pages."""
    latencies = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        cursor: str | None = None
        while time.monotonic() < deadline and not (stop and stop.is_set()):
            started = time.perf_counter()
            cursor = page(connection, token, cursor)
            latencies.append(time.perf_counter() - started)
            if cursor is None:
                break
            if pause:
                time.sleep(pause)
    finally:
        connection.close()
    return latencies


def scrape_seconds(port: int, token: str) -> float:
    """The median time of SCRAPES scrapes of /metrics."""
    times = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        for _ in range(SCRAPES):
            started = time.perf_counter()
            connection.request("GET", "/metrics", headers={"Authorization": f"Bearer {token}"})
            answer = connection.getresponse()
            answer.read()
            if answer.status != 200:
                raise RuntimeError(f"/metrics answered {answer.status}")
            times.append(time.perf_counter() - started)
    finally:
        connection.close()
    return statistics.median(times)


def poll(
    port: int,
    token: str,
    pause: float,
    stop: Event,
    results: "multiprocessing.Queue[list[float]]",
) -> None:
    """In a child process: walk the registry again and again until `stop`."""
    latencies: list[float] = []
    deadline = time.monotonic() + WALK_TIME_LIMIT
    while not stop.is_set() and time.monotonic() < deadline:
        latencies += walk(port, token, deadline, stop, pause)
    results.put(latencies)


async def fill(port: int, scale: int) -> int:
    """Register the bench initiator and about `scale` targets (8 clients, PER_ENTITY
    each time); how many."""
    await measure(port, lambda n: initiator_registration(), 1, 1)
    entities = 8 * max(1, scale // (8 * PER_ENTITY))
    done, _, _ = await measure(port, bulk_registration, 8, entities, FILL_TIME_LIMIT)
    if done < entities:
        raise RuntimeError(f"only {done} of {entities} registrations in {FILL_TIME_LIMIT} s")
    return entities * PER_ENTITY


def one_round(
    isns_port: int, api_port: int, token: str, args: argparse.Namespace, pause: float | None
) -> tuple[float, list[float]]:
    """iSNS queries/s over one round, and the page latencies of a poller running
    meanwhile with `pause` seconds between pages (None: no poller)."""
    count = args.count

    def asked(n: int) -> Message:
        return query((n * 7919) % count)

    if pause is None:
        return asyncio.run(measure(isns_port, asked, args.clients, args.ops))[1], []
    fork = multiprocessing.get_context("fork")  # between event loops: nothing is running
    stop, results = fork.Event(), fork.Queue()
    poller = fork.Process(target=poll, args=(api_port, token, pause, stop, results))
    poller.start()
    try:
        rate = asyncio.run(measure(isns_port, asked, args.clients, args.ops))[1]
    finally:
        stop.set()
    latencies = results.get(timeout=WALK_TIME_LIMIT + 30)
    poller.join(30)
    return rate, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100_000, help="targets registered")
    parser.add_argument("--clients", type=int, default=8, help="concurrent iSNS clients")
    parser.add_argument("--ops", type=int, default=20_000, help="iSNS queries per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each kind")
    parser.add_argument("--poll-rate", type=float, default=4.0, help="paced API pages a second")
    args = parser.parse_args()
    # Seconds between pages for each kind of round; None: the API is not polled.
    kinds: dict[str, float | None] = {
        "API idle": None,
        f"API polled, {args.poll_rate:g} pages/s": 1 / args.poll_rate,
        "API polled as fast as it answers": 0.0,
    }
    rates: dict[str, list[float]] = {kind: [] for kind in kinds}
    pages: dict[str, list[float]] = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as tmp:
        server = OurServer(Path(tmp), registration_period=3600)
        api_port = free_port()
        server.configure(
            store={"backend": "sqlite", "durable": False}, api={"listen": f"127.0.0.1:{api_port}"}
        )
        server.start()
        assert server.process is not None
        wait_for_port(api_port, server.process)
        token = (Path(tmp) / "data" / "api-admin.token").read_text().strip()
        try:
            started = time.perf_counter()
            args.count = asyncio.run(fill(server.port, args.scale))
            print(f"registered {args.count:,} targets in {time.perf_counter() - started:.1f} s")
            for _ in range(args.rounds):  # alternating, so drift hits every kind alike
                for kind, pause in kinds.items():
                    rate, latencies = one_round(server.port, api_port, token, args, pause)
                    rates[kind].append(rate)
                    pages[kind] += latencies
            quiet = walk(api_port, token, time.monotonic() + WALK_TIME_LIMIT)
            quiet += walk(api_port, token, time.monotonic() + WALK_TIME_LIMIT)
            scrape = scrape_seconds(api_port, token)
        finally:
            server.stop()
    report(args, rates, pages, quiet)
    print(f"| /metrics scrape, median of {SCRAPES}, ms | {scrape * 1e3:.1f} |")


def report(
    args: argparse.Namespace,
    rates: dict[str, list[float]],
    pages: dict[str, list[float]],
    quiet: list[float],
) -> None:
    def ms(values: list[float], fraction: float) -> str:
        return f"{percentile(values, fraction) * 1e3:.1f}"

    idle = statistics.median(rates["API idle"])
    print(f"\n| {args.count:,} nodes, {args.clients} iSNS clients, {args.rounds} rounds | value |")
    print("|---|---:|")
    for kind, values in rates.items():
        rate = statistics.median(values)
        runs = ", ".join(f"{r:,.0f}" for r in values)
        print(f"| iSNS queries/s, {kind} (median of {runs}) | {rate:,.0f} ({rate / idle:.2f}) |")
    quiet_ms = f"{ms(quiet, 0.5)} / {ms(quiet, 0.99)}"
    print(
        f"| API page of {PAGE} nodes, iSNS idle: p50 / p99 ms ({len(quiet)} pages) | {quiet_ms} |"
    )
    for kind, values in pages.items():
        if values:
            print(
                f"| API page while iSNS is loaded, {kind}: p50 / p99 ms ({len(values)} pages) "
                f"| {ms(values, 0.5)} / {ms(values, 0.99)} |"
            )


if __name__ == "__main__":
    main()
