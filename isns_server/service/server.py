"""The iSNS service: TCP and UDP listeners on every configured address."""

import asyncio
import errno
import logging
import socket
from collections.abc import Sequence

from ..config import ListenAddress
from .dispatcher import Dispatcher
from .transport import IsnsDatagramProtocol, IsnsStreamProtocol

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


class IsnsService:
    def __init__(self, dispatcher: Dispatcher, max_message_size: int) -> None:
        self.dispatcher = dispatcher
        self.max_message_size = max_message_size
        self.servers: list[asyncio.Server] = []
        self.datagram_transports: list[asyncio.DatagramTransport] = []
        self.connections: set[asyncio.Transport] = set()

    async def start(self, addresses: Sequence[ListenAddress]) -> None:
        loop = asyncio.get_running_loop()
        try:
            for address in addresses:
                try:
                    server = await loop.create_server(
                        lambda: IsnsStreamProtocol(
                            self.dispatcher, self.max_message_size, self.connections
                        ),
                        address.host,
                        address.port,
                        reuse_address=True,
                        backlog=1024,
                    )
                except OSError as exc:
                    raise listen_problem(address, "TCP", "isns.listen", exc) from None
                self.servers.append(server)
                tcp_port = server.sockets[0].getsockname()[1]
                bound = ListenAddress(address.host, tcp_port)
                try:
                    transport, _ = await loop.create_datagram_endpoint(
                        lambda: IsnsDatagramProtocol(self.dispatcher, self.max_message_size),
                        local_addr=(address.host, tcp_port),
                        family=socket.AF_INET6 if ":" in address.host else socket.AF_INET,
                    )
                except OSError as exc:
                    raise listen_problem(bound, "UDP", "isns.listen", exc) from None
                self.datagram_transports.append(transport)
                log.info("iSNS server listening on %s (TCP and UDP)", bound)
        except ListenError:
            await self.stop()
            raise

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for transport in self.datagram_transports:
            transport.close()
        for connection in list(self.connections):
            connection.close()
        for server in self.servers:
            await server.wait_closed()
        self.servers.clear()
        self.datagram_transports.clear()
