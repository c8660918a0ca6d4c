"""The iSNS service: TCP and UDP listeners on every configured address, and what the
server sends by itself (SCN, ESI, Heartbeat) with the timer that drives it."""

import asyncio
import errno
import logging
import socket
import time
from collections.abc import Callable, Collection

from ..admission import Admission, ConnectionLimits, TcpListener
from ..config import ListenAddress
from ..config.schema import IsnsSection
from ..isnsp.codec import ReassemblyBudget
from ..metrics import IsnsMetrics
from ..ratelimit import TokenBuckets
from ..registry import Ref, Registry
from ..store import Store
from .dispatcher import Dispatcher
from .heartbeat import HeartbeatError, HeartbeatSender
from .liveness import LivenessTimer
from .notifier import Notifier
from .outbound import Outbound
from .transport import DatagramLimits, IsnsDatagramProtocol, IsnsStreamProtocol, StreamLimits

log = logging.getLogger(__name__)


class ListenError(Exception):
    """A listen address could not be bound; the message says why and what to change."""


def listen_problem(address: ListenAddress, protocol: str, key: str, exc: OSError) -> ListenError:
    """An administrator's explanation of a failed bind of `address` (config key `key`)."""
    where = f"cannot listen on {protocol} {address}"
    if exc.errno == errno.EADDRINUSE:
        hint = f"another program already uses it (check with `ss -lntup`), or change {key}"
    elif exc.errno == errno.EACCES:
        hint = f"ports below 1024 need root or CAP_NET_BIND_SERVICE; or change {key}"
    elif exc.errno == errno.EADDRNOTAVAIL:
        hint = f"no interface on this machine has that address; change {key}"
    else:
        hint = f"{exc.strerror}; check {key}"
    return ListenError(f"{where}: {hint}")


_UDP_SOURCES = 4096  # UDP rate-limit buckets kept; the least recently seen go first


def connection_limits(settings: IsnsSection) -> ConnectionLimits:
    return ConnectionLimits(
        "isns",
        settings.max_connections,
        settings.max_connections_per_source,
        settings.idle_timeout,
    )


class IsnsService:
    def __init__(
        self,
        registry: Registry,
        store: Store,
        settings: IsnsSection,
        clock: Callable[[], float] = time.time,
        metrics: IsnsMetrics | None = None,
        on_committed: Callable[[Collection[Ref]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.max_message_size = settings.max_message_size
        self.outbound = Outbound()
        self.notifier = Notifier(
            self.outbound,
            settings.scn_retries,
            on_delivered=lambda name: registry.heard_from(name, clock()),
            last_heard=registry.last_heard,
            clock=clock,
            metrics=metrics,
        )
        self.dispatcher = Dispatcher(
            registry, store, clock, self.notifier, metrics=metrics, on_committed=on_committed
        )
        self.liveness = LivenessTimer(
            registry, self.dispatcher.commit, self.outbound, clock, metrics
        )
        self.dispatcher.on_change = self.liveness.poke
        self.heartbeat: HeartbeatSender | None = None
        self.bound: list[ListenAddress] = []
        self.servers: list[TcpListener] = []
        self.datagram_transports: list[asyncio.DatagramTransport] = []
        self.admission = Admission("iSNS", connection_limits(settings))
        self.stream_limits = StreamLimits(
            settings.max_message_size,
            self.admission,
            ReassemblyBudget(settings.reassembly_budget),
            settings.reassembly_timeout,
        )
        self.datagram_limits = DatagramLimits(
            settings.max_message_size,
            settings.udp_answer_factor,
            TokenBuckets(settings.udp_rate_limit, settings.udp_rate_burst, _UDP_SOURCES),
        )

    async def start(self, lead: bool = True) -> None:
        """Listen; with `lead`, run expiry, ESI and the Heartbeat too (a replica of
        several runs them only while it is the leader: `lead()` and `follow()`)."""
        try:
            self.bound = await self._listen()
            if lead:
                await self.lead()
        except BaseException:
            await self.stop()
            raise

    async def lead(self) -> None:
        self.liveness.start()
        destination = self.settings.heartbeat_address
        if destination is not None and self.heartbeat is None:
            try:
                self.heartbeat = HeartbeatSender(
                    destination, self.settings.heartbeat_interval, self.bound[0]
                )
                await self.heartbeat.start()
            except HeartbeatError as exc:
                raise ListenError(str(exc)) from None

    async def follow(self) -> None:
        """Stop expiry, ESI and the Heartbeat: another server runs them now."""
        if self.heartbeat is not None:
            await self.heartbeat.stop()
            self.heartbeat = None
        await self.liveness.stop()

    async def _listen(self) -> list[ListenAddress]:
        """Listen on every address of isns.listen; the addresses as bound."""
        loop = asyncio.get_running_loop()
        found = []
        for address in self.settings.listen:
            try:
                server = TcpListener.open(
                    address.host,
                    address.port,
                    lambda: IsnsStreamProtocol(self.dispatcher, self.stream_limits),
                    "iSNS",
                )
            except OSError as exc:
                raise listen_problem(address, "TCP", "isns.listen", exc) from None
            self.servers.append(server)
            server.start()
            tcp_port = server.port
            bound = ListenAddress(address.host, tcp_port)
            try:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: IsnsDatagramProtocol(self.dispatcher, self.datagram_limits),
                    local_addr=(address.host, tcp_port),
                    family=socket.AF_INET6 if ":" in address.host else socket.AF_INET,
                )
            except OSError as exc:
                raise listen_problem(bound, "UDP", "isns.listen", exc) from None
            self.datagram_transports.append(transport)
            found.append(bound)
            log.info("iSNS server listening on %s (TCP and UDP)", bound)
        return found

    async def stop(self) -> None:
        await self.follow()
        await self.notifier.close()
        await self.outbound.close()
        for server in self.servers:
            server.close()
        for transport in self.datagram_transports:
            transport.close()
        self.admission.close_all()
        self.servers.clear()
        self.datagram_transports.clear()
