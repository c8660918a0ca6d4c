"""asyncio adapters for the directory agent: they move bytes and keep one timer.

- Unicast UDP and TCP on each `slp.listen` address (RFC 2608 6.1, 6.2).
- Multicast on each of `slp.interfaces` only: per interface, a socket bound to
  239.255.255.253 on the listen port, joined on that interface, sending with
  IP_MULTICAST_IF set to it and TTL 1, so nothing leaves the link (RFC 2608 6.1 leaves
  the TTL to configuration; one hop is where SLP multicast belongs). Replies to
  multicast requests leave from that socket, unicast to the requester, with the
  interface address as their source (IP_PKTINFO): a UA puts that address in the
  previous responder list of its retransmissions and retries an OVERFLOW over TCP to
  it, so it must be an address we listen on, not whatever routing would pick.
- Every `handle` result goes back to the sender; DAAdverts from `startup`/`tick` are
  multicast, from `begin` on (once the registry has been read); `shutdown`'s DAAdvert
  says goodbye.

What may be answered, how much and to whom is the agent's business (agent.py); a TCP
connection is only framed here, capped in size, and admitted, counted per source and
timed out when idle like every TCP listener's (isns_server/admission.py).
"""

import asyncio
import errno
import functools
import logging
import socket
import struct
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, cast

from isns_server.admission import Admission, ConnectionLimits, TcpListener, Ticket
from isns_server.config.schema import ListenAddress, SlpSection

from .slp.agent import DirectoryAgent, Via
from .slp.codec import message_length
from .slp.constants import MULTICAST_ADDRESS
from .slp.errors import SlpParseError

log = logging.getLogger(__name__)

MULTICAST_TTL = 1
_IP_MULTICAST_ALL = 49  # Linux <linux/in.h>; the socket module does not name it
_IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # Linux <linux/in.h>
MAX_TCP_MESSAGE = 1 << 18  # a SrvReg's strings are 16-bit lengths; a few of them fit


def connection_limits(slp: SlpSection) -> ConnectionLimits:
    return ConnectionLimits(
        "slp", slp.max_connections, slp.max_connections_per_source, slp.idle_timeout
    )


DEFAULT_LIMITS = connection_limits(SlpSection())


class SlpListenError(Exception):
    """An SLP socket could not be opened; the message says why and what to change."""


def listen_problem(what: str, key: str, exc: OSError) -> SlpListenError:
    if exc.errno == errno.EACCES:
        hint = (
            "ports below 1024 (SLP's is 427) need root or CAP_NET_BIND_SERVICE "
            f"(AmbientCapabilities= in a systemd unit); or set {key} to a higher port, "
            "which the user agents must then be told"
        )
    elif exc.errno == errno.EADDRINUSE:
        hint = f"another program uses it (an OpenSLP slpd? check `ss -lntup`); or change {key}"
    elif exc.errno in (errno.EADDRNOTAVAIL, errno.ENODEV):
        hint = f"no interface on this machine has that address; change {key}"
    else:
        hint = f"{exc.strerror}; check {key}"
    return SlpListenError(f"SLP directory agent cannot use {what}: {hint}")


def _peer(address: Any) -> tuple[str, int]:
    return str(address[0]), int(address[1])


def _no_multicast_from_others(sock: socket.socket) -> None:
    """Linux otherwise hands a socket the traffic of groups other sockets joined."""
    if sys.platform.startswith("linux"):
        sock.setsockopt(socket.IPPROTO_IP, _IP_MULTICAST_ALL, 0)


def unicast_socket(address: ListenAddress, shared: bool) -> socket.socket:
    """A UDP socket on `address`; `shared` lets the multicast sockets use its port."""
    family = socket.AF_INET6 if ":" in address.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET:
            _no_multicast_from_others(sock)
        sock.bind((address.host, address.port))
    except OSError as exc:
        sock.close()
        raise listen_problem(f"UDP {address}", "slp.listen", exc) from None
    sock.setblocking(False)
    return sock


def multicast_socket(interface: str, port: int) -> socket.socket:
    group = socket.inet_aton(MULTICAST_ADDRESS)
    local = socket.inet_aton(interface)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((MULTICAST_ADDRESS, port))
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, group + local)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, local)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)  # local UAs too
        _no_multicast_from_others(sock)
    except OSError as exc:
        sock.close()
        raise listen_problem(
            f"multicast {MULTICAST_ADDRESS}:{port} on {interface}", "slp.interfaces", exc
        ) from None
    sock.setblocking(False)
    return sock


def send_from(sock: socket.socket, data: bytes, to: Any, source: str) -> None:
    """One datagram to `to` with `source` as its source address (in_pktinfo's
    ipi_spec_dst), from a socket bound to the multicast group; UDP may drop it when the
    socket's buffer is full, and so may we."""
    pktinfo = struct.pack("=i4s4s", 0, socket.inet_aton(source), bytes(4))
    try:
        sock.sendmsg([data], [(socket.IPPROTO_IP, _IP_PKTINFO, pktinfo)], 0, to)
    except OSError as exc:
        log.debug("SLP reply from %s to %s not sent: %s", source, to, exc)


