"""Who may hold a TCP connection, and for how long: one mechanism for every listener
(iSNS, the iSCSI portal, SLP).

Each front-end owns an `Admission`: a total cap, a cap per source address and an
optional idle timeout. A connection over a cap is closed at once, before any byte is
read, and the refusal is logged once per source and interval. Each listen address is a
`TcpListener`, whose accept loop stops for a moment when the process runs out of
descriptors and says so once per interval.
"""

import asyncio
import errno
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from .logthrottle import LogThrottle
from .netaddr import peer_text

log = logging.getLogger(__name__)

LOG_INTERVAL = 60.0  # seconds between two lines about the same source or listener
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


@dataclass(frozen=True, slots=True)
class ConnectionLimits:
    """`section` names the configuration section the values come from, for log lines."""

    section: str
    max_connections: int
    max_connections_per_source: int
    idle_timeout: float | None  # seconds without a byte received; None: no timeout


class Admission:
    """The open connections of one listener (all its addresses), counted per source."""

    def __init__(self, what: str, limits: ConnectionLimits) -> None:
        self.what = what  # "iSNS", "iSCSI portal", "SLP": for log lines
        self.limits = limits
        self.connections: set[asyncio.Transport] = set()
        self._per_source: dict[str, int] = {}
        self._throttle = LogThrottle(log, LOG_INTERVAL)

    def admit(self, transport: asyncio.BaseTransport) -> "Ticket | None":
        """A ticket for a new connection, or None after closing it (over a cap)."""
        stream = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        source = str(peer[0]) if isinstance(peer, tuple) else str(peer)
        limits = self.limits
        held = self._per_source.get(source, 0)
        key = None
        if len(self.connections) >= limits.max_connections:
            key, limit, what = "max_connections", limits.max_connections, "all sources hold"
        elif held >= limits.max_connections_per_source:
            key, limit, what = "max_connections_per_source", held, "this source holds"
        if key is not None:
            stream.abort()  # nothing read, nothing to flush: free the descriptor now
            self._throttle.warning(
                (key, source),
                asyncio.get_running_loop().time(),
                "%s: refused a TCP connection from %s: %s %d connections already, the limit"
                " (%s.%s); raise it if these clients are legitimate",
                self.what,
                peer_text(peer),
                what,
                limit,
                limits.section,
                key,
            )
            return None
        self.connections.add(stream)
        self._per_source[source] = held + 1
        return Ticket(self, stream, source, limits.idle_timeout)

    def close_all(self) -> None:
        for transport in list(self.connections):
            transport.close()

    def _release(self, transport: asyncio.Transport, source: str) -> None:
        self.connections.discard(transport)
        held = self._per_source.pop(source, 1) - 1
        if held > 0:
            self._per_source[source] = held


class Ticket:
    """One admitted connection: `touch()` on every read, `release()` when it is lost."""

    __slots__ = ("_admission", "_idle", "_last", "_loop", "_source", "_timer", "_transport")

    def __init__(
        self,
        admission: Admission,
        transport: asyncio.Transport,
        source: str,
        idle_timeout: float | None,
    ) -> None:
        self._admission = admission
        self._transport = transport
        self._source = source
        self._idle = idle_timeout
        self._loop = asyncio.get_running_loop()
        self._last = self._loop.time()
        self._timer: asyncio.TimerHandle | None = None
        if idle_timeout is not None:
            self._timer = self._loop.call_at(self._last + idle_timeout, self._check)

    def touch(self) -> None:
        if self._idle is not None:
            self._last = self._loop.time()  # the timer re-arms from here when it fires

    def release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._admission._release(self._transport, self._source)

    def _check(self) -> None:
        assert self._idle is not None
        deadline = self._last + self._idle
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._check)
            return
        self._timer = None
        log.debug(
            "%s: closed the connection from %s after %g s without a byte (%s.idle_timeout)",
            self._admission.what,
            peer_text(self._transport.get_extra_info("peername")),
            self._idle,
            self._admission.limits.section,
        )
        self._transport.close()


class TcpListener:
    """A listening TCP socket with its own accept loop, for every TCP front-end.

    asyncio's own loop reports an `accept()` that fails for want of descriptors once per
    pending connection (a traceback each, hundreds a second) and schedules a retry for
    each; here the listener stops accepting for `RETRY_DELAY` seconds, logs once per
    interval, and new connections wait in the kernel's backlog meanwhile.
    """

    RETRY_DELAY = 1.0

    def __init__(
        self,
        sock: socket.socket,
        factory: Callable[[], asyncio.BaseProtocol],
        what: str,
        backlog: int,
    ) -> None:
        self.sock = sock
        self.factory = factory
        self.what = what
        self.backlog = backlog
        self._loop = asyncio.get_running_loop()
        self._serving = False
        self._retry: asyncio.TimerHandle | None = None
        self._starting: set[asyncio.Task[Any]] = set()
        self._throttle = LogThrottle(log, LOG_INTERVAL)

    @classmethod
    def open(
        cls,
        host: str,
        port: int,
        factory: Callable[[], asyncio.BaseProtocol],
        what: str,
        backlog: int = 1024,
    ) -> "TcpListener":
        """Bind and listen on host:port (port 0: any free one); raises OSError. Call
        `start()` to accept."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind((host, port))
            sock.listen(backlog)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        return cls(sock, factory, what, backlog)

    @property
    def port(self) -> int:
        port: int = self.sock.getsockname()[1]
        return port

    def start(self) -> None:
        if not self._serving and self.sock.fileno() >= 0:
            self._serving = True
            self._loop.add_reader(self.sock, self._accept)

    def close(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._serving:
            self._loop.remove_reader(self.sock)
            self._serving = False
        self.sock.close()
        for task in self._starting:
            task.cancel()

    def _accept(self) -> None:
        for _ in range(self.backlog):  # what is pending now, not forever
            try:
                conn, address = self.sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self._pause(exc)
                return
            task = self._loop.create_task(self._connect(conn, address))
            self._starting.add(task)
            task.add_done_callback(self._starting.discard)

    async def _connect(self, conn: socket.socket, address: Any) -> None:
        try:
            await self._loop.connect_accepted_socket(self.factory, conn)
        except OSError as exc:  # the peer went away before its transport was made
            conn.close()
            log.debug("%s: connection from %s lost at once: %s", self.what, address, exc)

    def _pause(self, exc: OSError) -> None:
        where = peer_text(self.sock.getsockname())
        if exc.errno in _OUT_OF_RESOURCES:
            hint = (
                "new connections wait in the backlog; raise the open-file limit"
                " (LimitNOFILE= in the systemd unit) or lower the max_connections settings"
            )
        else:
            hint = "new connections wait in the backlog"
        self._throttle.warning(
            "accept",
            self._loop.time(),
            "%s: cannot accept connections on %s: %s (errno %s); trying again every %g s; %s",
            self.what,
            where,
            exc.strerror,
            errno.errorcode.get(exc.errno or 0, exc.errno),
            self.RETRY_DELAY,
            hint,
        )
        self._loop.remove_reader(self.sock)
        self._serving = False
        self._retry = self._loop.call_later(self.RETRY_DELAY, self._resume)

    def _resume(self) -> None:
        self._retry = None
        self.start()
