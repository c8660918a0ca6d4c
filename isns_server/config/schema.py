"""The configuration contract (../shared/DESIGN.md): one frozen dataclass per YAML section.

Field names are the YAML keys. Defaults are the embedded defaults `isns-server` runs on
when no file is given. `field_help` metadata is what a validation error tells the
administrator to write instead.
"""

from dataclasses import dataclass, field
from ipaddress import ip_address
from pathlib import Path
from typing import Any

from ..netaddr import host_port


class ConfigValueError(ValueError):
    """A single value is wrong; the loader adds the key path and line."""


@dataclass(frozen=True, slots=True, order=True)
class ListenAddress:
    """host:port, with IPv6 hosts in brackets ("[::1]:3205")."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int | None = None) -> "ListenAddress":
        host, sep, port_text = text.rpartition(":")
        if text.startswith("[") and "]" in text:
            host, _, rest = text[1:].partition("]")
            sep, port_text = (":", rest[1:]) if rest.startswith(":") else ("", "")
        elif text.count(":") > 1 or not sep:  # bare IPv6 or bare host: no port given
            host, port_text = text, ""
        if not port_text:
            if default_port is None:
                raise ConfigValueError(f"expected host:port (e.g. 127.0.0.1:3205), got {text!r}")
            port_text = str(default_port)
        try:
            ip_address(host)
        except ValueError:
            raise ConfigValueError(
                f"expected an IPv4 or IPv6 address, got {host!r} in {text!r}"
            ) from None
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise ConfigValueError(f"expected a port between 1 and 65535, got {port_text!r}")
        return cls(host, int(port_text))

    def __str__(self) -> str:
        return host_port(self.host, self.port)


_SIZE_UNITS = {"": 1, "B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}


def parse_size(text: str | int) -> int:
    """Bytes from 4096, "512MiB", "1GiB" (binary units only: no ambiguity about 1000 vs 1024)."""
    if isinstance(text, int):
        return text
    number = text.rstrip("BKMGTi")
    unit = text[len(number) :]
    if unit not in _SIZE_UNITS or not number.strip().isdigit():
        raise ConfigValueError(f"expected a size such as 4096, 512MiB or 1GiB, got {text!r}")
    return int(number) * _SIZE_UNITS[unit]


def _help(text: str) -> Any:
    return {"help": text}


@dataclass(frozen=True, slots=True)
class IsnsSection:
    enabled: bool = True
    listen: tuple[ListenAddress, ...] = field(
        default=(ListenAddress("0.0.0.0", 3205),), metadata=_help("addresses for TCP and UDP")
    )
    registration_period: int = field(default=900, metadata=_help("seconds, at least 1"))
    default_dd: bool = True
    control_nodes: tuple[str, ...] = field(default=(), metadata=_help("a list of iSCSI names"))
    control_networks: tuple[str, ...] = field(
        default=("127.0.0.0/8", "::1/128"),
        metadata=_help("networks such as 10.0.0.0/24 that Control Nodes may send from"),
    )
    esi_min_interval: int = field(default=20, metadata=_help("seconds, at least 1"))
    esi_max_interval: int = field(default=300, metadata=_help("seconds, at least 1"))
    esi_retries: int = field(default=3, metadata=_help("a count, at least 1"))
    scn_retries: int = field(default=3, metadata=_help("a count, at least 1"))
    heartbeat_address: ListenAddress | None = None
    heartbeat_interval: int = field(default=60, metadata=_help("seconds, at least 1"))
    max_message_size: int = field(
        default=1 << 20, metadata=_help("bytes of one reassembled iSNS message, e.g. 1MiB")
    )
    # Limits and abuse resistance (docs/isns.md)
    idle_timeout: int = field(
        default=300, metadata=_help("seconds a TCP connection may stay silent, at least 1")
    )
    max_connections: int = field(default=4096, metadata=_help("TCP connections held at once"))
    max_connections_per_source: int = field(
        default=64, metadata=_help("TCP connections one address may hold at once")
    )
    reassembly_budget: int = field(
        default=64 << 20,
        metadata=_help("bytes of unfinished multi-PDU messages, all connections, e.g. 64MiB"),
    )
    reassembly_timeout: int = field(
        default=30, metadata=_help("seconds to finish a multi-PDU message, at least 1")
    )
    udp_rate_limit: int = field(default=50, metadata=_help("UDP answers a second to one address"))
    udp_rate_burst: int = field(
        default=100, metadata=_help("UDP answers one address may get at once")
    )
    udp_answer_factor: int = field(
        default=8, metadata=_help("a UDP answer's largest size, in multiples of the request's")
    )


@dataclass(frozen=True, slots=True)
class EtcdSection:
    """store.etcd: the cluster several replicas share (docs/replication.md)."""

    endpoints: tuple[str, ...] = field(
        default=("http://127.0.0.1:2379",),
        metadata=_help("etcd client URLs, e.g. [https://10.0.0.1:2379, https://10.0.0.2:2379]"),
    )
    prefix: str = field(default="/isns-server/", metadata=_help("the keys' prefix, e.g. /isns/"))
    ca_file: Path | None = field(default=None, metadata=_help("a PEM CA file for https"))
    cert_file: Path | None = field(default=None, metadata=_help("a PEM client certificate"))
    key_file: Path | None = field(default=None, metadata=_help("the client certificate's key"))
    user: str | None = None
    password: str | None = None
    timeout: int = field(default=5, metadata=_help("seconds for one etcd request, at least 1"))
    lease_ttl: int = field(
        default=5, metadata=_help("seconds of the leader's lease (expiry, ESI), at least 2")
    )


@dataclass(frozen=True, slots=True)
class StoreSection:
    backend: str = field(default="sqlite", metadata=_help("sqlite, memory or etcd"))
    durable: bool = field(
        default=True, metadata=_help("true: fsync before acknowledging a registration")
    )
    etcd: EtcdSection = EtcdSection()


@dataclass(frozen=True, slots=True)
class ChapCredentials:
    user: str
    secret: str = field(metadata=_help("a CHAP secret of 12 to 255 characters"))


@dataclass(frozen=True, slots=True)
class PortalSection:
    enabled: bool = True
    listen: tuple[ListenAddress, ...] = field(
        default=(ListenAddress("0.0.0.0", 3260),),
        metadata=_help("addresses for iSCSI logins; registered as the targets' portals"),
    )
    discovery_chap: ChapCredentials | None = field(
        default=None, metadata=_help("what initiators must prove in discovery sessions")
    )
    discovery_mutual_chap: ChapCredentials | None = field(
        default=None, metadata=_help("what the portal proves when initiators ask (mutual CHAP)")
    )
    login_timeout: int = field(default=15, metadata=_help("seconds, at least 1"))
    nop_in_interval: int = field(
        default=30, metadata=_help("seconds of silence before a NOP-In ping; 0: never ping")
    )
    nop_in_timeout: int = field(default=15, metadata=_help("seconds, at least 1"))
    max_write_buffer: int = field(
        default=128 << 20,
        metadata=_help("bytes of write data all sessions may hold at once, e.g. 128MiB"),
    )
    data_out_timeout: int = field(
        default=20, metadata=_help("seconds Data-Out asked for by an R2T may take to arrive")
    )
    login_warning_interval: int = field(
        default=60, metadata=_help("seconds between two warnings about one address's logins")
    )
    max_connections: int = field(default=1024, metadata=_help("TCP connections held at once"))
    max_connections_per_source: int = field(
        default=128, metadata=_help("TCP connections one address may hold at once")
    )
    pin_cpu: bool = field(
        default=True,
        metadata=_help(
            "run the event loop and the LUN workers on one CPU (cheap thread hand-offs,"
            " above all on virtual machines); false: let the kernel place them"
        ),
    )


@dataclass(frozen=True, slots=True)
class Lun:
    lun: int
    path: Path
    size: int = field(default=0, metadata=_help("bytes, e.g. 1GiB; 0 keeps the file's size"))
    read_only: bool = False
    write_cache: bool = field(
        default=True,
        metadata=_help("write-back until SYNCHRONIZE CACHE or FUA; false: write-through"),
    )
    removable: bool = field(
        default=False,
        metadata=_help("true: removable medium that initiators may eject and load again"),
    )
    physical_block_size: int = field(
        default=512,
        metadata=_help(
            "bytes, 512 times a power of two (e.g. 4096); initiators align their I/O to it"
        ),
    )


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    luns: tuple[Lun, ...] = ()
    alias: str | None = None
    chap: ChapCredentials | None = None
    mutual_chap: ChapCredentials | None = None
    allowed_initiators: tuple[str, ...] = field(
        default=(), metadata=_help("iSCSI names that may log in without sharing a DD")
    )


@dataclass(frozen=True, slots=True)
class DiscoveryDomain:
    name: str
    members: tuple[str, ...] = field(default=(), metadata=_help("a list of iSCSI names"))


@dataclass(frozen=True, slots=True)
class SlpSection:
    """The SLPv2 directory agent (RFC 2608, RFC 4018); docs/slp.md explains each key."""

    enabled: bool = True
    listen: tuple[ListenAddress, ...] = (ListenAddress("0.0.0.0", 427),)
    interfaces: tuple[str, ...] = field(
        default=(), metadata=_help("IPv4 addresses of interfaces to multicast on")
    )
    scopes: tuple[str, ...] = field(
        default=("DEFAULT",), metadata=_help("SLP scope names; every DD is one more scope")
    )
    mtu: int = field(default=1400, metadata=_help("bytes of the largest UDP reply, 512 to 65000"))
    trusted_networks: tuple[str, ...] = field(
        default=(), metadata=_help("networks such as 10.0.0.0/24 whose agents may SrvReg")
    )
    rate_limit: int = field(default=20, metadata=_help("UDP replies a second to one address"))
    rate_burst: int = field(default=50, metadata=_help("UDP replies one address may get at once"))
    max_registrations: int = field(default=4096, metadata=_help("SLP registrations held"))
    max_registrations_per_source: int = field(
        default=256, metadata=_help("SLP registrations held for one address")
    )
    advert_period: int = field(
        default=10800, metadata=_help("seconds between unsolicited DAAdverts")
    )
    idle_timeout: int = field(
        default=30, metadata=_help("seconds a TCP connection may stay silent, at least 1")
    )
    max_connections: int = field(default=128, metadata=_help("TCP connections held at once"))
    max_connections_per_source: int = field(
        default=16, metadata=_help("TCP connections one address may hold at once")
    )


@dataclass(frozen=True, slots=True)
class MdnsSection:
    enabled: bool = True
    interfaces: tuple[str, ...] = field(
        default=(), metadata=_help("IP addresses of interfaces to advertise on")
    )


@dataclass(frozen=True, slots=True)
class DiscoveryAgentSection:
    """How the discovery agent (SLP and DNS-SD) follows the iSNS registry as a client."""

    isns_server: ListenAddress = field(
        default=ListenAddress("127.0.0.1", 3205),
        metadata=_help("host:port of the iSNS server a standalone discovery-agent mirrors"),
    )
    node_name: str = field(
        default="", metadata=_help("the agent's iSCSI name, a Control Node of the iSNS server")
    )
    scn_port: int = field(
        default=0, metadata=_help("TCP port for the server's SCNs, 0 for any free port")
    )


@dataclass(frozen=True, slots=True)
class ApiToken:
    """One Bearer token of the management API; the secret stays in its own file."""

    name: str = field(metadata=_help("who the token is, as the audit log names them"))
    role: str = field(metadata=_help("read or admin"))
    token_file: Path = field(metadata=_help("a file holding the token (keep it mode 0600)"))


@dataclass(frozen=True, slots=True)
class ApiTls:
    cert: Path = field(metadata=_help("a PEM certificate chain file"))
    key: Path = field(metadata=_help("the PEM private key file of that certificate"))


@dataclass(frozen=True, slots=True)
class ApiSection:
    """The management API (docs/api.md explains each key)."""

    enabled: bool = True
    listen: ListenAddress = ListenAddress("127.0.0.1", 8080)
    tokens: tuple[ApiToken, ...] = field(
        default=(), metadata=_help("a list of {name, role, token_file}")
    )
    tls: ApiTls | None = field(default=None, metadata=_help("{cert, key}: serve HTTPS"))
    max_body_size: int = field(
        default=1 << 20, metadata=_help("bytes of one request body, e.g. 1MiB")
    )
    audit_records: int = field(
        default=10000, metadata=_help("audit records kept, oldest dropped first")
    )
    # Limits and abuse resistance (docs/api.md)
    idle_timeout: int = field(
        default=60,
        metadata=_help("seconds a connection may move no byte either way, at least 20"),
    )
    max_connections: int = field(default=256, metadata=_help("TCP connections held at once"))
    max_connections_per_source: int = field(
        default=64, metadata=_help("TCP connections one address may hold at once")
    )


@dataclass(frozen=True, slots=True)
class Config:
    data_dir: Path = Path("./isns-data")
    log_level: str = field(default="info", metadata=_help("debug, info, warning or error"))
    isns: IsnsSection = IsnsSection()
    store: StoreSection = StoreSection()
    portal: PortalSection = PortalSection()
    targets: tuple[Target, ...] = ()
    discovery_domains: tuple[DiscoveryDomain, ...] = ()
    slp: SlpSection = SlpSection()
    mdns: MdnsSection = MdnsSection()
    discovery_agent: DiscoveryAgentSection = DiscoveryAgentSection()
    api: ApiSection = ApiSection()
