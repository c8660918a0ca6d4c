"""Composition root: builds every enabled component from the configuration and runs them."""

import asyncio
import logging
import signal
import time
from collections.abc import Iterator
from ipaddress import IPv4Network, IPv6Network, ip_address, ip_network

from discovery_agent.service import (
    DiscoveryAgentService,
    agent_control_nodes,
    in_process_endpoints,
)

from .api import ApiServer, build_app
from .api.audit import AUDIT, AuditLog
from .api.auth import load_tokens
from .api.context import ApiContext
from .api.event_hub import EventHub
from .api.portal_state import portal_state
from .api.writes import API_SOURCE, Planner, Writer
from .config import Config
from .config.schema import SlpSection
from .isnsp.constants import Status
from .isnsp.messages import Message
from .metrics import Metrics
from .portal.self_registration import RegistryCall
from .portal.server import PortalServer
from .registry import Policy, Registry
from .replication.etcd_store import EtcdStore, open_etcd_store
from .service import Dispatcher, IsnsService
from .service.dispatcher import CONFLICT_RETRIES
from .service.replica import Replica
from .store import (
    Record,
    Ref,
    SqliteStore,
    Store,
    StoreConflict,
    StoreError,
    check_writable,
    open_store,
)

log = logging.getLogger("isns_server")


class Application:
    """Everything `isns-server` runs, started and stopped in dependency order."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.store: Store | None = None
        self.registry: Registry | None = None
        self.isns: IsnsService | None = None
        self.portal: PortalServer | None = None
        self.discovery: DiscoveryAgentService | None = None
        self.api: ApiServer | None = None
        self.replica: Replica | None = None  # with the etcd store: one of several servers
        self.metrics = Metrics()  # the one registry of every metric (/metrics)
        self.events = EventHub()  # committed changes for /api/v1/events
        self._read_metrics_from_components()

    async def start(self) -> None:
        config = self.config
        if config.store.backend == "etcd":
            self.store = await open_etcd_store(config.store.etcd, config.data_dir)
        else:
            self.store = open_store(config.store.backend, config.data_dir, config.store.durable)
        if isinstance(self.store, SqliteStore | EtcdStore):
            self.store.on_batch_written(self.metrics.store.batch_written)
        policy = Policy(
            default_dd=config.isns.default_dd,
            control_nodes=frozenset(config.isns.control_nodes)
            | agent_control_nodes(config)
            | api_control_nodes(config),
            registration_period=config.isns.registration_period,
            esi_min_interval=config.isns.esi_min_interval,
            esi_max_interval=config.isns.esi_max_interval,
            esi_retries=config.isns.esi_retries,
            control_networks=control_networks(config),
        )
        # One pass over the store: the registry is built as records are read, and the
        # API's audit records are set aside for it.
        audit_records: list[tuple[Ref, Record]] = []

        def registry_records(store: Store) -> Iterator[tuple[Ref, Record]]:
            for item in store.records():
                if item[0][0] == AUDIT:
                    audit_records.append(item)
                else:
                    yield item

        self.registry = Registry.restore(registry_records(self.store), policy)
        if config.store.backend == "sqlite":
            log.info(
                "registry loaded from %s: %d entities",
                config.data_dir,
                len(self.registry.db.entities),
            )
        try:
            if config.isns.enabled:
                self.isns = IsnsService(
                    self.registry,
                    self.store,
                    config.isns,
                    metrics=self.metrics.isns,
                    on_committed=self.events.publish,
                )
                # A replica runs expiry, ESI and the Heartbeat only while it leads.
                await self.isns.start(lead=not isinstance(self.store, EtcdStore))
            dispatcher = (
                self.isns.dispatcher
                if self.isns
                else Dispatcher(
                    self.registry,
                    self.store,
                    metrics=self.metrics.isns,
                    on_committed=self.events.publish,
                )
            )
            if isinstance(self.store, EtcdStore):
                self.replica = Replica(self.store, dispatcher, self.isns, config.store.etcd)
                self.replica.start()
            await apply_configured_domains(config, self.registry, dispatcher)
            if config.portal.enabled:
                self.portal = PortalServer(
                    config, self.registry, registry_call(dispatcher), self.metrics.portal
                )
                await self.portal.start()
                # SIGHUP after growing a LUN's file or device: the LUNs take the new size
                asyncio.get_running_loop().add_signal_handler(
                    signal.SIGHUP, self.portal.rescan_luns
                )
            if config.slp.enabled or config.mdns.enabled:
                # The discovery agent reads the registry over iSNS like any Control Node.
                # SLP on its default port 427 runs only where it can (root).
                self.discovery = DiscoveryAgentService(
                    config,
                    in_process_endpoints(config),
                    slp_optional=config.slp.listen == SlpSection().listen,
                )
                await self.discovery.start()
            if config.api.enabled:
                self.api = self._api_server(audit_records, dispatcher)
                await self.api.start()
        except BaseException:
            await self.stop()
            raise

    def _api_server(self, records: list[tuple[Ref, Record]], dispatcher: Dispatcher) -> ApiServer:
        """The management API over this registry; its writes go through `dispatcher`."""
        config, registry, store = self.config, self.registry, self.store
        assert registry is not None and store is not None
        audit = AuditLog(store, records, config.api.audit_records)
        context = ApiContext(
            registry,
            Planner(registry),
            Writer(dispatcher, audit),
            audit,
            portal_state(config, lambda: self.portal),
            self._readiness,
            self.events,
            self.metrics.registry,
        )
        tokens = load_tokens(config.api, config.data_dir)
        return ApiServer(config.api, build_app(context, tokens, config.api.max_body_size))

    def _read_metrics_from_components(self) -> None:
        """What /metrics reads at scrape time from whichever components are running."""
        sources = self.metrics.sources
        sources.registry = lambda: self.registry
        sources.scn_queued = lambda: self.isns.notifier.queued() if self.isns else 0
        portal = portal_state(self.config, lambda: self.portal)
        sources.session_types = lambda: [session["type"] for session in portal.sessions()]
        sources.logins = lambda: (
            self.portal.settings.login_outcomes if self.portal and self.portal.settings else {}
        )
        sources.slp = lambda: (
            self.discovery.transport.agent.counters
            if self.discovery and self.discovery.transport
            else None
        )

    async def _readiness(self) -> dict[str, str | None]:
        """What /readyz reports: the store takes writes, every enabled listener is bound."""
        config = self.config
        writable = self.store is not None and self.store.writable
        checks: dict[str, str | None] = {
            "store": None if writable else "the store cannot be written; the log says why"
        }
        if isinstance(self.store, EtcdStore) and not (writable and self.store.watching):
            checks["store"] = (
                "stale: etcd cannot be reached or has no quorum; queries are answered from "
                "memory, changes refused; the log says why"
            )
        if config.isns.enabled:
            checks["isns"] = None if self.isns is not None else "iSNS is not listening"
        if config.portal.enabled:
            checks["portal"] = None if self.portal is not None else "the portal is not listening"
        return checks

    async def stop(self) -> None:
        if self.api is not None:  # first: no change may arrive while the rest stops
            await self.api.stop()
            self.api = None
        if self.discovery is not None:  # first: it deregisters itself over iSNS
            await self.discovery.stop()
            self.discovery = None
        if self.portal is not None:  # first: its deregistration goes through the store
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
            await self.portal.stop()
            self.portal = None
        if self.replica is not None:  # a leader hands over at once
            await self.replica.stop()
            self.replica = None
        if self.isns is not None:
            await self.isns.stop()
            self.isns = None
        if self.store is not None:
            await self.store.close()
            self.store = None


async def apply_configured_domains(
    config: Config, registry: Registry, dispatcher: Dispatcher
) -> None:
    """Create the configuration's discovery domains, or add their missing members.
    Replicas starting together race for the same domains: a change that lost to another
    replica's is made again on memory as that left it (CONFLICT_RETRIES times)."""
    for domain in config.discovery_domains:
        for attempt in range(CONFLICT_RETRIES + 1):
            outcome = registry.ensure_domain(domain.name, domain.members, time.time())
            if outcome.response.status != Status.SUCCESSFUL:
                log.error(
                    "discovery domain %r from the configuration refused with status %s",
                    domain.name,
                    outcome.response.status,
                )
                break
            pending = dispatcher.commit(outcome.dirty, outcome.notifications)
            try:
                if pending is not None:
                    await pending
            except StoreConflict:
                if attempt == CONFLICT_RETRIES:
                    raise
                continue
            log.info("discovery domain %r: %d configured members", domain.name, len(domain.members))
            break


