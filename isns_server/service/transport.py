"""asyncio adapters: bytes in from TCP/UDP, decoded messages to the dispatcher, bytes out.

Nothing here knows iSNS semantics; a malformed message is answered with the status the
codec chose (RFC 4171: Message Format Error) when a reply can be framed, and the
connection is closed when the byte stream cannot be framed any more. Over TCP the
answers leave in the order the requests came, so a valid request pipelined before
bytes that cannot be framed is answered before the error and the close.

The limits (docs/isns.md, "Limits and abuse resistance") are applied here: connection
admission and idle timeout (admission.py), the reassembly budget and timeout shared by
every connection, per-source UDP rate limits and the size of every answer
(answer_limits.py).
"""

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from ..admission import Admission, Ticket
from ..isnsp.codec import DatagramDecoder, ReassemblyBudget, StreamDecoder, encode_message
from ..isnsp.constants import FunctionId, Status, status_text
from ..isnsp.errors import MessageFormatError
from ..isnsp.messages import Message, response
from ..isnsp.pdu import UDP_MAX_PDU_PAYLOAD
from ..logthrottle import LogThrottle
from ..netaddr import peer_text
from ..ratelimit import TokenBuckets
from .answer_limits import bounded_datagram_answer, bounded_stream_answer, collapse_repeats
from .dispatcher import Dispatcher

log = logging.getLogger(__name__)

LOG_INTERVAL = 60.0  # seconds between two lines about the same peer and problem


@dataclass(frozen=True, slots=True)
class StreamLimits:
    """What every TCP connection of the service shares."""

    max_message_size: int
    admission: Admission
    budget: ReassemblyBudget
    reassembly_timeout: float


@dataclass(frozen=True, slots=True)
class DatagramLimits:
    """What every UDP socket of the service shares."""

    max_message_size: int
    answer_factor: int
    buckets: TokenBuckets


# One throttle for the whole service: a flood over many connections is still one line.
_throttle = LogThrottle(log, LOG_INTERVAL)


def _error_reply(error: MessageFormatError) -> Message | None:
    """The response that reports `error`, when the bad message can be answered at all."""
    if error.function is None or error.xid is None or error.function & 0x8000:
        return None
    return response(Message(error.function, error.xid), error.status)


def _answered(message: Message) -> bool:
    """Will the dispatcher answer it? Never a response or a Heartbeat (5.6.5.14)."""
    return not message.is_response and message.function != FunctionId.HEARTBEAT


def _peer_host(address: Any) -> str:
    return str(address[0]) if isinstance(address, tuple) else str(address)


