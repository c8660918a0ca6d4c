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
"""

import argparse
import os
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..peers import require
from ..processes import OurServer, free_port, wait_for_port

TARGET = "iqn.2026-11.org.example.bench:disk"
INITIATOR = "iqn.2026-11.org.example.bench:initiator"
BLOCK = 512


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


class Tgtd:
    """tgtd in the foreground on a free loopback port and its own control port."""

    def __init__(self, workdir: Path, lun: Path) -> None:
        self.port = free_port()
        self.control = str(free_port() % 10000)  # the control socket's number
        tgtd = require("tgtd")
        self.process = subprocess.Popen(
            [tgtd, "-f", "-C", self.control, "--iscsi", f"portal=127.0.0.1:{self.port}"],
            stdout=(workdir / "tgtd.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.process)
        self.admin("--mode", "target", "--op", "new", "--tid", "1", "--targetname", TARGET)
        self.admin(
            "--mode", "logicalunit", "--op", "new", "--tid", "1", "--lun", "1",
            "--backing-store", str(lun),
        )  # fmt: skip
        self.admin("--mode", "target", "--op", "bind", "--tid", "1", "--initiator-address", "ALL")

    def admin(self, *args: str) -> None:
        command = [require("tgtadm"), "-C", self.control, "--lld", "iscsi", *args]
        subprocess.run(command, check=True, capture_output=True, timeout=30)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def run(workdir: Path, seconds: float, size: int, rounds: int) -> list[tuple[str, float, float]]:
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
    tgt = Tgtd(workdir, tgt_lun)
    urls = {
        "ours": f"iscsi://127.0.0.1:{port}/{TARGET}/1",
        "tgtd": f"iscsi://127.0.0.1:{tgt.port}/{TARGET}/1",
    }
    rows = []
    try:
        for workload in WORKLOADS:
            rates: dict[str, list[float]] = {name: [] for name in urls}
            for _ in range(rounds):
                for name, url in urls.items():
                    if workload.tool == "read":
                        rates[name].append(iscsi_perf(url, workload, seconds))
                    else:
                        rates[name].append(qemu_bench(url, workload, seconds, size))
            ours_rate, tgt_rate = (statistics.median(rates[name]) for name in urls)
            rows.append((workload.name, ours_rate, tgt_rate))
            every = "; ".join(f"{n} " + " ".join(f"{r:.0f}" for r in rates[n]) for n in urls)
            print(f"{workload.name}: {every} (requests/s)")
    finally:
        tgt.stop()
        ours.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--size", default="1GiB")
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="datapath-") as directory:
        rows = run(Path(directory), options.seconds, parse_size(options.size), options.rounds)
    print("\n| workload | ours | tgtd | ours / tgtd |\n|---|---|---|---|")
    for name, ours, tgt in rows:
        size = 65536 if "64 KiB" in name else 4096
        unit = (
            f"{ours * size / 2**20:.0f} MiB/s | {tgt * size / 2**20:.0f} MiB/s"
            if size == 65536
            else f"{ours:.0f} IOPS | {tgt:.0f} IOPS"
        )
        print(f"| {name} | {unit} | {ours / tgt:.2f}x |")


if __name__ == "__main__":
    main()
