"""The management API under load, in one run against our server:

    python -m tests.bench.api_load [--scale 100000] [--clients 8] [--ops 20000]

1. registers --scale targets over iSNS;
2. iSNS queries/s with --clients clients: without API traffic, while a poller thread
   walks /api/v1/nodes page by page (limit 1000) at --poll-rate pages a second (a
   dashboard), and while it walks as fast as it is answered;
3. the API's latency for a 1,000-node page (p50, p99) over full walks of the registry.

Everything is on 127.0.0.1; every loop is bounded by a count and a time limit. The
poller shares this process (and its GIL) with the iSNS load generator, so the "while
polled" rate is a pessimistic bound. Quote ratios: absolute numbers depend on the machine.
"""

import argparse
import asyncio
import http.client
import json
import statistics
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

from isns_server.isnsp.messages import Message

from ..processes import OurServer, free_port, wait_for_port
from .isns_load import (
    FILL_TIME_LIMIT,
    initiator_registration,
    measure,
    percentile,
    query,
    registration,
)

PAGE = 1000
POLL_TIME_LIMIT = 120.0  # seconds for the latency walks


class Poller:
    """Walks /api/v1/nodes with limit=1000 in a thread until stopped; page latencies."""

    def __init__(self, port: int, token: str, interval: float = 0.0) -> None:
        self.port = port
        self.interval = interval  # seconds between pages
        self.headers = {"Authorization": f"Bearer {token}"}
        self.latencies: list[float] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def page(self, connection: http.client.HTTPConnection, cursor: str | None) -> str | None:
        query = {"limit": str(PAGE), **({"cursor": cursor} if cursor else {})}
        started = time.perf_counter()
        connection.request(
            "GET", "/api/v1/nodes?" + urllib.parse.urlencode(query), headers=self.headers
        )
        answer = connection.getresponse()
        body = json.loads(answer.read())
        self.latencies.append(time.perf_counter() - started)
        if answer.status != 200:
            raise RuntimeError(f"API answered {answer.status}: {body}")
        next_cursor: str | None = body["next_cursor"]
        return next_cursor

    def walk(self, deadline: float) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            cursor = self.page(connection, None)
            while cursor is not None and not self.stopped.is_set() and time.monotonic() < deadline:
                self.stopped.wait(self.interval)
                cursor = self.page(connection, cursor)
        finally:
            connection.close()

    def run(self) -> None:
        deadline = time.monotonic() + POLL_TIME_LIMIT
        while not self.stopped.is_set() and time.monotonic() < deadline:
            self.walk(deadline)


async def fill(port: int, scale: int) -> None:
    await measure(port, lambda n: initiator_registration(), 1, 1)
    count = 16 * (scale // 16)
    done, _, _ = await measure(port, registration, 16, count, FILL_TIME_LIMIT)
    if done < count:
        raise RuntimeError(f"only {done} of {count} registrations in {FILL_TIME_LIMIT} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--scale", type=int, default=100_000, help="targets registered")
    parser.add_argument("--clients", type=int, default=8, help="concurrent iSNS clients")
    parser.add_argument("--ops", type=int, default=20_000, help="iSNS queries per measurement")
    parser.add_argument("--poll-rate", type=float, default=4.0, help="paced API pages a second")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved measurement rounds")
    args = parser.parse_args()
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
            asyncio.run(fill(server.port, args.scale))
            count = 16 * (args.scale // 16)

            def asked(n: int) -> Message:
                return query((n * 7919) % count)

            def rate(poller: Poller | None) -> float:
                if poller is not None:
                    poller.thread.start()
                _, answered, _ = asyncio.run(measure(server.port, asked, args.clients, args.ops))
                if poller is not None:
                    poller.stopped.set()
                    poller.thread.join()
                    pollers.append(poller)
                return answered

            # Interleaved rounds, medians: the machine's own noise moves single runs a lot.
            pollers: list[Poller] = []
            rates: dict[str, list[float]] = {"idle": [], "paced": [], "nonstop": []}
            for _ in range(args.rounds):
                rates["idle"].append(rate(None))
                rates["paced"].append(rate(Poller(api_port, token, 1 / args.poll_rate)))
                rates["nonstop"].append(rate(Poller(api_port, token)))
            quiet = Poller(api_port, token)
            quiet.walk(time.monotonic() + POLL_TIME_LIMIT)
            quiet.walk(time.monotonic() + POLL_TIME_LIMIT)
        finally:
            server.stop()
    print(f"\n| at {args.scale:,} nodes, {args.clients} iSNS clients | value |")
    print("|---|---:|")
    idle = statistics.median(rates["idle"])
    labels = {"idle": "API idle", "paced": f"API polled {args.poll_rate:g} pages/s"}
    labels["nonstop"] = "API polled nonstop"
    for key, label in labels.items():
        runs = ", ".join(f"{r:,.0f}" for r in rates[key])
        median = statistics.median(rates[key])
        print(f"| iSNS queries/s, {label} (median of {runs}) | {median:,.0f} |")
        if key != "idle":
            print(f"| ratio {label} / idle | {median / idle:.2f} |")
    walked = quiet.latencies
    p50 = percentile(walked, 0.5) * 1e3
    print(f"| API page of {PAGE} nodes, p50 ms ({len(walked)} pages) | {p50:.1f} |")
    print(f"| API page of {PAGE} nodes, p99 ms | {percentile(walked, 0.99) * 1e3:.1f} |")
    during = [t for p in pollers if p.interval == 0 for t in p.latencies]
    if during:
        print(f"| API page p50 ms while iSNS is loaded | {percentile(during, 0.5) * 1e3:.1f} |")
        print(f"| API page p99 ms while iSNS is loaded | {percentile(during, 0.99) * 1e3:.1f} |")


if __name__ == "__main__":
    main()
