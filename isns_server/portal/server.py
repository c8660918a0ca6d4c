"""The iSCSI portal: configured targets opened, listeners up, targets in the registry.

Started after the registry exists; stopped before the store closes, so that the
deregistration at shutdown is written like any other change.
"""

import asyncio
import logging
import socket
from collections.abc import Sequence
from functools import partial
from ipaddress import IPv4Address, IPv6Address, ip_address

from ..admission import Admission, ConnectionLimits, TcpListener
from ..config import Config, ListenAddress
from ..metrics import PortalMetrics
from ..registry import Registry, TargetPortal
from ..scsi import ScsiResult
from ..service.server import listen_problem
from .catalog import PortalCatalog
from .iscsi.login import LoginPolicy
from .local_targets import (
    LocalTarget,
    chap_policy,
    close_local_targets,
    open_local_targets,
)
from .runtime.affinity import pin_to_one_cpu
from .runtime.heap import keep_freed_buffers
from .runtime.protocol import PortalProtocol
from .runtime.workers import UnitWorkers
from .self_registration import Registration, RegistryCall, TargetRegistrar
from .session.connection import PortalSettings, login_warnings
from .session.dataout import WriteBudget, WritePolicy
from .session.full_feature import KeepalivePolicy
from .session.tasks import Job, UnitJob

log = logging.getLogger(__name__)

PORTAL_GROUP_TAG = 1  # every listen address is one portal group of every target


class PortalServer:
    def __init__(
        self,
        config: Config,
        registry: Registry,
        registry_call: RegistryCall,
        metrics: PortalMetrics | None = None,
    ) -> None:
        self.config = config
        self.registry = registry
        self.registry_call = registry_call
        self.metrics = metrics
        self.directory: PortalCatalog | None = None
        self.settings: PortalSettings | None = None  # once started
        self.registrar: TargetRegistrar | None = None
        self.servers: list[TcpListener] = []
        portal = config.portal
        # Before login the login timeout bounds a silent connection, after it NOP-Ins do.
        self.admission = Admission(
            "iSCSI portal",
            ConnectionLimits(
                "portal", portal.max_connections, portal.max_connections_per_source, None
            ),
        )
        self.workers: UnitWorkers | None = None

    async def start(self) -> None:
        """Raises ListenError or BackstoreError with the administrator's explanation."""
        portal = self.config.portal
        keep_freed_buffers()
        if portal.pin_cpu and any(target.luns for target in self.config.targets):
            cpu = pin_to_one_cpu()
            if cpu is not None:
                log.info(
                    "portal: event loop and LUN workers pinned to CPU %d (portal.pin_cpu)", cpu
                )
        targets = open_local_targets(
            self.config.targets, PORTAL_GROUP_TAG, self.config.data_dir / "reservations"
        )
        try:
            settings = PortalSettings(
                LoginPolicy(portal_group_tag=PORTAL_GROUP_TAG, login_timeout=portal.login_timeout),
                KeepalivePolicy(portal.nop_in_interval, portal.nop_in_timeout),
                WritePolicy(WriteBudget(portal.max_write_buffer), portal.data_out_timeout),
                login_warnings(portal.login_warning_interval),
            )
            self.settings = settings
            directory = PortalCatalog(
                self.registry,
                targets,
                chap_policy(portal.discovery_chap, portal.discovery_mutual_chap),
                (),
            )
            self.directory = directory
            loop = asyncio.get_running_loop()
            workers = self.workers = UnitWorkers(loop)
            for address in portal.listen:
                try:
                    server = TcpListener.open(
                        address.host,
                        address.port,
                        lambda: PortalProtocol(
                            directory, settings, self.admission, workers, self.metrics
                        ),
                        "iSCSI portal",
                    )
                except OSError as exc:
                    raise listen_problem(address, "TCP", "portal.listen", exc) from None
                self.servers.append(server)
            directory.portals = await advertised_portals(portal.listen)
            if self.config.targets:  # registered first: SendTargets lists them from the start
                self.registrar = TargetRegistrar(
                    Registration(
                        entity_id(),
                        tuple((t.name, t.alias) for t in self.config.targets),
                        directory.portals,
                    ),
                    self.registry_call,
                )
                await self.registrar.start()
            for server in self.servers:
                server.start()
            for address in portal.listen:
                log.info("iSCSI portal listening on %s", address)
        except BaseException:
            await self.stop()
            raise

    def rescan_luns(self) -> None:
        """SIGHUP: take the sizes of LUN files and devices an administrator grew. Only the
        backing sizes are re-read, not the configuration. Each unit is rescanned by its
        worker, in order with its commands; the sessions are told on the event loop."""
        if self.directory is None or self.workers is None:
            return
        rescans: dict[Job, tuple[LocalTarget, int]] = {}
        for target in self.directory.targets.values():
            nexuses = frozenset(target.scsi.nexuses)
            for lun, unit in sorted(target.scsi.units.items()):
                rescans[UnitJob(unit, partial(unit.rescan, nexuses))] = (target, lun)
        changed = False

        def rescanned(job: Job, result: ScsiResult) -> None:
            nonlocal changed
            target, lun = rescans.pop(job)
            assert isinstance(job, UnitJob)
            if isinstance(job.outcome, tuple):
                changed = True
                target.scsi.announce_capacity(job.unit)
                log.info(
                    "target %s LUN %d: capacity changed from %d to %d bytes; initiators get a"
                    " unit attention",
                    target.record.name,
                    lun,
                    *job.outcome,
                )
            if not rescans and not changed:
                log.info("LUN rescan: no LUN changed size")

        for job in list(rescans):
            self.workers.submit(job, rescanned)

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        self.admission.close_all()
        self.servers.clear()
        if self.registrar is not None:
            await self.registrar.stop()
            self.registrar = None
        if self.workers is not None:  # acknowledged writes are on disk before files close
            await asyncio.to_thread(self.workers.stop)
            self.workers = None
        if self.directory is not None:
            close_local_targets(self.directory.targets)
            self.directory = None


def entity_id() -> str:
    """The EID of the portal's entity: stable across restarts, distinct per host."""
    return f"isns-server-portal.{socket.gethostname()}"


async def advertised_portals(listen: Sequence[ListenAddress]) -> tuple[TargetPortal, ...]:
    """The portals to register: each listen address, with a wildcard (0.0.0.0, ::)
    replaced by the addresses this host's name resolves to, loopback excluded; if it
    resolves to none, the loopback address, with a warning."""
    portals: list[TargetPortal] = []
    for address in listen:
        ip = ip_address(address.host)
        hosts: list[IPv4Address | IPv6Address] = [ip]
        if ip.is_unspecified:
            hosts = await _host_addresses(ip.version)
            if not hosts:
                hosts = [ip_address("127.0.0.1" if ip.version == 4 else "::1")]
                log.warning(
                    "portal.listen %s: this host's name resolves to no address other than"
                    " loopback, so its targets are registered on %s, which only local"
                    " initiators can reach; list the addresses initiators use in portal.listen",
                    address,
                    hosts[0],
                )
        portals += [TargetPortal(host, address.port, PORTAL_GROUP_TAG) for host in hosts]
    return tuple(dict.fromkeys(portals))


async def _host_addresses(version: int) -> list[IPv4Address | IPv6Address]:
    family = socket.AF_INET if version == 4 else socket.AF_INET6
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(socket.gethostname(), None, family=family)
    except OSError:
        return []
    found = (ip_address(str(info[4][0]).split("%")[0]) for info in infos)
    return list(dict.fromkeys(ip for ip in found if not ip.is_loopback))
