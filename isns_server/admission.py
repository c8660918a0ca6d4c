"""Who may hold a TCP connection, and for how long: one mechanism for every listener
(iSNS, the iSCSI portal, SLP).

Each listener owns an `Admission`: a total cap, a cap per source address and an optional
idle timeout. A connection over a cap is closed at once, before any byte is read, and the
refusal is logged once per source and interval. `guard_accept_errors` replaces asyncio's
report of an `accept()` that failed for want of descriptors (one traceback per pending
connection, many times a second) with one line per listener and interval; asyncio itself
already stops accepting on that listener for a second before it tries again.
"""

import asyncio
import errno
import logging
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


def guard_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Report a listener's `accept()` failing for want of descriptors or memory once per
    listener and interval instead of once per attempt. Installed once per loop; other
    errors go on to the handler that was there before."""
    previous = loop.get_exception_handler()
    if getattr(previous, "_accept_guard", False):
        return
    throttle = LogThrottle(log, LOG_INTERVAL)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        sock = context.get("socket")
        if isinstance(exc, OSError) and exc.errno in _OUT_OF_RESOURCES and sock is not None:
            try:
                where = peer_text(sock.getsockname())
            except OSError:
                where = "a listening socket"
            throttle.warning(
                where,
                loop.time(),
                "cannot accept connections on %s: %s (errno %s); new connections wait in the"
                " backlog and accepting resumes each second. Raise the open-file limit"
                " (LimitNOFILE= in the systemd unit) or lower the max_connections settings",
                where,
                exc.strerror,
                errno.errorcode.get(exc.errno or 0, exc.errno),
            )
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    handler._accept_guard = True  # type: ignore[attr-defined]
    loop.set_exception_handler(handler)