def control_networks(config: Config) -> tuple[IPv4Network | IPv6Network, ...]:
    """isns.control_networks, and the address the in-process discovery agent connects to
    (and so from): isns.listen[0], which need not be loopback."""
    networks = [ip_network(n) for n in config.isns.control_networks]
    if config.isns.enabled and (config.slp.enabled or config.mdns.enabled):
        networks.append(ip_network(ip_address(in_process_endpoints(config).isns_server.host)))
    return tuple(networks)


def api_control_nodes(config: Config) -> frozenset[str]:
    """The API's iSNS Source is a Control Node while the API runs."""
    return frozenset((API_SOURCE,)) if config.api.enabled else frozenset()


def store_problem(config: Config) -> str | None:
    """Why the configured store cannot be written (None: it can). Checked before anything
    starts: a server that cannot keep registrations must not say it is ready."""
    if config.store.backend != "sqlite":
        return None
    try:
        check_writable(config.data_dir)
    except StoreError as exc:
        return str(exc)
    return None


def registry_call(dispatcher: Dispatcher) -> RegistryCall:
    """The portal's own registrations, answered like any iSNS client's: once durable."""

    async def call(message: Message) -> Message:
        answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        dispatcher.dispatch(message, answer.set_result, "the iSCSI portal")
        return await answer

    return call
