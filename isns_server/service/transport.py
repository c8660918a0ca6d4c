"""asyncio adapters: bytes in from TCP/UDP, decoded messages to the dispatcher, bytes out.

Nothing here knows iSNS semantics; a malformed message is answered with the status the
codec chose (RFC 4171: Message Format Error) when a reply can be framed, and the
connection is closed when the byte stream cannot be framed any more.
"""

import asyncio
import logging
from typing import Any, cast

from ..isnsp.codec import DatagramDecoder, StreamDecoder, encode_message
from ..isnsp.errors import MessageFormatError
from ..isnsp.messages import Message, response
from ..isnsp.pdu import UDP_MAX_PDU_PAYLOAD
from ..netaddr import peer_text
from .dispatcher import Dispatcher

log = logging.getLogger(__name__)


def _error_reply(error: MessageFormatError) -> Message | None:
    """The response that reports `error`, when the bad message can be answered at all."""
    if error.function is None or error.xid is None or error.function & 0x8000:
        return None
    return response(Message(error.function, error.xid), error.status)


class IsnsStreamProtocol(asyncio.Protocol):
    """One TCP connection from an iSNS client."""

    def __init__(
        self, dispatcher: Dispatcher, max_message_size: int, open_set: set[asyncio.Transport]
    ) -> None:
        self.dispatcher = dispatcher
        self.decoder = StreamDecoder(max_message_size=max_message_size)
        self.open_set = open_set  # the service's open connections, closed at shutdown
        self.transport: asyncio.Transport | None = None
        self.peer = "?"
        self.warned = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.open_set.add(self.transport)
        self.peer = peer_text(transport.get_extra_info("peername"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            self.open_set.discard(self.transport)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.decoder.receive_data(data)
        while self.transport is not None and not self.transport.is_closing():
            try:
                message = self.decoder.next_message()
            except MessageFormatError as error:
                self.reject(error)
                continue
            if message is None:
                return
            self.dispatcher.dispatch(message, self.send, self.peer)

    def reject(self, error: MessageFormatError) -> None:
        level = logging.DEBUG if self.warned else logging.WARNING
        action = "closing the connection" if error.fatal else "answered " + error.status.name
        log.log(level, "bad iSNS message from %s: %s; %s", self.peer, error, action)
        self.warned = True
        reply = _error_reply(error)
        if reply is not None:
            self.send(reply)
        if error.fatal and self.transport is not None:
            self.transport.close()

    def send(self, message: Message) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.writelines(encode_message(message))

    # Back-pressure: a client that does not read its answers stops being read from.
    def pause_writing(self) -> None:
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None:
            self.transport.resume_reading()


class IsnsDatagramProtocol(asyncio.DatagramProtocol):
    """The UDP socket of one listen address; each datagram carries one PDU."""

    def __init__(self, dispatcher: Dispatcher, max_message_size: int) -> None:
        self.dispatcher = dispatcher
        self.decoder = DatagramDecoder(max_message_size=max_message_size)
        self.transport: asyncio.DatagramTransport | None = None
        self.warned: set[str] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        peer = peer_text(addr)
        try:
            message = self.decoder.receive_datagram(data, addr)
        except MessageFormatError as error:
            # One warning per source: a flood of garbage must not flood the log.
            level = (
                logging.DEBUG if peer in self.warned or len(self.warned) > 1000 else logging.WARNING
            )
            self.warned.add(peer)
            log.log(level, "bad iSNS datagram from %s: %s", peer, error)
            reply = _error_reply(error)
            if reply is not None:
                self.send_to(reply, addr)
            return
        if message is not None:
            self.dispatcher.dispatch(message, lambda answer: self.send_to(answer, addr), peer)

    def send_to(self, message: Message, addr: Any) -> None:
        if self.transport is not None and not self.transport.is_closing():
            for pdu in encode_message(message, max_pdu_payload=UDP_MAX_PDU_PAYLOAD):
                self.transport.sendto(pdu, addr)