class _Datagrams(asyncio.DatagramProtocol):
    """`interface`, for a multicast socket: the address its replies leave from."""

    def __init__(
        self, owner: "SlpTransport", via: Via, sock: socket.socket, interface: str | None = None
    ) -> None:
        self.owner = owner
        self.via = via
        self.sock = sock
        self.interface = interface if sys.platform.startswith("linux") else None
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        assert self.transport is not None
        for reply in self.owner.handle(data, _peer(addr), self.via):
            if self.interface is None:
                self.transport.sendto(reply, addr)
            else:
                send_from(self.sock, reply, addr, self.interface)

    def error_received(self, exc: Exception) -> None:
        log.debug("SLP UDP socket error: %s", exc)  # e.g. ICMP port unreachable for a reply


class _Stream(asyncio.Protocol):
    """One TCP connection: RFC 2608 6.2 framing by the header's length field."""

    def __init__(self, owner: "SlpTransport") -> None:
        self.owner = owner
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer = ("", 0)
        self.ticket: Ticket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.ticket = self.owner.admission.admit(transport)
        if self.ticket is None:
            return  # over a cap: closed unread
        self.transport = cast(asyncio.Transport, transport)
        self.peer = _peer(transport.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ticket is not None:
            self.ticket.release()
            self.ticket = None

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None and self.ticket is not None
        self.ticket.touch()
        self.buffer += data
        while not self.transport.is_closing():
            try:
                length = message_length(bytes(self.buffer[:5]))
            except SlpParseError as exc:
                log.debug("SLP TCP from %s closed: %s", self.peer, exc)
                self.transport.close()
                return
            if length is not None and length > MAX_TCP_MESSAGE:
                log.debug("SLP TCP from %s closed: %d-byte message", self.peer, length)
                self.transport.close()
                return
            if length is None or len(self.buffer) < length:
                break
            message = bytes(self.buffer[:length])
            del self.buffer[:length]
            for reply in self.owner.handle(message, self.peer, "tcp"):
                self.transport.write(reply)


class SlpTransport:
    def __init__(
        self,
        agent: DirectoryAgent,
        listen: Sequence[ListenAddress],
        interfaces: Sequence[str],
        *,
        clock: Callable[[], float] = time.monotonic,
        on_target_change: Callable[[], None] = lambda: None,
        limits: ConnectionLimits = DEFAULT_LIMITS,
    ) -> None:
        self.agent = agent
        self.listen = tuple(listen)
        self.interfaces = tuple(interfaces)
        self.clock = clock
        self.on_target_change = on_target_change  # the agent holds target changes to bridge
        self.admission = Admission("SLP", limits)
        self.bound: list[ListenAddress] = []  # the UDP/TCP addresses, ports resolved
        self._unicast: list[asyncio.DatagramTransport] = []
        self._multicast: list[asyncio.DatagramTransport] = []
        self._servers: list[TcpListener] = []
        self._timer: asyncio.TimerHandle | None = None
        self._port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for address in self.listen:
                await self._listen(loop, address)
            self._port = self.bound[0].port if self.bound else 0
            for interface in self.interfaces:
                sock = multicast_socket(interface, self._port)
                transport, _ = await loop.create_datagram_endpoint(
                    functools.partial(_Datagrams, self, "multicast", sock, interface), sock=sock
                )
                self._multicast.append(transport)
                log.info("SLP multicast on %s:%d via %s", MULTICAST_ADDRESS, self._port, interface)
        except BaseException:
            await self.stop(goodbye=False)
            raise

    def begin(self) -> None:
        """The registry has been read: answer, and send the first DAAdvert. Once.
        UDP requests before then go unanswered (UAs retransmit); TCP connections wait in
        the backlog and are served now."""
        if not self.agent.started:
            self._beat(self.agent.startup(self.clock()))
            for server in self._servers:
                server.start()

    async def _listen(self, loop: asyncio.AbstractEventLoop, address: ListenAddress) -> None:
        sock = unicast_socket(address, shared=bool(self.interfaces))
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Datagrams(self, "unicast-udp", sock), sock=sock
        )
        self._unicast.append(transport)
        bound = ListenAddress(address.host, sock.getsockname()[1])
        try:
            server = TcpListener.open(bound.host, bound.port, lambda: _Stream(self), "SLP")
        except OSError as exc:
            raise listen_problem(f"TCP {bound}", "slp.listen", exc) from None
        self._servers.append(server)  # accepting from `begin` on; till then, the backlog
        self.bound.append(bound)
        log.info("SLP directory agent listening on %s (UDP and TCP)", bound)

    def handle(self, data: bytes, peer: tuple[str, int], via: Via) -> list[bytes]:
        replies = self.agent.handle(data, peer, via, self.clock())
        if self.agent.has_target_changes:
            self.on_target_change()
        return replies

    def _beat(self, heartbeat: tuple[list[bytes], float]) -> None:
        adverts, deadline = heartbeat
        self._multicast_all(adverts)
        if deadline != float("inf"):
            delay = max(0.0, deadline - self.clock())
            self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    def _tick(self) -> None:
        self._beat(self.agent.tick(self.clock()))

    def _multicast_all(self, datagrams: list[bytes]) -> None:
        for transport in self._multicast:
            for datagram in datagrams:
                transport.sendto(datagram, (MULTICAST_ADDRESS, self._port))

    async def stop(self, goodbye: bool = True) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if goodbye and self.agent.started:
            self._multicast_all(self.agent.shutdown())
        for server in self._servers:
            server.close()
        for transport in [*self._unicast, *self._multicast]:
            transport.close()
        self.admission.close_all()
        self._servers.clear()
        self._unicast.clear()
        self._multicast.clear()
        await asyncio.sleep(0)  # datagram sockets close on the next loop iteration
