"""The Name Service Heartbeat (RFC 4171 5.6.5.14): sent, when `isns.heartbeat_address` is
set, so clients can find this server and backup servers can watch it; received from
other servers, parsed, checked and logged.

A multicast heartbeat (IPv4 only) leaves with TTL 1 through the interface of a specific
`isns.listen` address: with no such address it is not sent at all, so turning it on never
multicasts on an interface nobody chose.
"""

import asyncio
import contextlib
import logging
import socket
from ipaddress import ip_address

from ..config import ListenAddress
from ..isnsp.codec import encode_message
from ..isnsp.errors import MessageFormatError
from ..isnsp.heartbeat import Heartbeat, ServerAddress, decode_heartbeat, heartbeat_message
from ..isnsp.messages import Message
from ..schedule import Sleep

log = logging.getLogger(__name__)

_REMEMBERED = 256  # senders whose heartbeats are logged at DEBUG after the first


class HeartbeatError(Exception):
    """The heartbeat cannot be sent as configured; the message says what to change."""


def heartbeat_socket(destination: ListenAddress, source_host: str) -> socket.socket:
    """A UDP socket connected to `destination`, sending from `source_host` (a wildcard
    lets routing choose); multicast with TTL 1 out of `source_host`'s interface."""
    group = ip_address(destination.host)
    family = socket.AF_INET6 if group.version == 6 else socket.AF_INET
    source = ip_address(source_host)
    if group.is_multicast and family != socket.AF_INET:
        raise HeartbeatError(
            f"isns.heartbeat_address {destination}: IPv6 multicast heartbeats are not "
            "supported; use an IPv4 multicast group or a unicast address"
        )
    if group.is_multicast and (source.version != 4 or source.is_unspecified):
        raise HeartbeatError(
            f"isns.heartbeat_address {destination} is multicast, but the first isns.listen "
            f"address ({source_host}) is not a specific IPv4 address to send it from; list "
            "the IPv4 address of the interface to multicast on first in isns.listen"
        )
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        if group.is_multicast:
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, source.packed)
        if not source.is_unspecified and source.version == group.version:
            sock.bind((source_host, 0))
        sock.connect((destination.host, destination.port))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


class HeartbeatSender:
    """Every `interval` seconds, one Heartbeat naming `server` to `destination`."""

    def __init__(
        self,
        destination: ListenAddress,
        interval: int,
        server: ListenAddress,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.destination = destination
        self.interval = interval
        self.server = server
        self.sleep = sleep
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        try:
            sock = heartbeat_socket(self.destination, self.server.host)
        except OSError as exc:
            raise HeartbeatError(
                f"cannot send the heartbeat to {self.destination}: {exc.strerror}; "
                "check isns.heartbeat_address"
            ) from None
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(asyncio.DatagramProtocol, sock=sock)
        active = ip_address(sock.getsockname()[0].split("%")[0])
        port = self.server.port
        self._task = asyncio.create_task(self._run(transport, ServerAddress(active, port, port)))
        log.info("sending the iSNS heartbeat to %s every %d s", self.destination, self.interval)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self, transport: asyncio.DatagramTransport, active: ServerAddress) -> None:
        try:
            for counter in range(1 << 32):  # the Counter field's range
                heartbeat = Heartbeat(active, self.interval, counter)
                message = heartbeat_message(heartbeat, counter & 0xFFFF)
                for pdu in encode_message(message):
                    transport.sendto(pdu)
                await self.sleep(self.interval)
        finally:
            transport.close()


class HeartbeatMonitor:
    """Logs the Heartbeats that reach our listeners: each server once at INFO (another
    active iSNS server on the network is worth knowing about), a malformed one once per
    sender at WARNING, the rest at DEBUG."""

    def __init__(self) -> None:
        self._known: set[object] = set()

    def received(self, message: Message, peer: str) -> None:
        try:
            heartbeat = decode_heartbeat(message.payload or b"")
        except MessageFormatError as error:
            self._log(("bad", peer), "ignored a malformed Heartbeat from %s: %s", peer, error)
            return
        active = heartbeat.active
        self._log(
            active,
            "Heartbeat from iSNS server %s (TCP port %d, UDP port %d, every %d s, %d backup "
            "servers) via %s",
            active.address,
            active.tcp_port,
            active.udp_port,
            heartbeat.interval,
            len(heartbeat.backups),
            peer,
        )

    def _log(self, key: object, text: str, *args: object) -> None:
        first = key not in self._known and len(self._known) < _REMEMBERED
        level = logging.DEBUG
        if first:
            self._known.add(key)
            level = logging.WARNING if isinstance(key, tuple) else logging.INFO
        log.log(level, text, *args)
