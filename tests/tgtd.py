"""tgt's `tgtd` as a child process on loopback, for interop tests and the data-path bench."""

import contextlib
import re
import subprocess
from pathlib import Path

from .peers import require
from .processes import free_port, stop_process, wait_for_port


class Tgtd:
    """tgtd in the foreground, its iSCSI portal only on 127.0.0.1 at a free port, with its
    own control socket (`-C`), so it never meets a system tgtd or another test's."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.control = str(free_port() % 10000)  # the control socket's number
        self.log_path = workdir / "tgtd.log"
        self.process = subprocess.Popen(
            [require("tgtd"), "-f", "-C", self.control, "--iscsi", f"portal=127.0.0.1:{self.port}"],
            stdout=self.log_path.open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_for_port(self.port, self.process)

    def admin(self, *args: str) -> str:
        """Run tgtadm against this tgtd; its output. Raises with tgtadm's own message."""
        command = [require("tgtadm"), "-C", self.control, "--lld", "iscsi", *args]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"tgtadm {' '.join(args)} failed: {done.stdout}{done.stderr}")
        return done.stdout

    def add_target(self, tid: int, name: str, lun: Path) -> None:
        """Target `tid` called `name`, with `lun` as LUN 1 (tgtd's LUN 0 is its controller),
        open to every initiator."""
        target = ("--tid", str(tid))
        self.admin("--mode", "target", "--op", "new", *target, "--targetname", name)
        store = ("--backing-store", str(lun))
        self.admin("--mode", "logicalunit", "--op", "new", *target, "--lun", "1", *store)
        self.admin("--mode", "target", "--op", "bind", *target, "--initiator-address", "ALL")

    def delete_target(self, tid: int) -> None:
        self.admin("--mode", "target", "--op", "delete", "--tid", str(tid))

    def use_isns(self, port: int) -> None:
        """Point tgtd's iSNS client at 127.0.0.1:`port` and turn it on: from then on it
        registers each of its targets there, with this tgtd's portal."""
        settings = (("iSNSServerIP", "127.0.0.1"), ("iSNSServerPort", str(port)), ("iSNS", "On"))
        for name, value in settings:
            self.admin("--mode", "sys", "--op", "update", "--name", name, "--value", value)

    def stop(self) -> None:
        """tgtd's own shutdown, as SIGTERM does not stop it: delete its targets (dropping
        their sessions), then the system. A signal only if that fails."""
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            shown = self.admin("--mode", "target", "--op", "show")
            for tid in re.findall(r"^Target (\d+):", shown, re.MULTILINE):
                self.admin("--mode", "target", "--op", "delete", "--force", "--tid", tid)
            self.admin("--mode", "system", "--op", "delete")
        stop_process(self.process, 10)
