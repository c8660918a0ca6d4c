"""Restart at scale: memory and time to listen after a restart that loads the registry.

    python -m tests.bench.restart [--entities 100000] [--durable]

For each count: our server registers that many entities (each with a portal and a
target) from 16 concurrent clients over iSNS, as real clients do, and its RSS is read
from /proc; then it is stopped and started again on the same SQLite file, and the bench
measures the time from starting the process until its iSNS port accepts a connection
(and the CPU time the server used until then: this machine is shared), until it answers
a query for the last entity registered, and the RSS then. The server binds its
listeners only once the registry is loaded, so nothing is answered before.
Everything is on 127.0.0.1; every loop is bounded by a count and a time limit.
"""

import argparse
import asyncio
import os
import socket
import tempfile
import time
from pathlib import Path

from isns_server.isnsp.codec import StreamDecoder, encode_message
from isns_server.isnsp.constants import Status

from ..processes import OurServer
from .isns_load import FILL_TIME_LIMIT, initiator_registration, measure, query, registration

CLIENTS = 16
ANSWER_TIMEOUT = 60.0  # seconds for the first query after the restart


def rss_mib(server: OurServer) -> float:
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc status")


def cpu_seconds(server: OurServer) -> float:
    """User plus system CPU time the server process has used (on a shared machine, the
    part of its wall time that is its own work)."""
    assert server.process is not None
    with open(f"/proc/{server.process.pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_answer(port: int, n: int) -> Status:
    """The status of a DevAttrQry for target `n`, on a fresh connection."""
    message = query(n)
    with socket.create_connection(("127.0.0.1", port), timeout=ANSWER_TIMEOUT) as sock:
        sock.sendall(b"".join(encode_message(message)))
        decoder = StreamDecoder()
        deadline = time.monotonic() + ANSWER_TIMEOUT
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed the connection without answering")
            decoder.receive_data(data)
            answer = decoder.next_message()
            if answer is not None:
                assert answer.status is not None
                return Status(answer.status)
    raise RuntimeError(f"no answer within {ANSWER_TIMEOUT} s")


def server(workdir: Path, durable: bool) -> OurServer:
    ours = OurServer(workdir, registration_period=3600)
    ours.configure(store={"backend": "sqlite", "durable": durable})
    return ours


def run(workdir: Path, entities: int, durable: bool) -> dict[str, float]:
    workdir.mkdir(parents=True)
    live = server(workdir, durable).start()
    try:

        async def fill() -> int:
            await measure(live.port, lambda n: initiator_registration(), 1, 1)
            done, _, _ = await measure(live.port, registration, CLIENTS, entities, FILL_TIME_LIMIT)
            return done

        done = asyncio.run(fill())
        if done < CLIENTS * (entities // CLIENTS):
            raise RuntimeError(f"only {done} of {entities} registrations in {FILL_TIME_LIMIT} s")
        last = done - 1
        if first_answer(live.port, last) != Status.SUCCESSFUL:
            raise RuntimeError(f"target {last} not found after registering it")
        live_rss = rss_mib(live)
    finally:
        code = live.stop()
    if code != 0:
        raise RuntimeError(f"the server exited with {code} when stopped:\n{live.log()}")
    restarted = server(workdir, durable)
    started = time.monotonic()
    restarted.start()  # returns once the iSNS port accepts a connection
    try:
        listening = time.monotonic() - started
        listening_cpu = cpu_seconds(restarted)
        status = first_answer(restarted.port, last)
        answered = time.monotonic() - started
        if status != Status.SUCCESSFUL:
            raise RuntimeError(f"after the restart, target {last} was answered {status.name}")
        return {
            "entities": done,
            "live": live_rss,
            "restarted": rss_mib(restarted),
            "listening": listening,
            "listening cpu": listening_cpu,
            "answered": answered,
        }
    finally:
        restarted.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--entities", default="100000", help="comma-separated entity counts")
    parser.add_argument(
        "--durable", action="store_true", help="fsync each group commit (default: off)"
    )
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(c) for c in args.entities.split(",")):
            rows.append(run(Path(tmp) / str(count), count, args.durable))
    print(
        "\n| entities | RSS after live registration | RSS after restart | ratio "
        "| time to listen (its CPU time) | time to first answer |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['entities']:,.0f} | {row['live']:,.0f} MiB | {row['restarted']:,.0f} MiB "
            f"| {row['restarted'] / row['live']:.2f}x "
            f"| {row['listening']:.2f} s ({row['listening cpu']:.2f} s) "
            f"| {row['answered']:.2f} s |"
        )


if __name__ == "__main__":
    main()
