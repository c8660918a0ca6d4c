"""Start our server and open-isns' isnsd as child processes on loopback for tests and benches."""

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from .polling import eventually_sync

# The code under test is this checkout's, even when pytest runs from elsewhere and an
# older copy is installed in site-packages.
_ROOT = str(Path(__file__).resolve().parents[1])
THIS_CHECKOUT = {
    # Each logical unit's state is changed by its worker only: checked under test (the
    # caller's environment may turn it off, as the data-path bench does for production)
    "ISNS_SERVER_CHECK_UNIT_OWNER": "1",
    **os.environ,
    "PYTHONPATH": os.pathsep.join(filter(None, [_ROOT, os.environ.get("PYTHONPATH")])),
}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now and also free for UDP."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port: int = tcp.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    def listening() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before listening")
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True

    eventually_sync(
        listening, what=f"a listener on 127.0.0.1:{port}", within=timeout, ignoring=(OSError,)
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float) -> int:
    """SIGTERM, then SIGKILL if it has not exited after `timeout` seconds; its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


class OurServer:
    """`isns-server` in a child process, iSNS only, on a free loopback port."""

    def __init__(self, workdir: Path, **isns: object) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.log_path = workdir / "isns-server.log"
        self.settings: dict[str, Any] = {  # the YAML document, as a test edits it
            "data_dir": str(workdir / "data"),
            "isns": {"listen": [f"127.0.0.1:{self.port}"], **isns},
            "portal": {"enabled": False},
            "slp": {"enabled": False},
            "mdns": {"enabled": False},
            "api": {"enabled": False},
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.portal_port: int | None = None

    def configure(self, **sections: object) -> None:
        self.settings.update(sections)

    def enable_portal(self, **portal: object) -> int:
        """Run the iSCSI portal too, on a free loopback port (returned)."""
        self.portal_port = free_port()
        self.settings["portal"] = {"listen": [f"127.0.0.1:{self.portal_port}"], **portal}
        return self.portal_port

    def start(self) -> "OurServer":
        config = self.workdir / "isns-server.yaml"
        config.write_text(yaml.safe_dump(self.settings))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "isns_server", "--config", str(config)],
                env=THIS_CHECKOUT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.process)
        if self.portal_port is not None:
            wait_for_port(self.portal_port, self.process)
        return self

    def kill(self) -> None:
        """SIGKILL: no chance to flush anything."""
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> int:
        assert self.process is not None
        return stop_process(self.process, 15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


class OpenIsnsServer:
    """open-isns `isnsd` in the foreground on a free loopback port, with its own database."""

    def __init__(self, workdir: Path, isnsd: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        (workdir / "db").mkdir(parents=True, exist_ok=True)
        self.config = workdir / "isnsd.conf"
        self.config.write_text(
            f"SourceName = iqn.2026-11.org.example.test:isnsd\n"
            f"BindAddress = 127.0.0.1:{self.port}\n"
            f"Database = {workdir / 'db'}\n"
            f"PIDFile = {workdir / 'isnsd.pid'}\n"
            "RegistrationPeriod = 10m\n"
            "DefaultDiscoveryDomain = 1\n"
            "SLPRegister = 0\n"
            "Security = 0\n"
        )
        self.process = subprocess.Popen(
            [isnsd, "-c", str(self.config), "-f"],
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "isnsd.log", "wb"),  # noqa: SIM115 - lives with the process
        )
        wait_for_port(self.port, self.process)

    def stop(self) -> None:
        stop_process(self.process, 10)


def isnsadm(
    isnsadm_path: str, port: int, source: str, *args: str, workdir: Path
) -> tuple[int, str]:
    """Run isnsadm against 127.0.0.1:`port` as `source`; (exit code, stdout+stderr)."""
    config = workdir / f"isnsadm-{port}.conf"
    config.write_text(f"SourceName = {source}\nServerAddress = 127.0.0.1:{port}\nSecurity = 0\n")
    env = {**os.environ, "LC_ALL": "C"}
    done = subprocess.run(
        [isnsadm_path, "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    return done.returncode, done.stdout + done.stderr


def slp_settings(port: int, **slp: object) -> dict[str, object]:
    """An `slp` section: the agent on 127.0.0.1:`port`, multicasting on loopback only."""
    return {"listen": [f"127.0.0.1:{port}"], "interfaces": ["127.0.0.1"], **slp}


class DiscoveryAgentProcess:
    """`discovery-agent` in a child process: SLP on a free loopback port, mirroring the
    iSNS server on 127.0.0.1:`isns_port` as Control Node `node_name`."""

    def __init__(self, workdir: Path, isns_port: int, node_name: str, **slp: object) -> None:
        self.port = free_port()
        self.log_path = workdir / "discovery-agent.log"
        self.config = workdir / "discovery-agent.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "log_level": "debug",
                    "slp": slp_settings(self.port, **slp),
                    "mdns": {"enabled": False},
                    "discovery_agent": {
                        "isns_server": f"127.0.0.1:{isns_port}",
                        "node_name": node_name,
                    },
                }
            )
        )
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "discovery_agent", "--config", str(self.config)],
                env=THIS_CHECKOUT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait_for_port(self.port, self.process)

    def stop(self) -> int:
        return stop_process(self.process, 15)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
