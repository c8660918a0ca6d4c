"""open-isns `isnsdd` (the discovery daemon) as a child process on loopback.

isnsdd registers what local services list in its LocalRegistry file, each portal with its
own UDP socket (BindAddress) as SCN Port and ESI Port and its ESIMinInterval as ESI
Interval, then registers each node for SCNs (object added/updated/removed, targets and
self only). It answers ESIs, and for each SCN it runs SCNCallout with the event and the
node's attributes. Everything here stays on 127.0.0.1: the portal in the LocalRegistry
and the socket it binds.
"""

import subprocess
from pathlib import Path

from .polling import eventually_sync
from .processes import stop_process

CALLOUT = """#!/bin/sh
echo "$@" >> {log}
"""


class DiscoveryDaemon:
    def __init__(
        self, program: str, workdir: Path, server_port: int, node: str, esi_interval: int = 1
    ) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.callouts = workdir / "callouts"
        callout = workdir / "callout.sh"
        callout.write_text(CALLOUT.format(log=self.callouts))
        callout.chmod(0o755)
        # One line per object, isnsadm's attribute syntax, then the owning service.
        (workdir / "registry").write_text(
            f"iscsi-name={node} iscsi-node-type=Initiator owner=test\n"
            "portal-addr=127.0.0.1 portal-port=3260 owner=test\n"
        )
        config = workdir / "isnsdd.conf"
        config.write_text(
            f"SourceName = {node}\n"
            f"ServerAddress = 127.0.0.1:{server_port}\n"
            "BindAddress = 127.0.0.1\n"
            "HostName = isnsdd-test\n"  # its EIDs are <HostName>:<owner>
            f"PIDFile = {workdir / 'isnsdd.pid'}\n"
            f"LocalRegistry = {workdir / 'registry'}\n"
            f"Database = {workdir / 'db'}\n"
            "Security = 0\n"
            f"ESIMinInterval = {esi_interval}\n"
            f"SCNCallout = {callout}\n"
        )
        self.entity = "isnsdd-test:test"
        self.log_path = workdir / "isnsdd.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [program, "-c", str(config), "-f", "-4"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def callout_lines(self) -> list[str]:
        return self.callouts.read_text().splitlines() if self.callouts.exists() else []

    def wait_for_callout(self, text: str, timeout: float = 10) -> str:
        found = eventually_sync(
            lambda: [line for line in self.callout_lines() if text in line],
            what=f"isnsdd to run an SCN callout with {text!r} (its log: {self.log_path})",
            within=timeout,
        )
        return found[0]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: it answers nothing from now on."""
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        stop_process(self.process, 10)
