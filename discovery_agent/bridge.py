"""The agent as an iSNS client: mirrors the registry into the directory agent and carries
accepted SLP registrations into the registry.

One session, repeated after any failure with a growing pause:
1. connect; register as a Control Node whose portal's SCN Port is our SCN listener, on
   the address the connection left from (one the server can reach);
2. SCNReg for management SCNs: every change anywhere in the registry (RFC 4171 5.6.5.5);
3. read the registry once (DevGetNext walks, then DevAttrQry per target and per DD),
   and only then let the directory agent answer (`on_registry_read`);
4. follow: each SCN names the changed objects, which are read again, merged so a burst
   costs one query per object. A keepalive query every third of the Registration
   Period keeps our entity alive; a server that refuses management SCNs gets a full
   re-read at that pace instead, with a warning.
5. resynchronise: SCNs carry no sequence number, and a server drops the oldest of a
   recipient's SCNs when they pile up (ours beyond 100), so after a burst large enough
   for that, once it has settled, and every FULL_READ_INTERVAL anyway, the registry is
   read whole again; the mirror then changes only what differs.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from ipaddress import IPv4Address, IPv6Address, ip_address

from isns_server.client import IsnsClient, IsnsClientError
from isns_server.isnsp.codec import StreamDecoder, encode_message
from isns_server.isnsp.constants import FunctionId, NodeType, Status
from isns_server.isnsp.errors import MessageFormatError
from isns_server.isnsp.messages import IPAddress, Message, response
from isns_server.netaddr import host_port
from isns_server.schedule import Sleep, doubling

from . import registry_queries as queries
from .catalog import Domain, Node
from .mirror import RegistryMirror
from .registry_queries import RegistryRefusal, Request
from .scn import BurstWatch, Pending, ScnFormatError, parse_scn, scn_response
from .slp.agent import DirectoryAgent, TargetDeregistration, TargetRegistration

log = logging.getLogger(__name__)

REQUEST_TIMEOUT = 10.0  # seconds an iSNS answer may take before the session restarts
RETRY_FIRST, RETRY_MAX = 1.0, 60.0  # reconnect pauses, doubling
DEFAULT_PERIOD = 900  # RFC 4171 6.2.6 default Registration Period
CONCURRENT_QUERIES = 32  # queries in flight on the connection during a re-read
MAX_SCN_CONNECTIONS = 8
MAX_SCN_MESSAGE = 1 << 20
MAX_ADDED_PORTALS = 4096
FULL_READ_INTERVAL = 3600.0  # seconds between full re-reads, for an SCN lost otherwise


def reconnect_pause(reconnects: int) -> float:
    """Seconds before reconnecting, `reconnects` times since a session last got to
    following the registry: RETRY_FIRST, doubling up to RETRY_MAX."""
    return doubling(reconnects, RETRY_FIRST, RETRY_MAX)


class _Forgotten(Exception):
    """The server no longer knows the agent (restarted without its data, or expired us)."""


class RegistryBridge:
    def __init__(
        self,
        *,
        server: tuple[str, int],
        node_name: str,
        scn_port: int,
        agent: DirectoryAgent,
        mirror: RegistryMirror,
        clock: Callable[[], float] = time.monotonic,
        on_registry_read: Callable[[], None] = lambda: None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.server = server
        self.node_name = node_name
        self.scn_port = scn_port
        self.agent = agent
        self.mirror = mirror
        self.clock = clock
        self.on_registry_read = on_registry_read  # after every full read
        self.sleep = sleep
        self._pending = Pending()
        self._bursts = BurstWatch()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: IsnsClient | None = None
        self._listener: asyncio.Server | None = None
        self._scn_connections: dict[asyncio.StreamWriter, asyncio.Task[None]] = {}
        self._reconnects = 0  # since a session last got to following the registry
        self._added_portals: set[tuple[str, IPAddress, int]] = set()

    @property
    def where(self) -> str:
        return host_port(*self.server)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="isns-bridge")

    def target_changes_arrived(self) -> None:
        """The directory agent holds SLP (de)registrations to carry into the registry."""
        self._wake.set()

    async def stop(self) -> None:
        if self._client is not None:
            # Best effort, before the session ends: leave the registry as we found it.
            with contextlib.suppress(IsnsClientError, TimeoutError):
                await self._call(self._client, queries.deregistration(self.node_name))
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self._close_listener()

    # Session

    async def _run(self) -> None:
        while True:
            try:
                await self._session()
            except TimeoutError:
                log.warning(
                    "iSNS server %s did not answer within %.0f s; reconnecting in %.0f s",
                    self.where,
                    REQUEST_TIMEOUT,
                    self._pause,
                )
            except (IsnsClientError, OSError) as exc:
                log.warning(
                    "iSNS server %s: %s; reconnecting in %.0f s", self.where, exc, self._pause
                )
            except _Forgotten:
                log.warning("iSNS server %s forgot the agent; registering again", self.where)
            except RegistryRefusal as exc:
                log.error("%s; retrying in %.0f s", exc, self._pause)
            finally:
                if self._client is not None:
                    await self._client.close()
                    self._client = None
            await self.sleep(self._pause)
            self._reconnects += 1

    @property
    def _pause(self) -> float:
        return reconnect_pause(self._reconnects)

    async def _session(self) -> None:
        host, port = self.server
        client = await IsnsClient.connect(host, port, on_request=self._server_request)
        self._client = client
        address = ip_address(client.local_address)
        scn_port = await self._listen_for_scns(address)
        answer = await self._call(
            client, queries.control_node_registration(self.node_name, address, scn_port)
        )
        if answer.status != Status.SUCCESSFUL:
            raise RegistryRefusal(
                f"to register {self.node_name} as a Control Node (list it in that server's "
                "isns.control_nodes)",
                answer.status,
            )
        period = await self._keepalive(client)  # the period we are held to, from the start
        subscribed = await self._subscribe(client)
        await self._reload(client)
        log.info(
            "following the iSNS registry at %s as %s: %d nodes, %d discovery domains%s",
            self.where,
            self.node_name,
            len(self.mirror.catalog.nodes),
            len(self.mirror.catalog.domains),
            "" if subscribed else " (re-read periodically: no SCNs)",
        )
        self._reconnects = 0  # a session that worked: the next failure starts afresh
        await self._follow(client, subscribed, period)

    async def _subscribe(self, client: IsnsClient) -> bool:
        answer = await self._call(client, queries.scn_registration(self.node_name))
        if answer.status == Status.SUCCESSFUL:
            return True
        log.warning(
            "iSNS server %s refused management SCNs (%s): the SLP directory will re-read the "
            "registry periodically instead of following each change",
            self.where,
            queries.status_name(answer.status),
        )
        return False

    async def _follow(self, client: IsnsClient, subscribed: bool, period: int) -> None:
        lost = asyncio.ensure_future(client.wait_disconnected())
        now = self.clock()
        keepalive_at, reread_at = now + max(1.0, period / 3), now + FULL_READ_INTERVAL
        try:
            while True:
                deadline = min(keepalive_at, reread_at, self._bursts.settles_at())
                woken = asyncio.ensure_future(self._wake.wait())
                done, _ = await asyncio.wait(
                    {woken, lost},
                    timeout=max(0.0, deadline - self.clock()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                woken.cancel()
                if lost in done:
                    raise IsnsClientError("it closed the connection")
                self._wake.clear()
                now = self.clock()
                if now >= keepalive_at:
                    period = await self._keepalive(client)
                    keepalive_at = now + max(1.0, period / 3)
                    if not subscribed:
                        self._pending.resync()
                if now >= reread_at or self._bursts.settled(now):
                    self._pending.resync()  # SCNs may have been dropped: read it all
                await self._bridge_target_changes(client)
                if self._pending.everything:
                    reread_at = now + FULL_READ_INTERVAL
                    self._bursts.reset()
                if self._pending:
                    await self._apply(client, self._pending.take())
        finally:
            lost.cancel()

    async def _keepalive(self, client: IsnsClient) -> int:
        period = queries.registration_period(
            await self._call(client, queries.keepalive(self.node_name))
        )
        if period is None:
            raise _Forgotten()
        return period or DEFAULT_PERIOD

    # Reading the registry

    async def _reload(self, client: IsnsClient) -> None:
        self._pending.take()  # a full read covers whatever SCNs said so far
        nodes: dict[str, Node] = {}
        after: str | None = None
        while (step := await self._walk_node(client, after)) is not None:
            name, node_type = step
            if name in nodes:
                raise IsnsClientError(f"its node walk (DevGetNext) came back to {name}")
            nodes[after := name] = Node(name, node_type)
        targets = [name for name, node in nodes.items() if node.is_target]
        read = await self._nodes(client, targets)
        walked: dict[int, Domain] = {}
        last: int | None = None
        while (domain := await self._walk_domain(client, last)) is not None:
            if domain.id in walked:
                raise IsnsClientError(f"its DD walk (DevGetNext) came back to {domain.id}")
            walked[last := domain.id] = domain
        self.mirror.reload(
            [read.get(name) or node for name, node in nodes.items()],
            await self._with_sets(client, list(walked.values())),
            self.clock(),
        )
        self.on_registry_read()

    async def _walk_node(
        self, client: IsnsClient, after: str | None
    ) -> tuple[str, NodeType] | None:
        return queries.walked_node(
            await self._call(client, queries.node_walk(self.node_name, after))
        )

    async def _walk_domain(self, client: IsnsClient, after: int | None) -> Domain | None:
        return queries.walked_domain(
            await self._call(client, queries.domain_walk(self.node_name, after))
        )

    async def _apply(self, client: IsnsClient, pending: Pending) -> None:
        if pending.everything:
            await self._reload(client)
            return
        catalog = self.mirror.catalog
        names = set(pending.nodes)
        for entity in pending.entities:
            answer = await self._call(client, queries.entity_query(self.node_name, entity))
            names.update(queries.entity_nodes(entity, answer))
            names.update(n.name for n in catalog.nodes.values() if n.entity == entity)
        domain_ids = set(pending.domains)
        for set_id in pending.domain_sets:
            domain_ids.update(catalog.domains_in_set(set_id))
        self.mirror.update(
            await self._nodes(client, names), await self._domains(client, domain_ids), self.clock()
        )

    async def _nodes(self, client: IsnsClient, names: Iterable[str]) -> dict[str, Node | None]:
        wanted = list(names)
        answers = await self._gather(
            client, [queries.node_query(self.node_name, n) for n in wanted]
        )
        return {n: queries.queried_node(n, a) for n, a in zip(wanted, answers, strict=True)}

    async def _domains(
        self, client: IsnsClient, domain_ids: Iterable[int]
    ) -> dict[int, Domain | None]:
        wanted = list(domain_ids)
        requests = [queries.domain_read(self.node_name, i) for i in wanted]
        answers = await self._gather(client, requests)
        read = [queries.read_domain(i, a) for i, a in zip(wanted, answers, strict=True)]
        found = await self._with_sets(client, [d for d in read if d is not None])
        return {**dict.fromkeys(wanted), **{domain.id: domain for domain in found}}

    async def _with_sets(self, client: IsnsClient, domains: list[Domain]) -> list[Domain]:
        requests = [queries.domain_sets_query(self.node_name, d.id) for d in domains]
        answers = await self._gather(client, requests)
        return [queries.with_domain_sets(d, a) for d, a in zip(domains, answers, strict=True)]

    async def _gather(self, client: IsnsClient, requests: list[Request]) -> list[Message]:
        """Answers in request order, a bounded number in flight (the client pipelines)."""
        answers: list[Message] = []
        for start in range(0, len(requests), CONCURRENT_QUERIES):
            batch = requests[start : start + CONCURRENT_QUERIES]
            answers += await asyncio.gather(*(self._call(client, r) for r in batch))
        return answers

    async def _call(self, client: IsnsClient, request: Request) -> Message:
        return await asyncio.wait_for(
            client.call(
                request.function, request.source, request.keys, request.operating, request.replace
            ),
            REQUEST_TIMEOUT,
        )

    # SLP registrations into iSNS

    async def _bridge_target_changes(self, client: IsnsClient) -> None:
        for event in self.agent.target_changes():
            what = "registration" if isinstance(event, TargetRegistration) else "deregistration"
            address = queries.portal_address(event.host)
            if address is None:
                log.warning(
                    "SLP %s of %s from %s kept out of iSNS: %r is a host name and iSNS "
                    "portals are IP addresses",
                    what,
                    event.url,
                    event.source,
                    event.host,
                )
                continue
            name = event.iscsi_name
            held = queries.queried_node(
                name, await self._call(client, queries.node_query(self.node_name, name))
            )
            if isinstance(event, TargetRegistration):
                request = await self._registration(client, event, address, held)
            else:
                request = self._deregistration(event, address, held)
            if request is None:
                log.debug("SLP %s of %s: nothing to change in iSNS", what, event.url)
                continue
            answer = await self._call(client, request)
            if answer.status != Status.SUCCESSFUL:
                log.warning(
                    "iSNS server %s refused the SLP %s of %s from %s: %s",
                    self.where,
                    what,
                    event.url,
                    event.source,
                    queries.status_name(answer.status),
                )

    async def _registration(
        self, client: IsnsClient, event: TargetRegistration, address: IPAddress, held: Node | None
    ) -> Request | None:
        layout = queries.EntityLayout()
        if (entity := queries.slp_registration_entity(event, held)) is not None:
            answer = await self._call(client, queries.entity_layout_query(self.node_name, entity))
            layout = queries.entity_layout(entity, answer)
        request = queries.target_registration(event, address, held, layout)
        # A portal added to another client's entity, for its SrvDeReg to withdraw;
        # bounded like the SLP registrations that can add them.
        if request is not None and entity is None and len(self._added_portals) < MAX_ADDED_PORTALS:
            self._added_portals.add((event.iscsi_name, address, event.port))
        return request

    def _deregistration(
        self, event: TargetDeregistration, address: IPAddress, held: Node | None
    ) -> Request | None:
        name = event.iscsi_name
        added = (name, address, event.port) in self._added_portals
        self._added_portals.discard((name, address, event.port))
        shared = held is not None and any(
            node.entity == held.entity and queries.holds_portal(node, address, event.port)
            for node in self.mirror.catalog.nodes.values()
            if node.name != name
        )
        return queries.target_deregistration(
            event, address, held, added_by_slp=added, portal_shared=shared
        )

    # Messages from the server: SCNs, on our SCN port or on the client connection

    def _server_request(self, message: Message) -> Message | None:
        if message.function == FunctionId.SCN:
            try:
                change = parse_scn(message)
            except ScnFormatError as exc:
                log.warning("unreadable SCN from iSNS server %s: %s", self.where, exc)
                return response(message, Status.MESSAGE_FORMAT_ERROR)
            log.debug("SCN from %s: %s", self.where, change.events)
            self._pending.add(change)
            self._bursts.arrived(self.clock())
            self._wake.set()
            return scn_response(message, change.destination)
        if message.function == FunctionId.ESI:
            return response(message, Status.SUCCESSFUL, message.attributes)  # 5.7.5.13
        return None

    async def _listen_for_scns(self, address: IPv4Address | IPv6Address) -> int:
        """Our SCN listener on `address`, kept across sessions while the address holds."""
        if self._listener is not None:
            host, port = self._listener.sockets[0].getsockname()[:2]
            if ip_address(host) == address:
                return int(port)
            await self._close_listener()
        self._listener = await asyncio.start_server(
            self._scn_connection, str(address), self.scn_port
        )
        return int(self._listener.sockets[0].getsockname()[1])

    async def _scn_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if len(self._scn_connections) >= MAX_SCN_CONNECTIONS:
            writer.close()
            return
        task = asyncio.current_task()
        assert task is not None
        self._scn_connections[writer] = task
        decoder = StreamDecoder(max_message_size=MAX_SCN_MESSAGE)
        try:
            while data := await reader.read(65536):
                decoder.receive_data(data)
                while (message := decoder.next_message()) is not None:
                    reply = self._server_request(message)
                    if reply is not None:
                        writer.writelines(encode_message(reply))
        except (MessageFormatError, OSError) as exc:
            log.warning(
                "SCN connection from %s dropped: %s", writer.get_extra_info("peername"), exc
            )
        finally:
            self._scn_connections.pop(writer, None)
            writer.close()

    async def _close_listener(self) -> None:
        if self._listener is None:
            return
        self._listener.close()
        handlers = list(self._scn_connections.values())
        for writer in list(self._scn_connections):
            writer.close()  # the handler reads EOF and ends
        if handlers:
            await asyncio.wait(handlers)
        await self._listener.wait_closed()
        self._listener = None