class IsnsStreamProtocol(asyncio.Protocol):
    """One TCP connection from an iSNS client."""

    def __init__(self, dispatcher: Dispatcher, limits: StreamLimits) -> None:
        self.dispatcher = dispatcher
        self.limits = limits
        self.decoder = StreamDecoder(
            max_message_size=limits.max_message_size,
            budget=limits.budget,
            reassembly_timeout=limits.reassembly_timeout,
        )
        self.transport: asyncio.Transport | None = None
        self.ticket: Ticket | None = None
        self.peer = self.host = "?"
        self.answers: deque[list[Message | None]] = deque()  # in request order
        self.closing = False  # close once the answers queued so far are sent
        self.reassembly_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.ticket = self.limits.admission.admit(transport)
        if self.ticket is None:
            return
        self.transport = cast(asyncio.Transport, transport)
        address = transport.get_extra_info("peername")
        self.peer, self.host = peer_text(address), _peer_host(address)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ticket is not None:
            self.ticket.release()
            self.ticket = None
        if self.reassembly_timer is not None:
            self.reassembly_timer.cancel()
            self.reassembly_timer = None
        self.decoder.close()
        self.transport = None

    def data_received(self, data: bytes) -> None:
        if self.transport is None or self.closing:
            return
        assert self.ticket is not None
        self.ticket.touch()
        self.decoder.receive_data(data)
        now = asyncio.get_running_loop().time()
        while not self.closing:
            try:
                message = self.decoder.next_message(now)
            except MessageFormatError as error:
                self.reject(error)
                continue
            if message is None:
                break
            if _answered(message):
                self.dispatcher.dispatch(collapse_repeats(message), self.expect(), self.peer)
            else:
                self.dispatcher.dispatch(message, _ignore, self.peer)
        self._arm_reassembly_timer()

    def reject(self, error: MessageFormatError) -> None:
        action = "closing the connection" if error.fatal else "answered " + error.status.name
        _throttle.warning(
            ("bad", self.host),
            asyncio.get_running_loop().time(),
            "bad iSNS message from %s: %s; %s",
            self.peer,
            error,
            action,
        )
        reply = _error_reply(error)
        if reply is not None:
            self.expect()(reply)
        if error.fatal and self.transport is not None:
            self.closing = True
            self.transport.pause_reading()
            self._flush()

    def expect(self) -> Callable[[Message], None]:
        """A place for the next answer, sent once those before it are."""
        slot: list[Message | None] = [None]
        self.answers.append(slot)

        def fill(message: Message) -> None:
            slot[0] = message
            self._flush()

        return fill

    def _flush(self) -> None:
        answers = self.answers
        while answers and answers[0][0] is not None:
            answer = answers.popleft()[0]
            assert answer is not None
            self.send(answer)
        if self.closing and not answers and self.transport is not None:
            self.transport.close()

    def send(self, message: Message) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        pdus, whole = bounded_stream_answer(message, self.limits.max_message_size)
        if not whole:
            _throttle.warning(
                ("too large", self.host),
                asyncio.get_running_loop().time(),
                "answer to %s (transaction %d) would exceed isns.max_message_size (%d bytes);"
                " answered %s instead",
                self.peer,
                message.xid,
                self.limits.max_message_size,
                status_text(Status.INVALID_QUERY),
            )
        self.transport.writelines(pdus)

    def _arm_reassembly_timer(self) -> None:
        deadline = self.decoder.reassembly_deadline
        if deadline is None or self.reassembly_timer is not None or self.transport is None:
            return
        loop = asyncio.get_running_loop()
        self.reassembly_timer = loop.call_at(deadline, self._reassembly_expired)

    def _reassembly_expired(self) -> None:
        self.reassembly_timer = None
        if self.transport is None or self.closing:
            return
        for error in self.decoder.expire(asyncio.get_running_loop().time()):
            self.reject(error)
        self._arm_reassembly_timer()

    # Back-pressure: a client that does not read its answers stops being read from.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()


def _ignore(message: Message) -> None:
    """Where the answer to a message that is never answered would go."""


class IsnsDatagramProtocol(asyncio.DatagramProtocol):
    """The UDP socket of one listen address; each datagram carries one PDU."""

    def __init__(self, dispatcher: Dispatcher, limits: DatagramLimits) -> None:
        self.dispatcher = dispatcher
        self.limits = limits
        self.decoder = DatagramDecoder(max_message_size=limits.max_message_size)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        peer, host = peer_text(addr), _peer_host(addr)
        now = asyncio.get_running_loop().time()
        if not self.limits.buckets.allow(host, now):
            _throttle.log(
                logging.INFO,
                "udp rate",
                now,
                "dropped iSNS datagrams from %s: over isns.udp_rate_limit",
                host,
            )
            return
        try:
            message = self.decoder.receive_datagram(data, addr)
        except MessageFormatError as error:
            _throttle.warning(("bad", host), now, "bad iSNS datagram from %s: %s", peer, error)
            reply = _error_reply(error)
            if reply is not None:
                self.send_to(reply, addr)
            return
        if message is None:
            return
        if not _answered(message):
            self.dispatcher.dispatch(message, _ignore, peer)
            return
        request = collapse_repeats(message)
        size = len(data)
        self.dispatcher.dispatch(
            request, lambda answer: self.answer(answer, request, size, addr), peer
        )

    def answer(self, answer: Message, request: Message, request_size: int, addr: Any) -> None:
        limits = self.limits
        datagrams, refused = bounded_datagram_answer(
            answer,
            request,
            request_size,
            _peer_host(addr),
            self.dispatcher.registry,
            limits.max_message_size,
            limits.answer_factor,
        )
        if refused is not None:
            _throttle.log(
                logging.INFO,
                ("udp too large", _peer_host(addr)),
                asyncio.get_running_loop().time(),
                "answer over UDP to %s (transaction %d) larger than isns.udp_answer_factor"
                " times its %d-byte request allows, and the address is not a portal of the"
                " Source's entity (or over isns.max_message_size); answered %s: ask over TCP",
                peer_text(addr),
                answer.xid,
                request_size,
                status_text(refused),
            )
        self._sendto(datagrams, addr)

    def send_to(self, message: Message, addr: Any) -> None:
        self._sendto(encode_message(message, max_pdu_payload=UDP_MAX_PDU_PAYLOAD), addr)

    def _sendto(self, datagrams: list[bytes], addr: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            for datagram in datagrams:
                self.transport.sendto(datagram, addr)
