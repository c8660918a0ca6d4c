"""The API's TCP connections under the rules every front-end shares (admission.py): a
total cap, a cap per source address, an idle timeout, and an accept loop that backs off
when the process runs out of descriptors. aiohttp's request handler sits behind.

A connection is admitted as soon as it is accepted, before any TLS handshake (TLS is
then started on the admitted connection with `loop.start_tls`), so connections that
never finish a handshake count against the caps like any other.

HTTP answers flow one way for long stretches (an event stream, events.py, sends a
keepalive comment every 15 s and a client sends nothing after its request), so the idle
timer here counts from the last byte either way: received, or handed to the transport.

aiohttp logs every request it cannot parse at ERROR with a traceback; such a request is
answered 400 and is the client's doing, so `HTTP_LOG` (the logger handed to aiohttp)
turns those into one WARNING line per source and minute.
"""

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from typing import Any, cast

from aiohttp.http_exceptions import HttpProcessingError

from ..admission import LOG_INTERVAL, Admission, Ticket
from ..logthrottle import LogThrottle
from ..netaddr import peer_text

log = logging.getLogger(__name__)
_SHOWN = 200  # characters of aiohttp's description of a malformed request


class _MalformedRequests(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._throttle = LogThrottle(log, LOG_INTERVAL)

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.levelno < logging.ERROR or not isinstance(error, HttpProcessingError):
            return True
        source = record.args[0] if isinstance(record.args, tuple) and record.args else None
        self._throttle.warning(
            ("malformed", source),
            time.monotonic(),
            "management API: answered %d to a malformed HTTP request from %s: %s",
            error.code,
            source,
            " ".join(str(error.message).split())[:_SHOWN],
        )
        return False


HTTP_LOG = logging.getLogger(__name__ + ".http")
HTTP_LOG.addFilter(_MalformedRequests())


class AdmittedConnection(asyncio.Protocol):
    """One accepted connection: admitted, then (with `tls`) wrapped, then handed to the
    protocol `make_inner` builds (aiohttp's), which sees only what the ticket allows."""

    def __init__(
        self,
        make_inner: Callable[[], asyncio.Protocol],
        admission: Admission,
        tls: ssl.SSLContext | None,
    ) -> None:
        self._make_inner = make_inner
        self._admission = admission
        self._tls = tls
        self._ticket: Ticket | None = None
        self._inner: asyncio.Protocol | None = None
        self._early: list[bytes] = []  # decrypted before the inner protocol is attached
        self._early_eof = False
        self._handshake: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._ticket = self._admission.admit(transport)
        if self._ticket is None:
            return
        stream = cast(asyncio.Transport, transport)
        if self._tls is None:
            self._attach(stream)
        else:
            self._handshake = asyncio.get_running_loop().create_task(self._start_tls(stream))

    async def _start_tls(self, transport: asyncio.Transport) -> None:
        assert self._tls is not None
        secure: asyncio.Transport | None = None
        try:
            secure = await asyncio.get_running_loop().start_tls(
                transport, self, self._tls, server_side=True
            )
        except OSError as exc:  # ssl.SSLError, a reset, the handshake timeout
            peer = peer_text(transport.get_extra_info("peername"))
            log.debug("management API: TLS handshake with %s failed: %s", peer, exc)
        finally:
            if secure is None:  # nobody else will hear that this connection is gone
                self._release()
        if secure is not None and self._ticket is not None:
            self._attach(secure)

    def _attach(self, transport: asyncio.Transport) -> None:
        assert self._ticket is not None
        self._inner = self._make_inner()
        self._inner.connection_made(_TouchingTransport(transport, self._ticket))
        early, self._early = self._early, []
        for data in early:
            self._inner.data_received(data)
        if self._early_eof:
            self._inner.eof_received()

    def _release(self) -> None:
        if self._ticket is not None:
            self._ticket.release()
            self._ticket = None

    def data_received(self, data: bytes) -> None:
        if self._ticket is None:
            return
        self._ticket.touch()
        if self._inner is None:
            self._early.append(data)  # the handshake just ended; start_tls returns next
        else:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._inner is None:
            self._early_eof = True
            return None
        return self._inner.eof_received()

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._ticket is not None:
            self._ticket.touch()  # the peer read what was queued
        if self._inner is not None:
            self._inner.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._inner is not None:
            self._inner.connection_lost(exc)
            self._inner = None


class _TouchingTransport(asyncio.Transport):
    """The transport as the inner protocol sees it: every write counts as activity.
    (loop.sendfile() refuses it; the API serves its files from memory.)"""

    def __init__(self, transport: asyncio.Transport, ticket: Ticket) -> None:
        super().__init__()
        self._transport = transport
        self._ticket = ticket

    def write(self, data: Any) -> None:
        self._ticket.touch()
        self._transport.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._ticket.touch()
        self._transport.writelines(list_of_data)

    def write_eof(self) -> None:
        self._transport.write_eof()

    def can_write_eof(self) -> bool:
        return self._transport.can_write_eof()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def close(self) -> None:
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._transport.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._transport.get_write_buffer_limits()
