"""Block data path: our portal against tgt's `tgtd`, side by side in one run.

    python -m tests.bench.datapath [--seconds 10] [--size 1GiB] [--rounds 3]

Both serve the same kind of LUN: a file of --size in a temporary directory, written full
of zeros and synced first, so writes overwrite allocated blocks and neither target
measures the file system's block allocation (a sparse file's delayed allocation, or the
unwritten extents posix_fallocate leaves, whose first write costs ~160 us per 64 KiB on
the development VM against ~9 us for an overwrite). Reads are measured with
libiscsi's `iscsi-perf` (64 KiB sequential at queue depth 32, 4 KiB random at 32 and 1),
writes with `qemu-img bench -w` (64 KiB and 4 KiB, queue depth 32 and 1; qemu-img bench
is sequential only). Each workload runs --rounds times on each target, alternating, and
the table shows the medians: on a shared machine one run can be off by half. Everything
is on 127.0.0.1; every run is bounded by --seconds or a request count. Quote the ratios:
absolute numbers depend on the machine.

Beside the rates, each target's CPU time per request (all its threads, user and system,
from /proc) and the load generator's: whether a target is slower because it spends more
CPU per request or because it spreads less of it over the machine's CPUs.
"""

import argparse
import os
import re
import resource
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..peers import require
from ..processes import OurServer
from ..tgtd import Tgtd

TARGET = "iqn.2026-11.org.example.bench:disk"
INITIATOR = "iqn.2026-11.org.example.bench:initiator"
BLOCK = 512


@dataclass(frozen=True)
class Measured:
    rate: float  # requests per second
    server_cpu: float  # seconds of CPU per request, the target's process
    client_cpu: float  # the same, the load generator's


@dataclass(frozen=True)
class Row:
    name: str
    ours: Measured
    tgtd: Measured


@dataclass(frozen=True)
class Workload:
    name: str
    tool: str  # "read" (iscsi-perf) or "write" (qemu-img bench -w)
    size: int  # bytes per request
    depth: int
    random: bool = False


WORKLOADS = (
    Workload("read 64 KiB seq QD32", "read", 65536, 32),
    Workload("read 4 KiB rand QD32", "read", 4096, 32, random=True),
    Workload("read 4 KiB rand QD1", "read", 4096, 1, random=True),
    Workload("write 64 KiB seq QD32", "write", 65536, 32),
    Workload("write 4 KiB seq QD32", "write", 4096, 32),
    Workload("write 4 KiB seq QD1", "write", 4096, 1),
)


def parse_size(text: str) -> int:
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}
    for unit, factor in units.items():
        if text.endswith(unit):
            return int(text[: -len(unit)]) * factor
    return int(text)


