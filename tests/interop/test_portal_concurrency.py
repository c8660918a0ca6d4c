"""Several initiators at once: six qemu-io sessions (libiscsi), three per LUN on two LUNs
of one target, each writing its own region with its own patterns (4 MiB asynchronous
writes, flushes, 64 KiB writes) and reading every one back with pattern checks, all at
the same time. Checks the worker threads and the reads that run at once on the event
loop keep each LUN's data and order intact."""

import subprocess
from pathlib import Path

import pytest

from ..peers import require
from ..processes import OurServer

pytestmark = pytest.mark.interop

TARGET = "iqn.2026-11.org.example.test:concurrency"
SESSIONS, ROUNDS = 6, 20
REGION = 16 << 20  # per session, within its LUN


def commands(session: int) -> list[str]:
    base = (session // 2) * REGION
    script: list[str] = []
    for round_ in range(ROUNDS):
        pattern = (session * 37 + round_) % 251 + 1
        script += [
            f"aio_write -P {pattern} {base} 4M",
            "aio_flush",
            f"read -P {pattern} {base} 4M",
            f"write -P {pattern} {base + (4 << 20)} 64k",
            f"read -P {pattern} {base + (4 << 20)} 64k",
        ]
    return [argument for command in script for argument in ("-c", command)]


def test_sessions_writing_and_reading_at_once_each_see_their_own_data(
    our_server: OurServer, tmp_path: Path
) -> None:
    port = our_server.enable_portal()
    luns = [{"lun": n, "path": str(tmp_path / f"lun{n}.img"), "size": "64MiB"} for n in (0, 1)]
    our_server.configure(targets=[{"name": TARGET, "luns": luns}])
    our_server.start()
    qemu_io = require("qemu-io")
    runs = [
        subprocess.Popen(
            [qemu_io, "-f", "raw", *commands(n), f"iscsi://127.0.0.1:{port}/{TARGET}/{n % 2}"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for n in range(SESSIONS)
    ]
    for n, run in enumerate(runs):
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output[-2000:]
        assert "Pattern verification failed" not in output, f"session {n}: {output[-2000:]}"
        assert output.count("read ") == 2 * ROUNDS, output[-2000:]
    log = our_server.log()
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
