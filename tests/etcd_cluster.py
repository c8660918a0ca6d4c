"""A 1- or 3-member etcd cluster on 127.0.0.1 for tests and benches, each member with its
own data directory and free ports, started as child processes and stopped by the test.
With `tls` (a certificate for 127.0.0.1 and its key) clients must use https and present
a certificate that one signed (the test uses the same self-signed one)."""

import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

from .polling import eventually_sync
from .processes import free_port, stop_process


class EtcdMember:
    def __init__(self, name: str, workdir: Path, tls: tuple[Path, Path] | None = None) -> None:
        self.name = name
        self.tls = tls
        self.data_dir = workdir / f"etcd-{name}"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.log_path = workdir / f"etcd-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, etcd: str, initial_cluster: str, token: str) -> None:
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [
                    etcd,
                    "--name",
                    self.name,
                    "--data-dir",
                    str(self.data_dir),
                    "--listen-client-urls",
                    self.client_url,
                    "--advertise-client-urls",
                    self.client_url,
                    "--listen-peer-urls",
                    self.peer_url,
                    "--initial-advertise-peer-urls",
                    self.peer_url,
                    "--initial-cluster",
                    initial_cluster,
                    "--initial-cluster-state",
                    "new",
                    "--initial-cluster-token",
                    token,
                    # Quick elections on loopback: a killed member's loss is noticed fast.
                    "--heartbeat-interval",
                    "50",
                    "--election-timeout",
                    "500",
                    *self._tls_options(),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def _tls_options(self) -> list[str]:
        if self.tls is None:
            return []
        cert, key = (str(path) for path in self.tls)
        return ["--cert-file", cert, "--key-file", key, "--trusted-ca-file", cert,
                "--client-cert-auth"]  # fmt: skip

    def healthy(self) -> bool:
        context = None
        if self.tls is not None:
            context = ssl.create_default_context(cafile=str(self.tls[0]))
            context.load_cert_chain(*self.tls)
        try:
            with urllib.request.urlopen(
                f"{self.client_url}/health", timeout=1, context=context
            ) as answer:
                return b'"true"' in answer.read()
        except (OSError, urllib.error.URLError):
            return False

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 10)


class EtcdCluster:
    """`size` members (1 or 3); `start` returns once every member reports healthy."""

    def __init__(
        self, etcd: str, workdir: Path, size: int = 3, tls: tuple[Path, Path] | None = None
    ) -> None:
        self.etcd = etcd
        self.members = [EtcdMember(f"m{i}", workdir, tls) for i in range(size)]

    @property
    def endpoints(self) -> list[str]:
        return [member.client_url for member in self.members]

    def start(self, timeout: float = 30.0) -> "EtcdCluster":
        for member in self.members:
            self.restart(member)

        def healthy() -> bool:
            for member in self.members:
                assert member.process is not None
                if member.process.poll() is not None:
                    raise RuntimeError(
                        f"etcd member {member.name} exited with {member.process.returncode}: "
                        f"{member.log_path.read_text(errors='replace')[-2000:]}"
                    )
            return all(member.healthy() for member in self.members)

        eventually_sync(healthy, what="every etcd member healthy", within=timeout, every=0.1)
        return self

    def restart(self, member: EtcdMember) -> None:
        """Start `member` (again: with its data directory it rejoins as it was)."""
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        token = f"isns-test-{self.members[0].peer_port}"  # one cluster: one token
        member.start(self.etcd, initial, token)

    def stop(self) -> None:
        for member in self.members:
            member.stop()