def process_cpu(pid: int) -> float:
    """Seconds of CPU the process has used so far, all threads, user and system."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def measure(pid: int, url: str, workload: Workload, seconds: float, capacity: int) -> Measured:
    """One run of `workload` against the target process `pid` serving `url`."""
    server, client, started = process_cpu(pid), children_cpu(), time.monotonic()
    if workload.tool == "read":
        rate = iscsi_perf(url, workload, seconds)
    else:
        rate = qemu_bench(url, workload, seconds, capacity)
    requests = rate * (time.monotonic() - started)
    return Measured(
        rate,
        (process_cpu(pid) - server) / requests,
        (children_cpu() - client) / requests,
    )


def iscsi_perf(url: str, workload: Workload, seconds: float) -> float:
    """Requests per second from iscsi-perf's final summary line."""
    command = [require("iscsi-perf"), "-i", INITIATOR, "-m", str(workload.depth)]
    command += ["-b", str(workload.size // BLOCK), "-t", str(int(seconds))]
    command += ["-r"] if workload.random else []
    done = subprocess.run([*command, url], capture_output=True, text=True, timeout=seconds + 60)
    rates = re.findall(r"^iops average (\d+)", done.stdout, re.M)
    if not rates:
        raise RuntimeError(f"iscsi-perf said: {done.stdout[-500:]} {done.stderr[-500:]}")
    return float(rates[-1])


def qemu_bench(url: str, workload: Workload, seconds: float, capacity: int) -> float:
    """Requests per second of `qemu-img bench -w`, its count sized to about --seconds."""
    count = max(1000, min(200000, int(seconds * 4000)))
    count = min(count, capacity // workload.size)
    command = [require("qemu-img"), "bench", "-w", "-f", "raw", "-t", "none", "-n"]
    command += ["-c", str(count), "-d", str(workload.depth), "-s", str(workload.size)]
    started = time.monotonic()
    done = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=seconds * 10 + 60
    )
    found = re.search(r"Run completed in ([\d.]+) seconds", done.stdout)
    elapsed = float(found.group(1)) if found else time.monotonic() - started
    if done.returncode != 0:
        raise RuntimeError(f"qemu-img bench said: {done.stdout[-500:]} {done.stderr[-500:]}")
    return count / elapsed


def run(workdir: Path, seconds: float, size: int, rounds: int) -> list[Row]:
    ours_lun, tgt_lun = workdir / "ours.img", workdir / "tgt.img"
    for path in (ours_lun, tgt_lun):
        with path.open("wb") as file:
            zeros = bytes(1 << 20)
            for start in range(0, size, len(zeros)):
                file.write(zeros[: size - start])
            file.flush()
            os.fsync(file.fileno())
    ours = OurServer(workdir / "ours")
    (workdir / "ours").mkdir()
    port = ours.enable_portal()
    ours.configure(
        targets=[{"name": TARGET, "luns": [{"lun": 1, "path": str(ours_lun), "size": size}]}]
    )
    ours.start()
    tgt = Tgtd(workdir)
    tgt.add_target(1, TARGET, tgt_lun)
    assert ours.process is not None
    targets = {
        "ours": (ours.process.pid, f"iscsi://127.0.0.1:{port}/{TARGET}/1"),
        "tgtd": (tgt.process.pid, f"iscsi://127.0.0.1:{tgt.port}/{TARGET}/1"),
    }
    rows = []
    try:
        for workload in WORKLOADS:
            runs: dict[str, list[Measured]] = {name: [] for name in targets}
            for _ in range(rounds):
                for name, (pid, url) in targets.items():
                    runs[name].append(measure(pid, url, workload, seconds, size))
            rows.append(Row(workload.name, *(median(runs[name]) for name in targets)))
            every = "; ".join(
                f"{name} " + " ".join(f"{m.rate:.0f}" for m in measured)
                for name, measured in runs.items()
            )
            print(f"{workload.name}: {every} (requests/s)")
    finally:
        tgt.stop()
        ours.stop()
    return rows


def median(runs: list[Measured]) -> Measured:
    """The run with the median rate (its CPU figures with it)."""
    return sorted(runs, key=lambda m: m.rate)[len(runs) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datapath-") as directory:
        rows = run(Path(directory), options.seconds, parse_size(options.size), options.rounds)
    print("\n| workload | ours | tgtd | ours / tgtd |\n|---|---|---|---|")
    for row in rows:
        ours, tgt = row.ours.rate, row.tgtd.rate
        if "64 KiB" in row.name:
            unit = f"{ours * 65536 / 2**20:.0f} MiB/s | {tgt * 65536 / 2**20:.0f} MiB/s"
        else:
            unit = f"{ours:.0f} IOPS | {tgt:.0f} IOPS"
        print(f"| {row.name} | {unit} | {ours / tgt:.2f}x |")
    print(
        "\nCPU per request, µs: the target's process (all threads), the load generator's\n\n"
        "| workload | ours | its client | tgtd | its client | ours / tgtd |\n"
        "|---|---|---|---|---|---|"
    )
    for row in rows:
        print(
            f"| {row.name} | {row.ours.server_cpu * 1e6:.0f} | {row.ours.client_cpu * 1e6:.0f}"
            f" | {row.tgtd.server_cpu * 1e6:.0f} | {row.tgtd.client_cpu * 1e6:.0f}"
            f" | {row.ours.server_cpu / row.tgtd.server_cpu:.2f}x |"
        )


if __name__ == "__main__":
    main()
