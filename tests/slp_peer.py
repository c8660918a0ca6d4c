"""A small SLP user agent for tests and benchmarks, loopback only: unicast UDP and TCP to
127.0.0.1, multicast to 239.255.255.253 with IP_MULTICAST_IF=127.0.0.1 and TTL 1."""

import itertools
import socket
import time
from dataclasses import replace

from discovery_agent.slp.codec import build_message, message_length, parse_message
from discovery_agent.slp.constants import MULTICAST_ADDRESS, Flags
from discovery_agent.slp.messages import Message, SrvRqst

from .polling import eventually_sync

LOOPBACK = "127.0.0.1"


class SlpUserAgent:
    """Sends from `source` (any 127.0.0.0/8 address) to the agent on `agent`:`port`."""

    def __init__(
        self, port: int, source: str = LOOPBACK, timeout: float = 2.0, agent: str = LOOPBACK
    ) -> None:
        self.port = port
        self.agent = agent
        self.source = source
        self.timeout = timeout
        self._xids = itertools.count(1)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind((source, 0))
        self.udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(LOOPBACK))
        self.udp.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)

    def close(self) -> None:
        self.udp.close()

    def wait_for_agent(self, timeout: float = 10.0) -> None:
        """Until the agent answers: its sockets open after the iSNS server's, and it is
        silent until it has read the registry."""
        discovery = SrvRqst(service_type="service:directory-agent")

        def ask() -> list[bytes]:  # a short wait each time: a silent agent drops requests
            return self.exchange_udp(build_message(self.stamp(discovery)), wait=0.5)

        eventually_sync(
            ask, what=f"an SLP agent to answer on {self.agent}:{self.port}", within=timeout
        )

    def stamp(self, message: Message, multicast: bool = False) -> Message:
        """`message` with a fresh XID, and REQUEST-MCAST when it goes out multicast."""
        flags = message.flags | Flags.REQUEST_MCAST if multicast else message.flags
        return replace(message, xid=next(self._xids) & 0xFFFF, flags=flags)

    def exchange_udp(self, data: bytes, wait: float | None = None) -> list[bytes]:
        """Send one datagram unicast; every reply that arrives within `wait`."""
        self.udp.sendto(data, (self.agent, self.port))
        replies = self._replies(wait if wait is not None else self.timeout, first_only=wait is None)
        return [data for data, _ in replies]

    def unicast(self, message: Message) -> Message | None:
        replies = self.exchange_udp(build_message(self.stamp(message)))
        return parse_message(replies[0]) if replies else None

    def multicast(self, message: Message, wait: float = 1.0) -> list[Message]:
        """Every reply to one multicast request within `wait` seconds."""
        return [reply for reply, _ in self.multicast_from(message, wait)]

    def multicast_from(
        self, message: Message, wait: float = 1.0
    ) -> list[tuple[Message, tuple[str, int]]]:
        """Every reply to one multicast request within `wait` seconds, with its source."""
        self.udp.sendto(build_message(self.stamp(message, True)), (MULTICAST_ADDRESS, self.port))
        return [(parse_message(data), peer) for data, peer in self._replies(wait, False)]

    def tcp(self, message: Message, agent: str | None = None) -> Message:
        """One request over TCP to `agent` (by default the agent's address)."""
        address = (agent or self.agent, self.port)
        with socket.create_connection(address, self.timeout, (self.source, 0)) as stream:
            stream.sendall(build_message(self.stamp(message)))
            data = b""
            while (length := message_length(data)) is None or len(data) < length:
                chunk = stream.recv(65536)
                if not chunk:
                    raise ConnectionError("the agent closed the connection mid-reply")
                data += chunk
        return parse_message(data[:length])

    def _replies(self, wait: float, first_only: bool) -> list[tuple[bytes, tuple[str, int]]]:
        replies: list[tuple[bytes, tuple[str, int]]] = []
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0:
            self.udp.settimeout(left)
            try:
                data, peer = self.udp.recvfrom(65536)
            except TimeoutError:
                break
            replies.append((data, (str(peer[0]), int(peer[1]))))
            if first_only:
                break
        return replies
