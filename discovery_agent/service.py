"""One discovery agent built from the configuration: the SLP directory agent with its
sockets and iSNS bridge, and the DNS-SD advertiser.

`isns-server` runs it in-process (`in_process_endpoints`: its own iSNS listener and
portal); `discovery-agent` runs it against a remote iSNS server (`standalone_endpoints`).
Either way the agent reads the registry over iSNS as a Control Node, one code path.
"""

import logging
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import ip_address, ip_network

from isns_server.config import Config, ListenAddress

from .bridge import RegistryBridge
from .dnssd import Advertisement, DnsSdAdvertiser, isns_advertisement, portal_advertisement
from .local_addresses import LocalAddresses
from .mirror import RegistryMirror, host_text
from .slp.agent import AgentSettings, DirectoryAgent
from .transport import SlpListenError, SlpTransport, connection_limits

log = logging.getLogger(__name__)

NODE_NAME_PREFIX = "iqn.2026-11.isns-server.discovery-agent:"


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the agent reads the registry, and what it tells clients to use."""

    isns_server: ListenAddress  # the bridge connects here
    isns: tuple[ListenAddress, ...]  # service:iscsi:sms and _isns._tcp
    portals: tuple[ListenAddress, ...] = ()  # _iscsi-target._tcp


def node_name(config: Config) -> str:
    """The agent's iSCSI name: configured, or one per host (two agents must differ)."""
    if config.discovery_agent.node_name:
        return config.discovery_agent.node_name
    host = "".join(c if c.isalnum() or c in ".-" else "-" for c in socket.gethostname().lower())
    return NODE_NAME_PREFIX + (host or "localhost")


def agent_control_nodes(config: Config) -> frozenset[str]:
    """What an in-process agent adds to the iSNS server's Control Nodes: itself."""
    return frozenset({node_name(config)}) if config.slp.enabled else frozenset()


def _is_wildcard(host: str) -> bool:
    return ip_address(host).is_unspecified


def _local(address: ListenAddress) -> ListenAddress:
    """A wildcard listen address as this machine reaches it."""
    if not _is_wildcard(address.host):
        return address
    return ListenAddress("::1" if ":" in address.host else "127.0.0.1", address.port)


def in_process_endpoints(config: Config) -> Endpoints:
    server = _local(config.isns.listen[0]) if config.isns.enabled else None
    portals = config.portal.listen if config.portal.enabled else ()
    return Endpoints(
        server or config.discovery_agent.isns_server,
        config.isns.listen if config.isns.enabled else (config.discovery_agent.isns_server,),
        portals,
    )


def standalone_endpoints(config: Config) -> Endpoints:
    server = config.discovery_agent.isns_server
    return Endpoints(server, (server,))


def _primary_host(config: Config) -> str:
    """The address (or name) this agent is known by on its subnet."""
    hosts = [*config.slp.interfaces, *config.mdns.interfaces]
    hosts += [a.host for a in config.slp.listen if not _is_wildcard(a.host)]
    return hosts[0] if hosts else socket.gethostname()


def _published_hosts(address: ListenAddress, own: Sequence[str]) -> list[str]:
    """The hosts clients on our links should use for `address`: a wildcard listener is
    reached at our own addresses, and so is a loopback one unless we are on loopback."""
    host = ip_address(address.host)
    if host.is_unspecified or (host.is_loopback and not all(map(_is_loopback, own))):
        return list(own)
    return [address.host]


def _is_loopback(host: str) -> bool:
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def agent_settings(config: Config) -> AgentSettings:
    slp = config.slp
    own = [*slp.interfaces, *(a.host for a in slp.listen if not _is_wildcard(a.host))]
    return AgentSettings(
        url=f"service:directory-agent://{host_text(_primary_host(config))}",
        scopes=slp.scopes,
        addresses=tuple(dict.fromkeys(own)),
        mtu=slp.mtu,
        trusted_networks=tuple(ip_network(n) for n in slp.trusted_networks),
        rate=float(slp.rate_limit),
        burst=slp.rate_burst,
        max_registrations=slp.max_registrations,
        max_registrations_per_source=slp.max_registrations_per_source,
        advert_period=float(slp.advert_period),
        registry_lifetime=min(config.isns.registration_period, 0xFFFF),
    )


class DiscoveryAgentService:
    """Starts what the `slp` and `mdns` sections enable. With `slp_optional`, an SLP port
    that cannot be opened (427 without root) is a warning, not a failure: isns-server
    runs SLP by default only where it can."""

    def __init__(self, config: Config, endpoints: Endpoints, *, slp_optional: bool) -> None:
        self.config = config
        self.endpoints = endpoints
        self.slp_optional = slp_optional
        self.transport: SlpTransport | None = None
        self.bridge: RegistryBridge | None = None
        self.dnssd: DnsSdAdvertiser | None = None

    async def start(self) -> None:
        try:
            if self.config.slp.enabled:
                await self._start_slp()
            if self.config.mdns.enabled and self.config.mdns.interfaces:
                self.dnssd = DnsSdAdvertiser(self.config.mdns.interfaces, self._advertisements())
                await self.dnssd.start()
            elif self.config.mdns.enabled:
                log.info("DNS-SD is off: list interface addresses in mdns.interfaces")
        except BaseException:
            await self.stop()
            raise

    async def _start_slp(self) -> None:
        config, clock = self.config, time.monotonic
        agent = DirectoryAgent(
            agent_settings(config), boot_timestamp=int(time.time()), is_local=LocalAddresses()
        )
        primary = [_primary_host(config)]
        sms = [(h, a.port) for a in self.endpoints.isns for h in _published_hosts(a, primary)]
        mirror = RegistryMirror(agent, list(dict.fromkeys(sms)), clock())
        bridge = RegistryBridge(
            server=(self.endpoints.isns_server.host, self.endpoints.isns_server.port),
            node_name=node_name(config),
            scn_port=config.discovery_agent.scn_port,
            agent=agent,
            mirror=mirror,
            clock=clock,
            # SLP answers from the first read on, with every scope (RFC 2608 12.2.2).
            on_registry_read=lambda: transport.begin(),
        )
        transport = SlpTransport(
            agent,
            config.slp.listen,
            config.slp.interfaces,
            clock=clock,
            on_target_change=bridge.target_changes_arrived,
            limits=connection_limits(config.slp),
        )
        try:
            await transport.start()
        except SlpListenError as exc:
            if not self.slp_optional:
                raise
            log.warning("%s. SLP stays off; set slp.listen (or slp.enabled: false)", exc)
            return
        if not config.slp.interfaces:
            log.info("SLP multicast is off: list interface addresses in slp.interfaces")
        self.transport, self.bridge = transport, bridge
        bridge.start()

    def _advertisements(self) -> list[Advertisement]:
        own = self.config.mdns.interfaces
        ads = [isns_advertisement(a.port, _published_hosts(a, own)) for a in self.endpoints.isns]
        ads += [
            portal_advertisement(a.port, _published_hosts(a, own)) for a in self.endpoints.portals
        ]
        return ads

    async def stop(self) -> None:
        if self.dnssd is not None:
            await self.dnssd.stop()
            self.dnssd = None
        if self.bridge is not None:
            await self.bridge.stop()
            self.bridge = None
        if self.transport is not None:
            await self.transport.stop()
            self.transport = None
